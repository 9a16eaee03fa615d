"""The SLA's activity log, read by change: the Tasks and Events changed since the last read,
one query each (or riding along in the cycle's Composite read), every
``activity_poll_minutes`` and always before a lead is declared cold. The log covers back to
the longest-waiting lead's arrival at an SLA stage, so ``sla.find_cold`` decides from the
state store alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors.contract import Connector, ReadsActivity
from connectors.records import Activity, Record, Watermark, advance
from mapping.model import MappingFile
from sync_agent import activity, state
from sync_agent.sla import ACTIVITY_OBJECTS, MARK, SYSTEM, at_stage, aware
from sync_agent.tables import StageVisit


def _mark_key(object_name: str) -> str:
    return f"{object_name}#activity"  # beside the object's own watermark, never the same row


def _origin_key(object_name: str) -> str:
    return f"{object_name}#activity-from"  # how far back the log covers


def _earliestat_stage(session: Session, mapping: MappingFile) -> dt.datetime | None:
    """When the longest-waiting lead at an SLA stage arrived: activity before that cannot
    stop any SLA clock running now."""
    found: list[dt.datetime] = []
    for rule in mapping.sla:
        found_at = at_stage(mapping, rule)
        if found_at is not None:
            first = session.scalar(select(func.min(StageVisit.entered_at)).where(found_at[1]))
            if first is not None:
                found.append(aware(first))
    return min(found, default=None)


def activity_since(session: Session, mapping: MappingFile, object_name: str
                   ) -> Watermark | None:
    """Where the next read of ``object_name`` (Task, Event) starts; None when nothing need
    be read (no SLA rule, or no lead at an SLA stage).

    The first read starts where the longest-waiting lead arrived, not at the beginning of
    history. A lead found waiting since before the log's start (an SLA rule added to the
    mapping, a stage it now names) rewinds the read to its arrival: the log must cover it.
    """
    earliest = _earliestat_stage(session, mapping)
    if earliest is None:
        return None
    mark = state.get_watermark(session, SYSTEM, _mark_key(object_name))
    origin = state.get_watermark(session, SYSTEM, _origin_key(object_name))
    if mark is None or origin is None or earliest < origin.cursor:
        return Watermark(cursor=earliest)
    return mark


def store_activity(session: Session, object_name: str, since: Watermark,
                   rows: Iterable[Activity], until: dt.datetime, lookback: dt.timedelta
                   ) -> None:
    """Put activity read from ``since`` up to ``until`` in the log and advance the
    watermark, in the caller's transaction: a cycle that fails reads it again.

    For ``read_activity``, or for the engine with rows it fetched itself (a Composite
    request carrying ``activity_soql``, parsed by ``parse_activity``).
    """
    read = list(rows)
    ours = [a for a in read if object_name == "Task" and (a.note or "").startswith(MARK)]
    mine = {a.id for a in ours}  # the agent's follow-ups are not a rep's activity
    activity.record_activity(session, [a for a in read if a.id not in mine], ours)
    stamps = [Record(system=SYSTEM, object=object_name, id=a.id, cursor=a.cursor)
              for a in read if a.cursor is not None]
    state.put_watermark(session, SYSTEM, _mark_key(object_name),
                        advance(since, stamps, lookback, until))
    origin = state.get_watermark(session, SYSTEM, _origin_key(object_name))
    if origin is None or since.cursor < origin.cursor:
        state.put_watermark(session, SYSTEM, _origin_key(object_name),
                            Watermark(cursor=since.cursor))


def activity_due(session: Session, mapping: MappingFile, salesforce: Connector,
                 now: dt.datetime) -> dict[str, Watermark]:
    """Where each activity read starts, if one is due: never read, rewound (a lead waits
    from before the log's start), or last read ``activity_interval`` ago or more (the
    connector's ``activity_poll_minutes``). Empty when nothing need be read."""
    interval = getattr(salesforce, "activity_interval", dt.timedelta(0))
    marks = {o: since for o in ACTIVITY_OBJECTS
             if (since := activity_since(session, mapping, o)) is not None}
    due = any(m.read_until is None or now - aware(m.read_until) >= interval
              for m in marks.values())
    return marks if due else {}


def activity_reads(session: Session, mapping: MappingFile, salesforce: Connector,
                   until: dt.datetime) -> dict[str, tuple[Watermark, str]]:
    """The activity queries a cycle sends with its reads (one Composite call), by object:
    the watermark each reads from and its SOQL. None without SLA rules, without leads waiting
    at an SLA stage, when no read is due, or from a connector that reads activity only its
    own way."""
    if not mapping.sla or not isinstance(salesforce, ReadsActivity) or not hasattr(
            salesforce, "read_many"):
        return {}
    return {o: (since, salesforce.activity_soql(o, since, until))
            for o, since in activity_due(session, mapping, salesforce, until).items()}


def store_activity_rows(session: Session, salesforce: Connector, object_name: str,
                        since: Watermark, rows: list[dict[str, Any]], until: dt.datetime
                        ) -> None:
    """``store_activity`` for the raw rows of an ``activity_reads`` query, without what
    ``since`` saw already (as ``activity_changed`` leaves it out)."""
    if not isinstance(salesforce, ReadsActivity):
        raise TypeError(f"{type(salesforce).__name__} cannot read activity by change")
    found = [a for a in salesforce.parse_activity(object_name, rows)
             if (a.id, a.cursor) not in since.seen]
    store_activity(session, object_name, since, found, until, salesforce.lookback)


def read_activity(session: Session, mapping: MappingFile, salesforce: Connector,
                  now: dt.datetime) -> None:
    """Read the Tasks and Events changed since the last read into the activity log: one
    query each a quiet cycle, whatever the number of leads. Nothing without SLA rules."""
    if not mapping.sla:
        return
    if not isinstance(salesforce, ReadsActivity):
        raise TypeError(f"{type(salesforce).__name__} cannot read activity by change")
    for object_name in ACTIVITY_OBJECTS:
        since = activity_since(session, mapping, object_name)
        if since is not None:
            store_activity(session, object_name, since,
                           salesforce.activity_changed(object_name, since, now), now,
                           salesforce.lookback)


HUBSPOT_ACTIVITY = "notes_last_updated"  # a contact's "Last activity date"


def hubspot_activity(session: Session, mapping: MappingFile, links: Any,
                     records: Iterable[list[Record]]) -> int:
    """A rep's calls, emails, meetings and notes logged in HubSpot: each moves the contact's
    last activity date (HubSpot's ``notes_last_updated``), which comes with the contact in
    the cycle's change read at no cost of its own. Put in the log under the linked
    Salesforce lead or contact, as a Task would be, so the SLA clock stops for it too.
    Returns how many were logged."""
    pairs = [p.name for p in mapping.objects if p.hubspot == "contacts"]
    found: list[Activity] = []
    for page in records:
        logged = {r.id: r.values[HUBSPOT_ACTIVITY] for r in page
                  if r.values.get(HUBSPOT_ACTIVITY)}
        if not logged:
            continue
        links.load(pairs, hs_ids=logged)
        for hs_id, raw in logged.items():
            for pair in pairs:
                link = links.find(pair, hs_id=hs_id)
                if link is not None:
                    found.append(Activity(record_id=link.sf_id, id=f"hubspot:{hs_id}",
                                          at=_hubspot_time(raw)))
    activity.record_activity(session, found, [])
    return len(found)


def _hubspot_time(raw: Any) -> dt.datetime:
    if isinstance(raw, dt.datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=dt.UTC)
    text = str(raw)
    if text.isdigit():  # epoch milliseconds, as HubSpot's v1 APIs give it
        return dt.datetime.fromtimestamp(int(text) / 1000, dt.UTC)
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
