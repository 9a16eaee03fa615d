"""The env file of connection settings (``--env-file``): checked before pydantic-settings reads
it, and warned about when others can read the secrets in it.

pydantic-settings opens whatever path it is given: a missing file is silently skipped (every
key then reads as "missing"), a binary one fails with ``UnicodeDecodeError``, a FIFO blocks.
So the file is first read here, as ``connectors.files`` reads any operator's file, and every
refusal is a ``SettingsFileError`` naming the path and the fix. Its content is never echoed: it
holds secrets.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from connectors.files import NotReadable, read_regular_file

# An env file is a few dozen lines; a larger one is the wrong file.
MAX_ENV_FILE_BYTES = 256 * 1024
# Keys whose values are secrets (every ``SecretStr`` of ``connectors.config``).
SECRET_SUFFIXES = ("PASSWORD", "CLIENT_SECRET", "ACCESS_TOKEN", "REFRESH_TOKEN", "SESSION_ID")
# Read permission for anyone but the owner: a secret they can read is not a secret.
READABLE_BY_OTHERS = stat.S_IRGRP | stat.S_IROTH


class SettingsFileError(Exception):
    """An env file that cannot be used, named with the reason and the fix (one line)."""

    def __init__(self, path: Path, reason: str, fix: str) -> None:
        super().__init__(f"settings file {path}: {reason} (fix: {fix})")
        self.path = path


def read_env_file(path: Path) -> str:
    """The text of ``path`` if it is a readable UTF-8 env file; else ``SettingsFileError``."""
    try:
        raw = read_regular_file(path, MAX_ENV_FILE_BYTES)
    except NotReadable as exc:
        fix = "give the path of a file of STAGESYNC_* lines; `stagesync sandbox start` writes one"
        raise SettingsFileError(path, exc.reason, exc.fix if exc.too_large else fix) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise SettingsFileError(path, f"not UTF-8 text (line {line}, offset {exc.start})",
                                "save it as UTF-8 lines of KEY=VALUE") from None
    if "\x00" in text:
        raise SettingsFileError(path, "holds NUL characters (binary, or UTF-16?)",
                                "save it as UTF-8 lines of KEY=VALUE")
    return text


def holds_secrets(text: str) -> bool:
    """Whether an env file's text sets any secret (a non-empty value of a secret key)."""
    for line in text.splitlines():
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and not key.startswith("#") and value.strip().strip("'\"") and \
                key.strip().upper().endswith(SECRET_SUFFIXES):
            return True
    return False


def loose_secrets_warning(path: Path, text: str) -> str | None:
    """A warning when ``path`` holds secrets and others than its owner (its group, anyone) may
    read it. The file is the user's: its mode is never changed here; the warning gives the
    command."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    if not mode & READABLE_BY_OTHERS or not holds_secrets(text):
        return None
    return (f"settings file {path} holds secrets and is readable by others (mode {mode:04o}) "
            f"(fix: chmod 600 {path})")
