"""What both sides held after the last sync of each field, for the links one cycle plans.

Read a page of links a query (not one query per pair planned), one document a link, and
written once at the end of each write pass in bulk (inserts and updates), after one flush has
given this cycle's new links their ids. Until then the values live here, so a pair planned
twice in one cycle (the second pass for created records) sees what the first pass remembered.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from sync_agent import state
from sync_agent.tables import Link, SyncedValues

Values = dict[str, tuple[Any, Any]]
PAGE = 500


class SyncedBook:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._values: dict[int, Values] = {}  # by the link object's identity (ids may be new)
        self._queued: dict[int, tuple[Link, Values, Values]] = {}
        self._stored: set[int] = set()  # links (by identity) whose document is in the store

    def load(self, links: Iterable[Link]) -> None:
        """Read the stored values of these links, a page of links a query."""
        wanted = {link.id: link for link in links
                  if link.id is not None and id(link) not in self._values}
        ids = sorted(wanted)
        for start in range(0, len(ids), PAGE):
            chunk = ids[start:start + PAGE]
            for link_id in chunk:
                self._values[id(wanted[link_id])] = {}
            for link_id, fields in self.session.execute(select(
                    SyncedValues.link_id, SyncedValues.fields).where(
                    SyncedValues.link_id.in_(chunk))):
                self._values[id(wanted[link_id])] = state.as_pairs(fields)
                self._stored.add(id(wanted[link_id]))

    def new(self, link: Link) -> None:
        """A link made this cycle: nothing was synced for it yet (no query to find that out,
        even once the flush has given it an id)."""
        self._values.setdefault(id(link), {})

    def get(self, link: Link) -> Values:
        """What was last synced for this link (nothing for a link made this cycle)."""
        if id(link) not in self._values:
            if link.id is None:
                return {}
            self.load([link])
        return dict(self._values[id(link)])

    def put(self, link: Link, values: Values, known: Values) -> None:
        """Remember what both sides hold now; ``known`` is what ``get`` said before."""
        queued = self._queued.get(id(link))
        self._queued[id(link)] = (link, values, queued[2] if queued else known)
        self._values[id(link)] = dict(values)

    def flush(self) -> None:
        """Write what was remembered: a document a link that moved (over what was stored,
        whose other fields stay), inserts and updates in bulk."""
        if not self._queued:
            return
        self.session.flush()  # this cycle's new links get their ids, in one batch
        stamp = state.now()
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for link, values, known in self._queued.values():
            after = {**known, **values}
            if after == known and id(link) in self._stored:
                continue
            row = {"fields": {key: list(pair) for key, pair in after.items()},
                   "synced_at": stamp}
            (updates if id(link) in self._stored else inserts).append(
                {"link_id": link.id, **row})
            self._stored.add(id(link))
        self._queued = {}
        state.insert_rows(self.session, SyncedValues, inserts)
        for start in range(0, len(updates), state.ROWS):  # bulk update by primary key
            self.session.execute(update(SyncedValues), updates[start:start + state.ROWS])
