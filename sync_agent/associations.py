"""Associations: a reference between two pairs' records, kept the same on both sides.

A Salesforce lookup (Contact.AccountId) and a HubSpot association (the contact's primary
company) say the same thing once each id is translated through the links of the pair it
points to. Only the links whose records changed on either side this cycle (or were linked
this cycle, or wait from an earlier one) are looked at, so a quiet cycle costs nothing:

- Salesforce's side is the lookup field read with the changes; for a record the change read
  did not return, what was last synced (the change read is consistent: unchanged is
  unchanged), or a read by id where nothing was synced yet;
- HubSpot's side is read with the v4 batch read, 1,000 records a call;
- the association's rule decides as a field rule would; HubSpot gets a labelled association
  (2,000 a call; a new ``Primary`` demotes the old one, as HubSpot does) or loses the label,
  Salesforce gets its lookup field (a batched update, ledger and dead letters as any write).

A reference to a record that is not linked yet waits for its link: nothing dangling is
written, and an ``association_waiting`` gap says what it waits for; the links of those gaps
are looked at again each cycle until the link exists. What was synced is remembered beside
the link's fields (key ``@name``), so ``two_way`` knows which side changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.records import WriteRecord, WriteResult
from mapping.model import Association, ObjectPair, Rule
from mapping.rules import FieldChange
from sync_agent import state
from sync_agent.context import Run, close, gap
from sync_agent.passes import flush
from sync_agent.tables import Gap, Link
from sync_agent.write import Write

WAITING = "association_waiting"


@runtime_checkable
class Associates(Protocol):
    """A connector that reads and writes associations (HubSpot's v4 API)."""

    def association_labels(self, from_type: str, to_type: str) -> dict[str | None, int]: ...

    def associations_of(self, from_type: str, to_type: str, ids: Iterable[str]
                        ) -> dict[str, dict[str, set[int]]]: ...

    def associate_labeled(self, from_type: str, to_type: str, pairs: list[tuple[str, str]],
                          type_id: int) -> list[WriteResult]: ...

    def remove_association_label(self, from_type: str, to_type: str,
                                 pairs: list[tuple[str, str]], type_id: int
                                 ) -> list[WriteResult]: ...


@dataclass
class Side:
    """One linked record's reference on both sides, as read this cycle."""

    link: Link
    sf_ref: str | None  # the Salesforce id the lookup holds
    hs_refs: set[str]  # the HubSpot ids associated with the label (or at all, unlabeled)
    sf_time: Any  # the records' change cursors where this cycle read them
    hs_time: Any
    waiting: bool = False  # for a link (not in sync, nothing written, nothing remembered)


@dataclass
class Decision:
    link: Link
    side: str  # the system written
    old: Any
    new: Any  # a Salesforce id, a HubSpot id, or None (the reference is removed)
    reason: str


def key_of(assoc: Association) -> str:
    """The association's entry among the link's synced values."""
    return f"@{assoc.name}"


def sync_associations(run: Run, session: Session, run_id: int | None) -> None:
    """Every association of the mapping for the links in play this cycle."""
    mapping = run.setup.mapping
    hubspot = run.setup.hs
    if not mapping.associations or run.setup.dry_run or not isinstance(hubspot, Associates):
        return
    pairs = {p.name: p for p in mapping.objects}
    sf_writes: list[Write] = []
    remembered: list[tuple[Association, Decision | None, Side]] = []
    hs_done: dict[int, bool] = {}
    for assoc in mapping.associations:
        source, target = pairs[assoc.from_pair], pairs[assoc.to_pair]
        links = _in_play(run, session, assoc, source)
        if not links or assoc.rule is Rule.NONE:
            continue
        run.report.read[f"hubspot.associations.{source.hubspot}.{assoc.name}"] += len(links)
        type_id = hubspot.association_labels(source.hubspot, target.hubspot).get(
            assoc.hubspot_label)
        if type_id is None:  # validate --live refuses this; a portal may change after
            raise RuntimeError(f"association {assoc.name}: HubSpot has no "
                               f"{assoc.hubspot_label or 'unlabeled'} association from "
                               f"{source.hubspot} to {target.hubspot}")
        sides = _read_sides(run, assoc, source, target, links, hubspot, type_id)
        run.links.load([target.name], sf_ids=[s.sf_ref for s in sides if s.sf_ref],
                       hs_ids=[h for s in sides for h in s.hs_refs])
        decisions: list[tuple[Decision | None, Side]] = []
        for side in sides:
            decisions.append((_decide(run, assoc, source, target, side), side))
        hs_done.update(_write_hubspot(run, session, run_id, assoc, source, target, type_id,
                                      [(d, s) for d, s in decisions
                                       if d is not None and d.side == "hubspot"]))
        for decision, side in decisions:
            if decision is not None and decision.side == "salesforce":
                sf_writes.append(_salesforce_write(run, assoc, source, target, decision))
            remembered.append((assoc, decision, side))
    if sf_writes:
        flush(run, session, sf_writes, run_id)
    for assoc, decision, side in remembered:
        if side.waiting:
            continue
        if decision is None:
            _remember(run, assoc, side.link, side.sf_ref, sorted(side.hs_refs))
        elif decision.side == "hubspot" and hs_done.get(id(decision), False):
            _remember(run, assoc, side.link, side.sf_ref,
                      [decision.new] if decision.new else [])
        elif decision.side == "salesforce" and (
                assoc.from_pair, side.link.sf_id) not in run.failed_sources:
            close(run, assoc.from_pair, gap_key(assoc, side.link), (WAITING,))
            _remember(run, assoc, side.link, decision.new, sorted(side.hs_refs))
    run.synced.flush()


def _in_play(run: Run, session: Session, assoc: Association, pair: ObjectPair) -> list[Link]:
    """The links of ``pair`` whose records this cycle read, or that wait from before."""
    sf_ids = [r.id for r in run.changed.get(("salesforce", pair.salesforce), [])]
    hs_ids = [r.id for r in run.changed.get(("hubspot", pair.hubspot), [])]
    waiting = [key.removesuffix(f"#{assoc.name}") for key in session.scalars(
        select(Gap.key).where(Gap.kind == WAITING, Gap.pair == pair.name,
                              Gap.closed_at.is_(None), Gap.key.like(f"%#{assoc.name}")))]
    run.links.load([pair.name], sf_ids=[*sf_ids, *waiting], hs_ids=hs_ids)
    found: dict[int, Link] = {}
    for sf_id in [*sf_ids, *waiting]:
        link = run.links.find(pair.name, sf_id=sf_id)
        if link is not None:
            found[id(link)] = link
    for hs_id in hs_ids:
        link = run.links.find(pair.name, hs_id=hs_id)
        if link is not None:
            found[id(link)] = link
    return list(found.values())


def _read_sides(run: Run, assoc: Association, source: ObjectPair, target: ObjectPair,
                links: list[Link], hubspot: Associates, type_id: int) -> list[Side]:
    """Both sides' references of these links: one association read per 1,000, and the
    Salesforce lookups the change read did not bring (what was synced, else by id)."""
    field = assoc.salesforce_field
    sf_read = {r.id: r for r in run.changed.get(("salesforce", source.salesforce), [])}
    hs_read = {r.id: r for r in run.changed.get(("hubspot", source.hubspot), [])}
    by_change = (("salesforce", source.salesforce) in run.marks
                 and ("salesforce", source.salesforce) not in run.full_read)
    run.synced.load(link for link in links if link.id is not None)
    unknown: list[str] = []
    refs: dict[str, str | None] = {}
    for link in links:
        record = sf_read.get(link.sf_id)
        stored = run.synced.get(link).get(key_of(assoc))
        if record is not None and field in record.values:
            refs[link.sf_id] = _text(record.values.get(field))
        elif by_change and stored is not None and id(link) not in run.links.moved:
            refs[link.sf_id] = stored[0]
        else:
            unknown.append(link.sf_id)
    if unknown:
        for record in run.setup.sf.read_by_ids(source.salesforce, sorted(set(unknown)),
                                               [field]):
            refs[record.id] = _text(record.values.get(field))
            sf_read.setdefault(record.id, record)
    associated = hubspot.associations_of(source.hubspot, target.hubspot,
                                         [link.hs_id for link in links])
    sides = []
    for link in links:
        linked = associated.get(link.hs_id, {})
        hs_refs = {to for to, types in linked.items()
                   if assoc.hubspot_label is None or type_id in types}
        sf_record, hs_record = sf_read.get(link.sf_id), hs_read.get(link.hs_id)
        sides.append(Side(link, refs.get(link.sf_id), hs_refs,
                          sf_record.cursor if sf_record is not None else None,
                          hs_record.cursor if hs_record is not None else None))
    return sides


def _decide(run: Run, assoc: Association, source: ObjectPair, target: ObjectPair,
            side: Side) -> Decision | None:
    """What to write for one link, if anything; waits (a gap) for an unlinked target."""
    link, sf_ref, hs_refs = side.link, side.sf_ref, side.hs_refs
    wanted_hs = _hs_of(run, target, sf_ref)
    labelled = assoc.hubspot_label is not None
    if (wanted_hs in hs_refs if sf_ref else not (labelled and hs_refs)):
        close(run, source.name, gap_key(assoc, link), (WAITING,))
        return None
    stored = run.synced.get(link).get(key_of(assoc))
    hs_one = sorted(hs_refs)[0] if len(hs_refs) == 1 else None
    sf_changed = stored is None or stored[0] != sf_ref
    hs_changed = stored is None or sorted(stored[1] or []) != sorted(hs_refs)
    if stored is None and bool(sf_ref) != bool(hs_refs):  # never synced: the one that says
        sf_changed, hs_changed = bool(sf_ref), bool(hs_refs)  # something, not the later
    winner = _winner(assoc.rule, sf_ref, bool(hs_refs), sf_changed, hs_changed, side)
    if not labelled and winner == "hubspot" and sf_ref:
        winner = "salesforce"  # several unlabeled records: HubSpot's only ever adds
    if winner == "salesforce":
        if sf_ref and wanted_hs is None:
            _wait(run, assoc, source, side, f"Salesforce {assoc.salesforce_field} {sf_ref} "
                  f"is not linked to a HubSpot {target.hubspot} record yet")
            return None
        return Decision(link, "hubspot", sorted(hs_refs), wanted_hs,
                        f"association {assoc.name}: Salesforce {source.salesforce}."
                        f"{assoc.salesforce_field} is {sf_ref or 'blank'}")
    if len(hs_refs) > 1:  # unlabeled and several: nothing says which one is the lookup
        return None
    wanted_sf = _sf_of(run, target, hs_one)
    if hs_one and wanted_sf is None:
        if target.create_in_salesforce.enabled:  # it may come: wait for it, and say so
            _wait(run, assoc, source, side, f"HubSpot {target.hubspot} {hs_one} is not "
                  f"linked to a Salesforce {target.salesforce} yet")
        else:  # a HubSpot-only record (its pair never creates in Salesforce) stays HubSpot's
            side.waiting = True
        return None
    return Decision(link, "salesforce", sf_ref, wanted_sf,
                    f"association {assoc.name}: HubSpot {source.hubspot} {link.hs_id} is "
                    f"associated with {hs_one or 'none'}"
                    f"{f' ({assoc.hubspot_label})' if labelled else ''}")


def _winner(rule: Rule, sf_ref: str | None, hs_has: bool, sf_changed: bool,
            hs_changed: bool, side: Side) -> str:
    if rule is Rule.ALWAYS_SALESFORCE:
        return "salesforce"
    if rule is Rule.ALWAYS_HUBSPOT:
        return "hubspot"
    if rule is Rule.PREFER_SALESFORCE_UNLESS_BLANK:
        return "salesforce" if sf_ref else "hubspot"
    if rule is Rule.PREFER_HUBSPOT_UNLESS_BLANK:
        return "hubspot" if hs_has else "salesforce"
    if sf_changed != hs_changed:  # two-way: the side that changed since the last sync
        return "salesforce" if sf_changed else "hubspot"
    if side.sf_time is not None and side.hs_time is not None:
        return "hubspot" if side.hs_time > side.sf_time else "salesforce"
    return "hubspot" if side.sf_time is None and side.hs_time is not None else "salesforce"


def gap_key(assoc: Association, link: Link) -> str:
    """An association's gap is its own (a record may wait for two links at once)."""
    return f"{link.sf_id}#{assoc.name}"


def _wait(run: Run, assoc: Association, pair: ObjectPair, side: Side, reason: str) -> None:
    side.waiting = True
    gap(run, WAITING, pair.name, gap_key(assoc, side.link), {
        "association": assoc.name, "reason": reason, "salesforce_id": side.link.sf_id,
        "hubspot_id": side.link.hs_id})


def _hs_of(run: Run, pair: ObjectPair, sf_id: str | None) -> str | None:
    link = run.links.find(pair.name, sf_id=sf_id) if sf_id else None
    return link.hs_id if link is not None else None


def _sf_of(run: Run, pair: ObjectPair, hs_id: str | None) -> str | None:
    link = run.links.find(pair.name, hs_id=hs_id) if hs_id else None
    return link.sf_id if link is not None else None


def _write_hubspot(run: Run, session: Session, run_id: int | None, assoc: Association,
                   source: ObjectPair, target: ObjectPair, type_id: int,
                   decisions: list[tuple[Decision, Side]]) -> dict[int, bool]:
    """Labelled associations made (or the label taken off where Salesforce's lookup was
    emptied), each in the ledger; a refusal is a gap the next cycle looks at again."""
    hubspot = run.setup.hs
    assert isinstance(hubspot, Associates)
    adds = [(d, s) for d, s in decisions if d.new]
    removals = [(d, s, old) for d, s in decisions if not d.new for old in d.old]
    done: dict[int, bool] = {}
    results = hubspot.associate_labeled(source.hubspot, target.hubspot,
                                        [(d.link.hs_id, d.new) for d, _ in adds], type_id)
    failed = {id(d) for (d, _), r in zip(adds, results, strict=True) if not r.ok}
    for (decision, _), result in zip(adds, results, strict=True):
        if not result.ok and result.error is not None:
            gap(run, WAITING, source.name, gap_key(assoc, decision.link), {
                "association": assoc.name, "salesforce_id": decision.link.sf_id,
                "hubspot_id": decision.link.hs_id,
                "reason": f"HubSpot refused: {result.error.code}: {result.error.message}"})
    if removals:
        answers = hubspot.remove_association_label(
            source.hubspot, target.hubspot, [(d.link.hs_id, old) for d, _, old in removals],
            type_id)
        failed |= {id(d) for (d, _, _), r in zip(removals, answers, strict=True) if not r.ok}
    label = assoc.hubspot_label or "unlabeled"
    ledger = []
    for decision, _ in decisions:
        done[id(decision)] = id(decision) not in failed
        if id(decision) in failed:
            continue
        run.report.written[f"hubspot.{source.hubspot}.associations"] += 1
        close(run, source.name, gap_key(assoc, decision.link), (WAITING,))
        ledger.append({"system": "hubspot", "object": source.hubspot,
                       "record_id": decision.link.hs_id,
                       "field": f"associations.{target.hubspot} ({label})",
                       "old": decision.old or None, "new": decision.new,
                       "rule": assoc.rule.value, "reason": decision.reason})
    state.record_writes(session, run_id, ledger)
    return done


def _salesforce_write(run: Run, assoc: Association, source: ObjectPair, target: ObjectPair,
                      decision: Decision) -> Write:
    """The lookup field's update, as any field write: ledger, dead letter on refusal."""
    change = FieldChange("salesforce", assoc.salesforce_field, decision.old, decision.new,
                         assoc.rule.value, decision.reason, key_of(assoc))
    return Write(source, "salesforce", source.salesforce,
                 WriteRecord(id=decision.link.sf_id,
                             values={assoc.salesforce_field: decision.new}),
                 decision.link.sf_id, [change], closes=())


def _remember(run: Run, assoc: Association, link: Link, sf_ref: str | None,
              hs_refs: list[str]) -> None:
    known = run.synced.get(link)  # a copy: what the store holds, to tell what moved
    run.synced.put(link, {**known, key_of(assoc): (sf_ref, hs_refs)}, known)


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None

