"""What the Health page shows, read from the state store: the last runs (duration, calls per
system, Salesforce's daily API use against its limit and the agent's quota stop), the errors
that stopped runs, and the dead letters waiting, each with its whole message.

Calls are stored per endpoint for both systems together; Salesforce's endpoints are named by
their HTTP method and path (``GET query``), HubSpot's by the client's API and operation
(``contacts.batch.update``), which is how they are told apart here.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sync_agent import state
from sync_agent.tables import DeadLetter, Run

RUNS_SHOWN = 20
LETTERS_SHOWN = 200
_HTTP_METHOD = re.compile(r"^(GET|POST|PATCH|PUT|DELETE|HEAD) ")


@dataclass
class RunRow:
    id: int
    kind: str
    started_at: dt.datetime
    seconds: float | None
    status: str
    salesforce_calls: int
    hubspot_calls: int
    written: int
    refused: int
    salesforce_api: tuple[int, int] | None  # (used today, daily limit) after the run
    error: str | None


@dataclass
class Quota:
    system: str
    what: str
    used: int
    limit: int | None
    stop_share: float | None = None  # the agent pauses at this share of the limit

    @property
    def share(self) -> float | None:
        return None if not self.limit else self.used / self.limit


@dataclass
class LetterRow:
    id: int
    system: str
    object: str
    record_id: str | None
    operation: str
    field: str | None
    code: str
    message: str
    attempts: int
    created_at: dt.datetime
    next_retry_at: dt.datetime


@dataclass
class HealthView:
    runs: list[RunRow]
    quotas: list[Quota]
    errors: list[RunRow]
    letters: list[LetterRow]
    letters_waiting: int
    agent: dict[str, Any] | None = None  # /healthz's body when the agent serves the console
    notes: list[str] = field(default_factory=list)


def split_calls(calls: dict[str, Any]) -> tuple[int, int]:
    """(Salesforce calls, HubSpot calls) of one run's per-endpoint counts."""
    salesforce = sum(int(n) for name, n in calls.items() if _HTTP_METHOD.match(name))
    return salesforce, sum(int(n) for n in calls.values()) - salesforce


def _run_row(run: Run) -> RunRow:
    started = state._aware(run.started_at)
    seconds = ((state._aware(run.finished_at) - started).total_seconds()
               if run.finished_at else None)
    salesforce, hubspot = split_calls(run.calls or {})
    counts = run.counts or {}
    api = counts.get("salesforce_api")
    usage = (int(api[0]), int(api[1])) if (isinstance(api, list) and len(api) == 2
                                           and api[0] is not None and api[1]) else None
    written = counts.get("written")
    return RunRow(run.id, run.kind, started, seconds, run.status, salesforce, hubspot,
                  sum(written.values()) if isinstance(written, dict) else 0,
                  int(counts.get("failed") or 0), usage, run.error)


def build_health(session: Session, *, stop_share: float | None = None,
                 now: dt.datetime | None = None) -> HealthView:
    moment = now or state.now()
    runs = [_run_row(r) for r in session.scalars(
        select(Run).order_by(Run.id.desc()).limit(RUNS_SHOWN))]
    errors = [_run_row(r) for r in session.scalars(
        select(Run).where(Run.status == "failed").order_by(Run.id.desc()).limit(5))]
    quotas: list[Quota] = []
    latest = next((r.salesforce_api for r in runs if r.salesforce_api), None)
    if latest is not None:
        quotas.append(Quota("Salesforce", "API requests in the last 24 hours (the org's, as of "
                            "the last run)", latest[0], latest[1], stop_share))
    since = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    today = list(session.scalars(select(Run).where(Run.started_at >= since)))
    salesforce_today = sum(split_calls(r.calls or {})[0] for r in today)
    hubspot_today = sum(split_calls(r.calls or {})[1] for r in today)
    quotas.append(Quota("Salesforce", "calls this agent made today (UTC)", salesforce_today,
                        None))
    quotas.append(Quota("HubSpot", "calls this agent made today (UTC); HubSpot's daily limit "
                        "depends on the account's tier", hubspot_today, None))
    letters = [LetterRow(d.id, d.system, d.object, d.record_id, d.operation, d.field,
                         d.error_code, d.error_message, d.attempts,
                         state._aware(d.created_at), state._aware(d.next_retry_at))
               for d in session.scalars(select(DeadLetter).where(
                   DeadLetter.resolved_at.is_(None)).order_by(DeadLetter.id)
                   .limit(LETTERS_SHOWN))]
    waiting = session.scalar(select(func.count()).select_from(DeadLetter).where(
        DeadLetter.resolved_at.is_(None))) or 0
    return HealthView(runs, quotas, errors, letters, int(waiting))
