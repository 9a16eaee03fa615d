"""A person's decisions on gaps, and how the engine respects them.

A gap is closed either by a cycle (its cause is gone) or by a person, with a note saying why
(``gap_notes``):

- ``resolved``: they fixed it. A cycle that still finds the cause opens a new gap, as it
  would for any record.
- ``ignored``: they decided to leave it so. A cycle that finds the same thing again (every
  value it would put in the gap is the one the ignored gap held) opens nothing; once the
  data changes (another duplicate joins, a new refusal message), the ignore is spent and the
  gap opens again, since the person decided about something else.

A decision stays ``active`` while it still governs its record: an ignore until its data
changes, and any decision on a cold lead until the SLA engine has undone what the lead's
actions set in HubSpot once it is no longer cold (``sla.reconcile``).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync_agent.tables import Gap, GapNote

OUTCOMES = ("resolved", "ignored")
GapKey = tuple[str, str, str]  # (kind, pair, key)


@dataclass
class Decision:
    note: GapNote
    gap: Gap


def active_decisions(session: Session, kind: str | None = None,
                     outcome: str | None = None) -> dict[GapKey, Decision]:
    """The decisions that still govern their records, by the gap's (kind, pair, key); the
    latest one wins where a record has several. A handful of rows however large the store:
    only people's decisions are kept here."""
    query = (select(GapNote, Gap).join(Gap, Gap.id == GapNote.gap_id)
             .where(GapNote.active.is_(True)).order_by(GapNote.id))
    if kind is not None:
        query = query.where(Gap.kind == kind)
    if outcome is not None:
        query = query.where(GapNote.outcome == outcome)
    return {(gap.kind, gap.pair, gap.key): Decision(note, gap)
            for note, gap in session.execute(query)}


def _plain(value: Any) -> Any:
    """``value`` as its JSON reading gives it back (tuples as lists, dates as text)."""
    return json.loads(json.dumps(value, default=str))


def unchanged(decided: dict[str, Any], found: dict[str, Any]) -> bool:
    """Whether what a cycle found (``found``, the detail it would open a gap with) says
    nothing the decided gap did not: each of its values is the one the gap held. The gap may
    hold more (what was done about it since it opened)."""
    known = _plain(decided)
    return all(name in known and known[name] == value
               for name, value in _plain(found).items())


def holds(decision: Decision | None, found: dict[str, Any]) -> bool:
    """Whether an ignore keeps a cycle from opening this gap again."""
    return (decision is not None and decision.note.outcome == "ignored"
            and unchanged(decision.gap.detail, found))


def decide(session: Session, gap: Gap, outcome: str, note: str, by: str,
           active: bool) -> GapNote:
    """Close ``gap`` by a person's decision, kept beside it."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome {outcome!r}: use one of {', '.join(OUTCOMES)}")
    stamp = dt.datetime.now(dt.UTC)
    gap.closed_at = stamp
    row = GapNote(gap_id=gap.id, outcome=outcome, note=note, by=by, at=stamp, active=active)
    session.add(row)
    return row


def notes_of(session: Session, gap_ids: list[int]) -> dict[int, GapNote]:
    """The latest decision on each of these gaps (those a person closed)."""
    found: dict[int, GapNote] = {}
    for start in range(0, len(gap_ids), 500):
        for row in session.scalars(select(GapNote).where(
                GapNote.gap_id.in_(gap_ids[start:start + 500])).order_by(GapNote.id)):
            found[row.gap_id] = row
    return found
