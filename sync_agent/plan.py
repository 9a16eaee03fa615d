"""The plan stage: pure functions from records, remembered values and the mapping to a plan.

No database and no HTTP: what a linked pair should become (field rules, stage recycling,
forward-only holds, drift), and what a created record should hold. The cycle turns these
into writes; a dry run prints them; tests call them on plain dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.records import Record
from mapping.model import ObjectPair, Rule
from mapping.rules import FieldChange, FieldTimes, PairPlanner, Plan, Side, apply, synced
from mapping.transforms import Unmapped
from sync_agent.stages import StageField, drift, hold_backward, recycles

Remembered = dict[str, tuple[Any, Any]]


@dataclass
class PairPlan:
    """What one linked pair should become."""

    changes: list[FieldChange]
    sf_after: dict[str, Any]  # each side's values once the changes land
    hs_after: dict[str, Any]
    after_sync: Remembered  # what to remember once they do
    drift: dict[str, dict[str, Any]] | None  # stage maps disagreeing after it (None: no stages)
    conflicts: list[str]  # fields both sides changed, decided on record times

    def changes_to(self, system: str) -> list[FieldChange]:
        return [c for c in self.changes if c.side == system]


def with_intent(planner: PairPlanner, sf_values: dict[str, Any], hs_values: dict[str, Any],
                stored: Remembered, intent: dict[str, Any] | None) -> Remembered:
    """History for planning: what was stored, plus a crashed cycle's intents for fields
    that hold exactly what it meant to write (its writes landed; it died before saying so)."""
    if not intent:
        return stored
    last = dict(stored)
    for f in planner.fields:
        meant = intent.get(f.key)
        if meant is not None and [sf_values.get(f.sf), hs_values.get(f.hs)] == list(meant):
            last[f.key] = (meant[0], meant[1])
    return last


def plan_pair(planner: PairPlanner, fields: list[StageField], forward_only: set[str],
              sf_record: Record, hs_record: Record, last: Remembered,
              arrivals: Remembered | None = None,
              times: dict[str, FieldTimes] | None = None) -> PairPlan:
    """The field rules on both records, with the stage maps' recycle rules and forward-only
    holds (a lifecycle stage never moves back without a recycle). A recycle fires for a
    record that moved to the stage since ``arrivals`` (default: the last sync)."""
    sf_view, hs_view = dict(sf_record.values), dict(hs_record.values)
    recycled = recycles(fields, sf_view, hs_view, last if arrivals is None else arrivals)
    for turn in recycled:
        (sf_view if turn.side == "salesforce" else hs_view)[turn.field] = turn.new
    plan = planner.plan(sf_view, hs_view, last,
                        sf_record.cursor.timestamp(), hs_record.cursor.timestamp(), times)
    conflicts = plan.conflicts
    planned = {(c.side, c.field) for c in plan.changes}
    plan = Plan(changes=plan.changes + [
        FieldChange(t.side, t.field, t.old, t.new, "recycle",
                    f"stage map {t.stage_map} recycles {t.old} to {t.new}",
                    f"recycle>{t.field}")
        for t in recycled if (t.side, t.field) not in planned], warnings=plan.warnings)
    plan, held = hold_backward(plan, fields, forward_only, bool(recycled))
    sf_values, hs_values = dict(sf_record.values), dict(hs_record.values)
    apply(plan, sf_values, hs_values)
    return PairPlan(plan.changes, sf_values, hs_values, synced(planner, sf_values, hs_values),
                    drift(fields, sf_values, hs_values, held) if fields else None, conflicts)


@dataclass
class CreatePlan:
    """What a record created from ``source`` in ``into`` should hold."""

    plan: Plan
    values: dict[str, Any]
    match: tuple[str, str] | None  # HubSpot upserts on the match key: a re-run cannot duplicate


def plan_create(planner: PairPlanner, pair: ObjectPair, values: dict[str, Any], into: Side,
                key: str | None) -> CreatePlan:
    if into == "hubspot":
        plan = planner.plan(values, {}, None, 1.0, 0.0)
    else:
        plan = planner.plan({}, values, None, 0.0, 1.0)
    out = {c.field: c.new for c in plan.changes if c.side == into}
    out.update(defaults(planner, into, out))
    match: tuple[str, str] | None = None
    if pair.match is not None and key and pair.match.upserts_on():  # an email: one value
        if into == "hubspot":
            match = (pair.match.hubspot, key)
        else:
            out.setdefault(pair.match.salesforce, key)
    return CreatePlan(plan, out, match)


def defaults(planner: PairPlanner, side: str, values: dict[str, Any]) -> dict[str, Any]:
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


def echoes(planner: PairPlanner, stored: Remembered, sf_record: Record | None,
           hs_record: Record | None) -> bool:
    """Whether every side read holds exactly what was remembered after the last sync (the
    agent's own writes coming back): then there is nothing to plan for the pair."""
    fields = planner.fields
    if not stored or any(f.key not in stored for f in fields):
        return False
    return all(
        (sf_record is None or stored[f.key][0] == sf_record.values.get(f.sf))
        and (hs_record is None or stored[f.key][1] == hs_record.values.get(f.hs))
        for f in fields)


def json_safe(value: Any) -> Any:
    import datetime as dt

    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value
