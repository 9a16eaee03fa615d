"""Who may reach the console: the bind address and the access token.

The console binds 127.0.0.1 by default, where only this machine's users reach it. Any other
address needs a token, which every request must then carry (``Authorization: Bearer`` or the
cookie the login form sets). The token comes from ``STAGESYNC_CONSOLE_TOKEN`` (the environment
or the ``--env-file`` settings file, like every ``STAGESYNC_*`` setting), or from a file of its
own named by ``STAGESYNC_CONSOLE_TOKEN_FILE`` (a mounted Kubernetes or Docker secret). A token
set is required on loopback too: the operator asked for it.

Every refusal here is a ``ConsoleAccessError``: one line naming the setting and the fix, which
the command line prints before exiting 2. The token itself is never printed.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.files import NotReadable, read_regular_file

# names of settings, not secrets
TOKEN_VARIABLE = "STAGESYNC_CONSOLE_TOKEN"  # noqa: S105
TOKEN_FILE_VARIABLE = "STAGESYNC_CONSOLE_TOKEN_FILE"  # noqa: S105
MIN_TOKEN_CHARS = 16  # a guessable token off loopback is no protection
MAX_TOKEN_FILE_BYTES = 4096
GENERATE = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class ConsoleAccessError(Exception):
    """A bind or token setting to fix before the console can start (one line)."""


class ConsoleSettings(BaseSettings):
    """``STAGESYNC_CONSOLE_*`` from the environment or the settings file."""

    model_config = SettingsConfigDict(env_prefix="STAGESYNC_CONSOLE_", extra="ignore",
                                      hide_input_in_errors=True)

    token: SecretStr | None = None
    token_file: Path | None = None


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the console on this machine (127.0.0.0/8, ::1)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def load_token(env_file: Path | None, token_file: Path | None = None) -> SecretStr | None:
    """The console's token, or None when none is set. ``token_file`` (``--token-file``)
    overrides ``STAGESYNC_CONSOLE_TOKEN_FILE``; setting both a token and a token file is
    refused (which one would count is a guess)."""
    try:
        settings = (ConsoleSettings(_env_file=env_file, _env_file_encoding="utf-8")
                    if env_file is not None else ConsoleSettings())
    except ValidationError:
        raise ConsoleAccessError(
            f"{TOKEN_VARIABLE} / {TOKEN_FILE_VARIABLE}: cannot be read (fix: set the token "
            "as one line of text, or the token file as a path)") from None
    path = token_file or settings.token_file
    if settings.token is not None and path is not None:
        raise ConsoleAccessError(
            f"{TOKEN_VARIABLE} and {TOKEN_FILE_VARIABLE} are both set (fix: keep one of them)")
    if path is not None:
        return SecretStr(_read_token_file(path))
    if settings.token is None:
        return None
    token = settings.token.get_secret_value().strip()
    _check_strength(token, TOKEN_VARIABLE)
    return SecretStr(token)


def _read_token_file(path: Path) -> str:
    where = f"{TOKEN_FILE_VARIABLE} {path}"
    try:
        raw = read_regular_file(path, MAX_TOKEN_FILE_BYTES)
    except NotReadable as exc:
        raise ConsoleAccessError(f"{where}: {exc.reason} (fix: give the path of a file "
                                 "holding only the token)") from None
    try:
        token = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConsoleAccessError(f"{where}: not UTF-8 text (fix: write the token as one line "
                                 f"of text, e.g. from {GENERATE})") from None
    if "\n" in token:
        raise ConsoleAccessError(f"{where}: holds more than one line (fix: keep only the "
                                 "token in it)")
    _check_strength(token, where)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        raise ConsoleAccessError(f"{where}: readable by others (mode {mode:04o}) (fix: "
                                 f"chmod 600 {path})")
    return token


def _check_strength(token: str, where: str) -> None:
    if len(token) < MIN_TOKEN_CHARS:
        raise ConsoleAccessError(f"{where}: the token is shorter than {MIN_TOKEN_CHARS} "
                                 f"characters (fix: use a long random one: {GENERATE})")


def check_bind(host: str, token: SecretStr | None, option: str) -> None:
    """Refuse a non-loopback bind without a token: the console would be open to the network."""
    if not host.strip():
        raise ConsoleAccessError(f"{option}: empty (fix: give an address to listen on, e.g. "
                                 "127.0.0.1)")
    if token is None and not is_loopback(host):
        raise ConsoleAccessError(
            f"{option} {host}: listening beyond this machine needs a token (fix: set "
            f"{TOKEN_VARIABLE} in the environment or the --env-file, or "
            f"{TOKEN_FILE_VARIABLE} to a file holding it; or listen on 127.0.0.1)")
