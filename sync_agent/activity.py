"""The activity log in the state store: per Salesforce lead or contact, when a person last
acted on it and which follow-up Tasks the agent made on it. Incremental reads of Tasks and
Events feed it; the SLA clock reads it, so deciding that a lead is cold takes no API call.

Plain functions over a Session, as in ``state``; the caller owns the transaction, so the log
and the activity watermarks commit together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from connectors.records import Activity
from sync_agent.state import _aware, now
from sync_agent.tables import ActivityLog

CHUNK = 500  # ids per IN list: well under SQLite's and PostgreSQL's bound-parameter limits


@dataclass(frozen=True)
class Logged:
    """What the log holds for one record."""

    rep_at: dt.datetime | None  # the latest activity a person logged (None: only ours)
    ours: tuple[tuple[str, dt.datetime], ...] = ()  # the agent's own Tasks: (id, created)


def _later(first: dt.datetime | None, second: dt.datetime | None) -> dt.datetime | None:
    if first is None or second is None:
        return first or second
    return max(first, second)


def logged_for(session: Session, record_ids: Iterable[str]) -> dict[str, Logged]:
    """The log's entries for these records (those with none are left out), a query per 500."""
    wanted = sorted(set(record_ids))
    found: dict[str, Logged] = {}
    for start in range(0, len(wanted), CHUNK):
        for row in session.scalars(select(ActivityLog).where(
                ActivityLog.record_id.in_(wanted[start:start + CHUNK]))):
            found[row.record_id] = Logged(
                _aware(row.rep_at) if row.rep_at is not None else None,
                tuple((str(i), _aware(dt.datetime.fromisoformat(at))) for i, at in row.ours))
    return found


def record_activity(session: Session, rep: Iterable[Activity], ours: Iterable[Activity]
                    ) -> None:
    """Add activity to the log: a person's (``rep``: the latest time per record is kept) and
    the agent's own follow-up Tasks (``ours``: kept by id).

    Recording the same activity twice changes nothing, so a re-read (the lookback, a cycle
    run again after a crash) is harmless. The rows are read, merged in Python and written in
    bulk rather than with a dialect's ``ON CONFLICT``: merging a JSON list is not portable
    between SQLite and PostgreSQL, and one cycle runs at a time (the lock), so nobody
    writes between the read and the write.
    """
    latest: dict[str, dt.datetime] = {}
    for activity in rep:
        latest[activity.record_id] = max(activity.at, latest.get(activity.record_id,
                                                                 activity.at))
    own: dict[str, dict[str, dt.datetime]] = {}
    for activity in ours:
        own.setdefault(activity.record_id, {})[activity.id] = activity.at
    ids = set(latest) | set(own)
    if not ids:
        return
    known = logged_for(session, ids)
    stamp = now()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for record_id in sorted(ids):
        before = known.get(record_id, Logged(None))
        rep_at = _later(before.rep_at, latest.get(record_id))
        tasks = dict(before.ours) | own.get(record_id, {})
        if record_id in known and (rep_at, tasks) == (before.rep_at, dict(before.ours)):
            continue
        row = {"record_id": record_id, "rep_at": rep_at, "updated_at": stamp,
               "ours": [[i, at.isoformat()] for i, at in sorted(tasks.items(),
                                                                 key=lambda t: (t[1], t[0]))]}
        (updates if record_id in known else inserts).append(row)
    if inserts:
        session.execute(insert(ActivityLog), inserts)
    if updates:
        session.execute(update(ActivityLog), updates)
