"""Write-ahead records, committed before any vendor write so a crashed cycle is recovered
without a duplicate or a lost update: the intents of a cycle's updates (what each pair will
hold once they land: the next cycle recognises the writes that did as its own) and the
creates about to be sent (held until a read shows whether they landed)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from sync_agent.state import _aware, insert_rows, now
from sync_agent.tables import Intent, PendingCreate


# -- write intents -------------------------------------------------------------------------------
def load_intents(session: Session) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(i.pair, i.sf_id, i.hs_id): dict(i.values) for i in session.scalars(select(Intent))}


def put_intents(session: Session,
                intents: dict[tuple[str, str, str], dict[str, tuple[Any, Any]]],
                replacing: Iterable[tuple[str, str, str]] = ()) -> None:
    stamp = now()
    for pair, sf_id, hs_id in set(replacing) & set(intents):
        session.execute(delete(Intent).where(Intent.pair == pair, Intent.sf_id == sf_id,
                                             Intent.hs_id == hs_id))
    insert_rows(session, Intent, [
        {"pair": pair, "sf_id": sf_id, "hs_id": hs_id, "created_at": stamp,
         "values": {k: list(v) for k, v in values.items()}}
        for (pair, sf_id, hs_id), values in intents.items()])


def clear_intents(session: Session) -> None:
    """A cycle committed: every intent is settled (one cycle runs at a time: the lock)."""
    session.execute(delete(Intent))


# -- pending creates (write-ahead for creates) ------------------------------------------------
def load_pending_creates(session: Session) -> dict[tuple[str, str, str], dt.datetime]:
    """(pair, side created in, source record id) -> when the create was first planned."""
    return {(p.pair, p.into, p.source_id): _aware(p.planned_at)
            for p in session.scalars(select(PendingCreate))}


def put_pending_creates(session: Session, creates: dict[tuple[str, str, str], dt.datetime]
                        ) -> None:
    """Record creates about to be sent, each with the time of this attempt (a create sent
    again after a hold restarts its hold: this attempt may land too)."""
    known = set(load_pending_creates(session))
    insert_rows(session, PendingCreate, [
        {"pair": pair, "into": into, "source_id": source, "planned_at": at}
        for (pair, into, source), at in creates.items() if (pair, into, source) not in known])
    for (pair, into, source), at in creates.items():
        if (pair, into, source) in known:
            session.execute(update(PendingCreate).where(
                PendingCreate.pair == pair, PendingCreate.into == into,
                PendingCreate.source_id == source).values(planned_at=at))


def drop_pending_creates(session: Session, creates: Iterable[tuple[str, str, str]]) -> None:
    """A failed cycle's creates that were never sent: nothing to wait for, then. Committed."""
    for pair, into, source in creates:
        session.execute(delete(PendingCreate).where(
            PendingCreate.pair == pair, PendingCreate.into == into,
            PendingCreate.source_id == source))
    session.commit()


def settle_pending_creates(session: Session, keep: Iterable[tuple[str, str, str]],
                           only: set[tuple[str, str, str]] | None = None) -> None:
    """A cycle committed: its creates are linked or dead-lettered; only the held ones stay
    (``only``: settle just these, as a backfill page or a retry does)."""
    kept = set(keep)
    for row in session.scalars(select(PendingCreate)):
        key = (row.pair, row.into, row.source_id)
        if key not in kept and (only is None or key in only):
            session.delete(row)
