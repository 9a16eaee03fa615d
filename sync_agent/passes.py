"""The write passes of a cycle, a backfill page or a slice of a first sync: the write stage
then the record stage a batch at a time, and the second pass that gives the records created
in the first their back-references. Shared by ``cycle`` and ``slices``, which wire them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from connectors.records import Record
from sync_agent import failpoints, record, sla, write, write_ahead
from sync_agent.carry import Carry
from sync_agent.conflicts import decide_conflicts
from sync_agent.context import CycleReport, Run, Setup, connector, fields_of, object_of
from sync_agent.gap_book import GapBook
from sync_agent.link_book import LinkBook
from sync_agent.planned_writes import plan_linked
from sync_agent.stages import StageBook
from sync_agent.synced_book import SyncedBook


def open_run(setup: Setup, session: Session, report: CycleReport, stages: StageBook,
             now: dt.datetime) -> Run:
    """A cycle's (or a backfill page's) books on ``session``."""
    return Run(setup, LinkBook(session), GapBook(session), SyncedBook(session), stages, report,
               now, prior_creates=write_ahead.load_pending_creates(session))


def flush(run: Run, session: Session, writes: list[write.Write], run_id: int | None,
          landed: list[tuple[sla.ActionWrite, str | None]] | None = None,
          carry: Carry | None = None, everything: bool = False) -> None:
    """The write stage then the record stage, a batch at a time; then remember what each
    written pair now holds. With a ``carry`` (a first sync's slices), only whole calls go
    out, with the writes carried from before; the rest waits for the next flush (all of it
    goes, ``everything``)."""
    if run.conflicted:  # a pass that planned pairs without deciding them: a bug, not data
        raise RuntimeError(f"{len(run.conflicted)} conflicted pairs were never decided")
    rounds = [writes] if carry is None else carry.take(run, writes, everything)
    for (system, obj), batch in (b for r in rounds for b in write.batches(r)):
        if run.setup.dry_run:
            continue
        run.sent_creates.update(w.create_key for w in batch if w.record.id is None
                                and w.create_key in run.new_creates)
        results = write.send(connector(run.setup, system), obj, batch)
        failpoints.hit(f"cycle.write.{system}.{obj}")
        record.record_batch(run, session, system, obj, batch, results, run_id,
                            landed if landed is not None else [])
    if carry is not None:
        carry.hold(run)  # pairs with a write still carried are remembered once it is sent
    record.remember_settled(run)


def settle_created(run: Run, session: Session, run_id: int | None,
                   carry: Carry | None = None, everything: bool = False) -> None:
    """A second write pass for the pairs this cycle created, planned as any linked pair on
    what both records hold now: the source as read, the new record as its system filled it
    in (HubSpot's answer to the create says; a new Salesforce record is read by id, one
    query per 200). So the back-references (the Salesforce id in HubSpot, a status the new
    record implies) are written in this cycle and the next has nothing to do. Its intents
    are committed before its writes, as the first pass's are. With a ``carry``, its writes
    go out as the first pass's do (``flush``)."""
    created, run.created_links = run.created_links, []
    if run.setup.dry_run or not created:
        return
    unread: dict[tuple[str, str], set[str]] = {}
    for c in created:
        if c.values is None:
            unread.setdefault((c.into, object_of(c.pair, c.into)), set()).add(
                c.link.sf_id if c.into == "salesforce" else c.link.hs_id)
    fresh: dict[tuple[str, str, str], Record] = {}
    for (system, obj), ids in sorted(unread.items()):
        for rec in connector(run.setup, system).read_by_ids(
                obj, sorted(ids), fields_of(run.setup, system, obj)):
            fresh[(system, obj, rec.id)] = rec
    writes: list[write.Write] = []
    in_sync, run.new_intents = run.report.in_sync, {}
    for c in created:
        obj = object_of(c.pair, c.into)
        new_id = c.link.sf_id if c.into == "salesforce" else c.link.hs_id
        made = (fresh.get((c.into, obj, new_id)) if c.values is None else Record(
            system=c.into, object=obj, id=new_id, cursor=run.now, values=c.values))
        if made is None:
            continue  # gone already: the next cycle's deletes pass sees it
        sf_record, hs_record = (made, c.source) if c.into == "salesforce" else (c.source, made)
        run.remembered.discard(id(c.link))  # remember what both hold after this pass
        plan_linked(run, c.pair, c.link, sf_record, hs_record, writes)
    decide_conflicts(run, writes)
    run.report.in_sync = in_sync  # a new pair is counted as created, not as in sync
    if writes:
        write_ahead.put_intents(session, run.new_intents)
        run.synced.flush()
        session.commit()
        flush(run, session, writes, run_id, carry=carry, everything=everything)


