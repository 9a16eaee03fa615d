"""One sync cycle, wired from its stages: read, match, plan, write, record.

Reads go from each object's stored watermark to the cycle's start. Every record read ends in
exactly one place: in sync already, written (ledger), refused (dead letter and gap), or
reported (gap). The watermarks advance in the same transaction as the ledger, so a crash
before the commit re-reads everything; the intents of the cycle's writes are committed before
the writes, so re-planning recognises the writes that landed as the agent's own. A record
created in a cycle gets its back-references in a second write pass of the same cycle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy.orm import Session

from connectors.contract import Connector
from connectors.records import Record, WriteRecord, advance
from connectors.stopping import Stopping
from mapping.model import MappingFile
from sync_agent import (
    activity_tasks,
    changed_letters,
    contact_roles,
    failpoints,
    read,
    sla,
    sla_activity,
    slices,
    state,
    write,
    write_ahead,
)
from sync_agent.associations import sync_associations
from sync_agent.claims import claim_unlinked_hubspot
from sync_agent.context import (
    CycleReport,
    PlannedWrite,
    Run,
    Setup,
    calls_now,
    calls_since,
    connector,
    fields_of,
    object_of,
    owner_field,
    prepare,
    whole,
)
from sync_agent.creates import guard_creates
from sync_agent.delete_rules import apply_delete_rules
from sync_agent.deletes import follow_hubspot_merges, unlink_deleted
from sync_agent.match import match_pair, plan_newly_linked
from sync_agent.passes import flush, open_run, settle_created
from sync_agent.restores import relink_restored
from sync_agent.schema_cache import use_schema_cache
from sync_agent.spool import Spool, Spooled
from sync_agent.stage_follows import follow_stages
from sync_agent.stages import StageBook
from sync_agent.store import Store
from sync_agent.tables import DeadLetter

__all__ = ["CycleReport", "PlannedWrite", "apply_records", "describe_plan", "run_cycle"]


def run_cycle(store: Store, mapping: MappingFile, salesforce: Connector, hubspot: Connector,
              dry_run: bool = False, until: dt.datetime | None = None,
              refresh_schemas: bool = False, slice_records: int | None = None,
              started: dt.datetime | None = None) -> CycleReport:
    """One cycle; a first sync of more than ``slice_records`` records of an object (default:
    the ``STAGESYNC_SLICE_RECORDS`` setting, else 5,000) goes a slice at a time (``slices``).
    ``started``: when the cycle's work began, if before this call (a command's mapping check,
    sign-in and lock), so the run's recorded time is the time the cycle took."""
    size = slices.slice_size(slice_records)
    end = until or dt.datetime.now(dt.UTC)
    report = CycleReport()
    calls_before = calls_now(salesforce, hubspot)
    # describes and people lists: the connectors' caches decide (``refresh`` forces)
    use_schema_cache(store, (salesforce, hubspot), refresh=refresh_schemas)
    with store.session() as session, slices.spooling(session, mapping, dry_run) as spool:
        run_row = None if dry_run else state.start_run(session, "cycle", started)
        if run_row is not None:
            session.commit()  # the run is on record, whatever happens next
        run_id = run_row.id if run_row is not None else None
        run: Run | None = None
        try:
            setup = prepare(mapping, salesforce, hubspot, dry_run)  # a failure fails the run
            run = open_run(setup, session, report, StageBook(), end)
            run.prior_intents = write_ahead.load_intents(session)
            activity_read = _read(run, session, end, spool)
            sliced = slices.sliceable(run, size)  # else what was spooled is taken in hand
            if not sliced:  # a slice observes its own records' stages
                _observe(run, run.changed)
            failpoints.hit("cycle.read")
            _add_pending_sources(run)
            # refused records read changed: the cycle's write of each is its letter's retry
            letters = [] if dry_run else changed_letters.take(run, session)
            unlink_deleted(run, session)
            follow_hubspot_merges(run, session)
            apply_delete_rules(run, session, run_id)
            relink_restored(run, session)
            if sliced:
                slices.sync_in_slices(run, session, run_id, size)
            else:
                _whole(run, session, run_id)
            # once every link of the cycle (a first sync's slices too) is settled
            activity_tasks.write_activities(run, session, run_id, end)
            contact_roles.sync_contact_roles(run, session, run_id)
            if mapping.sla:
                _cold_leads(run, session, run_id, activity_read)
            changed_letters.settle(run, letters, end)
        except Exception as exc:
            # Stopped (SIGTERM) or failed, alike: the intents stay, so the next cycle
            # recognises what landed; creates never sent cannot have landed, so they go.
            session.rollback()
            if run is not None:
                write_ahead.drop_pending_creates(session, set(run.new_creates) - run.sent_creates)
            if run_row is not None:
                state.finish_run(session, run_row,
                                 "stopped" if isinstance(exc, Stopping) else "failed",
                                 {"read": dict(report.read)},
                                 calls_since(calls_before, salesforce, hubspot),
                                 error=str(exc)[:2000])
                session.commit()
            raise
        for system, obj in run.changed:
            source, records = connector(setup, system), whole(run, system, obj)
            new_mark = advance(run.marks[(system, obj)], records.stamps() if isinstance(
                records, Spooled) else records, source.lookback, end)
            if not dry_run:
                state.put_watermark(session, system, obj, new_mark)
        for obj, (mark, records, _) in run.side_reads.items():
            if not dry_run:
                state.put_watermark(session, "salesforce", obj, advance(
                    mark, records, salesforce.lookback, end))
        report.calls = calls_since(calls_before, salesforce, hubspot)
        if dry_run:
            session.rollback()
        else:
            assert run_row is not None
            state.finish_run(session, run_row, "ok", {
                "read": dict(report.read), "written": dict(report.written),
                "created": dict(report.created), "linked": report.linked,
                "failed": report.failed, "gaps": dict(report.gaps),
                "salesforce_api": list(getattr(salesforce, "api_usage", (None, None))),
                "hubspot_api": list(getattr(hubspot, "api_usage", (None, None)))},
                report.calls)
            write_ahead.clear_intents(session)
            write_ahead.settle_pending_creates(session, run.held)
            run.synced.flush()
            failpoints.hit("cycle.commit")
            session.commit()
    return report


def _whole(run: Run, session: Session, run_id: int | None) -> None:
    """Match, plan, write and record the whole change set at once."""
    mapping, dry_run = run.setup.mapping, run.setup.dry_run
    writes: list[write.Write] = []
    handled_hs: set[tuple[str, str]] = set()
    for pair in mapping.objects:
        match_pair(run, session, pair, handled_hs, writes)
    claim_unlinked_hubspot(run, handled_hs, writes)
    plan_newly_linked(run, writes)
    guard_creates(run, writes)
    writes = changed_letters.hold_back(run, writes, run.now)
    if not dry_run:
        # Write-ahead: links found by matching, settled pairs and the intents of the
        # writes below are committed before any vendor write.
        write_ahead.put_intents(session, run.new_intents, run.prior_intents)
        write_ahead.put_pending_creates(session, run.new_creates)
        run.synced.flush()
        session.commit()
    flush(run, session, writes, run_id)
    settle_created(run, session, run_id)
    sync_associations(run, session, run_id)
    follow_stages(run, session, run_id)
    run.stages.flush(session, run.now)


def _read(run: Run, session: Session, end: dt.datetime, spool: Spool | None) -> bool:
    """The read stage; returns whether the SLA's activity came with it."""
    setup, mapping = run.setup, run.setup.mapping
    activity = sla_activity.activity_reads(session, mapping, setup.sf, end)
    side = contact_roles.objects_read(mapping)
    reads = read.read_changes(session, {
        "salesforce": sorted({p.salesforce for p in mapping.objects} | side),
        "hubspot": sorted({p.hubspot for p in mapping.objects})},
        {"salesforce": setup.sf, "hubspot": setup.hs},
        lambda system, obj: fields_of(setup, system, obj), end,
        {f"{obj}Activity": soql for obj, (_, soql) in activity.items()}, spool)
    for obj, (since, _) in activity.items():  # the SLA's activity rode along
        sla_activity.store_activity_rows(session, setup.sf, obj, since,
                                reads.extra.get(f"{obj}Activity", []), end)
    for obj in sorted(side):  # read in the same Composite call, kept apart from the pairs'
        run.side_reads[obj] = contact_roles.take_read(reads, obj)
    run.changed, run.marks = reads.changed, reads.marks
    run.full_read, run.read_deletes = reads.full_read, reads.deleted
    run.everything = reads.spooled or None
    for system, obj in run.changed:
        run.report.read[f"{system}.{obj}"] += len(whole(run, system, obj))
    return bool(activity)


def _observe(run: Run, changed: dict[tuple[str, str], list[Record]]) -> None:
    """The read stage of every record, for the stage history."""
    mapping = run.setup.mapping
    for (system, obj), records in changed.items():
        owner = owner_field(mapping, system)
        for rec in records:
            run.stages.observe(mapping, system, obj, rec.id, rec.values, owner, rec.cursor)


def apply_records(session: Session, setup: Setup, report: CycleReport, stages: StageBook,
                  system: str, obj: str, records: list[Record], run_id: int | None,
                  retrying: dict[tuple[str, str], DeadLetter] | None = None,
                  after: Run | None = None) -> Run:
    """Sync given records of one object (a backfill page, letters to retry) as a cycle
    syncs changes: identity, creates, field rules, gaps; no watermark moves. Returns the
    page's run (its ``failed_sources`` say which records failed again); the pages of one
    job pass the one before as ``after``, so a record claimed by one is never claimed by
    another."""
    mapping = setup.mapping
    run = open_run(setup, session, report, stages, dt.datetime.now(dt.UTC))
    run.retrying = retrying or {}
    if after is not None:
        run.claimed_hs, run.claimed_sf = after.claimed_hs, after.claimed_sf
    run.changed = {(s, o): [] for s, objects in (
        ("salesforce", {p.salesforce for p in mapping.objects}),
        ("hubspot", {p.hubspot for p in mapping.objects})) for o in objects}
    run.changed[(system, obj)] = records
    run.report.read[f"{system}.{obj}"] += len(records)
    _observe(run, {(system, obj): records})
    writes: list[write.Write] = []
    handled_hs: set[tuple[str, str]] = set()
    for pair in mapping.objects:
        if object_of(pair, system) == obj:
            match_pair(run, session, pair, handled_hs, writes)
    claim_unlinked_hubspot(run, handled_hs, writes)
    plan_newly_linked(run, writes)
    writes = changed_letters.hold_back(run, writes, run.now)  # letters not due, unchanged
    if not setup.dry_run:  # write-ahead, as in a cycle: a killed page cannot duplicate
        write_ahead.put_pending_creates(session, run.new_creates)
        run.synced.flush()
        session.commit()
    flush(run, session, writes, run_id)
    settle_created(run, session, run_id)
    sync_associations(run, session, run_id)
    follow_stages(run, session, run_id)
    activity_tasks.write_waiting(run, session, run_id)  # engagements on contacts just linked
    run.stages.flush(session, run.now)
    write_ahead.settle_pending_creates(session, run.held, only=set(run.new_creates))
    return run


def _add_pending_sources(run: Run) -> None:
    """Sources of creates an earlier cycle planned and never settled (it died, or held
    them) are synced again even when they did not change, so a held create is decided."""
    for pair in run.setup.mapping.objects:
        for into, system in (("hubspot", "salesforce"), ("salesforce", "hubspot")):
            obj = object_of(pair, system)
            wanted = {source for (name, side, source) in run.prior_creates
                      if name == pair.name and side == into}
            records = whole(run, system, obj)
            have = (set(records.get(wanted)) if isinstance(records, Spooled)
                    else {r.id for r in records})
            missing = sorted(wanted - have)
            if missing:
                found = connector(run.setup, system).read_by_ids(
                    obj, missing, fields_of(run.setup, system, obj))
                if isinstance(records, Spooled):
                    records.extend(found)
                else:
                    run.changed[(system, obj)] += found


def _cold_leads(run: Run, session: Session, run_id: int | None, activity_read: bool) -> None:
    """SLA rules: find cold leads from the state store alone, keep their gaps, carry out the
    actions of new ones. Activity is read every ``activity_poll_minutes`` (with the changes
    when the connector can), and always before a lead is declared cold."""
    setup, mapping = run.setup, run.setup.mapping
    hs_contacts = whole(run, "hubspot", "contacts") if ("hubspot", "contacts") in run.changed \
        else []
    sla_activity.hubspot_activity(session, mapping, run.links, hs_contacts.pages()
                                  if isinstance(hs_contacts, Spooled) else [hs_contacts])
    if not activity_read and sla_activity.activity_due(session, mapping, setup.sf, run.now):
        sla_activity.read_activity(session, mapping, setup.sf, run.now)
        activity_read = True
    cold = sla.find_cold(session, mapping, run.now)
    if not activity_read and sla.new_cold(session, mapping, cold):
        sla_activity.read_activity(session, mapping, setup.sf, run.now)  # its activity, fresh
        cold = sla.find_cold(session, mapping, run.now)
    for lead in cold.values():
        lead.owner_name = setup.directory.name("salesforce", lead.owner)
    outcome = sla.reconcile(session, mapping, cold)
    run.report.gaps[sla.KIND] += len(outcome.opened)
    actions, skipped = sla.action_writes(mapping, outcome, setup.directory, run.now.date())
    sla.note_not_done(session, skipped)
    pair_of = {p.name: p for p in mapping.objects}
    writes: list[write.Write] = []
    for action in actions:
        run.report.plan.append(PlannedWrite(action.lead.rule.pair, action.system,
                                            action.object, action.record_id, action.changes,
                                            create=action.record_id is None))
        writes.append(write.Write(
            pair_of[action.lead.rule.pair], action.system, action.object,
            WriteRecord(id=action.record_id, values=action.values), action.lead.sf_id,
            action.changes, closes=(), action=action))
    landed: list[tuple[sla.ActionWrite, str | None]] = []  # writes that succeeded
    flush(run, session, writes, run_id, landed)
    sla.record_done(session, landed, run.now)
    run.stages.flush(session, run.now)


def describe_identity(report: CycleReport) -> Iterable[str]:
    """The dry run's links and creates, one line each, before any field: what a first sync
    would pair up (and by which key) and what it would create, so duplicates show first."""
    for link in report.links:
        why = f"match key {link.key}" if link.key else "it carries the Salesforce id"
        yield (f"{link.pair}: link Salesforce {link.sf_object} {link.sf_id} <-> HubSpot "
               f"{link.hs_object} {link.hs_id} ({why})")
    for planned in report.plan:
        if planned.create:
            source = "HubSpot" if planned.system == "salesforce" else "Salesforce"
            yield (f"{planned.pair}: create {planned.system} {planned.object} from {source} "
                   f"record {planned.source_id}")


def describe_plan(report: CycleReport) -> Iterable[str]:
    """The dry run's plan, one line per field: pair, system, record, field, old -> new, rule."""
    for planned in report.plan:
        target = planned.record_id or "(new record)"
        for change in planned.changes:
            if change.side != planned.system:
                continue
            yield (f"{planned.pair}: {planned.system} {planned.object} {target} "
                   f"{change.field}: {change.old!r} -> {change.new!r} "
                   f"[{change.rule}: {change.reason}]")
