"""The open gaps one cycle consults and changes, read once per record that has any.

Whether a record has an open gap is known for all records from one cheap query of (pair, key)
tuples; the gaps themselves are read only for the records that have them, all kinds at once,
and every open and close goes through here, so a first sync that opens thousands of gaps and
closes thousands more asks the database nothing per record.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync_agent import gap_notes, state
from sync_agent.tables import Gap

Key = tuple[str, str]  # (pair, key)


class GapBook:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.keys: set[Key] = state.open_gap_keys(session)
        self._gaps: dict[Key, dict[str, Gap]] = {}
        self.ignored = gap_notes.active_decisions(session, outcome="ignored")

    def _of(self, pair: str, key: str) -> dict[str, Gap]:
        """The record's open gaps by kind (read from the database once, if it has any)."""
        found = self._gaps.get((pair, key))
        if found is None:
            found = {}
            if (pair, key) in self.keys:
                for gap in self.session.scalars(select(Gap).where(
                        Gap.pair == pair, Gap.key == key, Gap.closed_at.is_(None))):
                    found.setdefault(gap.kind, gap)
            self._gaps[(pair, key)] = found
        return found

    def detail(self, kind: str, pair: str, key: str) -> dict[str, Any] | None:
        gap = self._of(pair, key).get(kind)
        return dict(gap.detail) if gap is not None else None

    def open(self, kind: str, pair: str, key: str, detail: dict[str, Any]) -> bool | None:
        """Open (or touch) one gap, keeping what was known; True when it is new, None when
        a person ignored it and nothing it says has changed (nothing is opened)."""
        gaps = self._of(pair, key)
        stamp = state.now()
        gap = gaps.get(kind)
        if gap is not None:
            gap.detail, gap.last_seen_at = {**gap.detail, **detail}, stamp
            return False
        decision = self.ignored.get((kind, pair, key))
        if decision is not None:
            if gap_notes.holds(decision, detail):
                return None
            decision.note.active = False  # it changed: the person decided about something else
            del self.ignored[(kind, pair, key)]
        self.keys.add((pair, key))
        gap = Gap(kind=kind, pair=pair, key=key, detail=detail, opened_at=stamp,
                  last_seen_at=stamp)
        self.session.add(gap)
        gaps[kind] = gap
        return True

    def close(self, pair: str, key: str, kinds: Iterable[str],
              at: dt.datetime | None = None) -> int:
        """Close the record's open gaps of these kinds: their cause is gone."""
        if (pair, key) not in self.keys:
            return 0
        gaps = self._of(pair, key)
        closed = 0
        for kind in kinds:
            gap = gaps.pop(kind, None)
            if gap is not None:
                gap.closed_at = at or state.now()
                closed += 1
        if not gaps:
            self.keys.discard((pair, key))
        return closed
