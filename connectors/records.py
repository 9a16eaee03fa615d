"""What connectors hand the engine: records, field descriptions, write results, watermarks.

Plain pydantic models with no behaviour beyond small pure helpers, so the engine can persist
and compare them freely.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

System = Literal["salesforce", "hubspot"]


@dataclass(frozen=True, slots=True)
class Record:
    """One record as read: where it lives, its change cursor, and its values.

    Plain data, built by the connectors from answers they have parsed: a first sync holds
    hundreds of thousands of these, and a validating model costs each one a copy of its
    values and several hundred bytes more."""

    system: str  # "salesforce" or "hubspot"
    object: str
    id: str
    cursor: dt.datetime
    values: dict[str, Any] = field(default_factory=dict)


class DeletedRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    system: System
    object: str
    id: str
    deleted_at: dt.datetime
    merged_into: str | None = None  # Salesforce MasterRecordId: links move to the survivor


class DeletedRecords(BaseModel):
    """Deletes since a point in time; ``complete`` is False when the vendor no longer keeps
    that far back (Salesforce: 15 days) and the caller must compare full id lists instead."""

    records: list[DeletedRecord]
    complete: bool = True
    reason: str | None = None


@dataclass(frozen=True)
class ObjectRead:
    """One object's part of a read of several at once (``SalesforceConnector.read_many``):
    what changed since ``since``, with these fields (Id and the cursor always come)."""

    object: str
    since: Watermark
    fields: list[str]


@dataclass(frozen=True)
class ObjectChanges:
    """What such a read found for one object: the live records changed (sorted by cursor,
    what the watermark saw skipped) and the records deleted or merged away in the same window.
    Asked for lazily, ``records`` is empty and ``stream`` yields them, once (sorted, except
    the rows of a Bulk job: the caller orders those)."""

    object: str
    records: list[Record]
    deleted: DeletedRecords
    stream: Iterator[Record] | None = None


class FieldInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    label: str
    type: str
    length: int | None = None
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    picklist_values: tuple[str, ...] = ()
    restricted_picklist: bool = False
    calculated: bool = False  # formula fields: never bump the change cursor
    unique: bool = False
    external_id: bool = False
    forward_only: bool = False  # HubSpot's lifecycle stage: an earlier value is ignored


class Person(BaseModel):
    """A Salesforce user or a HubSpot owner: the same person when the emails match."""

    model_config = ConfigDict(frozen=True)

    id: str
    email: str | None
    name: str
    active: bool = True


class Activity(BaseModel):
    """Sales activity on a record (a Salesforce Task or Event): an SLA clock stops at the
    first one."""

    model_config = ConfigDict(frozen=True)

    record_id: str
    id: str
    at: dt.datetime
    note: str | None = None  # a Task's description: how the agent knows its own Tasks
    # The change cursor (SystemModstamp) where activity is read by change, for the watermark.
    cursor: dt.datetime | None = None


class Stage(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    label: str
    order: int
    probability: float | None = None
    closed: bool = False


class ObjectSchema(BaseModel):
    system: System
    object: str
    label: str = ""
    fields: dict[str, FieldInfo]
    pipelines: dict[str, list[Stage]] = Field(default_factory=dict)
    # Salesforce record types of the object, id -> developer name (the master one left out).
    record_types: dict[str, str] = Field(default_factory=dict)
    deletable: bool = True  # whether the integration user may delete its records


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One record to write. No ``id`` creates, an ``id`` updates; ``match`` upserts on a unique
    field (Salesforce external id, HubSpot ``email``). ``current`` is what the caller last read,
    so a backward HubSpot lifecycle move can be made the documented way without a read.
    Plain data, as ``Record`` is: the engine builds one per write."""

    id: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    match: tuple[str, str] | None = None
    current: dict[str, Any] | None = None


class WriteError(BaseModel):
    code: str
    message: str
    fields: tuple[str, ...] = ()
    matches: tuple[str, ...] = ()  # records a duplicate rule took this one for (their ids)


class WriteResult(BaseModel):
    """The outcome for the input at ``index``: an id, or the vendor's error for that record."""

    index: int
    id: str | None = None
    created: bool | None = None
    error: WriteError | None = None
    # What the record holds after the write, where the vendor says (HubSpot echoes every set
    # property, including the ones it set on its own, such as a new record's lifecycle stage).
    values: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Watermark(BaseModel):
    """How far changes have been read: the last cursor, when the last read ran up to, and the
    (id, cursor) pairs read inside the re-read window, so an inclusive re-read skips exactly
    what was seen."""

    model_config = ConfigDict(frozen=True)

    cursor: dt.datetime
    seen: frozenset[tuple[str, dt.datetime]] = frozenset()
    read_until: dt.datetime | None = None

    def skips(self, record: Record) -> bool:
        return (record.id, record.cursor) in self.seen

    def start(self, lookback: dt.timedelta,
              resolution: dt.timedelta = dt.timedelta(0)) -> dt.datetime:
        """Where the next read begins. A late arrival (a long transaction, search lag) is late
        relative to the last read, so only what was stamped within ``lookback`` of that read
        needs reading again; anchoring on the cursor instead would re-read the end of the
        last burst of changes on every quiet cycle. Once that read came more than ``lookback``
        after the cursor, everything stamped at the cursor was visible to it and was read, so
        the next read starts one tick (the vendor's ``resolution``) after the cursor."""
        if self.read_until is None:
            return self.cursor - lookback
        horizon = self.read_until - lookback
        if horizon > self.cursor:
            return self.cursor + resolution
        return horizon


def advance(mark: Watermark, records: Iterable[Record], lookback: dt.timedelta,
            until: dt.datetime | None = None) -> Watermark:
    """The watermark after ``records`` (read up to ``until``) were applied: a pure function
    the engine persists."""
    newest = mark.cursor
    seen = set(mark.seen)
    # A record stamped in the read's own second may change again within that second and keep
    # its stamp (Salesforce stamps to the second): it is not marked seen, so the next read,
    # which starts ``lookback`` before this one, takes it again.
    still_open = until.replace(microsecond=0) if until is not None else None
    for record in records:
        newest = max(newest, record.cursor)
        if still_open is None or record.cursor < still_open:
            seen.add((record.id, record.cursor))
    moved = Watermark(cursor=newest, read_until=until or mark.read_until)
    horizon = moved.start(lookback)
    return moved.model_copy(update={"seen": frozenset(s for s in seen if s[1] >= horizon)})
