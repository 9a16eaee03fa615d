"""The read stage: what changed on each side since each object's watermark.

Salesforce's objects are read together, changes and deletes of each in one ``queryAll``, all
of them in one Composite request (``SalesforceConnector.read_many``): a quiet cycle costs one
Salesforce call whatever the number of objects. HubSpot reads one search (or, the first time,
one listing) per object. Queries that must ride along (the SLA's activity) go in ``extra``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.orm import Session

from connectors.contract import Connector
from connectors.records import DeletedRecords, ObjectChanges, ObjectRead, Record, Watermark
from sync_agent import state

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
ObjectKey = tuple[str, str]  # (system, object)


@runtime_checkable
class ReadsMany(Protocol):
    """A connector that reads several objects' changes and deletes in one call."""

    def read_many(self, reads: list[ObjectRead], until: dt.datetime, extra: Mapping[str, str]
                  ) -> tuple[dict[str, ObjectChanges], dict[str, list[dict[str, Any]]]]: ...


@dataclass
class ChangeSet:
    """What one cycle read: plain data handed to the stages after it."""

    marks: dict[ObjectKey, Watermark] = field(default_factory=dict)
    changed: dict[ObjectKey, list[Record]] = field(default_factory=dict)
    deleted: dict[ObjectKey, DeletedRecords] = field(default_factory=dict)  # read with changes
    full_read: set[ObjectKey] = field(default_factory=set)  # read from the beginning
    extra: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def read_changes(session: Session, objects: Mapping[str, list[str]],
                 connectors: Mapping[str, Connector], fields_of: Callable[[str, str], list[str]],
                 until: dt.datetime, extra: Mapping[str, str] | None = None) -> ChangeSet:
    """Changes of ``objects`` (system -> object names) from their watermarks to ``until``."""
    out = ChangeSet()
    for system, names in objects.items():
        for obj in names:
            mark = state.get_watermark(session, system, obj) or Watermark(cursor=EPOCH)
            out.marks[(system, obj)] = mark
            if mark.cursor == EPOCH:
                out.full_read.add((system, obj))
        connector = connectors[system]
        if isinstance(connector, ReadsMany) and names:
            reads = [ObjectRead(obj, out.marks[(system, obj)], fields_of(system, obj))
                     for obj in names]
            answers, out.extra = connector.read_many(reads, until, extra or {})
            for obj in names:
                out.changed[(system, obj)] = list(answers[obj].records)
                out.deleted[(system, obj)] = answers[obj].deleted
            continue
        for obj in names:
            out.changed[(system, obj)] = list(connector.read_changed(
                obj, out.marks[(system, obj)], until, fields_of(system, obj)))
    return out
