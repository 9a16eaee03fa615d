"""Opening the state store and bringing its schema up to date.

SQLite by default (``stagesync.db`` in the working directory, created with mode 0600: it holds
personal data), PostgreSQL by URL (``postgresql+psycopg://...``). The schema is managed by
Alembic migrations shipped in ``sync_agent/migrations``.

Errors never echo a statement's parameters (``hide_parameters``): they hold personal data.
SQLite waits up to ``busy_timeout`` seconds (30; ``?timeout=SECONDS`` on the URL) for another
writer before it says "database is locked". Every process on one SQLite file runs on one host,
so the single-instance lock there is backed by an OS file lock beside the database
(``stagesync.db.cycle.lock``): the kernel drops it the moment its holder dies, and a live
holder keeps it however long its cycle runs, whatever its lease says.

Whatever the URL, opening ends in a store or a ``StoreError``: one line naming the URL (its
password hidden) and the fix, for an unsupported database, an unreachable server, a file that
is not a SQLite database, a folder that cannot be written. An existing SQLite file (and its
``-wal``/``-shm`` companions) open to others is tightened to 0600 and said so in
``Store.notices``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import URL, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from connectors.files import file_kind
from sync_agent.private_files import create_private, tighten

DEFAULT_URL = "sqlite:///stagesync.db"
MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another before "database is locked"
POSTGRES_CONNECT_TIMEOUT = 10  # seconds: a host that drops packets is reported, not waited on
SETTING = "--db / STAGESYNC_DATABASE_URL"
URL_FORMS = "sqlite:///PATH or postgresql+psycopg://USER@HOST/DATABASE"
DRIVERS = ("sqlite", "sqlite+pysqlite", "postgresql+psycopg")
# Files SQLite keeps beside the database, holding the same data.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


class StoreError(Exception):
    """The state store cannot be opened: one line naming the URL (password hidden), the
    reason and the fix."""


# Lock file (real path) -> (its descriptor, the holders in this process that share it). One
# per process, shared by every Store on the file: the OS lock tells processes apart; between
# holders in one process the lock row and its lease decide, as on PostgreSQL.
_FILE_LOCKS: dict[str, tuple[int, set[str]]] = {}
_FILE_LOCKS_GUARD = threading.Lock()


@dataclass
class Store:
    engine: Engine
    sessions: sessionmaker[Session]
    notices: list[str] = field(default_factory=list)  # files tightened to 0600 on opening

    def session(self) -> Session:
        return self.sessions()

    def _lock_file(self, name: str) -> str | None:
        database = self.engine.url.database
        if self.engine.dialect.name != "sqlite" or not database or database == ":memory:":
            return None
        return os.path.realpath(f"{database}.{name}.lock")

    def hold_file_lock(self, name: str, holder: str) -> bool:
        """Take (or share, within this process) the OS lock behind lock ``name`` without
        waiting; False while another process has it. Always True off SQLite files."""
        path = self._lock_file(name)
        if path is None:
            return True
        with _FILE_LOCKS_GUARD:
            held = _FILE_LOCKS.get(path)
            if held is not None:
                held[1].add(holder)
                return True
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            _FILE_LOCKS[path] = (fd, {holder})
            return True

    def file_lock_holders(self, name: str) -> set[str] | None:
        """The holders in this process that share the OS lock behind ``name``; None when
        there is no such lock (not SQLite, or not held here)."""
        path = self._lock_file(name)
        with _FILE_LOCKS_GUARD:
            held = _FILE_LOCKS.get(path) if path is not None else None
            return set(held[1]) if held is not None else None

    def release_file_lock(self, name: str, holder: str) -> None:
        path = self._lock_file(name)
        if path is None:
            return
        with _FILE_LOCKS_GUARD:
            held = _FILE_LOCKS.get(path)
            if held is None:
                return
            held[1].discard(holder)
            if not held[1]:
                del _FILE_LOCKS[path]
                fcntl.flock(held[0], fcntl.LOCK_UN)
                os.close(held[0])


def is_busy(exc: BaseException) -> bool:
    """SQLite's "database is locked" / "database is busy": another writer outlasted the busy
    timeout. Waiting longer is the remedy, not a crash."""
    orig = getattr(exc, "orig", exc)
    return isinstance(exc, OperationalError | sqlite3.OperationalError) and isinstance(
        orig, sqlite3.OperationalError) and ("locked" in str(orig) or "busy" in str(orig))


def _prepare_sqlite_file(database: str | None) -> list[str]:
    """Create the database file 0600 (with its folder), or tighten it and its companions to
    0600; the warnings. Anything but a regular file is refused before SQLite opens it (a FIFO
    would block it)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return []
    file = Path(database)
    try:
        found = os.stat(file)
    except FileNotFoundError:
        file.parent.mkdir(parents=True, exist_ok=True)
        create_private(file)
        return []
    if not stat.S_ISREG(found.st_mode):
        raise StoreError(f"state store {database}: the path is {file_kind(found.st_mode)}, "
                         f"not a SQLite database file (fix: correct {SETTING})")
    notices = [tighten(file)] + [tighten(Path(f"{database}{end}")) for end in SQLITE_COMPANIONS]
    return [notice for notice in notices if notice]


def _parse(url: str) -> URL:
    """The URL as SQLAlchemy reads it, with PostgreSQL on psycopg 3 (the driver installed);
    anything else is a ``StoreError``. An unparseable URL is not echoed: it may hold a
    password."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StoreError(f"the state store URL ({SETTING}) is not a database URL "
                         f"(fix: write {URL_FORMS})") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in DRIVERS:
        shown = parsed.render_as_string(hide_password=True)
        raise StoreError(f"state store {shown}: {parsed.drivername} is not supported; the "
                         f"state store is SQLite or PostgreSQL (fix: set {SETTING} to "
                         f"{URL_FORMS})")
    return parsed


def _describe(exc: BaseException, url: URL) -> str:
    """One line for a failure to open or migrate the store (never a statement or its
    parameters: they may hold personal data)."""
    shown = url.render_as_string(hide_password=True)
    orig = getattr(exc, "orig", None) or exc
    said = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    if isinstance(exc, CommandError):
        return (f"state store {shown}: {said} (fix: a newer stagesync wrote it; run that "
                f"version, or point {SETTING} at another store)")
    if isinstance(exc, ImportError):
        return f"state store {shown}: its database driver is not installed ({said})"
    if url.get_backend_name() != "sqlite":
        return (f"cannot reach the PostgreSQL state store {shown}: {said} (fix: start the "
                f"server, or correct {SETTING})")
    database = url.database
    if isinstance(exc, OSError):
        said = exc.strerror or said
    elif "not a database" in said:
        return (f"state store {database}: the file is not a SQLite database (fix: point "
                f"{SETTING} at the state store, or move the file aside to start anew)")
    elif "unable to open" in said:
        said = "SQLite cannot open it"
    return (f"state store {database}: {said} (fix: check the path (its folder must exist and "
            f"be writable), or correct {SETTING})")


def open_store(url: str | None = None) -> Store:
    """Connect (creating the SQLite file 0600 if needed) and migrate to the latest schema;
    ``StoreError`` when that cannot be done."""
    parsed = _parse(url or DEFAULT_URL)
    notices: list[str] = []
    engine: Engine | None = None
    try:
        if parsed.get_backend_name() == "sqlite":
            try:
                timeout = float(str(parsed.query.get("timeout", SQLITE_BUSY_TIMEOUT)))
            except ValueError:
                raise StoreError(f"state store {parsed.database}: ?timeout= must be seconds "
                                 "(fix: e.g. ?timeout=30)") from None
            parsed = parsed.difference_update_query(["timeout"])
            notices = _prepare_sqlite_file(parsed.database)
            engine = create_engine(parsed, connect_args={"timeout": timeout},
                                   hide_parameters=True)
            _sqlite_pragmas(engine, timeout)
        else:
            connect = ({} if "connect_timeout" in parsed.query
                       else {"connect_timeout": POSTGRES_CONNECT_TIMEOUT})
            engine = create_engine(parsed, pool_pre_ping=True, hide_parameters=True,
                                   connect_args=connect)
        migrate(engine)
    except (SQLAlchemyError, OSError, ImportError, CommandError) as exc:
        if engine is not None:
            engine.dispose()
        raise StoreError(_describe(exc, parsed)) from None
    return Store(engine, sessionmaker(engine, expire_on_commit=False), notices)


def _sqlite_pragmas(engine: Engine, timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")  # as connect's timeout
        cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


MIGRATION_LOCK_ID = 7_310_200  # PostgreSQL advisory lock key for schema upgrades


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """Agents starting together must not both create the tables: SQLite runs DDL outside any
    lock a second process would wait on, so a lock file beside the database serialises them."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(engine: Engine) -> None:
    """Upgrade to the latest schema; safe when several agents start at once."""
    config = alembic_config()
    with _sqlite_file_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": MIGRATION_LOCK_ID})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
