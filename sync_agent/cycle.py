"""One sync cycle: read what changed on both sides, pair records up, plan, write, remember.

Reads go from each object's stored watermark to the cycle's start. Every record read ends in
exactly one place: in sync already, written (ledger), refused (dead letter and gap), or
reported (gap). The watermarks advance in the same transaction as the ledger, so a crash
before the commit re-reads everything; the intents of the cycle's writes are committed before
the writes, so re-planning recognises the writes that landed as the agent's own.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.orm import Session

from connectors.contract import Connector
from connectors.records import (
    DeletedRecord,
    DeletedRecords,
    Record,
    Watermark,
    WriteError,
    WriteRecord,
    WriteResult,
    advance,
)
from mapping.model import FieldRule, MappingFile, ObjectPair, Rule
from mapping.rules import FieldChange, PairPlanner, Plan, Side, apply, synced
from mapping.transforms import Unmapped
from sync_agent import failpoints, merges, read, sla, state
from sync_agent.gap_book import GapBook
from sync_agent.identity import group_by_key, match_key, passes
from sync_agent.link_book import LinkBook
from sync_agent.owners import OwnerDirectory, deal_record_types, owner_rule
from sync_agent.schema_cache import use_schema_cache
from sync_agent.stages import (
    StageBook,
    StageField,
    drift,
    hold_backward,
    maps_on,
    recycles,
    stage_fields,
)
from sync_agent.store import Store
from sync_agent.synced_book import SyncedBook
from sync_agent.tables import DeadLetter

EPOCH = read.EPOCH
CreateKey = tuple[str, str, str]  # (pair, side created in, source record id)
CREATED = {"salesforce": "CreatedDate", "hubspot": "createdate"}
DUPLICATES_DETECTED = "DUPLICATES_DETECTED"  # Salesforce: a duplicate rule refused the save


@runtime_checkable
class FindsByProperty(Protocol):
    """A connector that can look records up by any property (HubSpot search)."""

    def find_by(self, object_type: str, prop: str, values: Iterable[str],
                fields: Iterable[str] | None = None) -> list[Record]: ...


@runtime_checkable
class ReadsArchive(Protocol):
    """A connector whose deletes are an archive listed only in id order (HubSpot)."""

    archive_pages: int

    def read_archived(self, object_type: str, after: str | None, pages: int
                      ) -> tuple[list[DeletedRecord], str | None]: ...


@dataclass
class PlannedWrite:
    pair: str
    system: str
    object: str
    record_id: str | None
    changes: list[FieldChange]
    create: bool = False


@dataclass
class CycleReport:
    read: Counter[str] = field(default_factory=Counter)
    written: Counter[str] = field(default_factory=Counter)
    created: Counter[str] = field(default_factory=Counter)
    linked: int = 0
    converted: int = 0
    merged: int = 0
    unlinked: int = 0
    in_sync: int = 0
    failed: int = 0
    gaps: Counter[str] = field(default_factory=Counter)
    held: int = 0  # creates held while a crashed cycle's create may still be in flight
    plan: list[PlannedWrite] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)


@dataclass
class _Settling:
    """What one linked pair holds before and after its planned writes."""

    link: Any
    planner: PairPlanner
    sf_id: str
    hs_id: str
    sf_before: dict[str, Any]
    hs_before: dict[str, Any]
    sf_after: dict[str, Any]
    hs_after: dict[str, Any]
    stored: dict[str, tuple[Any, Any]]


@dataclass
class _Pending:
    """Writes for one (system, object), with what to do once each succeeds."""

    records: list[WriteRecord] = field(default_factory=list)
    after: list[Any] = field(default_factory=list)


class Cycle:
    def __init__(self, store: Store, mapping: MappingFile, salesforce: Connector,
                 hubspot: Connector, dry_run: bool = False, refresh_schemas: bool = False
                 ) -> None:
        self.store = store
        self.mapping = mapping
        self.sf = salesforce
        self.hs = hubspot
        if hasattr(salesforce, "duplicate_rules"):  # the mapping decides, not the connector
            salesforce.duplicate_rules = mapping.salesforce.duplicate_rules
        self.dry_run = dry_run
        self.refresh_schemas = refresh_schemas
        self.full_read: set[tuple[str, str]] = set()  # objects read from the beginning
        self.links: LinkBook  # the cycle's links and open gaps, set once its session opens
        self.gaps: GapBook
        self.read_deletes: dict[tuple[str, str], DeletedRecords] = {}
        self.activity_read = False  # the SLA's activity came with this cycle's reads
        self.synced: SyncedBook
        self.key_groups: dict[tuple[str, str, str, int, int], dict[str, list[Record]]] = {}
        self.changed: dict[tuple[str, str], list[Record]] = {}
        self.report = CycleReport()
        self.planners: dict[str, PairPlanner] = {}
        self.directory = OwnerDirectory({}, {})
        self.stages = StageBook()
        self.stage_fields: dict[str, list[StageField]] = {
            p.name: stage_fields(mapping, p) for p in mapping.objects}
        self.now = dt.datetime.now(dt.UTC)
        self.remembered: set[int] = set()  # links remembered this pass, by identity
        self.failed_sources: set[tuple[str, str]] = set()
        self.carried: dict[tuple[str, str], dict[str, list[Record]]] = {}
        self.forward_only: dict[str, set[str]] = {}
        self.prior_intents: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.new_intents: dict[tuple[str, str, str], dict[str, tuple[Any, Any]]] = {}
        self.retrying: dict[tuple[str, str], DeadLetter] = {}  # (pair, source id) -> letter
        # Creates: the ones an earlier (maybe crashed) cycle planned, this cycle's, held ones.
        self.prior_creates: dict[CreateKey, dt.datetime] = {}
        self.new_creates: dict[CreateKey, dt.datetime] = {}
        self.held: set[CreateKey] = set()
        self.sent_creates: set[CreateKey] = set()  # creates whose request has gone out
        self.newly_linked: list[tuple[ObjectPair, Any, Record, Record,
                                      dict[tuple[str, str], _Pending]]] = []
        # Links made by a create: (pair, link, side created in, the source record, what the
        # write's answer says the new record holds, if it says).
        # Pairs whose writes succeeded, remembered once the whole flush is known: a side whose
        # write failed keeps its values as they were (else the next cycle would take the
        # planned value for a change there and write the old one back: a lost update).
        self.to_remember: dict[int, _Settling] = {}  # by the link's identity
        self.unwritten: set[tuple[str, str]] = set()  # (system, record id) not written
        self.created_links: list[tuple[ObjectPair, Any, Side, Record,
                                       dict[str, Any] | None]] = []
        # Every link this cycle makes or write it plans, by record, checked before any
        # write: one record is never claimed by two (the plan must be recordable).
        self.claimed_hs: dict[tuple[str, str], str] = {}  # (hs object, hs id) -> claimant
        self.claimed_sf: dict[tuple[str, str], str] = {}  # (pair, sf id) -> claimant
        self.marks: dict[tuple[str, str], Watermark] = {}
        # Ids found deleted, purged or merged away this cycle: a stale search copy of one is
        # never synced, linked or used to create.
        self.vanished: dict[tuple[str, str], set[str]] = {}
        # (pair, side created in) -> the sources of its creates, and whether each is new
        # since the last sync (the change set explains it) or an old record.
        self.create_sources: dict[tuple[str, Side], list[tuple[str, bool]]] = {}

    def prepare(self) -> None:
        """The owner map comes from both systems' user lists, so the planners are built per
        cycle (the lists are cached by the connectors between schema refreshes)."""
        self.directory = OwnerDirectory.load(self.sf, self.hs)
        for pair in self.mapping.objects:
            extra: list[FieldRule] = []
            rule = owner_rule(self.mapping, pair, self.directory, self.sf, self.hs)
            if rule is not None:
                extra.append(rule)
            self.planners[pair.name] = PairPlanner(self.mapping, pair.name, extra,
                                                   deal_record_types(self.mapping, pair, self.sf))

    def _owner_field(self, system: str) -> str:
        owners = self.mapping.owners
        return owners.salesforce_field if system == "salesforce" else owners.hubspot_property

    def _forward_only(self, pair: ObjectPair) -> set[str]:
        """HubSpot fields that only move forward (lifecycle stage), once per object a cycle."""
        if pair.hubspot not in self.forward_only:
            self.forward_only[pair.hubspot] = {
                name for name, f in self.hs.describe(pair.hubspot).fields.items()
                if f.forward_only}
        return self.forward_only[pair.hubspot]

    def calls_since(self, before: Counter[str]) -> dict[str, int]:
        """API calls per endpoint made by both connectors since ``before`` was taken."""
        return dict(Counter(self.sf.calls) + Counter(self.hs.calls) - before)

    # -- fields each object needs ------------------------------------------------------------
    def fields_of(self, system: str, obj: str) -> list[str]:
        """The fields the engine reads of ``obj``: every mapped one, keys, stages, owner."""
        names: list[str] = []
        for pair in self.mapping.objects:
            if (pair.salesforce if system == "salesforce" else pair.hubspot) != obj:
                continue
            for f in self.planners[pair.name].fields:
                names.append(f.sf if system == "salesforce" else f.hs)
            if pair.match is not None:
                names.append(pair.match.salesforce if system == "salesforce"
                             else pair.match.hubspot)
            if pair.conversion is not None and system == "salesforce":
                names += [pair.conversion.converted_field, pair.conversion.contact_field]
        if names:
            names += [field for _, _, field in maps_on(self.mapping, system, obj)]
            names.append(CREATED[system])  # the create guard tells new records from old
            if system == "hubspot" and merges.MERGED in self.hs.describe(obj).fields:
                names.append(merges.MERGED)  # merges are followed by it
        names = [n for n in dict.fromkeys(names) if n != "Id"]
        return names

    # -- the cycle -------------------------------------------------------------------------
    def run(self, until: dt.datetime | None = None) -> CycleReport:
        end = until or dt.datetime.now(dt.UTC)
        self.now = end
        calls_before = Counter(self.sf.calls) + Counter(self.hs.calls)
        # describes and people lists: the connectors' caches decide (``refresh`` forces)
        use_schema_cache(self.store, (self.sf, self.hs), refresh=self.refresh_schemas)
        with self.store.session() as session:
            run = None if self.dry_run else state.start_run(session, "cycle")
            if run is not None:
                session.commit()  # the run is on record, whatever happens next
            try:
                self.prepare()  # owners and schemas: a failure here is a failed run too
                self.links, self.gaps = LinkBook(session), GapBook(session)
                self.synced = SyncedBook(session)
                self.prior_intents = state.load_intents(session)
                changed: dict[tuple[str, str], list[Record]] = {}
                marks: dict[tuple[str, str], Watermark] = {}
                activity = sla.activity_reads(session, self.mapping, self.sf, end)
                reads = read.read_changes(session, {
                    "salesforce": sorted({p.salesforce for p in self.mapping.objects}),
                    "hubspot": sorted({p.hubspot for p in self.mapping.objects})},
                    {"salesforce": self.sf, "hubspot": self.hs}, self.fields_of, end,
                    {f"{obj}Activity": soql for obj, (_, soql) in activity.items()})
                for obj, (since, _) in activity.items():  # the SLA's activity rode along
                    sla.store_activity_rows(session, self.sf, obj, since,
                                            reads.extra.get(f"{obj}Activity", []), end)
                self.activity_read = bool(activity)
                changed, marks = reads.changed, reads.marks
                self.full_read, self.read_deletes = reads.full_read, reads.deleted
                for (system, obj), records in changed.items():
                    self.report.read[f"{system}.{obj}"] += len(records)
                    for record in records:
                        self.stages.observe(self.mapping, system, obj, record.id, record.values,
                                            self._owner_field(system), record.cursor)
                failpoints.hit("cycle.read")
                self.marks = marks
                self.prior_creates = state.load_pending_creates(session)
                self._add_pending_sources(changed)
                self._deletes(session, marks)
                self._follow_hubspot_merges(session, changed)
                self.changed = changed
                pending: dict[tuple[str, str], _Pending] = {}
                handled_hs: set[tuple[str, str]] = set()
                for pair in self.mapping.objects:
                    self._pair(session, pair, changed, pending, handled_hs)
                self._unlinked_hubspot(session, changed, pending, handled_hs)
                self._plan_newly_linked(session)
                self._guard_creates(session, pending)
                if not self.dry_run:
                    # Write-ahead: links found by matching, settled pairs and the intents of the
                    # writes below are committed before any vendor write.
                    state.put_intents(session, self.new_intents, self.prior_intents)
                    state.put_pending_creates(session, self.new_creates)
                    self.synced.flush()
                    session.commit()
                self._flush(session, pending, run.id if run else None)
                self._settle_created(session, run.id if run else None)
                self.stages.flush(session, self.now)
                if self.mapping.sla:
                    self._cold_leads(session, run.id if run else None)
            except Exception as exc:
                session.rollback()  # the intents stay: the next cycle recognises what landed
                # Creates this cycle never sent cannot have landed: no need to hold them.
                state.drop_pending_creates(session, set(self.new_creates) - self.sent_creates)
                if run is not None:
                    state.finish_run(session, run, "failed", {"read": dict(self.report.read)},
                                     self.calls_since(calls_before), error=str(exc)[:2000])
                    session.commit()
                raise
            for (system, obj), records in changed.items():
                connector = self.sf if system == "salesforce" else self.hs
                new_mark = advance(marks[(system, obj)], records, connector.lookback, end)
                if not self.dry_run:
                    state.put_watermark(session, system, obj, new_mark)
            self.report.calls = self.calls_since(calls_before)
            if self.dry_run:
                session.rollback()
            else:
                assert run is not None
                state.finish_run(session, run, "ok", {
                    "read": dict(self.report.read), "written": dict(self.report.written),
                    "created": dict(self.report.created), "linked": self.report.linked,
                    "failed": self.report.failed, "gaps": dict(self.report.gaps),
                    "salesforce_api": list(getattr(self.sf, "api_usage", (None, None)))},
                    self.report.calls)
                state.clear_intents(session)
                state.settle_pending_creates(session, self.held)
                self.synced.flush()
                failpoints.hit("cycle.commit")
                session.commit()
        return self.report

    def apply_records(self, session: Session, system: str, obj: str, records: list[Record],
                      run_id: int | None) -> None:
        """Sync given records of one object (a backfill page) as a cycle syncs changes:
        identity, creates, field rules, gaps; no watermark moves. Call ``prepare()`` first."""
        self.changed = {(s, o): [] for s, objects in (
            ("salesforce", {p.salesforce for p in self.mapping.objects}),
            ("hubspot", {p.hubspot for p in self.mapping.objects})) for o in objects}
        self.changed[(system, obj)] = records
        self.links, self.gaps = LinkBook(session), GapBook(session)
        self.remembered = set()
        self.synced = SyncedBook(session)
        self.prior_creates = state.load_pending_creates(session)
        self.new_creates, self.held = {}, set()
        for record in records:
            self.stages.observe(self.mapping, system, obj, record.id, record.values,
                                self._owner_field(system), record.cursor)
        self.report.read[f"{system}.{obj}"] += len(records)
        pending: dict[tuple[str, str], _Pending] = {}
        handled_hs: set[tuple[str, str]] = set()
        for pair in self.mapping.objects:
            if (pair.salesforce if system == "salesforce" else pair.hubspot) == obj:
                self._pair(session, pair, self.changed, pending, handled_hs)
        self._unlinked_hubspot(session, self.changed, pending, handled_hs)
        self._plan_newly_linked(session)
        if not self.dry_run:  # write-ahead, as in a cycle: a killed page cannot duplicate
            state.put_pending_creates(session, self.new_creates)
            self.synced.flush()
            session.commit()
        self._flush(session, pending, run_id)
        self._settle_created(session, run_id)
        self.stages.flush(session, self.now)
        state.settle_pending_creates(session, self.held, only=set(self.new_creates))

    def _add_pending_sources(self, changed: dict[tuple[str, str], list[Record]]) -> None:
        """Sources of creates an earlier cycle planned and never settled (it died, or held
        them) are synced again even when they did not change, so a held create is decided."""
        for pair in self.mapping.objects:
            for into, system, obj in (("hubspot", "salesforce", pair.salesforce),
                                      ("salesforce", "hubspot", pair.hubspot)):
                have = {r.id for r in changed[(system, obj)]}
                missing = sorted({source for (name, side, source) in self.prior_creates
                                  if name == pair.name and side == into and source not in have})
                if missing:
                    connector = self.sf if system == "salesforce" else self.hs
                    changed[(system, obj)] += connector.read_by_ids(
                        obj, missing, self.fields_of(system, obj))

    # -- deletes and merges ----------------------------------------------------------------
    def _deletes(self, session: Session, marks: dict[tuple[str, str], Watermark]) -> None:
        """Merged-away Salesforce records hand their link to the survivor; a record deleted
        (or archived) on one side drops its link and leaves a gap for the other side's record.
        Past Salesforce's 15 days of deletes, the full id lists are compared instead. Only the
        links of records found gone are looked up (a page of ids a query), never every link."""
        for (system, obj), mark in marks.items():
            pairs = [p.name for p in self.mapping.objects
                     if (p.salesforce if system == "salesforce" else p.hubspot) == obj]
            if mark.cursor == EPOCH:
                # never read before, so nothing known can have gone: this full read counts
                # as the full id comparison
                merges.done(session, system, obj, merges.ID_CHECK, self.now)
                continue
            connector = self.sf if system == "salesforce" else self.hs
            since = mark.cursor - connector.lookback
            answer = self._read_deleted(session, connector, obj, since)
            gone: dict[str, str | None] = {d.id: d.merged_into for d in answer.records}
            state.end_visits(session, system, list(gone), self.now)
            interval = getattr(connector, "full_id_interval", None)
            scheduled = interval is not None and merges.is_due(
                session, system, obj, merges.ID_CHECK, interval, self.now)
            if not answer.complete or scheduled:
                # Deletes that leave no trace (a purge, an emptied recycle bin, a HubSpot
                # merge) show only here.
                links = [link for name in pairs for link in self.links.all_of(name)]
                live = set(connector.list_ids(obj)) if links else set()
                vanished = [rid for link in links if (rid := (
                    link.sf_id if system == "salesforce" else link.hs_id)) not in live
                    and rid not in gone]
                if system == "hubspot" and vanished:
                    vanished = self._vanished_merges(session, obj, vanished)
                for record_id in vanished:
                    gone.setdefault(record_id, None)
            if scheduled:
                merges.done(session, system, obj, merges.ID_CHECK, self.now)
            self.vanished.setdefault((system, obj), set()).update(gone)
            if not gone:
                continue
            side = "sf_ids" if system == "salesforce" else "hs_ids"
            self.links.load(pairs, **{side: list(gone)})
            for name in pairs:
                for record_id in sorted(gone):
                    link = (self.links.find(name, sf_id=record_id) if system == "salesforce"
                            else self.links.find(name, hs_id=record_id))
                    if link is not None:
                        self._unlink_gone(link, system, record_id, gone[record_id])

    def _unlink_gone(self, link: Any, system: str, record_id: str, survivor: str | None
                     ) -> None:
        """A linked record was deleted or merged away: a Salesforce merge survivor takes the
        link over; otherwise the link goes and the other side's record is a gap."""
        if survivor and system == "salesforce" and self.links.find(
                link.pair, sf_id=survivor) is None:
            self.links.move(link, sf_id=survivor)
            self.report.merged += 1
            return
        other = link.hs_id if system == "salesforce" else link.sf_id
        kind = "missing_in_salesforce" if system == "salesforce" else "missing_in_hubspot"
        self._gap(kind, link.pair, other, {
            "reason": f"its {system} counterpart {record_id} was "
            f"{'merged into ' + survivor if survivor else 'deleted'}",
            "deleted_counterpart": True})
        self.links.delete(link)
        self.report.unlinked += 1

    def _read_deleted(self, session: Session, connector: Connector, obj: str,
                      since: dt.datetime) -> DeletedRecords:
        """Deletes since ``since``; HubSpot's archive, listed only in id order, a slice every
        ``archive_interval`` from where the last slice stopped (every archived record in the
        slice counts: only linked ones matter, and those are unlinked the first time they are
        seen)."""
        if not isinstance(connector, ReadsArchive):
            system = "salesforce" if connector is self.sf else "hubspot"
            came = self.read_deletes.get((system, obj))  # read with the changes: no call
            return came if came is not None else connector.read_deleted(obj, since)
        found = merges.archive_slice(
            session, obj, lambda after: connector.read_archived(obj, after,
                                                                connector.archive_pages),
            getattr(connector, "archive_interval", dt.timedelta(0)), self.now)
        return DeletedRecords(records=found)

    def _follow_hubspot_merges(self, session: Session,
                               changed: dict[tuple[str, str], list[Record]]) -> None:
        """A HubSpot record this cycle read that lists merged ids takes over their links.
        Records found gone this cycle are dropped from the change set first (search serves
        copies of records deleted, purged or merged away seconds ago)."""
        for key, ids in self.vanished.items():
            if key in changed and ids:
                changed[key] = [r for r in changed[key] if r.id not in ids]
        for hs_object in sorted({p.hubspot for p in self.mapping.objects}):
            records = changed.get(("hubspot", hs_object), [])
            index = merges.survivors(records)
            if index:
                self._move_to_survivors(session, hs_object, index)
                # search may still serve a stale copy of a merged-away record: never use it
                changed[("hubspot", hs_object)] = [r for r in records if r.id not in index]

    def _vanished_merges(self, session: Session, obj: str, vanished: list[str]) -> list[str]:
        """Linked HubSpot ids gone from the full list: those a read by id answers for with
        another record were merged into it (their links follow); the rest are returned."""
        wanted = set(vanished)
        found = self.hs.read_by_ids(obj, vanished, self.fields_of("hubspot", obj))
        index = {old: r for old, r in merges.survivors(found).items() if old in wanted}
        self._move_to_survivors(session, obj, index)
        return [v for v in vanished if v not in index]

    def _follow_read_merges(self, session: Session, pair: ObjectPair,
                            linked: dict[int, tuple[str, str]], fresh: list[Record]) -> None:
        """Linked HubSpot ids that a read by id answered for with another record (a merge
        the change read has not shown yet): the links follow; ``linked`` is updated."""
        returned = {r.id for r in fresh}
        missing = {hs_id for _, hs_id in linked.values() if hs_id not in returned}
        if not missing:
            return
        index = {old: r for old, r in merges.survivors(fresh).items() if old in missing}
        if not index:
            return
        self._move_to_survivors(session, pair.hubspot, index)
        for link_id, (sf_id, hs_id) in list(linked.items()):
            if hs_id in index:
                link = self.links.find(pair.name, sf_id=sf_id)
                if link is None:
                    del linked[link_id]  # a gap says why
                else:
                    linked[link_id] = (sf_id, link.hs_id)

    def _move_to_survivors(self, session: Session, hs_object: str,
                           index: dict[str, Record]) -> None:
        """Links of merged-away HubSpot ids move to the record they were merged into. When
        that record is linked already, or several linked records were merged into it and
        the Salesforce id it carries does not say which link it keeps, the others become
        gaps for a person (and their Salesforce records are never used to create another)."""
        pairs = [p for p in self.mapping.objects if p.hubspot == hs_object]
        merged_away: list[str] = []
        for pair in pairs:
            claims: dict[str, list[Any]] = {}
            for old_id in sorted(index):
                link = self.links.find(pair.name, hs_id=old_id)
                if link is not None:
                    claims.setdefault(index[old_id].id, []).append(link)
            for survivor_id, links in claims.items():
                record = next(r for r in index.values() if r.id == survivor_id)
                taken = any(self.links.find(p.name, hs_id=survivor_id) for p in pairs)
                keep: Any = None
                if not taken and len(links) == 1:
                    keep = links[0]
                elif not taken:
                    prop = self._carried_field(pair)
                    carried = str(record.values.get(prop) or "") if prop else ""
                    keep = next((held for held in links if held.sf_id == carried), None)
                for held in links:
                    merged_away.append(held.hs_id)
                    if held is keep:
                        self.links.move(held, hs_id=survivor_id)
                        self.report.merged += 1
                        continue
                    why = ("which is linked to another record" if taken else
                           "together with other linked records")
                    self._gap("missing_in_hubspot", pair.name, held.sf_id, {
                        "reason": f"its HubSpot counterpart {held.hs_id} was merged into "
                        f"{survivor_id}, {why}; a person decides which record it belongs "
                        "with", "hubspot_id": survivor_id, "deleted_counterpart": True})
                    self.links.delete(held)
                    self.report.unlinked += 1
        state.end_visits(session, "hubspot", merged_away, self.now)

    # -- one pair --------------------------------------------------------------------------
    def _pair(self, session: Session, pair: ObjectPair,
              changed: dict[tuple[str, str], list[Record]],
              pending: dict[tuple[str, str], _Pending],
              handled_hs: set[tuple[str, str]]) -> None:
        sf_changed = {r.id: r for r in changed[("salesforce", pair.salesforce)]}
        if pair.conversion is not None:
            sf_changed = self._converted(session, pair, sf_changed)
        hs_changed = {r.id: r for r in changed[("hubspot", pair.hubspot)]}
        session.flush()  # links made for an earlier pair get their ids (``linked`` is by id)
        self.links.load([pair.name], sf_ids=sf_changed)
        self.links.load([p.name for p in self.mapping.objects if p.hubspot == pair.hubspot],
                        hs_ids=hs_changed)
        linked: dict[int, tuple[str, str]] = {}
        unlinked_sf: list[Record] = []
        for record in sf_changed.values():
            link = self.links.find(pair.name, sf_id=record.id)
            if link is None:
                unlinked_sf.append(record)
            else:
                linked[link.id] = (link.sf_id, link.hs_id)
        for record in hs_changed.values():
            link = self.links.find(pair.name, hs_id=record.id)
            if link is not None:
                linked[link.id] = (link.sf_id, link.hs_id)
                handled_hs.add((pair.hubspot, record.id))
        self._link_or_create(session, pair, unlinked_sf, pending, handled_hs)
        self._sync_linked(session, pair, linked, sf_changed, hs_changed, pending)

    def _converted(self, session: Session, pair: ObjectPair, records: dict[str, Record]
                   ) -> dict[str, Record]:
        """Converted Leads: the link moves to the new Contact (in the conversion's pair), and
        the Lead, now read-only in Salesforce, is no longer synced."""
        conversion = pair.conversion
        assert conversion is not None
        target = next((p for p in self.mapping.objects if p.name == conversion.to_pair), None)
        if target is None:  # validation refuses this; a hand-built mapping might not
            return records
        kept: dict[str, Record] = {}
        self.links.load([target.name], sf_ids=[
            str(r.values[conversion.contact_field]) for r in records.values()
            if r.values.get(conversion.contact_field)])
        for record in records.values():
            contact_id = record.values.get(conversion.contact_field)
            if not record.values.get(conversion.converted_field) or not contact_id:
                kept[record.id] = record
                continue
            link = self.links.find(pair.name, sf_id=record.id)
            if link is not None and self.links.find(target.name,
                                                    sf_id=str(contact_id)) is None:
                self.links.move(link, pair=target.name, sf_object=target.salesforce,
                                sf_id=str(contact_id))
                self.report.converted += 1
            self._close(pair.name, record.id, (
                "missing_in_hubspot", "duplicate_match", "sync_error"))
        return kept

    def _link_or_create(self, session: Session, pair: ObjectPair, records: list[Record],
                        pending: dict[tuple[str, str], _Pending],
                        handled_hs: set[tuple[str, str]]) -> None:
        """Unlinked Salesforce records: a HubSpot record carrying the Salesforce id is the
        counterpart (whoever created it, whatever crashed before it was linked); then the
        match key; only then a create."""
        carried = self._carrying(session, pair, [r.id for r in records])
        rest: list[Record] = []
        for record in records:
            found = carried.get(record.id, [])
            if len(found) > 1:
                self._gap("duplicate_match", pair.name, record.id, {
                    "hubspot_ids": sorted(r.id for r in found),
                    "reason": f"several HubSpot {pair.hubspot} carry this Salesforce id"})
                handled_hs.update((pair.hubspot, r.id) for r in found)
                continue
            if found:
                handled_hs.add((pair.hubspot, found[0].id))
                self._link_and_plan(session, pair, record, found[0], None, pending)
                continue
            rest.append(record)
        records = rest
        if pair.match is not None:
            groups = group_by_key(records, pair.match.salesforce)
            keys = list(groups)
            everyone = self._by_key("salesforce", pair.salesforce, pair.match.salesforce, keys)
            counterparts = self._by_key("hubspot", pair.hubspot, pair.match.hubspot, keys)
        else:
            groups, everyone, counterparts = {}, {}, {}
        keyed = {r.id for rs in groups.values() for r in rs}
        for key, members in groups.items():
            sharing = {r.id for r in everyone.get(key, [])} | {r.id for r in members}
            if len(sharing) > 1:
                for record in members:
                    self._gap("duplicate_match", pair.name, record.id, {
                        "key": key, "salesforce_ids": sorted(sharing)})
                continue
            record = members[0]
            match = counterparts.get(key, [])
            if match:
                handled_hs.add((pair.hubspot, match[0].id))
                self._link_and_plan(session, pair, record, match[0], key, pending)
                continue
            self._create(session, pair, record, "hubspot", pending)
        for record in records:
            if record.id not in keyed:
                self._create(session, pair, record, "hubspot", pending)

    def _link_and_plan(self, session: Session, pair: ObjectPair, sf_record: Record,
                       hs_record: Record, key: str | None,
                       pending: dict[tuple[str, str], _Pending]) -> None:
        link = self._link(pair, sf_record.id, hs_record.id, key)
        if link is not None:
            self.newly_linked.append((pair, link, sf_record, hs_record, pending))

    def _plan_newly_linked(self, session: Session) -> None:
        """Pairs linked this cycle are planned on a fresh HubSpot read: search (where their
        HubSpot side came from) serves an index that lags writes, and a stale copy would
        overwrite an edit made seconds ago. One batch read per 100 records. A read from the
        beginning needs none: it lists the records (as they are), it does not search."""
        by_object: dict[str, set[str]] = {}
        for pair, _, _, hs_record, _ in self.newly_linked:
            if ("hubspot", pair.hubspot) not in self.full_read:  # a full read lists: current
                by_object.setdefault(pair.hubspot, set()).add(hs_record.id)
        fresh: dict[tuple[str, str], Record] = {}
        for obj, ids in by_object.items():
            for record in self.hs.read_by_ids(obj, sorted(ids), self.fields_of("hubspot", obj)):
                fresh[(obj, record.id)] = record
        for pair, link, sf_record, hs_record, pending in self.newly_linked:
            current = fresh.get((pair.hubspot, hs_record.id), hs_record)
            self._plan_pair(session, pair, link, sf_record, current, pending)
        self.newly_linked = []

    def _settle_created(self, session: Session, run_id: int | None) -> None:
        """A second write pass for the pairs this cycle created, planned as any linked pair on
        what both records hold now: the source as read, the new record as its system filled
        it in (HubSpot's answer to the create says; a new Salesforce record is read by id, one
        query per 200). So the back-references (the Salesforce id in HubSpot, a status the
        new record implies) are written in this cycle and the next has nothing to do. Its
        intents are committed before its writes, as the first pass's are.
        """
        created, self.created_links = self.created_links, []
        if self.dry_run or not created:
            return
        unread: dict[str, set[str]] = {}
        for pair, link, into, _, values in created:
            if values is None:
                obj = pair.salesforce if into == "salesforce" else pair.hubspot
                unread.setdefault(f"{into}:{obj}", set()).add(
                    link.sf_id if into == "salesforce" else link.hs_id)
        fresh: dict[str, Record] = {}
        for name, ids in sorted(unread.items()):
            system, obj = name.split(":", 1)
            connector = self.sf if system == "salesforce" else self.hs
            for record in connector.read_by_ids(obj, sorted(ids), self.fields_of(system, obj)):
                fresh[f"{system}:{obj}:{record.id}"] = record
        pending: dict[tuple[str, str], _Pending] = {}
        in_sync, self.new_intents = self.report.in_sync, {}
        for pair, link, into, source, values in created:
            obj = pair.salesforce if into == "salesforce" else pair.hubspot
            new_id = link.sf_id if into == "salesforce" else link.hs_id
            made = (fresh.get(f"{into}:{obj}:{new_id}") if values is None else Record(
                system=into, object=obj, id=new_id, cursor=self.now, values=values))
            if made is None:
                continue  # gone already: the next cycle's deletes pass sees it
            sf_record, hs_record = (made, source) if into == "salesforce" else (source, made)
            self.remembered.discard(id(link))  # remember what both hold after this pass
            self._plan_pair(session, pair, link, sf_record, hs_record, pending)
        self.report.in_sync = in_sync  # a new pair is counted as created, not as in sync
        if pending:
            state.put_intents(session, self.new_intents)
            self.synced.flush()
            session.commit()
            self._flush(session, pending, run_id)

    def _carried_field(self, pair: ObjectPair) -> str | None:
        """The HubSpot property that carries the Salesforce id of ``pair``'s records."""
        return next((f.hs for f in self.planners[pair.name].fields if f.sf == "Id"), None)

    def _carrying(self, session: Session, pair: ObjectPair, sf_ids: list[str]
                  ) -> dict[str, list[Record]]:
        """HubSpot records carrying each of these Salesforce ids and not linked to another
        record: from this cycle's read first, then (unless it read everything) one search."""
        prop = self._carried_field(pair)
        if prop is None or not sf_ids:
            return {}
        index = self._carried(pair.hubspot, prop)
        found: dict[str, list[Record]] = {i: list(index[i]) for i in sf_ids if i in index}
        rest = [i for i in sf_ids if i not in found]
        if rest and ("hubspot", pair.hubspot) not in self.full_read and isinstance(
                self.hs, FindsByProperty):
            for record in self.hs.find_by(pair.hubspot, prop, rest,
                                          self.fields_of("hubspot", pair.hubspot)):
                found.setdefault(str(record.values.get(prop)), []).append(record)
        pairs = [p.name for p in self.mapping.objects if p.hubspot == pair.hubspot]
        self.links.load(pairs, hs_ids=[r.id for records in found.values() for r in records])
        return {sf_id: kept for sf_id, records in found.items() if (kept := [
            r for r in records if not any(self.links.find(name, hs_id=r.id)
                                          for name in pairs)])}

    def _by_key(self, system: str, obj: str, key_field: str, keys: list[str]
                ) -> dict[str, list[Record]]:
        """Records of ``obj`` by match key. After a read from the beginning every record is
        already in hand, so no lookup is spent; otherwise the few keys are looked up."""
        if not keys:
            return {}
        if (system, obj) in self.full_read:
            groups = self._key_index(system, obj, key_field)
            return {k: groups[k] for k in dict.fromkeys(keys) if k in groups}
        connector = self.sf if system == "salesforce" else self.hs
        return group_by_key(connector.find_by_emails(obj, keys, self.fields_of(system, obj)),
                            key_field)

    def _key_index(self, system: str, obj: str, key_field: str) -> dict[str, list[Record]]:
        """This cycle's records of ``obj`` by match key, grouped once (not once per lookup:
        that made a first sync quadratic). Keyed by the change list too, so a list replaced
        or grown since (merges dropped, pending sources added) is grouped again."""
        records = self.changed[(system, obj)]
        key = (system, obj, key_field, id(records), len(records))
        if key not in self.key_groups:
            self.key_groups[key] = group_by_key(records, key_field)
        return self.key_groups[key]

    def _create(self, session: Session, pair: ObjectPair, record: Record, into: Side,
                pending: dict[tuple[str, str], _Pending]) -> None:
        """Create ``record``'s counterpart in ``into`` if the mapping allows it, and link the
        two once the write succeeds; otherwise report it missing there.

        Every create must be findable again if the agent dies before recording it: a HubSpot
        create carries the Salesforce id (or upserts on the email), a Salesforce create needs
        the email. A create an earlier cycle planned and never settled is held while search
        may still be missing the record it made."""
        source: Side = "hubspot" if into == "salesforce" else "salesforce"
        missing = f"missing_in_{into}"
        known = self.gaps.detail(missing, pair.name, record.id)
        if known and known.get("deleted_counterpart"):
            return  # someone deleted its counterpart: a person decides, not the agent
        key = (match_key(record.values.get(getattr(pair.match, source)))
               if pair.match is not None else None)
        rule = pair.create_in_hubspot if into == "hubspot" else pair.create_in_salesforce
        if not passes(rule, record.values):
            self._gap(missing, pair.name, record.id, {"key": key})
            return
        carried = self._carried_field(pair)
        if into == "salesforce" and key is None:
            what = (f"no {pair.match.hubspot}" if pair.match is not None
                    else "no match key in the mapping")
            self._gap(missing, pair.name, record.id, {
                "key": None, "reason": f"it has {what}: a Salesforce record made from it "
                "could not be found again after an interruption, so it is not created "
                "(HubSpot's own connector also needs an email)"})
            return
        if into == "hubspot" and key is None and carried is None:
            self._gap(missing, pair.name, record.id, {
                "key": None, "reason": f"the mapping carries no Salesforce id into HubSpot "
                f"{pair.hubspot} (a field with salesforce: Id), so a created record could "
                "not be found again after an interruption"})
            return
        create_key: CreateKey = (pair.name, into, record.id)
        planned = self.prior_creates.get(create_key)
        upsert_on_key = into == "hubspot" and key is not None and pair.match is not None
        if (planned is not None and into == "hubspot" and not upsert_on_key
                and self.now - planned < self.hs.lookback):
            self.held.add(create_key)  # its record may exist, unseen by search for now
            self.report.held += 1
            return
        if into == "hubspot" and key is not None and not self._claim_key(pair, key, record.id):
            self._gap("duplicate_match", pair.name, record.id, {
                "key": key, "reason": "another record creates a HubSpot record with this "
                "email in the same cycle"})
            return
        planner = self.planners[pair.name]
        if into == "hubspot":
            plan = planner.plan(record.values, {}, None, 1.0, 0.0)
        else:
            plan = planner.plan({}, record.values, None, 0.0, 1.0)
        values = {c.field: c.new for c in plan.changes if c.side == into}
        values.update(_defaults(planner, into, values))
        match: tuple[str, str] | None = None
        if pair.match is not None and key:
            if into == "hubspot":
                match = (pair.match.hubspot, key)  # an upsert on email: a re-run cannot duplicate
            else:
                values.setdefault(pair.match.salesforce, key)
        if into == "salesforce" and self._refused_before(session, pair, record.id, values):
            return
        obj = pair.hubspot if into == "hubspot" else pair.salesforce
        self.report.plan.append(PlannedWrite(pair.name, into, obj, None, plan.changes,
                                             create=True))
        # The time of this attempt: a create sent again after its hold is held again if
        # this cycle dies too, since HubSpot may have taken this attempt.
        self.new_creates[create_key] = dt.datetime.now(dt.UTC)
        self.create_sources.setdefault((pair.name, into), []).append(
            (record.id, self._is_new(record, source, pair)))
        known_values = dict(record.values)

        def linked(result: WriteResult) -> None:
            assert result.id is not None
            created = dict(values)
            if into == "hubspot":  # what HubSpot set on its own (a lifecycle stage) was synced
                for name, value in (result.values or {}).items():
                    created.setdefault(name, value)
            sf_values, hs_values = ((created, known_values) if into == "salesforce"
                                    else (known_values, created))
            sf_id, hs_id = ((result.id, record.id) if into == "salesforce"
                            else (record.id, result.id))
            link = self._link(pair, sf_id, hs_id, key)
            if link is None:
                return  # the upsert found a record already claimed: a gap says so
            apply(plan, sf_values, hs_values)
            self._remember(link, synced(planner, sf_values, hs_values), {})
            self.stages.observe(self.mapping, into, obj, result.id, created,
                                self._owner_field(into), self.now)
            if result.created is not False:  # False: an upsert found the record (a re-run)
                self.report.created[f"{into}.{obj}"] += 1
            self.created_links.append((pair, link, into, record, result.values))

        self._queue(pending, into, obj, WriteRecord(values=values, match=match),
                    linked, pair, record.id, plan)

    def _is_new(self, record: Record, system: Side, pair: ObjectPair) -> bool:
        """Created since this object was last read (or never read): the change set explains
        its create. A record whose creation time cannot be read counts as new."""
        obj = pair.salesforce if system == "salesforce" else pair.hubspot
        mark = self.marks.get((system, obj))
        if mark is None or mark.cursor == EPOCH:
            return True
        raw = record.values.get(CREATED[system])
        try:
            created = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            return True
        if created.tzinfo is None:
            created = created.replace(tzinfo=dt.UTC)
        connector = self.sf if system == "salesforce" else self.hs
        return created >= mark.cursor - connector.lookback - dt.timedelta(seconds=1)

    def _guard_creates(self, session: Session, pending: dict[tuple[str, str], _Pending]
                       ) -> None:
        """Before any write: a pair that would create counterparts for more old records than
        the mapping's ``safety`` allows creates none of them this cycle (a gap says why)."""
        safety = self.mapping.safety
        pairs = {p.name: p for p in self.mapping.objects}
        for (name, into), sources in self.create_sources.items():
            old = [source for source, new in sources if not new]
            links = self.links.count(name) if old else 0
            limit = safety.max_create_share * links + safety.create_floor
            if len(old) <= limit:
                self._close(name, f"creates:{into}", ("create_guard",))
                continue
            pair = pairs[name]
            obj = pair.hubspot if into == "hubspot" else pair.salesforce
            blocked = {source for source, _ in sources}
            batch = pending.get((into, obj))
            if batch is not None:
                kept = [(w, a) for w, a in zip(batch.records, batch.after, strict=True)
                        if not (w.id is None and a[1].name == name and a[2] in blocked)]
                batch.records = [w for w, _ in kept]
                batch.after = [a for _, a in kept]
            for source in blocked:
                self.new_creates.pop((name, into, source), None)
            self.report.plan = [w for w in self.report.plan if not (
                w.create and w.pair == name and w.system == into)]
            self._gap("create_guard", name, f"creates:{into}", {
                "planned": len(sources), "old_records": len(old), "links": links,
                "limit": int(limit), "reason": f"this cycle would create {len(old)} {into} "
                f"{obj} records for records that existed at the last sync (limit "
                f"{int(limit)}: safety.max_create_share x {links} links + "
                "safety.create_floor); none were created. If this is meant (a mapping "
                "change admitted them), raise the limit in the mapping's safety section or "
                "run a backfill"})

    def _carried(self, hs_object: str, prop: str) -> dict[str, list[Record]]:
        """This cycle's HubSpot records by the Salesforce id they carry."""
        key = (hs_object, prop)
        if key not in self.carried:
            index: dict[str, list[Record]] = {}
            for r in self.changed[("hubspot", hs_object)]:
                if r.values.get(prop):
                    index.setdefault(str(r.values[prop]), []).append(r)
            self.carried[key] = index
        return self.carried[key]

    def _unlinked_hubspot(self, session: Session,
                          changed: dict[tuple[str, str], list[Record]],
                          pending: dict[tuple[str, str], _Pending],
                          handled_hs: set[tuple[str, str]]) -> None:
        """HubSpot records no pair has claimed: the Salesforce record whose id they carry,
        else link by key, create where a pair allows it, or report them missing."""
        for hs_object in sorted({p.hubspot for p in self.mapping.objects}):
            pairs = [p for p in self.mapping.objects if p.hubspot == hs_object]
            unclaimed = [r for r in changed[("hubspot", hs_object)]
                         if (hs_object, r.id) not in handled_hs
                         and (hs_object, r.id) not in self.claimed_hs
                         and not any(self.links.find(p.name, hs_id=r.id)
                                     for p in pairs)]
            carriers = self._carried_records(pairs, unclaimed)
            for record in unclaimed:
                self._claim(session, pairs, record, carriers, pending)

    def _carried_records(self, pairs: list[ObjectPair], records: list[Record]
                         ) -> dict[tuple[str, str], Record]:
        """The Salesforce records these HubSpot records carry the ids of, by (pair, id):
        from this cycle's read, the rest read by id in one call per object."""
        out: dict[tuple[str, str], Record] = {}
        for pair in pairs:
            prop = self._carried_field(pair)
            if prop is None:
                continue
            ids = {str(r.values[prop]) for r in records if r.values.get(prop)}
            have = {r.id: r for r in self.changed[("salesforce", pair.salesforce)]
                    if r.id in ids}
            rest = sorted(ids - set(have))
            if rest:
                have.update({r.id: r for r in self.sf.read_by_ids(
                    pair.salesforce, rest, self.fields_of("salesforce", pair.salesforce))})
            out.update({(pair.name, sf_id): r for sf_id, r in have.items()})
        return out

    def _claim(self, session: Session, pairs: list[ObjectPair], record: Record,
               carriers: dict[tuple[str, str], Record],
               pending: dict[tuple[str, str], _Pending]) -> None:
        for pair in pairs:  # a record that carries a Salesforce id is that record's counterpart
            prop = self._carried_field(pair)
            sf_id = str(record.values.get(prop) or "") if prop else ""
            if not sf_id:
                continue
            sf_record = carriers.get((pair.name, sf_id))
            if sf_record is None:
                known = self.gaps.detail("missing_in_salesforce", pair.name,
                                              record.id)
                if known and known.get("deleted_counterpart"):
                    return  # its Lead was deleted: the gap says so, a person decides
                self._gap("missing_in_salesforce", pair.name, record.id, {
                    "carried_salesforce_id": sf_id,
                    "reason": f"it carries the id of Salesforce {pair.salesforce} {sf_id}, "
                    "which was not found; it is never used to create another"})
                return
            conversion = pair.conversion
            if conversion is not None and sf_record.values.get(conversion.converted_field):
                continue  # a converted Lead: the Contact's pair may claim it
            self._link_and_plan(session, pair, sf_record, record, None, pending)
            return
        for pair in pairs:
            if pair.match is None:
                continue
            key = match_key(record.values.get(pair.match.hubspot))
            if key is None:
                continue
            found = self._by_key("salesforce", pair.salesforce, pair.match.salesforce,
                                 [key]).get(key, [])
            if len(found) > 1:
                self._gap("duplicate_match", pair.name, record.id, {
                    "key": key, "salesforce_ids": sorted(r.id for r in found)})
                return
            if found:
                if self.links.find(pair.name, sf_id=found[0].id) or (
                        pair.name, found[0].id) in self.claimed_sf:
                    return
                self._link_and_plan(session, pair, found[0], record, key, pending)
                return
        if any(prop and record.values.get(prop) for prop in map(self._carried_field, pairs)):
            self._gap("missing_in_salesforce", pairs[0].name, record.id, {
                "reason": "it carries the id of a converted Salesforce Lead whose Contact "
                "is not linked; it is never used to create another"})
            return
        for pair in pairs:
            if passes(pair.create_in_salesforce, record.values):
                self._create(session, pair, record, "salesforce", pending)
                return
        first = pairs[0]
        self._gap("missing_in_salesforce", first.name, record.id, {
            "key": match_key(record.values.get(first.match.hubspot)) if first.match else None})

    def _sync_linked(self, session: Session, pair: ObjectPair,
                     linked: dict[int, tuple[str, str]], sf_changed: dict[str, Record],
                     hs_changed: dict[str, Record],
                     pending: dict[tuple[str, str], _Pending]) -> None:
        self.synced.load(link for sf_id, _ in linked.values()
                         if (link := self.links.find(pair.name, sf_id=sf_id)) is not None)
        for link_id, (sf_id, hs_id) in list(linked.items()):
            if self._echo(pair, sf_id, hs_id, sf_changed.get(sf_id), hs_changed.get(hs_id)):
                del linked[link_id]  # only the agent's own writes came back: nothing to do
                self.report.in_sync += 1
        need_sf = [sf_id for sf_id, _ in linked.values() if sf_id not in sf_changed]
        # HubSpot search serves an index that lags writes: a record it returns may hold the
        # values of a few seconds ago. Linked records are read again by id (consistent), so
        # a stale copy never decides a field.
        need_hs = [hs_id for _, hs_id in linked.values()
                   if hs_id not in hs_changed or ("hubspot", pair.hubspot) not in self.full_read]
        sf_records = dict(sf_changed)
        hs_records = dict(hs_changed)
        if need_sf:
            sf_records.update({r.id: r for r in self.sf.read_by_ids(
                pair.salesforce, need_sf, self.fields_of("salesforce", pair.salesforce))})
        if need_hs:
            fresh = self.hs.read_by_ids(pair.hubspot, need_hs,
                                        self.fields_of("hubspot", pair.hubspot))
            hs_records.update({r.id: r for r in fresh})
            self._follow_read_merges(session, pair, linked, fresh)
        for link_id, (sf_id, hs_id) in linked.items():
            sf_record, hs_record = sf_records.get(sf_id), hs_records.get(hs_id)
            if sf_record is None or hs_record is None:
                missing = "missing_in_salesforce" if sf_record is None else "missing_in_hubspot"
                self._gap(missing, pair.name, sf_id if sf_record else hs_id,
                          {"link": link_id, "reason": "the linked record is gone"})
                continue
            link = self.links.find(pair.name, sf_id=sf_id)
            assert link is not None
            self._plan_pair(session, pair, link, sf_record, hs_record, pending)

    def _echo(self, pair: ObjectPair, sf_id: str, hs_id: str, sf_record: Record | None,
              hs_record: Record | None) -> bool:
        """Whether what was read of a linked pair is only the agent's own writes coming back:
        every side read holds exactly what was remembered after the last sync, and nothing
        else is pending for it (a crashed cycle's intent, a letter to retry, an open gap).
        Then its other side is not read again: a cycle after a burst costs what the changes
        cost, not a read of every counterpart they touched (a first sync's echo re-read all).
        """
        link = self.links.find(pair.name, sf_id=sf_id)
        if link is None or link.hs_id != hs_id or link.id is None:
            return False
        if ((pair.name, sf_id, hs_id) in self.prior_intents
                or (pair.name, sf_id) in self.retrying or (pair.name, hs_id) in self.retrying
                or (pair.name, sf_id) in self.gaps.keys or (pair.name, hs_id) in self.gaps.keys):
            return False
        stored = self.synced.get(link)
        fields = self.planners[pair.name].fields
        if not stored or any(f.key not in stored for f in fields):
            return False
        return all(
            (sf_record is None or stored[f.key][0] == sf_record.values.get(f.sf))
            and (hs_record is None or stored[f.key][1] == hs_record.values.get(f.hs))
            for f in fields)

    def _plan_pair(self, session: Session, pair: ObjectPair, link: Any, sf_record: Record,
                   hs_record: Record, pending: dict[tuple[str, str], _Pending]) -> None:
        planner = self.planners[pair.name]
        fields = self.stage_fields[pair.name]
        stored = self.synced.get(link)
        last = self._with_intent(pair, planner, sf_record, hs_record, stored)
        sf_view, hs_view = dict(sf_record.values), dict(hs_record.values)
        recycled = recycles(fields, sf_view, hs_view, last)
        for turn in recycled:
            (sf_view if turn.side == "salesforce" else hs_view)[turn.field] = turn.new
        plan = planner.plan(sf_view, hs_view, last,
                            sf_record.cursor.timestamp(), hs_record.cursor.timestamp())
        planned = {(c.side, c.field) for c in plan.changes}
        plan = Plan(changes=plan.changes + [
            FieldChange(t.side, t.field, t.old, t.new, "recycle",
                        f"stage map {t.stage_map} recycles {t.old} to {t.new}",
                        f"recycle>{t.field}")
            for t in recycled if (t.side, t.field) not in planned], warnings=plan.warnings)
        plan, held = hold_backward(plan, fields, self._forward_only(pair), bool(recycled))
        sf_values, hs_values = dict(sf_record.values), dict(hs_record.values)
        apply(plan, sf_values, hs_values)
        self._check_drift(session, pair, sf_record.id, hs_record.id, sf_values, hs_values, held)
        after_sync = synced(planner, sf_values, hs_values)
        if not plan.changes:
            self.report.in_sync += 1
            self._remember(link, after_sync, stored)
            return
        self.new_intents[(pair.name, sf_record.id, hs_record.id)] = after_sync
        for system, obj, record_id in (("salesforce", pair.salesforce, sf_record.id),
                                       ("hubspot", pair.hubspot, hs_record.id)):
            changes = [c for c in plan.changes if c.side == system]
            if not changes:
                continue
            if system == "salesforce" and self._refused_before(
                    session, pair, record_id, {c.field: c.new for c in changes}):
                # The duplicate rules refused this very update: a person decides. Not sent,
                # so what is remembered keeps Salesforce's values as they are.
                self.unwritten.add((system, record_id))
                continue
            self.report.plan.append(PlannedWrite(pair.name, system, obj, record_id, changes))
            current = hs_record.values if system == "hubspot" else sf_record.values
            values_after = hs_values if system == "hubspot" else sf_values

            def remember(result: WriteResult, link: Any = link, system: str = system,
                         obj: str = obj, record_id: str = record_id,
                         values_after: dict[str, Any] = values_after) -> None:
                self.to_remember[id(link)] = _Settling(
                    link,
                    planner, sf_record.id, hs_record.id, dict(sf_record.values),
                    dict(hs_record.values), sf_values, hs_values, stored)
                self.stages.observe(self.mapping, system, obj, record_id, values_after,
                                    self._owner_field(system), self.now)

            self._queue(pending, system, obj, WriteRecord(
                id=record_id, values={c.field: c.new for c in changes}, current=dict(current)),
                remember, pair, record_id, plan, changes)

    def _with_intent(self, pair: ObjectPair, planner: PairPlanner, sf_record: Record,
                     hs_record: Record, stored: dict[str, tuple[Any, Any]]
                     ) -> dict[str, tuple[Any, Any]]:
        """History for planning: what was stored, plus a crashed cycle's intents for fields
        that hold exactly what it meant to write (its writes landed; it died before saying
        so)."""
        intent = self.prior_intents.get((pair.name, sf_record.id, hs_record.id))
        if not intent:
            return stored
        last = dict(stored)
        for f in planner.fields:
            meant = intent.get(f.key)
            if meant is not None and [sf_record.values.get(f.sf),
                                      hs_record.values.get(f.hs)] == list(meant):
                last[f.key] = (meant[0], meant[1])
        return last

    def _check_drift(self, session: Session, pair: ObjectPair, sf_id: str, hs_id: str,
                     sf_values: dict[str, Any], hs_values: dict[str, Any],
                     held: dict[str, str]) -> None:
        """Open a stage_drift gap while the two funnel positions disagree; close it when they
        agree again."""
        fields = self.stage_fields[pair.name]
        if not fields:
            return
        found = drift(fields, sf_values, hs_values, held)
        if found:
            self._gap("stage_drift", pair.name, sf_id,
                      {"hubspot_id": hs_id, "stage_maps": found})
        else:
            self._close(pair.name, sf_id, ("stage_drift",))

    # -- cold leads ------------------------------------------------------------------------
    def _cold_leads(self, session: Session, run_id: int | None) -> None:
        """SLA rules: read the activity changed since the last read, find cold leads (from
        the state store alone), keep their gaps, carry out the actions of new ones."""
        if not self.activity_read:  # read with the changes when the connector can
            sla.read_activity(session, self.mapping, self.sf, self.now)
        cold = sla.find_cold(session, self.mapping, self.now)
        for lead in cold.values():
            lead.owner_name = self.directory.name("salesforce", lead.owner)
        outcome = sla.reconcile(session, self.mapping, cold)
        self.report.gaps[sla.KIND] += len(outcome.opened)
        writes, skipped = sla.action_writes(self.mapping, outcome, self.directory,
                                            self.now.date())
        for lead, why in skipped:
            known = state.open_gap_detail(session, sla.KIND, lead.rule.pair, lead.sf_id) or {}
            state.open_gap(session, sla.KIND, lead.rule.pair, lead.sf_id,
                           {"not_done": [*known.get("not_done", []), why]})
        pending: dict[tuple[str, str], _Pending] = {}
        pair_of = {p.name: p for p in self.mapping.objects}
        landed: list[tuple[sla.ActionWrite, str | None]] = []  # writes that succeeded
        for write in writes:
            self.report.plan.append(PlannedWrite(write.lead.rule.pair, write.system,
                                                 write.object, write.record_id, write.changes,
                                                 create=write.record_id is None))

            def done(result: WriteResult, write: sla.ActionWrite = write) -> None:
                landed.append((write, result.id))

            self._queue(pending, write.system, write.object,
                        WriteRecord(id=write.record_id, values=write.values), done,
                        pair_of[write.lead.rule.pair], write.lead.sf_id, None, write.changes,
                        closes=())
        self._flush(session, pending, run_id)
        sla.record_done(session, landed)
        self.stages.flush(session, self.now)

    # -- writing -------------------------------------------------------------------------
    def _queue(self, pending: dict[tuple[str, str], _Pending], system: str, obj: str,
               write: WriteRecord, on_success: Any, pair: ObjectPair, source_id: str,
               plan: Plan | None, changes: list[FieldChange] | None = None,
               closes: tuple[str, ...] = ("sync_error", "missing_in_hubspot",
                                          "missing_in_salesforce")) -> None:
        """Queue one write; ``closes`` are the gap kinds its success settles."""
        batch = pending.setdefault((system, obj), _Pending())
        batch.records.append(write)
        if changes is None:
            assert plan is not None
            changes = [c for c in plan.changes if c.side == system]
        batch.after.append((on_success, pair, source_id, changes, closes))

    def _flush(self, session: Session, pending: dict[tuple[str, str], _Pending],
               run_id: int | None) -> None:
        """Send the queued writes, then remember what each written pair now holds."""
        self._send(session, pending, run_id)
        for pair in self.to_remember.values():
            sf_side = (pair.sf_before if ("salesforce", pair.sf_id) in self.unwritten
                       else pair.sf_after)
            hs_side = (pair.hs_before if ("hubspot", pair.hs_id) in self.unwritten
                       else pair.hs_after)
            self._remember(pair.link, synced(pair.planner, sf_side, hs_side),
                           pair.stored)
        self.to_remember = {}
        self.synced.flush()

    def _send(self, session: Session, pending: dict[tuple[str, str], _Pending],
              run_id: int | None) -> None:
        order = sorted(pending, key=lambda k: (k[0] != "salesforce", k))
        for system, obj in order:
            batch = pending[(system, obj)]
            if self.dry_run:
                continue
            connector = self.sf if system == "salesforce" else self.hs
            self.sent_creates.update(
                key for write, (_, pair, source_id, _, _) in zip(
                    batch.records, batch.after, strict=True)
                if write.id is None and (key := (pair.name, system, source_id)) in
                self.new_creates)
            results = connector.upsert(obj, batch.records)
            failpoints.hit(f"cycle.write.{system}.{obj}")
            self._load_links_of(system, obj, [r.id for r in results if r.ok and r.id])
            for write, result, (on_success, pair, source_id, changes, closes) in zip(
                    batch.records, results, batch.after, strict=True):
                if result.ok:
                    on_success(result)
                    self.report.written[f"{system}.{obj}"] += 1
                    self._close(pair.name, source_id, closes)
                    state.record_writes(session, run_id, ({
                        "system": system, "object": obj, "record_id": result.id or "",
                        "field": c.field, "old": _json(c.old), "new": _json(c.new),
                        "rule": c.rule, "reason": c.reason} for c in changes))
                    continue
                error = result.error
                assert error is not None
                self.failed_sources.add((pair.name, source_id))
                if write.id is not None:
                    self.unwritten.add((system, write.id))
                if system == "salesforce" and error.code == DUPLICATES_DETECTED:
                    # not a dead letter: a duplicate_match gap (counted with the gaps)
                    self._duplicate_refused(session, pair, obj, write, source_id, error)
                    continue
                self.report.failed += 1
                letter = self.retrying.get((pair.name, source_id))
                if letter is not None:  # a retry failed again: the same letter, backed off
                    state.retried(letter, False, f"{error.code}: {error.message}")
                else:
                    other = pair.hubspot if system == "salesforce" else pair.salesforce
                    source = ({"system": system, "object": obj} if write.id else {
                        "system": "hubspot" if system == "salesforce" else "salesforce",
                        "object": other})
                    state.add_dead_letter(
                        session, system=system, obj=obj, record_id=write.id,
                        operation="update" if write.id else "create",
                        payload={"values": _json(write.values),
                                 "match": list(write.match) if write.match else None,
                                 "source": {**source, "id": source_id, "pair": pair.name},
                                 "replay": any(c.rule.startswith("sla:") for c in changes)},
                        code=error.code, message=error.message,
                        field=error.fields[0] if error.fields else None)
                self._gap("sync_error", pair.name, source_id, {
                    "system": system, "object": obj, "code": error.code,
                    "message": error.message, "fields": list(error.fields)})

    def _load_links_of(self, system: str, obj: str, ids: list[str]) -> None:
        """The links of records just written, in one query a page: linking a created record
        checks that nothing links it already."""
        pairs = [p.name for p in self.mapping.objects
                 if (p.salesforce if system == "salesforce" else p.hubspot) == obj]
        if system == "salesforce":
            self.links.load(pairs, sf_ids=ids)
        else:
            self.links.load(pairs, hs_ids=ids)

    def _duplicate_refused(self, session: Session, pair: ObjectPair, obj: str,
                           write: WriteRecord, source_id: str, error: WriteError) -> None:
        """The org's duplicate rules refused this write: which record is the real one is a
        person's call (merge, link, or ``salesforce.duplicate_rules: allow_save``), so it is a
        ``duplicate_match`` gap naming the records Salesforce matched, never a dead letter
        retried forever. A retried letter that meets the rule is settled the same way."""
        letter = self.retrying.get((pair.name, source_id))
        if letter is not None:
            state.retried(letter, True)
            letter.error_message = f"{error.code}: handed to a duplicate_match gap"
        self._gap("duplicate_match", pair.name, source_id, {
            "system": "salesforce", "object": obj, "record_id": write.id,
            "operation": "update" if write.id else "create", "code": error.code,
            "salesforce_ids": list(error.matches), "values": _json(write.values),
            "reason": f"Salesforce's duplicate rules refused this {obj} "
            f"{'update' if write.id else 'create'}: {error.message}"
            + ("" if error.matches else " (no matching records found)")})

    def _refused_before(self, session: Session, pair: ObjectPair, source_id: str,
                        values: dict[str, Any]) -> bool:
        """The same create or update was refused by the duplicate rules and its gap is open:
        it is not sent again until its values change or the mapping says ``allow_save``."""
        if self.mapping.salesforce.duplicate_rules != "respect":
            return False
        known = self.gaps.detail("duplicate_match", pair.name, source_id)
        if not known or known.get("code") != DUPLICATES_DETECTED:
            return False
        return bool(known.get("values") == _json(values))

    # -- helpers ---------------------------------------------------------------------------
    def _link(self, pair: ObjectPair, sf_id: str, hs_id: str,
              key: str | None) -> Any:
        """Link two records, unless either is linked or claimed already: then the conflict
        is a ``duplicate_match`` gap for a person, and nothing is written for it."""
        conflict = self._conflict(pair, sf_id, hs_id)
        if conflict is not None:
            self._gap("duplicate_match", pair.name, sf_id, {
                "hubspot_id": hs_id, "reason": conflict})
            return None
        self.claimed_hs[(pair.hubspot, hs_id)] = f"{pair.name}:{sf_id}"
        self.claimed_sf[(pair.name, sf_id)] = hs_id
        link = self.links.add(pair.name, pair.salesforce, sf_id, pair.hubspot, hs_id, key)
        self.synced.new(link)
        self.report.linked += 1
        self._close(pair.name, sf_id, ("missing_in_hubspot", "duplicate_match"))
        self._close(pair.name, hs_id, ("missing_in_salesforce",
                                                     "duplicate_match"))
        return link

    def _conflict(self, pair: ObjectPair, sf_id: str, hs_id: str
                  ) -> str | None:
        """Why ``sf_id`` and ``hs_id`` cannot be linked in ``pair``, if they cannot."""
        claimant = self.claimed_hs.get((pair.hubspot, hs_id))
        if claimant is not None and claimant != f"{pair.name}:{sf_id}":
            return f"HubSpot {pair.hubspot} {hs_id} is claimed by {claimant} in this cycle"
        other = self.claimed_sf.get((pair.name, sf_id))
        if other is not None and other != hs_id:
            return f"Salesforce {pair.salesforce} {sf_id} is linked to HubSpot {other}"
        for p in self.mapping.objects:
            if p.hubspot == pair.hubspot:
                link = self.links.find(p.name, hs_id=hs_id)
                if link is not None and (p.name, link.sf_id) != (pair.name, sf_id):
                    return (f"HubSpot {pair.hubspot} {hs_id} is already linked to "
                            f"{p.salesforce} {link.sf_id}")
        link = self.links.find(pair.name, sf_id=sf_id)
        if link is not None and link.hs_id != hs_id:
            return f"Salesforce {pair.salesforce} {sf_id} is already linked to {link.hs_id}"
        return None

    def _claim_key(self, pair: ObjectPair, key: str, sf_id: str) -> bool:
        """One HubSpot upsert per email per cycle, whichever pair asks."""
        claimant = self.claimed_hs.setdefault((pair.hubspot, f"email:{key}"),
                                              f"{pair.name}:{sf_id}")
        return claimant == f"{pair.name}:{sf_id}"

    def _gap(self, kind: str, pair: str, key: str,
             detail: dict[str, Any]) -> None:
        self.report.gaps[kind] += 1
        self.gaps.open(kind, pair, key, detail)

    def _remember(self, link: Any, values: dict[str, tuple[Any, Any]],
                  known: dict[str, tuple[Any, Any]]) -> None:
        """What both sides hold after this cycle, once per link (a pair written on both sides
        reports success twice with the same values)."""
        if id(link) not in self.remembered:
            self.remembered.add(id(link))
            self.synced.put(link, values, known)

    def _close(self, pair: str, key: str, kinds: Iterable[str]) -> None:
        """Close a record's gaps of these kinds; records with no open gap cost no statement
        (a first sync settles tens of thousands of records)."""
        self.gaps.close(pair, key, kinds)


def _defaults(planner: PairPlanner, side: str, values: dict[str, Any]) -> dict[str, Any]:
    """A new record's fields that both systems left blank but the mapping gives a default
    (a Lead needs a Company, whatever HubSpot knows)."""
    out: dict[str, Any] = {}
    for f in planner.fields:
        if f.rule is Rule.NONE:
            continue
        name = f.sf if side == "salesforce" else f.hs
        if name in values or name == "Id":
            continue
        default = (f.to_sf if side == "salesforce" else f.to_hs)(None)
        if default is not None and not isinstance(default, Unmapped):
            out[name] = default
    return out


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def run_cycle(store: Store, mapping: MappingFile, salesforce: Connector, hubspot: Connector,
              dry_run: bool = False, until: dt.datetime | None = None,
              refresh_schemas: bool = False) -> CycleReport:
    return Cycle(store, mapping, salesforce, hubspot, dry_run, refresh_schemas).run(until)


def describe_plan(report: CycleReport) -> Iterable[str]:
    """The dry run's plan, one line per field: pair, system, record, field, old -> new, rule."""
    for write in report.plan:
        target = write.record_id or "(new record)"
        for change in write.changes:
            if change.side != write.system:
                continue
            yield (f"{write.pair}: {write.system} {write.object} {target} {change.field}: "
                   f"{change.old!r} -> {change.new!r} [{change.rule}: {change.reason}]")
