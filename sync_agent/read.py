"""The read stage: what changed on each side since each object's watermark.

Salesforce's objects are read together, changes and deletes of each in one ``queryAll``, all
of them in one Composite request (``SalesforceConnector.read_many``): a quiet cycle costs one
Salesforce call whatever the number of objects. HubSpot reads one search (or, the first time,
one listing) per object. Queries that must ride along (the SLA's activity) go in ``extra``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.orm import Session

from connectors.contract import Connector
from connectors.records import DeletedRecords, ObjectChanges, ObjectRead, Record, Watermark
from sync_agent import state
from sync_agent.spool import Spool, Spooled

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
ObjectKey = tuple[str, str]  # (system, object)


@runtime_checkable
class ReadsMany(Protocol):
    """A connector that reads several objects' changes and deletes in one call."""

    def read_many(self, reads: list[ObjectRead], until: dt.datetime, extra: Mapping[str, str],
                  lazy: bool = False
                  ) -> tuple[dict[str, ObjectChanges], dict[str, list[dict[str, Any]]]]: ...


@dataclass
class ChangeSet:
    """What one cycle read: plain data handed to the stages after it."""

    marks: dict[ObjectKey, Watermark] = field(default_factory=dict)
    changed: dict[ObjectKey, list[Record]] = field(default_factory=dict)
    deleted: dict[ObjectKey, DeletedRecords] = field(default_factory=dict)  # read with changes
    full_read: set[ObjectKey] = field(default_factory=set)  # read from the beginning
    extra: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    spooled: dict[ObjectKey, Spooled] = field(default_factory=dict)  # instead of ``changed``


def read_changes(session: Session, objects: Mapping[str, list[str]],
                 connectors: Mapping[str, Connector], fields_of: Callable[[str, str], list[str]],
                 until: dt.datetime, extra: Mapping[str, str] | None = None,
                 spool: Spool | None = None) -> ChangeSet:
    """Changes of ``objects`` (system -> object names) from their watermarks to ``until``;
    with a ``spool``, what is read from the beginning goes into it (``spooled``), record by
    record, and ``changed`` holds an empty list for it. A spooled read (a first sync) reads
    the systems side by side, each in its own thread: HubSpot's listing waits on its rate
    limit for minutes, time in which Salesforce's reads are parsed and spooled."""
    out = ChangeSet()
    fields: dict[ObjectKey, list[str]] = {}
    for system, names in objects.items():  # the store and the describes: this thread only
        for obj in names:
            mark = state.get_watermark(session, system, obj) or Watermark(cursor=EPOCH)
            out.marks[(system, obj)] = mark
            if mark.cursor == EPOCH:
                out.full_read.add((system, obj))
            fields[(system, obj)] = fields_of(system, obj)
    reads = [(system, names) for system, names in objects.items() if names]
    if spool is None or len(reads) < 2:
        for system, names in reads:
            _read_system(out, connectors[system], system, names, fields, until, extra, spool)
        return out
    failed: list[BaseException] = []
    stop = threading.Event()  # this thread failed: the others stop after their current page

    def aside(system: str, names: list[str]) -> None:
        try:
            _read_system(out, connectors[system], system, names, fields, until, extra, spool,
                         stop)
        except BaseException as exc:  # raised in the cycle's thread once both are done
            failed.append(exc)

    others = [threading.Thread(target=aside, args=read, name=f"read-{read[0]}", daemon=True)
              for read in reads[1:]]
    for thread in others:
        thread.start()
    try:
        _read_system(out, connectors[reads[0][0]], reads[0][0], reads[0][1], fields, until,
                     extra, spool)
    except BaseException:
        stop.set()
        raise
    finally:
        for thread in others:
            thread.join()
    if failed:
        raise failed[0]
    return out


def _read_system(out: ChangeSet, connector: Connector, system: str, names: list[str],
                 fields: Mapping[ObjectKey, list[str]], until: dt.datetime,
                 extra: Mapping[str, str] | None, spool: Spool | None,
                 stop: threading.Event | None = None) -> None:
    """One system's reads into ``out`` (its own keys only: safe beside another system's);
    ``stop`` set, a read beside a failed one gives up (its cycle fails anyway)."""

    def keep(obj: str, records: Iterable[Record]) -> None:
        if stop is not None:
            if stop.is_set():
                return
            records = itertools.takewhile(lambda _: not stop.is_set(), records)
        if spool is not None and (system, obj) in out.full_read:
            out.spooled[(system, obj)] = spool.records(system, obj, records)
            out.changed[(system, obj)] = []
        else:
            out.changed[(system, obj)] = list(records)

    if isinstance(connector, ReadsMany):
        reads = [ObjectRead(obj, out.marks[(system, obj)], fields[(system, obj)])
                 for obj in names]
        answers, out.extra = connector.read_many(reads, until, extra or {},
                                                 lazy=spool is not None)
        for obj in names:  # one object at a time: a lazy read's records are made now
            answer = answers.pop(obj)
            keep(obj, answer.records if answer.stream is None else answer.stream)
            out.deleted[(system, obj)] = answer.deleted
        return
    for obj in names:  # a spool orders what it is given: it may come as it arrives
        keep(obj, connector.read_changed(
            obj, out.marks[(system, obj)], until, fields[(system, obj)],
            ordered=spool is None or (system, obj) not in out.full_read))
