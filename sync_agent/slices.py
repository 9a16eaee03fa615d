"""A first sync a slice of records at a time.

A first sync reads every record of both systems. Taken whole, it then holds every write it
plans, every pair's remembered values, every stage observation and every ledger row until its
last batch is recorded: at 50,000 leads that was over a gigabyte. Here, when no pair has a
link yet and the change set is large, the Salesforce records go through match, plan, write
and record ``size`` at a time, pair by pair as a whole cycle takes them, each slice committed
before the next; then the HubSpot records no slice took care of, ``size`` at a time.

What is decided stays what a whole cycle decides. Identity looks at the whole change set:
the match-key and carried-id indexes are built once over everything read, the claims of
every slice are kept for the next, and one link book (which knows the pairs had no link at
the start, so an id it has not seen is unlinked) serves them all. A record's read stage is
observed in the slice that plans it, before its writes are recorded, so a stay never goes
back to what it was before the agent wrote. Each slice is write-ahead as a cycle is (intents
and pending creates committed before its writes; the intents are cleared only when the
cycle commits), so a crash in slice ten leaves slices one to nine linked, and the next cycle,
reading everything again, finds their links. A slice sends only the write calls it fills and
carries the part-filled rest to the next slice of its pair (``carry``), so going a slice at a
time costs no write call a whole cycle would not make.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.records import Record
from mapping.model import MappingFile, ObjectPair
from sync_agent import read, state, write, write_ahead
from sync_agent.associations import sync_associations
from sync_agent.carry import Carry
from sync_agent.claims import claim_unlinked_hubspot
from sync_agent.context import Run, owner_field
from sync_agent.creates import guard_creates
from sync_agent.match import match_pair, plan_newly_linked
from sync_agent.passes import flush, open_run, settle_created
from sync_agent.spool import DiskBook, KeySet, Spool
from sync_agent.stage_follows import follow_stages
from sync_agent.stages import StageBook
from sync_agent.tables import Link

SLICE = 5000  # records: bounds a first sync's memory; part-filled calls carry to the next
ENV = "STAGESYNC_SLICE_RECORDS"
log = logging.getLogger(__name__)


def slice_size(given: int | None = None) -> int:
    """Records a slice: ``given``, else the ``STAGESYNC_SLICE_RECORDS`` setting, else
    ``SLICE``. A setting that is not a whole number of at least 1 is named, and ignored."""
    if given is not None:
        return max(1, given)
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return SLICE
    if raw.isdigit() and int(raw) >= 1:
        return int(raw)
    log.warning("%s=%r is not a whole number of records (at least 1): slicing a first sync "
                "%d records at a time; set it to, say, 5000", ENV, raw[:40], SLICE)
    return SLICE


@contextmanager
def spooling(session: Session, mapping: MappingFile, dry_run: bool) -> Iterator[Spool | None]:
    """A spool for the cycle's reads when it is a first sync: a real run (a dry run commits
    nothing between slices), no pair with a link, no object of theirs read before. Removed
    when the cycle ends, however it ends."""
    objects = ({("salesforce", p.salesforce) for p in mapping.objects}
               | {("hubspot", p.hubspot) for p in mapping.objects})
    first = (not dry_run and bool(objects) and session.scalar(select(Link.id).where(
        Link.pair.in_([p.name for p in mapping.objects])).limit(1)) is None
        and all((m := state.get_watermark(session, *o)) is None or m.cursor == read.EPOCH
                for o in objects))
    spool = Spool() if first else None
    try:
        yield spool
    finally:
        if spool is not None:
            spool.close()


def sliceable(run: Run, size: int) -> bool:
    """Whether this cycle goes a slice at a time: its reads were spooled (a first sync) and
    one object read more than ``size`` records. Otherwise what was spooled is taken in hand
    as the change lists every other cycle has."""
    if run.everything is None:
        return False
    if max(len(records) for records in run.everything.values()) > size:
        return True
    run.changed.update({key: list(records) for key, records in run.everything.items()})
    run.everything = None
    return False


def sync_in_slices(cycle: Run, session: Session, run_id: int | None, size: int) -> None:
    """Match, plan, write and record the cycle's change set ``size`` records at a time."""
    mapping, everything = cycle.setup.mapping, cycle.everything
    assert everything is not None
    # What every slice must know of the ones before it (claims, links let go, records
    # observed or taken care of) is kept in the spool's file, not in memory: a row a record.
    spool = next(iter(everything.values())).spool
    cycle.claimed_hs, cycle.claimed_sf = (DiskBook(spool, _items(claims)) for claims in (
        cycle.claimed_hs, cycle.claimed_sf))
    cycle.links.assume_empty((p.name for p in mapping.objects), settled=DiskBook(spool))
    handled_hs: KeySet = DiskBook(spool)
    observed: KeySet = DiskBook(spool)
    # A pair's slices (then a HubSpot object's) carry their part-filled write calls on to
    # the next; the last sends what is left, before the next pair's slices begin.
    for pair in mapping.objects:
        carry = Carry(never=_lifted_in_place(mapping, pair))
        records = everything[("salesforce", pair.salesforce)]
        last = math.ceil(len(records) / size) - 1
        for index, page in enumerate(records.pages(size)):
            _slice(cycle, session, run_id, ("salesforce", pair.salesforce), page, pair,
                   handled_hs, observed, carry, last=index >= last)
        _drain(cycle, session, run_id, carry)
    for hs_object in sorted({p.hubspot for p in mapping.objects}):
        spooled = everything[("hubspot", hs_object)]
        rest = [i for i in spooled.ids() if (hs_object, i) not in handled_hs
                and (hs_object, i) not in cycle.claimed_hs]
        carry = Carry()
        for start in range(0, len(rest), size):
            ids = rest[start:start + size]
            held = spooled.get(ids)
            _slice(cycle, session, run_id, ("hubspot", hs_object),
                   [held[i] for i in ids if i in held], None, handled_hs, observed, carry,
                   last=start + size >= len(rest))
        _drain(cycle, session, run_id, carry)
        _observe_rest(cycle, session, spooled.ids(), hs_object, observed, size)


def _items(claims: object) -> list[tuple[tuple[str, ...], str | None]]:
    """The claims made before the slices began (a dict: nothing is claimed on disk yet)."""
    return list(claims.items()) if isinstance(claims, dict) else []


def _observe_rest(cycle: Run, session: Session, ids: list[str], hs_object: str,
                  observed: KeySet, size: int) -> None:
    """HubSpot records a slice took care of without planning them (a duplicate's gap): their
    stage is observed as read, as a whole cycle observes every record it reads."""
    assert cycle.everything is not None
    rest = [i for i in ids if ("hubspot", i) not in observed]
    for start in range(0, len(rest), size):
        stages = StageBook()
        held = cycle.everything[("hubspot", hs_object)].get(rest[start:start + size])
        _observe_once(cycle.setup.mapping, stages, "hubspot", list(held.values()), observed)
        stages.flush(session, cycle.now)
        session.commit()


def _slice(cycle: Run, session: Session, run_id: int | None, source: tuple[str, str],
           records: list[Record], pair: ObjectPair | None, handled_hs: KeySet,
           observed: KeySet, carry: Carry, last: bool) -> None:
    """One slice: ``pair``'s Salesforce records, or (``pair`` None) unclaimed HubSpot ones;
    the ``last`` of its pair sends every write it and the slices before it left."""
    run = _slice_run(cycle, session)
    run.changed = {key: [] for key in cycle.changed}
    run.changed[source] = records
    _observe_once(run.setup.mapping, run.stages, source[0], records, observed)
    writes: list[write.Write] = []
    if pair is not None:
        match_pair(run, session, pair, handled_hs, writes)
    else:
        claim_unlinked_hubspot(run, handled_hs, writes)
    _observe_once(run.setup.mapping, run.stages, "hubspot",
                  [hs for _, _, _, hs in run.newly_linked], observed)
    plan_newly_linked(run, writes)
    guard_creates(run, writes)
    write_ahead.put_intents(session, run.new_intents, run.prior_intents)
    write_ahead.put_pending_creates(session, run.new_creates)
    run.synced.flush()
    session.commit()
    _send(cycle, run, session, run_id, writes, carry, everything=last)


def _drain(cycle: Run, session: Session, run_id: int | None, carry: Carry) -> None:
    """Writes still carried once a pair's (or a HubSpot object's) slices are done (its last
    slice sends them all, so only if the change set held fewer records than it said): sent,
    as a slice of no records of its own, before the next pair's slices begin."""
    if not carry:
        return
    run = _slice_run(cycle, session)
    run.changed = {key: [] for key in cycle.changed}
    _send(cycle, run, session, run_id, [], carry, everything=True)
    assert not carry, "a drain leaves nothing carried"


def _send(cycle: Run, run: Run, session: Session, run_id: int | None,
          writes: list[write.Write], carry: Carry, everything: bool) -> None:
    """A slice's write passes and the stages after them, with the writes carried from the
    slice before; what fills no whole call is carried on (unless ``everything``)."""
    cycle.new_creates = run.new_creates  # a failure now drops the ones never sent
    cycle.sent_creates = run.sent_creates
    carry.join(run)  # the carried creates among them
    flush(run, session, writes, run_id, carry=carry, everything=everything)
    settle_created(run, session, run_id, carry=carry, everything=everything)
    with carry.arrivals(run):
        sync_associations(run, session, run_id)
    follow_stages(run, session, run_id)
    carry.keep_stages(run)
    run.stages.flush(session, run.now)
    # The creates sent are linked or refused; a carried one stays pending until it is sent.
    write_ahead.settle_pending_creates(session, run.held,
                                       only=set(run.new_creates) - set(carry.creates))
    run.synced.flush()
    session.commit()
    cycle.links.settle()  # committed: the links are let go, their ids kept
    cycle.held |= run.held
    cycle.new_creates, cycle.sent_creates = dict(carry.creates), set()
    cycle.report.plan.clear()  # the ledger has every write; the plan is for dry runs


def _lifted_in_place(mapping: MappingFile, pair: ObjectPair) -> set[tuple[str, str]]:
    """The HubSpot object of ``pair`` if a stage follow lifts ``pair``'s own records from its
    slices (an association of the pair to itself): the lift reads the stage back, so a write
    to it must have landed first and is never carried."""
    own = {a.name for a in mapping.associations if a.from_pair == pair.name}
    if any(f.association in own and f.pair == pair.name for f in mapping.stage_follows):
        return {("hubspot", pair.hubspot)}
    return set()


def _slice_run(cycle: Run, session: Session) -> Run:
    """A slice's run: books of its own for what it plans and records (released with it), the
    cycle's for what identity decides on (links, claims, indexes) and what it read."""
    run = open_run(cycle.setup, session, cycle.report, StageBook(), cycle.now)
    run.links = cycle.links
    run.everything, run.key_groups, run.carried = cycle.everything, cycle.key_groups, cycle.carried
    run.claimed_hs, run.claimed_sf = cycle.claimed_hs, cycle.claimed_sf
    run.marks, run.full_read, run.read_deletes = cycle.marks, cycle.full_read, cycle.read_deletes
    run.vanished, run.retrying = cycle.vanished, cycle.retrying
    run.prior_intents, run.prior_creates = cycle.prior_intents, cycle.prior_creates
    return run


def _observe_once(mapping: MappingFile, stages: StageBook, system: str, records: list[Record],
                  observed: KeySet) -> None:
    """Observe the read stage of records no slice has observed yet."""
    fresh = [r for r in records if (system, r.id) not in observed]
    observed.update((system, r.id) for r in fresh)
    owner = owner_field(mapping, system)
    for rec in fresh:
        stages.observe(mapping, system, rec.object, rec.id, rec.values, owner, rec.cursor)
