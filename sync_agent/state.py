"""Reading and writing the engine's state. Plain functions over a Session; the caller owns the
transaction, so one cycle's writes and its watermark advance commit together (or not at all).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from connectors.records import Watermark
from sync_agent import gap_notes
from sync_agent.store import Store, is_busy
from sync_agent.tables import (
    DeadLetter,
    Gap,
    LedgerEntry,
    Link,
    Lock,
    Run,
    StageVisit,
    SyncedValues,
    WatermarkRow,
)

RETRY_BACKOFF = (dt.timedelta(minutes=5), dt.timedelta(minutes=30), dt.timedelta(hours=2),
                 dt.timedelta(hours=12))


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands datetimes back naive; everything here is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


# -- watermarks -----------------------------------------------------------------------------
def get_watermark(session: Session, system: str, obj: str) -> Watermark | None:
    row = session.get(WatermarkRow, (system, obj))
    if row is None:
        return None
    seen = frozenset((str(i), _aware(dt.datetime.fromisoformat(c))) for i, c in row.seen)
    return Watermark(cursor=_aware(row.cursor), seen=seen,
                     read_until=_aware(row.read_until) if row.read_until else None)


def put_watermark(session: Session, system: str, obj: str, mark: Watermark) -> None:
    seen = sorted([i, c.isoformat()] for i, c in mark.seen)
    row = session.get(WatermarkRow, (system, obj))
    if row is None:
        session.add(WatermarkRow(system=system, object=obj, cursor=mark.cursor, seen=seen,
                                 read_until=mark.read_until, updated_at=now()))
    else:
        row.cursor, row.seen, row.read_until, row.updated_at = (
            mark.cursor, seen, mark.read_until, now())


# -- links and what was last synced ------------------------------------------------------------
def find_link(session: Session, pair: str, *, sf_id: str | None = None,
              hs_id: str | None = None) -> Link | None:
    query = select(Link).where(Link.pair == pair)
    if sf_id is not None:
        query = query.where(Link.sf_id == sf_id)
    if hs_id is not None:
        query = query.where(Link.hs_id == hs_id)
    return session.scalars(query).first()


def add_link(session: Session, pair: str, sf_object: str, sf_id: str, hs_object: str,
             hs_id: str, match_key: str | None, flush: bool = True) -> Link:
    """Add a link; ``flush=False`` leaves its insert (and id) to the next flush, so a cycle
    that makes thousands of links inserts them in a batch."""
    link = Link(pair=pair, sf_object=sf_object, sf_id=sf_id, hs_object=hs_object, hs_id=hs_id,
                match_key=match_key, created_at=now(), updated_at=now())
    session.add(link)
    if flush:
        session.flush()
    return link


def move_link(session: Session, link: Link, *, pair: str | None = None,
              sf_object: str | None = None, sf_id: str | None = None,
              hs_id: str | None = None) -> None:
    """A Lead converted (or a record merged): the link follows the surviving record."""
    if pair is not None:
        link.pair = pair
    if sf_object is not None:
        link.sf_object = sf_object
    if sf_id is not None:
        link.sf_id = sf_id
    if hs_id is not None:
        link.hs_id = hs_id
    link.updated_at = now()


def synced_values(session: Session, link_id: int) -> dict[str, tuple[Any, Any]]:
    fields = session.scalar(select(SyncedValues.fields).where(SyncedValues.link_id == link_id))
    return as_pairs(fields or {})


def as_pairs(fields: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """A stored document's field pairs (JSON lists) as (Salesforce, HubSpot) tuples."""
    return {key: (pair[0], pair[1]) for key, pair in fields.items()}


def remember_synced(session: Session, link_id: int, values: dict[str, tuple[Any, Any]],
                    known: dict[str, tuple[Any, Any]] | None = None) -> None:
    """Store what both sides hold now, over what was stored (fields not in ``values`` stay).
    ``known`` is what ``synced_values`` returned for this link in this transaction (saves a
    read); nothing is written when nothing moved."""
    stored = session.scalar(select(SyncedValues.fields).where(SyncedValues.link_id == link_id))
    before = as_pairs(stored or {}) if known is None else known
    after = {**before, **values}
    document = {key: list(pair) for key, pair in after.items()}
    if stored is None:
        session.execute(insert(SyncedValues), [{"link_id": link_id, "fields": document,
                                                "synced_at": now()}])
    elif after != before:
        session.execute(update(SyncedValues).where(SyncedValues.link_id == link_id).values(
            fields=document, synced_at=now()))


# -- runs and the ledger ---------------------------------------------------------------------
def start_run(session: Session, kind: str, at: dt.datetime | None = None) -> Run:
    """A run on record from ``at`` (default now): when its work began, which may be before
    its first statement (a command's sign-in and mapping check are part of its cycle)."""
    run = Run(kind=kind, started_at=at or now(), status="running", counts={}, calls={})
    session.add(run)
    session.flush()
    return run


def finish_run(session: Session, run: Run, status: str, counts: dict[str, Any],
               calls: dict[str, Any], error: str | None = None) -> None:
    run.finished_at, run.status, run.counts, run.calls, run.error = (
        now(), status, counts, calls, error)


ROWS = 2_000  # rows a bulk statement: one for a first sync's every row held them all at once


def insert_rows(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    """Rows into ``model``'s table in bulk statements of ``ROWS``, each one executemany.

    The table's own insert, not the ORM's bulk insert: that one leaves out of each row the
    columns it holds None for (so a default may apply), then groups rows by the columns left,
    and a ledger whose ``old`` is None for some fields ran as thousands of statements. Here
    None is stored as such (JSON columns read it back as None either way)."""
    statement = insert(model.__table__)
    for start in range(0, len(rows), ROWS):
        session.execute(statement, rows[start:start + ROWS])


def record_writes(session: Session, run_id: int | None,
                  entries: Iterable[dict[str, Any]]) -> None:
    """Ledger rows in bulk statements: a first sync writes tens of thousands of fields, and
    an ORM object each (flushed one by one) was a fifth of its time."""
    stamp = now()
    insert_rows(session, LedgerEntry, [{"run_id": run_id, "at": stamp, **entry}
                                       for entry in entries])


# -- dead letters ---------------------------------------------------------------------------
# A letter is due this long after the refusal that made it (the first wait) and after each
# refusal of a retry (the next ones); the last wait repeats for as long as it is refused.
# A change to its record, read by a cycle, makes it due at once (``source_changed``).


def add_dead_letter(session: Session, *, system: str, obj: str, record_id: str | None,
                    operation: str, payload: dict[str, Any], code: str, message: str,
                    field: str | None) -> DeadLetter:
    stamp = now()
    letter = DeadLetter(system=system, object=obj, record_id=record_id, operation=operation,
                        payload=payload, error_code=code, error_message=message, field=field,
                        attempts=1, next_retry_at=stamp + RETRY_BACKOFF[0], created_at=stamp,
                        tried_at=stamp)
    session.add(letter)
    return letter


def due_dead_letters(session: Session, at: dt.datetime | None = None) -> list[DeadLetter]:
    moment = at or now()
    return list(session.scalars(select(DeadLetter).where(
        DeadLetter.resolved_at.is_(None), DeadLetter.next_retry_at <= moment)
        .order_by(DeadLetter.id)))


def open_dead_letters(session: Session) -> list[DeadLetter]:
    return list(session.scalars(select(DeadLetter).where(DeadLetter.resolved_at.is_(None))
                                .order_by(DeadLetter.next_retry_at, DeadLetter.id)))


def backoff(attempts: int) -> dt.timedelta:
    """The wait after the ``attempts``-th refusal (1: the one that made the letter)."""
    return RETRY_BACKOFF[min(max(attempts, 1) - 1, len(RETRY_BACKOFF) - 1)]


def last_tried(letter: DeadLetter) -> dt.datetime:
    """When the letter was last sent and refused (worked out from its backoff on letters
    made before ``tried_at`` was kept)."""
    if letter.tried_at is not None:
        return _aware(letter.tried_at)
    return _aware(letter.next_retry_at) - backoff(letter.attempts)


def retried(letter: DeadLetter, succeeded: bool, message: str | None = None) -> None:
    """The outcome of sending a letter again: resolved, or refused once more and backed off
    (the last outcome wins when one run sends it twice)."""
    if succeeded:
        if letter.resolved_at is None:
            letter.resolved_at = now()
        return
    stamp = now()
    letter.attempts += 1
    letter.resolved_at = None
    letter.tried_at = stamp
    letter.source_changed_at = None
    if message:
        letter.error_message = message
    letter.next_retry_at = stamp + backoff(letter.attempts)


def source_changed(letter: DeadLetter, at: dt.datetime | None = None) -> None:
    """Its record changed since it was refused: due now, whatever its backoff."""
    stamp = at or now()
    letter.source_changed_at = stamp
    letter.next_retry_at = min(_aware(letter.next_retry_at), stamp)


# -- gaps -------------------------------------------------------------------------------------
def observe_gaps(session: Session, kind: str, pair: str, current: dict[str, dict[str, Any]]
                 ) -> tuple[int, int]:
    """Make the open gaps of ``kind`` in ``pair`` exactly ``current`` (key -> detail): new ones
    open, seen ones are touched, vanished ones close (keeping their history).
    Returns (opened, closed)."""
    stamp = now()
    open_gaps = {g.key: g for g in session.scalars(select(Gap).where(
        Gap.kind == kind, Gap.pair == pair, Gap.closed_at.is_(None)))}
    opened = closed = 0
    for key, detail in current.items():
        gap = open_gaps.pop(key, None)
        if gap is None:
            session.add(Gap(kind=kind, pair=pair, key=key, detail=detail, opened_at=stamp,
                            last_seen_at=stamp))
            opened += 1
        else:
            gap.detail, gap.last_seen_at = detail, stamp
    for gap in open_gaps.values():
        gap.closed_at = stamp
        closed += 1
    return opened, closed


# -- the single-instance lock -----------------------------------------------------------------
def acquire_lock(store: Store, name: str, holder: str, ttl: dt.timedelta) -> bool:
    """Take the lock unless another live holder has it. Its own transactions, so it commits
    at once; expired locks (a killed agent) are taken over.

    On SQLite the OS lock beside the file says who is alive: while another process has it the
    answer is False at once (no waiting on the database); with it, any row left is a dead
    holder's and goes, however long its lease had to run. A store too busy to answer (SQLite's
    "database is locked" after the busy timeout) is a lock not acquired, never a crash."""
    sharing = store.file_lock_holders(name) or set()
    if not store.hold_file_lock(name, holder):
        return False
    acquired = False
    try:
        stamp = now()
        stale = Lock.expires_at < stamp
        alive_here = store.file_lock_holders(name)
        if alive_here is not None:  # no other process is alive to hold it: any row of one is
            stale = or_(stale, Lock.holder.not_in(alive_here))  # a dead agent's
        with store.session() as session, session.begin():
            session.execute(delete(Lock).where(Lock.name == name, stale))
        try:
            with store.session() as session, session.begin():
                session.add(Lock(name=name, holder=holder, acquired_at=stamp,
                                 expires_at=stamp + ttl))
            acquired = True
        except IntegrityError:
            with store.session() as session, session.begin():
                row = session.get(Lock, name)
                acquired = row is not None and row.holder == holder
    except OperationalError as exc:
        if not is_busy(exc):
            raise
    finally:
        if not acquired and holder not in sharing:
            store.release_file_lock(name, holder)
    return acquired


def take_over_dead_lock(store: Store, name: str, host: str) -> bool:
    """Free a lock whose holder (``host:pid``) ran on this host and is gone (killed). Only that
    holder's row is deleted, so a lock another agent took in the meantime stays; True when the
    lock is free now (then ``acquire_lock`` decides who gets it)."""
    try:
        with store.session() as session, session.begin():
            row = session.get(Lock, name)
            if row is None:
                return True
            dead = row.holder
            held_host, _, pid = dead.rpartition(":")
            if held_host != host or not pid.isdigit():
                return False
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                session.execute(delete(Lock).where(Lock.name == name, Lock.holder == dead))
                return True
            except PermissionError:
                return False
            return False
    except OperationalError as exc:
        if is_busy(exc):
            return False
        raise


def renew_lock(store: Store, name: str, holder: str, ttl: dt.timedelta) -> bool:
    """Push the lease ``ttl`` past now (the heartbeat of a running cycle); False when
    ``holder`` no longer has the lock. Raises what the store raises (a busy SQLite file)."""
    with store.session() as session, session.begin():
        result = session.execute(update(Lock).where(Lock.name == name, Lock.holder == holder)
                                 .values(expires_at=now() + ttl))
        return bool(getattr(result, "rowcount", 0))


def release_lock(store: Store, name: str, holder: str) -> None:
    """Give the lock up. A store too busy to answer keeps the row: on SQLite the next holder
    clears it (the OS lock goes regardless), elsewhere its lease runs out."""
    try:
        with store.session() as session, session.begin():
            session.execute(delete(Lock).where(Lock.name == name, Lock.holder == holder))
    except OperationalError as exc:
        if not is_busy(exc):
            raise
    finally:
        store.release_file_lock(name, holder)


def open_gap(session: Session, kind: str, pair: str, key: str, detail: dict[str, Any]) -> bool:
    """Open (or touch) one gap; True when it is new (never one a person ignored, while what
    it says is unchanged)."""
    gap = session.scalars(select(Gap).where(Gap.kind == kind, Gap.pair == pair, Gap.key == key,
                                            Gap.closed_at.is_(None))).first()
    stamp = now()
    if gap is not None:
        gap.detail, gap.last_seen_at = {**gap.detail, **detail}, stamp  # keep what was known
        return False
    decision = gap_notes.active_decisions(session, kind, "ignored").get((kind, pair, key))
    if decision is not None:
        if gap_notes.holds(decision, detail):
            return False  # a person ignored it and nothing it says has changed
        decision.note.active = False
    session.add(Gap(kind=kind, pair=pair, key=key, detail=detail, opened_at=stamp,
                    last_seen_at=stamp))
    return True


def close_gaps(session: Session, pair: str, key: str, kinds: Iterable[str]) -> int:
    """Close the open gaps of these kinds for one record: their cause is gone."""
    result = session.execute(update(Gap).where(
        Gap.pair == pair, Gap.key == key, Gap.kind.in_(list(kinds)), Gap.closed_at.is_(None))
        .values(closed_at=now()))
    return int(getattr(result, "rowcount", 0) or 0)


def open_gap_keys(session: Session) -> set[tuple[str, str]]:
    """(pair, key) of every open gap."""
    return {(p, k) for p, k in session.execute(select(Gap.pair, Gap.key).where(
        Gap.closed_at.is_(None)))}


def open_gaps(session: Session) -> list[Gap]:
    return list(session.scalars(select(Gap).where(Gap.closed_at.is_(None))
                                .order_by(Gap.kind, Gap.pair, Gap.key)))


def delete_link(session: Session, link: Link) -> None:
    if link in session.new:  # made this cycle and never flushed: nothing to delete
        session.expunge(link)
    else:
        session.delete(link)


def links_of(session: Session, pair: str) -> list[Link]:
    return list(session.scalars(select(Link).where(Link.pair == pair)))


def open_gap_detail(session: Session, kind: str, pair: str, key: str) -> dict[str, Any] | None:
    gap = session.scalars(select(Gap).where(Gap.kind == kind, Gap.pair == pair, Gap.key == key,
                                            Gap.closed_at.is_(None))).first()
    return dict(gap.detail) if gap is not None else None


def end_visits(session: Session, system: str, record_ids: list[str], at: dt.datetime) -> None:
    """Deleted or merged-away records leave the funnel."""
    for start in range(0, len(record_ids), 500):
        session.execute(update(StageVisit).where(
            StageVisit.system == system, StageVisit.record_id.in_(record_ids[start:start + 500]),
            StageVisit.left_at.is_(None)).values(left_at=at))
