"""Reading a file named by the operator (an env file, a mapping file) without surprises.

Whatever the path holds, the read ends quickly, in bounded memory, with a message, never a hang
or a traceback: only a regular file is opened. A directory, a FIFO (``open`` would wait for a
writer forever), a device (``/dev/zero`` never ends) or a socket is named for what it is, found
with ``stat`` before any ``open`` and checked again on the descriptor, opened non-blocking.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class NotReadable(Exception):
    """A path that cannot be read as a file: what it is (``reason``) and what to do (``fix``)."""

    def __init__(self, reason: str, fix: str, too_large: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix
        self.too_large = too_large


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words an operator recognises."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse(mode: int, size: int, max_bytes: int) -> None:
    if not stat.S_ISREG(mode):
        raise NotReadable(f"the path is {file_kind(mode)}, not a regular file",
                          "give the path of a file")
    if size > max_bytes:
        raise NotReadable(f"the file is {size:,} bytes; it may be at most {max_bytes:,}",
                          "give the right file, or remove what does not belong in it",
                          too_large=True)


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``; otherwise
    ``NotReadable``. Never blocks and never reads past the bound (a file that grows while it is
    read is refused too)."""
    try:
        found = os.stat(path)
    except OSError as exc:
        raise NotReadable(f"cannot read the file: {exc.strerror}", "check the path") from None
    _refuse(found.st_mode, found.st_size, max_bytes)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise NotReadable(f"cannot read the file: {exc.strerror}",
                          "check the path and its permissions") from None
    chunks: list[bytes] = []
    try:
        opened = os.fstat(fd)  # the path may have been replaced since the stat above
        _refuse(opened.st_mode, opened.st_size, max_bytes)
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise NotReadable(f"cannot read the file: {exc.strerror}",
                          "check the path and its permissions") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise NotReadable(f"the file grew past {max_bytes:,} bytes while it was read; it may "
                          f"be at most {max_bytes:,}",
                          "give the right file, or remove what does not belong in it",
                          too_large=True)
    return data
