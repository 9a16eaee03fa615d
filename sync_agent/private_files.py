"""Files that hold personal data or secrets are the owner's alone (mode 0600).

The state store (names, emails, every value synced), the HTML report (names and emails by
owner), a cycle's spool and the env files the product writes are created 0600 whatever the
umask; one found looser (copied in, restored from a backup, written by an older version) is
tightened to 0600 and the caller gets a warning naming the path, so the operator learns that
others could read it until now. A user's own env file is never changed: see
``connectors.settings_file.loose_secrets_warning``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE = 0o600
# Any permission for the group or others is looser than PRIVATE.
LOOSER = stat.S_IRWXG | stat.S_IRWXO


def _loose(path: Path, mode: int, why: str) -> str:
    return (f"{path} was open to others (mode {stat.S_IMODE(mode):04o}) and {why}: "
            f"set to {PRIVATE:04o}")


def tighten(path: Path, why: str = "holds personal data") -> str | None:
    """Set ``path`` to 0600 if it exists with any permission for others; the warning to show,
    or None when there was nothing to do. A path that is not a regular file is left alone."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(found.st_mode) or not found.st_mode & LOOSER:
        return None
    os.chmod(path, PRIVATE)
    return _loose(path, found.st_mode, why)


def create_private(path: Path) -> str | None:
    """Create ``path`` empty with mode 0600 if it does not exist (tighten it if it does), so a
    library that creates it later (SQLite) finds it private; the warning, if any."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE))
    except FileExistsError:
        return tighten(path)
    return None


def write_private_text(path: Path, text: str, why: str = "holds personal data") -> str | None:
    """Write ``text`` to ``path`` (UTF-8), created 0600 or tightened to it before a byte is
    written; the warning when an existing file was looser. Opened non-blocking: a FIFO with no
    reader is an error (``ENXIO``), not a hang."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NONBLOCK,
                 PRIVATE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        found = os.fstat(fd)
        warning = None
        if found.st_mode & LOOSER:
            os.fchmod(fd, PRIVATE)
            warning = _loose(path, found.st_mode, why)
        handle.write(text)
    return warning
