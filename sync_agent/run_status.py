"""How the agent is doing, from the state store: the data behind ``stagesync status`` and the
console's status page.

- Runs: each run's real duration (its row spans the whole cycle: ``run_cycle`` may be given
  the moment its command began), and a run still going is said to be running.
- Reads: how far each object's changes have been read. "Behind now" is the time since the
  last read covered (the watermark's ``read_until``), not the time since the last change: an
  object nobody edits is read up to the last cycle like any other, and an object with no
  record at all (its cursor never left the start) says so instead of a lag of decades.
- Scheduled checks (``<object>#id-check``, ``#archive-scan``: ``merges``) are listed with
  when they last ran.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sync_agent.gap_list import aware
from sync_agent.read import EPOCH
from sync_agent.tables import DeadLetter, Run, WatermarkRow

CHANGES = "changes"
CHECKS = {"id-check": "deletes found by comparing id lists",
          "archive-scan": "HubSpot's archive of deleted records listed",
          "activity-from": "sales activity is kept from here"}


@dataclass
class RunView:
    id: int
    kind: str
    status: str  # running | ok | failed
    started_at: dt.datetime
    finished_at: dt.datetime | None
    seconds: float  # finished - started; while running, so far
    written: int
    created: int
    refused: int
    calls: int
    error: str | None


@dataclass
class ReadView:
    system: str
    object: str  # the object ("Lead"), without the ``#purpose`` of a bookkeeping row
    purpose: str  # changes | activity (SLA activity) | id-check | archive-scan | activity-from
    last_change: dt.datetime | None  # the newest change read (None: none ever)
    read_until: dt.datetime | None  # reads have covered every change up to here
    behind: dt.timedelta | None  # now - read_until
    last_done: dt.datetime | None  # a scheduled check's last run
    note: str


@dataclass
class StatusView:
    now: dt.datetime
    runs: list[RunView]
    reads: list[ReadView]  # changes and activity reads
    checks: list[ReadView]  # scheduled checks
    dead_letters_waiting: int
    salesforce_api: tuple[int, int] | None  # requests used today, daily limit
    last_error: str | None  # why the last run failed, if it did


def _run(row: Run, now: dt.datetime) -> RunView:
    started = aware(row.started_at)
    finished = aware(row.finished_at) if row.finished_at is not None else None
    counts = row.counts or {}

    def total(name: str) -> int:
        value = counts.get(name) or {}
        return sum(value.values()) if isinstance(value, dict) else int(value)

    return RunView(row.id, row.kind, row.status, started, finished,
                   ((finished or now) - started).total_seconds(), total("written"),
                   total("created"), int(counts.get("failed", 0) or 0),
                   sum((row.calls or {}).values()), row.error)


def _read(row: WatermarkRow, now: dt.datetime, first_read: dt.datetime | None) -> ReadView:
    name, _, purpose = row.object.partition("#")
    purpose = purpose or CHANGES
    cursor = aware(row.cursor)
    if purpose in CHECKS:
        return ReadView(row.system, name, purpose, None, None, None, cursor, CHECKS[purpose])
    until = aware(row.read_until) if row.read_until else aware(row.updated_at)
    last = None if cursor <= EPOCH else cursor
    note = ""
    if last is None:
        note = "no records yet"
    elif first_read is not None and last < first_read:
        note = "no change since the first read"
    return ReadView(row.system, name, purpose, last, until, max(now - until, dt.timedelta(0)),
                    None, note)


def build_status(session: Session, runs: int = 5, now: dt.datetime | None = None
                 ) -> StatusView:
    """The last ``runs`` runs, every watermark, and what waits."""
    moment = now or dt.datetime.now(dt.UTC)
    rows = list(session.scalars(select(Run).order_by(Run.id.desc()).limit(runs)))
    first = session.scalar(select(func.min(Run.started_at)).where(Run.kind == "cycle"))
    first_read = aware(first) if first is not None else None
    waiting = session.scalar(select(func.count()).select_from(DeadLetter).where(
        DeadLetter.resolved_at.is_(None))) or 0
    marks = [_read(m, moment, first_read) for m in session.scalars(
        select(WatermarkRow).order_by(WatermarkRow.system, WatermarkRow.object))]
    quota = next((r.counts.get("salesforce_api") for r in rows
                  if (r.counts or {}).get("salesforce_api")
                  and r.counts["salesforce_api"][1]), None)
    return StatusView(
        moment, [_run(r, moment) for r in rows],
        [m for m in marks if m.purpose not in CHECKS], [m for m in marks if m.purpose in CHECKS],
        waiting, (int(quota[0]), int(quota[1])) if quota else None,
        rows[0].error if rows and rows[0].status == "failed" else None)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def status_json(view: StatusView) -> dict[str, Any]:
    """The status as JSON-able data (times ISO 8601 UTC, durations in seconds)."""

    def mark(m: ReadView) -> dict[str, Any]:
        return {"system": m.system, "object": m.object, "purpose": m.purpose,
                "last_change": _iso(m.last_change), "read_until": _iso(m.read_until),
                "behind_seconds": round(m.behind.total_seconds(), 1)
                if m.behind is not None else None,
                "last_done": _iso(m.last_done), "note": m.note}

    return {
        "now": _iso(view.now),
        "runs": [{"id": r.id, "kind": r.kind, "status": r.status,
                  "started_at": _iso(r.started_at), "finished_at": _iso(r.finished_at),
                  "seconds": round(r.seconds, 3), "written": r.written, "created": r.created,
                  "refused": r.refused, "calls": r.calls, "error": r.error} for r in view.runs],
        "reads": [mark(m) for m in view.reads], "checks": [mark(m) for m in view.checks],
        "dead_letters_waiting": view.dead_letters_waiting,
        "salesforce_api": {"used": view.salesforce_api[0], "limit": view.salesforce_api[1]}
        if view.salesforce_api else None,
        "last_error": view.last_error}
