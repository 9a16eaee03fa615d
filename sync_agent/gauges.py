"""What ``/metrics`` reports of the state store: read after each cycle, a few cheap queries.

The store, not the agent's memory, is the truth an operator alerts on: dead letters waiting,
open gaps, how far each object has been read, and the API quota the last cycle saw. Counting
them from the store also makes the numbers right after a restart.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sync_agent.state import _aware
from sync_agent.tables import DeadLetter, Gap, Run, WatermarkRow

BOOKKEEPING = "#"  # in the object name of a watermark row that is not an object's reads
QUOTA_RUNS = 20  # recent cycle runs searched for the last quota each system reported


@dataclass
class StoreGauges:
    read_until: dict[tuple[str, str], dt.datetime] = field(default_factory=dict)
    dead_letters: dict[tuple[str, str], int] = field(default_factory=dict)
    open_gaps: dict[str, int] = field(default_factory=dict)
    quota: dict[str, tuple[int, int]] = field(default_factory=dict)  # system -> (used, limit)


def read_gauges(session: Session) -> StoreGauges:
    """The gauges as the store holds them now."""
    gauges = StoreGauges()
    for row in session.scalars(select(WatermarkRow)):
        # "Lead#id-check", "Task#activity": the store's bookkeeping, not an object's reads
        if row.read_until is not None and BOOKKEEPING not in row.object:
            gauges.read_until[(row.system, row.object)] = _aware(row.read_until)
    for system, obj, count in session.execute(
            select(DeadLetter.system, DeadLetter.object, func.count())
            .where(DeadLetter.resolved_at.is_(None))
            .group_by(DeadLetter.system, DeadLetter.object)):
        gauges.dead_letters[(system, obj)] = int(count)
    for kind, count in session.execute(
            select(Gap.kind, func.count()).where(Gap.closed_at.is_(None)).group_by(Gap.kind)):
        gauges.open_gaps[kind] = int(count)
    for run in session.scalars(select(Run).where(Run.kind == "cycle", Run.status == "ok")
                               .order_by(Run.id.desc()).limit(QUOTA_RUNS)):
        for system in ("salesforce", "hubspot"):
            usage = run.counts.get(f"{system}_api")
            if system not in gauges.quota and isinstance(usage, list) and len(usage) == 2 \
                    and all(isinstance(n, int) for n in usage):
                gauges.quota[system] = (usage[0], usage[1])
    return gauges
