"""Stages across objects: a HubSpot record's stage lifted by records of another pair.

Two sources lift a stage, both forward only:

- a converted Lead: its link moves to the new Contact (``match``), and the stages the Lead's
  pair maps (Status -> lifecycle stage, lead status) carry to the HubSpot contact, which
  would otherwise stay an MQL whose lead is long qualified;
- a ``stage_follows`` rule: each record of the association's pair (an Opportunity) lifts
  the record it points to (its contact) to the stage its own stage maps to (open ->
  ``opportunity``, Closed Won -> ``customer``); the furthest wins.

Only the changed followed records of this cycle and this cycle's conversions are looked at
(a stage that only moves forward needs no history of the others). The HubSpot records are
read by id (one call per 100) for their current stage; "forward" is the property's own
option order where HubSpot keeps one (the lifecycle stage), else the stage map's funnel order.
Writes go as any field write: ledger, dead letters.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from connectors.records import WriteRecord
from mapping.model import MappingFile, ObjectPair, StageMap
from mapping.rules import FieldChange
from sync_agent.context import Run
from sync_agent.passes import flush
from sync_agent.write import Write


@dataclass
class Lift:
    """A stage a HubSpot record should reach at least, and why."""

    pair: ObjectPair  # the pair the HubSpot record is linked in
    sf_id: str
    hs_id: str
    prop: str
    stage: str
    order: list[str]  # the property's stages, earliest first
    rule: str
    reason: str


def follow_stages(run: Run, session: Session, run_id: int | None) -> None:
    """Lift the stages this cycle's conversions and followed records call for."""
    if run.setup.dry_run:
        run.conversions = []
        return
    lifts = [*_conversions(run), *_follows(run)]
    run.conversions = []
    if not lifts:
        return
    furthest: dict[tuple[str, str, str], Lift] = {}
    for lift in lifts:
        key = (lift.pair.hubspot, lift.hs_id, lift.prop)
        held = furthest.get(key)
        if held is None or _at(lift.order, lift.stage) > _at(held.order, held.stage):
            furthest[key] = lift
    by_object: dict[str, set[str]] = {}
    props: dict[str, set[str]] = {}
    for obj, hs_id, prop in furthest:
        by_object.setdefault(obj, set()).add(hs_id)
        props.setdefault(obj, set()).add(prop)
    current = {(obj, r.id): r.values for obj, ids in by_object.items()
               for r in run.setup.hs.read_by_ids(obj, sorted(ids), sorted(props[obj]))}
    writes: list[Write] = []
    for (obj, hs_id, prop), lift in sorted(furthest.items()):
        values = current.get((obj, hs_id))
        if values is None:
            continue  # gone: the next cycle's deletes pass sees it
        now = values.get(prop)
        if now and _at(lift.order, str(now)) >= _at(lift.order, lift.stage):
            continue  # there or further already: forward only
        writes.append(Write(lift.pair, "hubspot", obj,
                            WriteRecord(id=hs_id, values={prop: lift.stage}), lift.sf_id,
                            [FieldChange("hubspot", prop, now, lift.stage, lift.rule,
                                         lift.reason, f"@{lift.rule}")], closes=()))
    flush(run, session, writes, run_id)


def _at(order: list[str], stage: str) -> int:
    return order.index(stage) if stage in order else -1


def _order(run: Run, obj: str, prop: str, smap: StageMap | None) -> list[str]:
    """The stages of ``prop``, earliest first: HubSpot's option order for a property that
    only moves forward (the lifecycle stage), else the stage map's funnel order."""
    field = run.setup.hs.describe(obj).fields.get(prop)
    if field is not None and field.forward_only and field.picklist_values:
        return list(field.picklist_values)
    if smap is None:
        return list(field.picklist_values) if field is not None else []
    return [stage for entry in smap.stages for stage in entry.hubspot]


def _conversions(run: Run) -> list[Lift]:
    """A converted Lead's stages, carried to the contact its link moved to."""
    lifts: list[Lift] = []
    for lead_pair, record, link, target in run.conversions:
        for stage_field in run.setup.stage_fields.get(lead_pair.name, []):
            smap = stage_field.smap
            obj, _, prop = smap.hubspot_field.partition(".")
            if obj != target.hubspot:
                continue
            status = record.values.get(stage_field.sf_field)
            entry = next((e for e in smap.stages if status in e.salesforce), None)
            if entry is None:
                continue
            lifts.append(Lift(target, link.sf_id, link.hs_id, prop, entry.hubspot[0],
                              _order(run, obj, prop, smap), f"conversion:{stage_field.name}",
                              f"Lead {record.id} converted at {status}; stage map "
                              f"{stage_field.name} carries it to the contact"))
    return lifts


def _follows(run: Run) -> list[Lift]:
    """Each changed followed record's lift of the record its association points to."""
    mapping: MappingFile = run.setup.mapping
    pairs = {p.name: p for p in mapping.objects}
    lifts: list[Lift] = []
    for follow in mapping.stage_follows:
        assoc = next((a for a in mapping.associations if a.name == follow.association), None)
        if assoc is None or follow.pair not in pairs or assoc.from_pair not in pairs:
            continue  # validation refuses these
        source, target = pairs[assoc.from_pair], pairs[follow.pair]
        records = run.changed.get(("salesforce", source.salesforce), [])
        refs = {r.id: str(r.values[assoc.salesforce_field]) for r in records
                if r.values.get(assoc.salesforce_field)}
        run.links.load([target.name], sf_ids=refs.values())
        order = _order(run, target.hubspot, follow.hubspot_property, None)
        for record in records:
            ref = refs.get(record.id)
            link = run.links.find(target.name, sf_id=ref) if ref else None
            stage = record.values.get(follow.salesforce_field)
            entry = next((e for e in follow.stages if stage in e.salesforce), None)
            if link is None or entry is None:
                continue  # not linked yet: the next change of the record lifts it
            lifts.append(Lift(target, link.sf_id, link.hs_id, follow.hubspot_property,
                              entry.hubspot, order, f"follow:{follow.name}",
                              f"{source.salesforce} {record.id} is at {stage}"))
    return lifts
