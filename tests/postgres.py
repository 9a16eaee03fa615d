"""A throw-away PostgreSQL server for the tests: initdb + pg_ctl from Debian's packages.

Started by the tests themselves; nothing is assumed to be running. PostgreSQL refuses to run as
root, so as root the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

START_ATTEMPTS = 3


def binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a SQLAlchemy URL of a fresh server's ``postgres`` database."""
    bin_dir = binaries()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL's initdb was not found (Debian: apt-get install "
                                "postgresql)")
    root = Path(tempfile.mkdtemp(prefix="stagesync-pg-"))
    data, log = root / "data", root / "server.log"
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(root, "postgres")
        root.chmod(0o700)
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8", "--no-sync"], **run)  # type: ignore[call-overload]
    # Each pytest-xdist worker starts its own server (its own folder above): a port another
    # took between ``_free_port`` and the server's bind is tried again with another port.
    for attempt in range(1, START_ATTEMPTS + 1):
        port = _free_port()
        try:
            subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log),
                            "-w", "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
                            "-c fsync=off", "start"], **run)  # type: ignore[call-overload]
            break
        except subprocess.CalledProcessError:
            if attempt == START_ATTEMPTS:
                shutil.rmtree(root, ignore_errors=True)
                raise
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], check=False, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
