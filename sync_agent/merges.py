"""HubSpot merges and deletes that leave no trace, as the cycle needs to see them.

A HubSpot merge makes a new record with a new id; the merged ids vanish without an archive
entry, are listed in the new record's ``hs_merged_object_ids``, and a read by id of one of them
answers with the new record (under its new id). So a linked id that vanished is followed to
the record that lists it, never mistaken for a deleted one (and never re-created).

Some deletes leave no trace at all (HubSpot purges archives after 90 days, a Salesforce
recycle bin emptied): a full comparison of id lists, on a schedule, catches those. HubSpot
lists its archive only in id order with no time filter, so it is read a slice at a time, on
its own slower schedule (a slice per ``archive_poll_minutes``, not per cycle).
The schedules' positions live in the watermark table under ``<object>#<kind>`` keys: the
cursor is when the scan or check last ran (or began), ``seen`` holds a slice's position.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from sqlalchemy.orm import Session

from connectors.records import DeletedRecord, Record, Watermark
from sync_agent import state

MERGED = "hs_merged_object_ids"
ARCHIVE_SCAN = "archive-scan"
ID_CHECK = "id-check"


def merged_ids(record: Record) -> set[str]:
    """The ids HubSpot merged into this record (``;``-separated), other than its own."""
    raw = str(record.values.get(MERGED) or "")
    return {i.strip() for i in raw.split(";") if i.strip()} - {record.id}


def survivors(records: Iterable[Record]) -> dict[str, Record]:
    """Merged-away id -> the record it now lives on, for every record that lists merges."""
    out: dict[str, Record] = {}
    for record in records:
        for old in merged_ids(record):
            out[old] = record
    return out


def _key(obj: str, kind: str) -> str:
    return f"{obj}#{kind}"


def is_due(session: Session, system: str, obj: str, kind: str, interval: dt.timedelta,
           now: dt.datetime) -> bool:
    """Whether the scheduled ``kind`` of work for ``obj`` is due (never done: it is)."""
    mark = state.get_watermark(session, system, _key(obj, kind))
    return mark is None or now - mark.cursor >= interval


def done(session: Session, system: str, obj: str, kind: str, now: dt.datetime) -> None:
    state.put_watermark(session, system, _key(obj, kind), Watermark(cursor=now))


def archive_position(session: Session, obj: str) -> str | None:
    """Where the next slice of HubSpot's archive starts (after this id; None: the start)."""
    mark = state.get_watermark(session, "hubspot", _key(obj, ARCHIVE_SCAN))
    if mark is None or not mark.seen:
        return None
    return next(iter(mark.seen))[0]


def put_archive_position(session: Session, obj: str, after: str | None,
                         now: dt.datetime) -> None:
    seen = frozenset({(after, now)}) if after is not None else frozenset()
    state.put_watermark(session, "hubspot", _key(obj, ARCHIVE_SCAN),
                        Watermark(cursor=now, seen=seen))


def archive_slice(session: Session, obj: str,
                  read: Callable[[str | None], tuple[list[DeletedRecord], str | None]],
                  every: dt.timedelta, now: dt.datetime) -> list[DeletedRecord]:
    """The next slice of HubSpot's archive (``read`` from an id on) when one is due, else
    nothing: a slice costs calls on every cycle it runs, and archiving is rare and slow to
    matter, so slices come ``every`` so often. After the last slice the position goes back
    to the start and that pass, too, waits its turn."""
    if not is_due(session, "hubspot", obj, ARCHIVE_SCAN, every, now):
        return []
    found, following = read(archive_position(session, obj))
    put_archive_position(session, obj, following, now)
    return found
