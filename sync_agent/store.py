"""Opening the state store and bringing its schema up to date.

SQLite by default (``stagesync.db`` in the working directory, created with mode 0600: it holds
personal data), PostgreSQL by URL (``postgresql+psycopg://...``). The schema is managed by
Alembic migrations shipped in ``sync_agent/migrations``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_URL = "sqlite:///stagesync.db"
MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class Store:
    engine: Engine
    sessions: sessionmaker[Session]

    def session(self) -> Session:
        return self.sessions()


def _prepare_sqlite_file(url: str) -> None:
    path = url.removeprefix("sqlite:///")
    if path in ("", ":memory:") or url.startswith("sqlite:////:memory:"):
        return
    file = Path(path)
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT, 0o600))


def open_store(url: str | None = None) -> Store:
    """Connect (creating the SQLite file 0600 if needed) and migrate to the latest schema."""
    url = url or DEFAULT_URL
    if url.startswith("sqlite"):
        _prepare_sqlite_file(url)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
    else:
        engine = create_engine(url, pool_pre_ping=True)
    migrate(engine)
    return Store(engine, sessionmaker(engine, expire_on_commit=False))


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
