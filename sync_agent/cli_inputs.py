"""What the operator hands the command line (settings, the state store URL, the mapping file),
turned into objects or into one line and exit status 2.

Every command reads its inputs through these functions, so a bad setting, file or URL reads
the same whichever command met it: ``error: <the key or path>: <reason> (fix: <what to do>)``
on stderr, exit 2, no traceback. Warnings (a file tightened to 0600, an env file of secrets
others can read) go to stderr as ``warning: ...`` and the command goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import typer
from pydantic import ValidationError

from connectors.config import ConnectionSettings, load_settings
from connectors.settings_errors import describe_settings_errors
from connectors.settings_file import SettingsFileError, loose_secrets_warning, read_env_file
from mapping.loader import FileRefused, LoadError, Located, load_file
from mapping.model import MappingFile
from mapping.problems import Problem
from mapping.validate import check_located
from sync_agent.store import Store, StoreError, open_store

BAD_INPUT = 2  # exit status: a setting, file or URL the operator must fix first
Warn = Callable[[str], object]


def fail(message: str, code: int = BAD_INPUT, prefix: str = "error: ") -> NoReturn:
    """Print ``message`` as one error line on stderr and exit."""
    typer.echo(prefix + " ".join(message.split()), err=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    typer.echo(f"warning: {' '.join(message.split())}", err=True)


def settings(env_file: Path | None, on_warning: Warn = warn) -> ConnectionSettings:
    """The connection settings, or one line a problem naming the ``STAGESYNC_*`` key, the
    reason and the fix (as ``check`` prints them), and exit 2."""
    source = str(env_file) if env_file is not None else "the environment"
    try:
        if env_file is not None:
            warning = loose_secrets_warning(env_file, read_env_file(env_file))
            if warning:
                on_warning(warning)
        return load_settings(env_file)
    except SettingsFileError as exc:
        fail(str(exc))
    except ValidationError as exc:
        lines = describe_settings_errors(exc, source)
        for line in lines[:-1]:
            typer.echo(f"error: {line}", err=True)
        fail(lines[-1] if lines else f"settings in {source} are wrong")


def store(db: str | None, on_warning: Warn = warn) -> Store:
    """The state store, or one line naming the URL and the fix, and exit 2; a file found open
    to others and tightened is a warning."""
    try:
        opened = open_store(db)
    except StoreError as exc:
        fail(str(exc))
    for notice in opened.notices:
        on_warning(notice)
    return opened


def load_mapping(path: Path) -> Located | Problem:
    """The mapping file as composed YAML, or the problem that stopped it (YAML syntax, a tag,
    an alias). A file refused before its content could be judged (a missing path, a
    directory, a FIFO, a device, past a bound of ``mapping.limits``) is its one line (a
    ``file:line:col: error: ...`` line, as every mapping problem reads) and exit 2."""
    try:
        return load_file(path)
    except FileRefused as exc:
        fail(str(exc.problem), prefix="")
    except LoadError as exc:
        return exc.problem


def check_mapping(path: Path) -> tuple[MappingFile | None, list[Problem]]:
    """Load and validate the mapping file: the mapping (None on any error) and every problem;
    exit 2 for a file refused outright."""
    loaded = load_mapping(path)
    if isinstance(loaded, Problem):
        return None, [loaded]
    return check_located(loaded)


def mapping(path: Path, then: str | None = None) -> MappingFile:
    """The valid mapping at ``path``; else its problems and exit 1 (``then`` says what to do
    next), or exit 2 for a file refused outright."""
    parsed, problems = check_mapping(path)
    if parsed is None:
        for problem in problems:
            typer.echo(str(problem))
        if then:
            typer.echo(then)
        raise typer.Exit(1)
    return parsed


def write_check(path: Path, what: str) -> None:
    """Fail early, before work, when ``path`` cannot be a file to write (a directory)."""
    if path.is_dir():
        fail(f"{path}: the path is a directory (fix: give the path of the {what} to write)")
