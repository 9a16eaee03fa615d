"""A first sync's change set on disk: what was read, a page of records at a time.

At 200,000 leads a first sync reads over 400,000 records; held as records they take about
2 KB each, over 800 MB before anything is planned. A first sync that goes a slice at a time
(``slices``) needs only the slice in hand and, for identity, each record's id and match keys.
So its reads stream into a temporary SQLite file (pickled values) as they arrive, in whatever
order the vendor sends them (a Bulk job or a listing has none worth keeping), and come back in
(cursor, id) order, a page or a set of ids at a time: the spool sorts on disk, so nothing holds
an object's every record to sort it. The file is the cycle's alone and is deleted with it
(a killed agent's is removed by the next one); nothing else reads it: its folder is 0700
(``mkdtemp``) and the file itself is created 0600, as the state store is.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from connectors.records import Record
from sync_agent.private_files import create_private

PREFIX = "stagesync-spool-"
CHUNK = 2000  # records a statement
PARAMS = 500  # ids an IN list


class Spool:
    """The temporary file that holds one cycle's spooled objects."""

    def __init__(self) -> None:
        sweep()
        self.folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
        create_private(self.folder / "changes.db")  # personal data, whatever the umask
        # Reads of both systems spool side by side (``read``): one connection, one lock.
        self.db = sqlite3.connect(self.folder / "changes.db", check_same_thread=False)
        self.lock = threading.Lock()
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-8000",
                       "temp_store=FILE"):
            self.db.execute(f"PRAGMA {pragma}")
        # ``ord``: the record's (cursor, id) as text that sorts the same way
        self.db.execute("CREATE TABLE spooled (part INTEGER NOT NULL, "
                        "id TEXT NOT NULL, ord TEXT NOT NULL, data BLOB NOT NULL, "
                        "UNIQUE (part, id))")
        self.db.execute("CREATE INDEX spooled_order ON spooled (part, ord)")
        self.db.execute("CREATE TABLE kept (book TEXT NOT NULL, key TEXT NOT NULL, value TEXT, "
                        "PRIMARY KEY (book, key)) WITHOUT ROWID")
        self.parts = 0
        self.books = 0

    def records(self, system: str, obj: str, rows: Iterable[Record]) -> Spooled:
        """Spool ``rows``, in any order, as one object's change set."""
        with self.lock:
            self.parts += 1
            spooled = Spooled(self, self.parts, system, obj)
        spooled.extend(rows)
        return spooled

    def close(self) -> None:
        self.db.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def sweep() -> list[Path]:
    """Remove the spools of agents that died without removing theirs (killed, or the machine
    went down): a first sync's spool can take hundreds of megabytes. A spool is named after
    its process; one whose process is gone is removed. Returns what was removed."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        pid = folder.name[len(PREFIX):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def order_key(record: Record) -> str:
    """(cursor, id) as text that sorts as the pair does: the cursor in UTC to the
    microsecond, then the id right-aligned, so numeric ids (HubSpot's) sort as numbers and
    Salesforce's ids, all 18 characters, as text."""
    return f"{record.cursor.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%S.%f} {record.id:>40}"


class Spooled:
    """One object's spooled change set: its length, its pages (in (cursor, id) order), its
    records by id."""

    def __init__(self, spool: Spool, part: int, system: str, obj: str) -> None:
        self.spool, self.part, self.system, self.object = spool, part, system, obj
        self.db = spool.db
        self._len = 0

    def extend(self, rows: Iterable[Record]) -> None:
        """Add records (an id already held is kept as first read)."""
        chunk: list[tuple[int, str, str, bytes]] = []
        for record in rows:
            chunk.append((self.part, record.id, order_key(record),
                          pickle.dumps((record.cursor, record.values), 5)))
            if len(chunk) == CHUNK:
                self._insert(chunk)
                chunk = []
        self._insert(chunk)

    def _insert(self, chunk: list[tuple[int, str, str, bytes]]) -> None:
        if chunk:
            with self.spool.lock:
                before = self.db.total_changes
                self.db.executemany("INSERT OR IGNORE INTO spooled (part, id, ord, data) "
                                    "VALUES (?, ?, ?, ?)", chunk)
                self._len += self.db.total_changes - before

    def __len__(self) -> int:
        return self._len

    def _record(self, record_id: str, data: bytes) -> Record:
        cursor, values = pickle.loads(data)  # noqa: S301 - the cycle's own file, written above
        return Record(system=self.system, object=self.object, id=record_id,
                      cursor=cursor, values=values)

    def pages(self, size: int = CHUNK) -> Iterator[list[Record]]:
        """The records in (cursor, id) order, ``size`` at a time."""
        after = ""
        while True:
            rows = self.db.execute("SELECT ord, id, data FROM spooled WHERE part = ? AND ord > ? "
                                   "ORDER BY ord LIMIT ?", (self.part, after, size)).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            yield [self._record(i, d) for _, i, d in rows]

    def __iter__(self) -> Iterator[Record]:
        for page in self.pages():
            yield from page

    def stamps(self) -> Iterator[Record]:
        """Every record's id and cursor, without its values (the watermark needs no more)."""
        for page in self.pages():
            for r in page:
                yield Record(system=r.system, object=r.object, id=r.id, cursor=r.cursor,
                             values={})

    def ids(self) -> list[str]:
        return [i for (i,) in self.db.execute(
            "SELECT id FROM spooled WHERE part = ? ORDER BY ord", (self.part,))]

    def get(self, ids: Iterable[str]) -> dict[str, Record]:
        """The records of these ids that the change set holds."""
        wanted = sorted(set(ids))
        out: dict[str, Record] = {}
        for start in range(0, len(wanted), PARAMS):
            chunk = json.dumps(wanted[start:start + PARAMS])
            for record_id, data in self.db.execute(
                    "SELECT id, data FROM spooled WHERE part = ? AND id IN "
                    "(SELECT value FROM json_each(?))", (self.part, chunk)):
                out[record_id] = self._record(record_id, data)
        return out

    def drop(self, ids: Iterable[str]) -> None:
        """Leave these records out of the change set (found merged away or gone)."""
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), PARAMS):
            chunk = json.dumps(wanted[start:start + PARAMS])
            before = self.db.total_changes
            self.db.execute("DELETE FROM spooled WHERE part = ? AND id IN "
                            "(SELECT value FROM json_each(?))", (self.part, chunk))
            self._len -= self.db.total_changes - before



# -- a sliced first sync's bookkeeping on disk ---------------------------------------------
class KeyMap(Protocol):
    """What the engine asks of its claims (a dict, or a ``DiskBook`` in a sliced first sync)."""

    def get(self, key: tuple[str, str], /) -> str | None: ...

    def __setitem__(self, key: tuple[str, str], value: str, /) -> None: ...

    def __contains__(self, key: object, /) -> bool: ...

    def setdefault(self, key: tuple[str, str], default: str, /) -> str: ...


class KeySet(Protocol):
    """What the engine asks of its sets of records (a set, or a ``DiskBook``)."""

    def add(self, key: Any, /) -> None: ...

    def update(self, keys: Iterable[Any], /) -> None: ...

    def discard(self, key: Any, /) -> None: ...

    def __contains__(self, key: object, /) -> bool: ...


SEP = "\x1f"  # joins a key's parts: no id, pair or object name holds a unit separator


class DiskBook:
    """Keys (tuples of strings), each with an optional string value, kept in the spool's file.

    A first sync a slice at a time must remember, across its slices, something of nearly
    every record it has seen: which ones were claimed and by whom, linked, observed, taken
    care of. At 200,000 leads (650,000 records) those sets and maps took some 400 MB as
    Python objects; here they take a row each on disk, at a few microseconds a look-up. It
    answers what the engine asks of the dicts and sets it stands in for: ``in``, ``get``,
    ``setdefault``, item assignment, ``add``, ``update`` and ``discard``."""

    def __init__(self, spool: Spool, items: Iterable[tuple[tuple[str, ...], str | None]] = ()
                 ) -> None:
        self.spool, self.db = spool, spool.db
        with spool.lock:
            spool.books += 1
            self.book = str(spool.books)
        self._put([(key, value) for key, value in items], "INSERT OR REPLACE")

    def _put(self, items: list[tuple[tuple[str, ...], str | None]], verb: str) -> None:
        with self.spool.lock:
            self.db.executemany(f"{verb} INTO kept (book, key, value) VALUES (?, ?, ?)",
                                [(self.book, SEP.join(k), v) for k, v in items])

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and self._value(key) is not _ABSENT

    def _value(self, key: tuple[str, ...]) -> str | object | None:
        with self.spool.lock:
            row = self.db.execute("SELECT value FROM kept WHERE book = ? AND key = ?",
                                  (self.book, SEP.join(key))).fetchone()
        return _ABSENT if row is None else row[0]

    def get(self, key: tuple[str, ...], default: str | None = None) -> str | None:
        value = self._value(key)
        return default if value is _ABSENT else value  # type: ignore[return-value]

    def __setitem__(self, key: tuple[str, ...], value: str) -> None:
        self._put([(key, value)], "INSERT OR REPLACE")

    def setdefault(self, key: tuple[str, ...], default: str) -> str:
        self._put([(key, default)], "INSERT OR IGNORE")
        return str(self.get(key))

    def add(self, key: tuple[str, ...]) -> None:
        self._put([(key, None)], "INSERT OR IGNORE")

    def update(self, keys: Iterable[tuple[str, ...]]) -> None:
        self._put([(key, None) for key in keys], "INSERT OR IGNORE")

    def discard(self, key: tuple[str, ...]) -> None:
        with self.spool.lock:
            self.db.execute("DELETE FROM kept WHERE book = ? AND key = ?",
                            (self.book, SEP.join(key)))


_ABSENT = object()
