"""The connectors' describes and people lists, kept in the state store (table
``schema_cache``), so a quiet cycle and a restarted agent use what was fetched before instead
of describing again; the connectors decide when an entry is too old (``connectors.schema_cache``).

The cache is best effort and never makes a cycle wait: a cycle's own transaction may hold
SQLite's write lock while a describe happens, so an entry is written through a connection of
its own that waits only briefly; one that could not be written is kept and written at the next
use (at the latest, the next cycle's start). The worst a lost entry costs is one describe.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from connectors.contract import Connector
from sync_agent.store import Store, is_busy
from sync_agent.tables import SchemaCacheEntry

WRITE_WAIT_MS = 200  # how long an entry's write waits for another writer on SQLite
Key = tuple[str, str, str]  # (system, kind, name)


class StoreSchemaCache:
    """``connectors.schema_cache.SchemaCache`` on the state store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # written-to-be: key -> (body, fetched_at), or None for an entry to drop
        self._pending: dict[Key, tuple[Any, dt.datetime] | None] = {}

    def get(self, system: str, kind: str, name: str) -> tuple[Any, dt.datetime] | None:
        self.flush()
        key = (system, kind, name)
        if key in self._pending:  # not in the store yet: this process knows better
            return self._pending[key]
        row = SchemaCacheEntry
        with self.store.engine.connect() as connection:
            found = connection.execute(select(row.body, row.fetched_at).where(
                row.system == system, row.kind == kind, row.name == name)).first()
        if found is None:
            return None
        fetched_at = found.fetched_at
        return found.body, (fetched_at if fetched_at.tzinfo else fetched_at.replace(tzinfo=dt.UTC))

    def put(self, system: str, kind: str, name: str, body: Any,
            fetched_at: dt.datetime) -> None:
        self._pending[(system, kind, name)] = (body, fetched_at)
        self.flush()

    def drop(self, system: str, kind: str, name: str) -> None:
        self._pending[(system, kind, name)] = None
        self.flush()

    def flush(self) -> None:
        """Write what is pending; what the store is too busy to take stays pending."""
        for key in list(self._pending):
            try:
                with self._briefly() as connection:
                    _write(connection, key, self._pending[key])
            except IntegrityError:  # another agent stored this entry a moment ago: theirs
                pass
            except OperationalError as exc:
                if not is_busy(exc):
                    raise
                return
            del self._pending[key]

    @contextmanager
    def _briefly(self) -> Iterator[Connection]:
        """A transaction that waits at most ``WRITE_WAIT_MS`` for SQLite's write lock."""
        with self.store.engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                usual = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
                connection.exec_driver_sql(f"PRAGMA busy_timeout={WRITE_WAIT_MS}")
                connection.commit()
            try:
                with connection.begin():
                    yield connection
            finally:
                if sqlite:
                    connection.exec_driver_sql(f"PRAGMA busy_timeout={int(usual or 0)}")
                    connection.commit()


def _write(connection: Connection, key: Key, entry: tuple[Any, dt.datetime] | None) -> None:
    system, kind, name = key
    row = SchemaCacheEntry
    connection.execute(delete(row).where(row.system == system, row.kind == kind,
                                         row.name == name))
    if entry is not None:
        connection.execute(insert(row).values(system=system, kind=kind, name=name,
                                              body=entry[0], fetched_at=entry[1]))


def use_schema_cache(store: Store, connectors: Iterable[Connector], refresh: bool) -> None:
    """Give each connector the store's cache (a connector keeps the one it has for this
    store, and its pending writes go in now); ``refresh`` makes them describe again."""
    for connector in connectors:
        cache = connector.schema_cache
        if isinstance(cache, StoreSchemaCache) and cache.store is store:
            cache.flush()
        else:
            connector.use_schema_cache(StoreSchemaCache(store))
        if refresh:
            connector.clear_cache()
