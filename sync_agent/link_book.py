"""The links one cycle works with, looked up in bulk and kept in step with what it changes.

A first sync settles tens of thousands of records and a steady cycle looks at every changed
record's link, so a query per record (by Salesforce id, then by HubSpot id, then again for the
conflict checks of every pair on that HubSpot object) is what made a first sync's time grow
with the square of the data. Here the links of a page of ids come in one query, what is known
to be unlinked is remembered as such, and every add, move and delete updates both indexes, so
the rest of the cycle asks a dict.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sync_agent import state
from sync_agent.spool import KeySet
from sync_agent.tables import Link

PAGE = 500  # ids per IN list: well under SQLite's and PostgreSQL's parameter limits


class LinkBook:
    """Links by (pair, Salesforce id) and (pair, HubSpot id); ``None`` means known unlinked."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._by_sf: dict[tuple[str, str], Link | None] = {}
        self._by_hs: dict[tuple[str, str], Link | None] = {}
        self.queries = 0  # how many lookups reached the database (a bench reads it)
        self.moved: set[int] = set()  # links (by identity) moved this cycle: merges, conversions
        self.empty: set[str] = set()  # pairs with no link before this cycle: nothing to look up
        # Links of those pairs committed and let go (``settle``): read again only if asked for.
        self._settled: KeySet = set()  # (pair, "sf" | "hs", id)

    def assume_empty(self, pairs: Iterable[str], settled: KeySet | None = None) -> None:
        """These pairs had no link when the cycle began, so every link they have is one this
        book made: an id it has not seen is unlinked, without a query (a first sync a slice
        at a time asks about ids no slice loaded). ``settled`` keeps the ids of the links let
        go (a first sync keeps them on disk)."""
        self.empty.update(pairs)
        if settled is not None:
            self._settled = settled

    # -- loading ------------------------------------------------------------------------------
    def load(self, pairs: Iterable[str], *, sf_ids: Iterable[str] = (),
             hs_ids: Iterable[str] = ()) -> None:
        """Fetch the links of these ids in these pairs, a page of ids per query; ids with no
        link are remembered as unlinked."""
        names = sorted(set(pairs) - self.empty)
        if not names:
            return
        for column, index, ids in ((Link.sf_id, self._by_sf, sf_ids),
                                   (Link.hs_id, self._by_hs, hs_ids)):
            wanted = sorted({i for i in ids
                             if any((name, i) not in index for name in names)})
            for start in range(0, len(wanted), PAGE):
                chunk = wanted[start:start + PAGE]
                self.queries += 1
                for link in self.session.scalars(select(Link).where(
                        Link.pair.in_(names), column.in_(chunk))):
                    self._index(link)
                for name in names:
                    for record_id in chunk:
                        index.setdefault((name, record_id), None)

    def _index(self, link: Link) -> None:
        """Index a link read from the database, unless the cycle has moved or dropped it."""
        if (link.pair, link.sf_id) not in self._by_sf:
            self._by_sf[(link.pair, link.sf_id)] = link
        if (link.pair, link.hs_id) not in self._by_hs:
            self._by_hs[(link.pair, link.hs_id)] = link

    # -- asking ---------------------------------------------------------------------------------
    def find(self, pair: str, *, sf_id: str | None = None, hs_id: str | None = None
             ) -> Link | None:
        """The link of a record in ``pair`` (by either id; with both, the link must hold both)."""
        if sf_id is not None:
            link = self._by_sf.get((pair, sf_id))
            if link is None and (pair, "sf", sf_id) in self._settled:
                link = self._read_settled(pair, "sf", sf_id)
            elif link is None and (pair, sf_id) not in self._by_sf and pair not in self.empty:
                self.load([pair], sf_ids=[sf_id])
                link = self._by_sf[(pair, sf_id)]
            return link if link is None or hs_id is None or link.hs_id == hs_id else None
        if hs_id is not None:
            if (pair, "hs", hs_id) in self._settled:
                return self._read_settled(pair, "hs", hs_id)
            if (pair, hs_id) not in self._by_hs and pair not in self.empty:
                self.load([pair], hs_ids=[hs_id])
            return self._by_hs.get((pair, hs_id))
        raise ValueError("find needs a Salesforce or a HubSpot id")

    def settle(self) -> None:
        """Let go of the links of the pairs that had none when the cycle began, once they are
        committed: a first sync a slice at a time would otherwise hold every link it made (an
        ORM object each, over a kilobyte). Their ids are kept; a link asked for again is read
        from the database."""
        for side, index in (("sf", self._by_sf), ("hs", self._by_hs)):
            for key in [k for k, link in index.items() if link is not None and k[0] in self.empty]:
                link = index.pop(key)
                self._settled.add((key[0], side, key[1]))
                if link in self.session:
                    self.session.expunge(link)

    def _read_settled(self, pair: str, side: str, record_id: str) -> Link | None:
        self._settled.discard((pair, side, record_id))
        column = Link.sf_id if side == "sf" else Link.hs_id
        self.queries += 1
        link = self.session.scalars(select(Link).where(Link.pair == pair,
                                                       column == record_id)).first()
        if link is not None:
            self._settled.discard((pair, "sf", link.sf_id))
            self._settled.discard((pair, "hs", link.hs_id))
            self._index(link)
        return link

    def linked_hs(self, pairs: Iterable[str], hs_id: str) -> bool:
        """Whether this HubSpot record is linked in any of these pairs."""
        return any(self.find(name, hs_id=hs_id) is not None for name in pairs)

    def count(self, pair: str) -> int:
        """How many links ``pair`` has (flushing this cycle's first, so they count)."""
        self.session.flush()
        return int(self.session.scalar(select(func.count()).select_from(Link).where(
            Link.pair == pair)) or 0)

    def all_of(self, pair: str) -> list[Link]:
        """Every link of ``pair``: only for the scheduled full id comparison."""
        self.session.flush()
        links = state.links_of(self.session, pair)
        for link in links:
            self._index(link)
        return links

    # -- changing -------------------------------------------------------------------------------
    def add(self, pair: str, sf_object: str, sf_id: str, hs_object: str, hs_id: str,
            key: str | None) -> Link:
        link = state.add_link(self.session, pair, sf_object, sf_id, hs_object, hs_id, key,
                              flush=False)
        self._by_sf[(pair, sf_id)] = link
        self._by_hs[(pair, hs_id)] = link
        return link

    def move(self, link: Link, *, pair: str | None = None, sf_object: str | None = None,
             sf_id: str | None = None, hs_id: str | None = None) -> None:
        """The link follows a converted Lead or a merge survivor; both indexes follow it."""
        self._by_sf[(link.pair, link.sf_id)] = None
        self._by_hs[(link.pair, link.hs_id)] = None
        self.moved.add(id(link))
        state.move_link(self.session, link, pair=pair, sf_object=sf_object, sf_id=sf_id,
                        hs_id=hs_id)
        self._by_sf[(link.pair, link.sf_id)] = link
        self._by_hs[(link.pair, link.hs_id)] = link

    def delete(self, link: Link) -> None:
        self._by_sf[(link.pair, link.sf_id)] = None
        self._by_hs[(link.pair, link.hs_id)] = None
        state.delete_link(self.session, link)
