"""What the stages of a cycle work with, as plain data passed to each stage explicitly.

``Setup`` is what does not change while a cycle runs: the mapping, both connectors, the
planners (built per cycle, since the owner map comes from both systems' user lists) and the
fields each object is read with. ``Run`` is one cycle's (or one backfill page's) books over
the state store and the decisions made so far: which records are claimed, which creates are
planned or held, which writes failed. Neither has behaviour beyond small lookups: the stages
(``read``, ``deletes``, ``match``, ``claims``, ``creates``, ``plan``, ``write``, ``record``)
are functions of these and of the plain data they hand one another.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from connectors.contract import Connector
from connectors.records import DeletedRecords, Record, Watermark
from mapping.model import FieldRule, MappingFile, ObjectPair
from mapping.rules import FieldChange, PairPlanner
from sync_agent import merges
from sync_agent.gap_book import GapBook
from sync_agent.identity import KeyOf, key_of
from sync_agent.link_book import LinkBook
from sync_agent.owners import OwnerDirectory, deal_record_types, owner_rule
from sync_agent.spool import KeyMap, Spooled
from sync_agent.stages import StageBook, StageField, maps_on, stage_fields
from sync_agent.synced_book import SyncedBook
from sync_agent.tables import DeadLetter, Link

CreateKey = tuple[str, str, str]  # (pair, side created in, source record id)
CREATED = {"salesforce": "CreatedDate", "hubspot": "createdate"}


@dataclass
class PlannedWrite:
    pair: str
    system: str
    object: str
    record_id: str | None
    changes: list[FieldChange]
    create: bool = False
    source_id: str | None = None  # a create's source record, in the other system


@dataclass(frozen=True)
class Doomed:
    """A counterpart the rule deletes: where it lives and why."""

    pair: str
    system: str  # the counterpart's system
    obj: str
    record_id: str
    deleted_in: str
    deleted_id: str


@dataclass(frozen=True)
class PlannedLink:
    """A link a dry run would make: the pair, both ids, and the match key (None: the
    HubSpot record carries the Salesforce id)."""

    pair: str
    sf_object: str
    sf_id: str
    hs_object: str
    hs_id: str
    key: str | None


@dataclass
class CycleReport:
    read: Counter[str] = field(default_factory=Counter)
    written: Counter[str] = field(default_factory=Counter)
    created: Counter[str] = field(default_factory=Counter)
    linked: int = 0
    converted: int = 0
    merged: int = 0
    unlinked: int = 0
    deleted: int = 0  # counterparts deleted by a pair's on_delete rule
    relinked: int = 0  # restored records linked again
    in_sync: int = 0
    failed: int = 0
    gaps: Counter[str] = field(default_factory=Counter)
    held: int = 0  # creates held while a crashed cycle's create may still be in flight
    plan: list[PlannedWrite] = field(default_factory=list)
    links: list[PlannedLink] = field(default_factory=list)  # a dry run's links, listed
    calls: dict[str, int] = field(default_factory=dict)


@dataclass
class Setup:
    mapping: MappingFile
    sf: Connector
    hs: Connector
    planners: dict[str, PairPlanner]
    directory: OwnerDirectory
    stage_fields: dict[str, list[StageField]]
    dry_run: bool = False
    forward_only: dict[str, set[str]] = field(default_factory=dict)  # by HubSpot object
    keys: dict[str, KeyOf] = field(default_factory=dict)  # each pair's match key, by pair


def prepare(mapping: MappingFile, salesforce: Connector, hubspot: Connector,
            dry_run: bool = False) -> Setup:
    """The planners with the owner rule (from both systems' user lists, cached by the
    connectors between schema refreshes) and each pair's stage fields."""
    if hasattr(salesforce, "duplicate_rules"):  # the mapping decides, not the connector
        salesforce.duplicate_rules = mapping.salesforce.duplicate_rules
    directory = OwnerDirectory.load(salesforce, hubspot)
    planners: dict[str, PairPlanner] = {}
    for pair in mapping.objects:
        extra: list[FieldRule] = []
        rule = owner_rule(mapping, pair, directory, salesforce, hubspot)
        if rule is not None:
            extra.append(rule)
        planners[pair.name] = PairPlanner(mapping, pair.name, extra,
                                          deal_record_types(mapping, pair, salesforce))
    return Setup(mapping, salesforce, hubspot, planners, directory,
                 {p.name: stage_fields(mapping, p) for p in mapping.objects}, dry_run,
                 keys={p.name: key_of(p.match, planners[p.name]) for p in mapping.objects
                       if p.match is not None})


def connector(setup: Setup, system: str) -> Connector:
    return setup.sf if system == "salesforce" else setup.hs


def object_of(pair: ObjectPair, system: str) -> str:
    return pair.salesforce if system == "salesforce" else pair.hubspot


def pairs_on(mapping: MappingFile, system: str, obj: str) -> list[ObjectPair]:
    """The pairs that sync ``obj`` of ``system``."""
    return [p for p in mapping.objects if object_of(p, system) == obj]


def owner_field(mapping: MappingFile, system: str) -> str:
    owners = mapping.owners
    return owners.salesforce_field if system == "salesforce" else owners.hubspot_property


def calls_now(*connectors: Connector) -> Counter[str]:
    """API calls per endpoint the connectors have made so far."""
    return sum((Counter(c.calls) for c in connectors), Counter())


def calls_since(before: Counter[str], *connectors: Connector) -> dict[str, int]:
    """API calls per endpoint made by the connectors since ``before`` was taken."""
    return dict(calls_now(*connectors) - before)


def fields_of(setup: Setup, system: str, obj: str) -> list[str]:
    """The fields the engine reads of ``obj``: every mapped one, keys, stages, owner."""
    names: list[str] = []
    if system == "salesforce":  # a contact roles object: its three fields
        for roles in setup.mapping.contact_roles:
            if roles.salesforce_object == obj:
                names += [roles.parent_field, roles.target_field, roles.role_field]
    for pair in pairs_on(setup.mapping, system, obj):
        for f in setup.planners[pair.name].fields:
            names.append(f.sf if system == "salesforce" else f.hs)
        if pair.name in setup.keys:
            names += setup.keys[pair.name].fields(system)
        if pair.conversion is not None and system == "salesforce":
            names += [pair.conversion.converted_field, pair.conversion.contact_field]
        if system == "salesforce":  # the lookups of its associations, read with the changes
            names += [a.salesforce_field for a in setup.mapping.associations
                      if a.from_pair == pair.name]
            names += [f.salesforce_field for f in setup.mapping.stage_follows
                      for a in setup.mapping.associations
                      if a.name == f.association and a.from_pair == pair.name]
    if names and system == "hubspot" and obj == "contacts" and setup.mapping.sla:
        names.append("notes_last_updated")  # a rep's HubSpot activity stops SLA clocks
    if names:
        names += [f for _, _, f in maps_on(setup.mapping, system, obj)]
        names.append(CREATED[system])  # the create guard tells new records from old
        if system == "hubspot" and merges.MERGED in setup.hs.describe(obj).fields:
            names.append(merges.MERGED)  # merges are followed by it
    return [n for n in dict.fromkeys(names) if n != "Id"]


def carried_field(setup: Setup, pair: ObjectPair) -> str | None:
    """The HubSpot property that carries the Salesforce id of ``pair``'s records."""
    return next((f.hs for f in setup.planners[pair.name].fields if f.sf == "Id"), None)


def forward_only(setup: Setup, pair: ObjectPair) -> set[str]:
    """HubSpot fields that only move forward (lifecycle stage), once per object a cycle."""
    if pair.hubspot not in setup.forward_only:
        setup.forward_only[pair.hubspot] = {
            name for name, f in setup.hs.describe(pair.hubspot).fields.items()
            if f.forward_only}
    return setup.forward_only[pair.hubspot]


@dataclass
class Settling:
    """What one linked pair holds before and after its planned writes."""

    link: Link
    planner: PairPlanner
    sf_id: str
    hs_id: str
    sf_before: dict[str, Any]
    hs_before: dict[str, Any]
    sf_after: dict[str, Any]
    hs_after: dict[str, Any]
    stored: dict[str, tuple[Any, Any]]


@dataclass
class CreatedLink:
    """A link a create made: what to plan in the cycle's second write pass."""

    pair: ObjectPair
    link: Link
    into: str  # the side the record was created in
    source: Record
    values: dict[str, Any] | None  # what the write's answer says the new record holds


@dataclass
class Run:
    """One cycle's books over the state store and what it has decided so far."""

    setup: Setup
    links: LinkBook
    gaps: GapBook
    synced: SyncedBook
    stages: StageBook
    report: CycleReport
    now: dt.datetime
    changed: dict[tuple[str, str], list[Record]] = field(default_factory=dict)
    # A first sync a slice at a time (``slices``): ``changed`` is the slice, this the whole
    # change set, on which identity is decided.
    everything: dict[tuple[str, str], Spooled] | None = None
    marks: dict[tuple[str, str], Watermark] = field(default_factory=dict)
    full_read: set[tuple[str, str]] = field(default_factory=set)  # read from the beginning
    read_deletes: dict[tuple[str, str], DeletedRecords] = field(default_factory=dict)
    # Objects read beside the pairs' for another stage (contact roles): their watermark,
    # changes and deletes, by Salesforce object; never synced as a pair's records.
    side_reads: dict[str, tuple[Watermark, list[Record], DeletedRecords]] = field(
        default_factory=dict)
    prior_intents: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    new_intents: dict[tuple[str, str, str], dict[str, tuple[Any, Any]]] = field(
        default_factory=dict)
    retrying: dict[tuple[str, str], DeadLetter] = field(default_factory=dict)
    failed_sources: set[tuple[str, str]] = field(default_factory=set)
    # Creates: the ones an earlier (maybe crashed) cycle planned, this cycle's, held ones,
    # the ones whose request has gone out, and per (pair, side) their sources and whether
    # each is new since the last sync.
    prior_creates: dict[CreateKey, dt.datetime] = field(default_factory=dict)
    new_creates: dict[CreateKey, dt.datetime] = field(default_factory=dict)
    held: set[CreateKey] = field(default_factory=set)
    sent_creates: set[CreateKey] = field(default_factory=set)
    create_sources: dict[tuple[str, str], list[tuple[str, bool]]] = field(default_factory=dict)
    # Every link this cycle makes or write it plans, by record, checked before any write:
    # one record is never claimed by two (the plan must be recordable).
    claimed_hs: KeyMap = field(default_factory=dict[tuple[str, str], str])
    claimed_sf: KeyMap = field(default_factory=dict[tuple[str, str], str])
    # The stages records whose link moved this cycle stood at before it (their own visits):
    # (system, record id) -> stage map -> stage.
    observed: dict[tuple[str, str], dict[str, str | None]] = field(default_factory=dict)
    # Ids found deleted, purged or merged away: a stale search copy is never used.
    vanished: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    key_groups: dict[tuple[str, str, str, int, int], dict[str, list[str]]] = field(
        default_factory=dict)  # match key -> ids, per change set (see ``claims``)
    carried: dict[tuple[str, str], dict[str, list[str]]] = field(default_factory=dict)
    by_id: dict[tuple[str, str, str, int, int], dict[str, Record]] = field(default_factory=dict)
    # Remembered values: links remembered this pass (by identity), pairs whose writes
    # succeeded (remembered once the whole flush is known: a side whose write failed keeps
    # its values, else the next cycle would write the old one back), sides not written.
    remembered: set[int] = field(default_factory=set)
    to_remember: dict[int, Settling] = field(default_factory=dict)
    unwritten: set[tuple[str, str]] = field(default_factory=set)
    created_links: list[CreatedLink] = field(default_factory=list)
    newly_linked: list[tuple[ObjectPair, Link, Record, Record]] = field(default_factory=list)
    # Linked pairs whose fields both sides changed since the last sync: planned again once
    # their fields' own change times are read (``conflicts``), before any intent is written.
    conflicted: list[tuple[ObjectPair, Link, Record, Record, list[str]]] = field(
        default_factory=list)
    # Leads converted this cycle: (the lead's pair, the Lead, the moved link, its new pair),
    # whose stages carry to the contact (``stage_follows``).
    conversions: list[tuple[ObjectPair, Record, Link, ObjectPair]] = field(
        default_factory=list)
    # What the pairs' delete rules do this cycle (``delete_rules``): counterparts to delete,
    # and counterparts whose deleted record is made again, by (system, object).
    doomed: list[Doomed] = field(default_factory=list)
    recreate: dict[tuple[str, str], set[str]] = field(default_factory=dict)


def whole(run: Run, system: str, obj: str) -> list[Record] | Spooled:
    """Every record of ``obj`` this cycle read (``changed`` unless it goes a slice at a time)."""
    if run.everything is not None and (system, obj) in run.everything:
        return run.everything[(system, obj)]
    return run.changed[(system, obj)]


def gap(run: Run, kind: str, pair: str, key: str, detail: dict[str, Any]) -> None:
    """Open or touch a gap (counted), unless a person ignored it and nothing changed."""
    if run.gaps.open(kind, pair, key, detail) is not None:
        run.report.gaps[kind] += 1


def close(run: Run, pair: str, key: str, kinds: tuple[str, ...] | list[str]) -> None:
    """Close a record's gaps of these kinds; records with no open gap cost no statement."""
    run.gaps.close(pair, key, kinds)


def remember(run: Run, link: Link, values: dict[str, tuple[Any, Any]],
             known: dict[str, tuple[Any, Any]]) -> None:
    """What both sides hold after this cycle, once per link (a pair written on both sides
    reports success twice with the same values)."""
    if id(link) not in run.remembered:
        run.remembered.add(id(link))
        run.synced.put(link, values, known)
