"""The field-rule function: for one linked pair, what each side must change, and why.

Pure: records, last-synced values and modification times in; ``FieldChange`` items out. The
rules are compiled once per mapping into closures, because a cycle may plan a million pairs.

Semantics, per mapped field:
- the two values are **in sync** when either one, carried across, equals the other; lossy
  transforms (truncation, many-to-one value maps, defaults) therefore settle instead of
  writing back and forth;
- ``none`` never writes; ``always_X`` writes X's value to the other side;
- ``prefer_X_unless_blank`` writes X's value when X has one, else the other side's value to X;
  a blank never overwrites a value;
- ``two_way``: the side that changed since the last sync wins; a blank never beats a value.
  When both changed, the later change wins, Salesforce on a tie: the field's own change times
  when the caller has them (``FieldTimes``: HubSpot's property history, Salesforce's field
  history), else each record's modification time. A plan lists the fields it decided on
  record times (``Plan.conflicts``) so the caller can fetch the field times and plan again.
  With no history at all (a first link) record times decide.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mapping.model import FieldRule, MappingFile, Rule, Truncate
from mapping.transforms import Unmapped, blank, compile_chain

Side = Literal["salesforce", "hubspot"]
MISSING: Any = object()
MAX_ROUNDS = 3  # rules feeding rules settle in one more round; more would mean a cycle


@dataclass(frozen=True)
class FieldChange:
    side: Side  # the system to write
    field: str
    old: Any
    new: Any
    rule: str
    reason: str
    key: str  # the field pair, "SalesforceField>hubspotproperty"


@dataclass
class Plan:
    changes: list[FieldChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # keys of fields both sides changed since the last sync, decided on record times
    conflicts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FieldTimes:
    """When one field pair last changed on each side (epoch seconds), and where each time
    came from ("property history", "field history", "record modified")."""

    sf: float
    hs: float
    sf_from: str
    hs_from: str


def _same(a: Any, b: Any) -> bool:
    """Equal as values: blanks are equal, numbers compare numerically whatever their form."""
    if a == b:
        return True
    if blank(a) and blank(b):
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return str(a).lower() == str(b).lower()
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class CompiledField:
    key: str
    sf: str
    hs: str
    rule: Rule
    to_hs: Callable[[Any], Any]
    to_sf: Callable[[Any], Any]
    limit: int | None = None  # a truncate transform's length: cutting is reported


def compile_fields(rules: list[FieldRule], mapping: MappingFile) -> list[CompiledField]:
    out = []
    for rule in rules:
        stage = mapping.stage_maps.get(rule.stage_map) if rule.stage_map else None
        to_hs, _ = compile_chain(rule.transforms, "hubspot", stage)
        to_sf, _ = compile_chain(rule.transforms, "salesforce", stage)
        limit = next((t.length for t in rule.transforms if isinstance(t, Truncate)), None)
        out.append(CompiledField(f"{rule.salesforce}>{rule.hubspot}", rule.salesforce,
                                 rule.hubspot, rule.rule, to_hs, to_sf, limit))
    return out


def pair_rules(mapping: MappingFile, pair_name: str,
               extra: Sequence[FieldRule] = ()) -> list[FieldRule]:
    """The pair's field rules, plus the lead score rule where it applies and ``extra`` rules
    built from live data (the owner map)."""
    pair = next(p for p in mapping.objects if p.name == pair_name)
    rules = [*pair.fields, *extra]
    score = mapping.lead_score
    if score is not None and pair_name in score.pairs:
        from mapping.model import Coerce

        rules.append(FieldRule(salesforce=score.salesforce_field, hubspot=score.hubspot_property,
                               rule=Rule.ALWAYS_HUBSPOT,
                               transforms=[Coerce(kind="coerce", to="number")]))
    return rules


class PairPlanner:
    """Plans one object pair's fields; build once per mapping, call per linked pair.

    For the pair ``deal_pipelines`` names, ``record_types`` (id -> developer name, from
    Salesforce's describe) adds the rule writing the deal's ``pipeline``, and each deal is
    planned with the stage map of its own pipeline."""

    def __init__(self, mapping: MappingFile, pair_name: str,
                 extra: Sequence[FieldRule] = (),
                 record_types: Mapping[str, str] | None = None) -> None:
        from mapping.pipelines import deal_pipelines_of, pipeline_rule, routed_rules

        routing = deal_pipelines_of(mapping, pair_name)
        if routing is not None:
            extra = [*extra, pipeline_rule(routing, record_types or {})]
        rules = pair_rules(mapping, pair_name, extra)
        self.fields = compile_fields(rules, mapping)
        self._active: dict[int, list[tuple[str, str, str, CompiledField]]] = {}
        self.routed: dict[str, list[CompiledField]] = {}
        self.route_by: CompiledField | None = None
        if routing is not None:
            hubspot_object = next(p.hubspot for p in mapping.objects if p.name == pair_name)
            self.routed = {pipeline: compile_fields(routed, mapping) for pipeline, routed in
                           routed_rules(mapping, routing, hubspot_object, rules).items()}
            self.route_by = next(f for f in self.fields if f.hs == "pipeline")

    def fields_for(self, sf: Mapping[str, Any], hs: Mapping[str, Any]) -> list[CompiledField]:
        """The compiled fields for this record: its pipeline's, when deals are routed (by the
        Salesforce record type when there is a Salesforce record, else by the deal's own)."""
        if self.route_by is None:
            return self.fields
        route = self.route_by
        pipeline = route.to_hs(sf.get(route.sf)) if sf else hs.get(route.hs)
        return self.routed.get(str(pipeline), self.fields)

    def plan(self, sf: Mapping[str, Any], hs: Mapping[str, Any],
             last: Mapping[str, tuple[Any, Any]] | None = None,
             sf_modified: float = 0.0, hs_modified: float = 0.0,
             times: Mapping[str, FieldTimes] | None = None) -> Plan:
        """Changes until nothing more follows: a rule that reads a field another rule writes
        (Lead.Status feeds two HubSpot properties) sees the value being written. ``times``:
        per field key, when each side last changed it (decides two-way conflicts)."""
        history = last or {}
        clock = Clock(sf_modified, hs_modified, times or {})
        result = self._round(sf, hs, history, clock)
        if not result.changes:
            return result
        merged = {(c.side, c.field): c for c in result.changes}
        warnings = list(result.warnings)
        sf_view, hs_view = dict(sf), dict(hs)
        latest = result
        for _ in range(MAX_ROUNDS):
            for change in latest.changes:
                (hs_view if change.side == "hubspot" else sf_view)[change.field] = change.new
            latest = self._round(sf_view, hs_view, history, clock)
            if not latest.changes:
                break
            for change in latest.changes:
                first = merged.get((change.side, change.field))
                original = first.old if first is not None else change.old
                merged[(change.side, change.field)] = FieldChange(
                    change.side, change.field, original, change.new, change.rule,
                    change.reason, change.key)
            warnings += latest.warnings
            result.conflicts += latest.conflicts
        self._stage_follows_pipeline(merged, sf, hs)
        return Plan(changes=list(merged.values()), warnings=list(dict.fromkeys(warnings)),
                    conflicts=list(dict.fromkeys(result.conflicts)))

    def _stage_follows_pipeline(self, merged: dict[tuple[Side, str], FieldChange],
                                sf: Mapping[str, Any], hs: Mapping[str, Any]) -> None:
        """A deal moved to another pipeline needs a stage of that pipeline in the same write
        (HubSpot refuses a stage of another pipeline): Salesforce's stage, translated with
        the new pipeline's stage map, goes along."""
        moved = merged.get(("hubspot", "pipeline"))
        if moved is None or self.route_by is None or ("hubspot", "dealstage") in merged:
            return
        stage = next((f for f in self.fields_for(sf, hs) if f.hs == "dealstage"), None)
        if stage is None:
            return
        new = stage.to_hs(sf.get(stage.sf))
        if isinstance(new, Unmapped) or blank(new):
            return
        merged.pop(("salesforce", stage.sf), None)
        merged[("hubspot", "dealstage")] = FieldChange(
            "hubspot", "dealstage", hs.get("dealstage"), new, stage.rule.value,
            f"the deal moves to pipeline {moved.new}: its stage follows Salesforce", stage.key)

    def _round(self, sf: Mapping[str, Any], hs: Mapping[str, Any],
               history: Mapping[str, tuple[Any, Any]], clock: Clock) -> Plan:
        result = Plan()
        fields = self.fields if self.route_by is None else self.fields_for(sf, hs)
        active = self._active.get(id(fields))
        if active is None:  # names looked up once per field list, not per pair and field
            active = self._active[id(fields)] = [
                (f.key, f.sf, f.hs, f) for f in fields if f.rule is not Rule.NONE]
        for key, sf_name, hs_name, f in active:
            s = sf.get(sf_name)
            h = hs.get(hs_name)
            seen = history.get(key, MISSING)
            if seen is not MISSING and seen[0] == s and seen[1] == h:
                continue  # nothing moved since the last sync, which left them in sync
            _decide(f, s, h, seen, clock, result)
        return result


@dataclass(frozen=True)
class Clock:
    """What decides a two-way conflict: each record's modification time, and the field's own
    change times where the caller fetched them."""

    sf_modified: float
    hs_modified: float
    times: Mapping[str, FieldTimes]


def _decide(f: CompiledField, s: Any, h: Any, seen: Any, clock: Clock, result: Plan) -> None:
    as_hs = f.to_hs(s)
    as_sf = f.to_sf(h)
    if (not isinstance(as_hs, Unmapped) and _same(as_hs, h)) or (
            not isinstance(as_sf, Unmapped) and _same(as_sf, s)):
        return
    rule = f.rule
    if rule is Rule.ALWAYS_SALESFORCE:
        _write(f, "hubspot", h, as_hs, rule, "Salesforce always wins", result)
    elif rule is Rule.ALWAYS_HUBSPOT:
        _write(f, "salesforce", s, as_sf, rule, "HubSpot always wins", result)
    elif rule is Rule.PREFER_SALESFORCE_UNLESS_BLANK:
        if not blank(s):
            _write(f, "hubspot", h, as_hs, rule, "Salesforce has a value", result)
        elif not blank(h):
            _write(f, "salesforce", s, as_sf, rule, "Salesforce is blank", result)
    elif rule is Rule.PREFER_HUBSPOT_UNLESS_BLANK:
        if not blank(h):
            _write(f, "salesforce", s, as_sf, rule, "HubSpot has a value", result)
        elif not blank(s):
            _write(f, "hubspot", h, as_hs, rule, "HubSpot is blank", result)
    else:
        _two_way(f, s, h, seen, as_hs, as_sf, clock, result)


def _two_way(f: CompiledField, s: Any, h: Any, seen: Any, as_hs: Any, as_sf: Any,
             clock: Clock, result: Plan) -> None:
    rule = Rule.TWO_WAY
    if seen is MISSING:
        sf_changed = hs_changed = True
    else:
        sf_changed = not _same(s, seen[0])
        hs_changed = not _same(h, seen[1])
    if sf_changed and not hs_changed:
        _write(f, "hubspot", h, as_hs, rule, "changed in Salesforce", result)
    elif hs_changed and not sf_changed:
        _write(f, "salesforce", s, as_sf, rule, "changed in HubSpot", result)
    elif blank(s) != blank(h):
        if blank(h):
            _write(f, "hubspot", h, as_hs, rule, "HubSpot is blank", result)
        else:
            _write(f, "salesforce", s, as_sf, rule, "Salesforce is blank", result)
    elif (known := clock.times.get(f.key)) is not None:
        salesforce_later = known.sf >= known.hs
        told = (f"Salesforce {f.sf} changed {_when(known.sf)} ({known.sf_from}), HubSpot "
                f"{f.hs} {_when(known.hs)} ({known.hs_from})")
        if salesforce_later:
            _write(f, "hubspot", h, as_hs, rule,
                   f"conflict: both changed; Salesforce's is later: {told}", result)
        else:
            _write(f, "salesforce", s, as_sf, rule,
                   f"conflict: both changed; HubSpot's is later: {told}", result)
    else:
        if seen is not MISSING:  # a real conflict: its field times may decide it better
            result.conflicts.append(f.key)
        if clock.sf_modified >= clock.hs_modified:
            _write(f, "hubspot", h, as_hs, rule,
                   "conflict: both changed; Salesforce modified later", result)
        else:
            _write(f, "salesforce", s, as_sf, rule,
                   "conflict: both changed; HubSpot modified later", result)


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds")


def _write(f: CompiledField, side: Side, old: Any, new: Any, rule: Rule, reason: str,
           result: Plan) -> None:
    target = f.hs if side == "hubspot" else f.sf
    if isinstance(new, Unmapped):
        result.warnings.append(f"{target}: not written: {new.reason}")
        return
    if blank(new) and not blank(old) and rule is not Rule.TWO_WAY and rule.value.startswith(
            "prefer"):
        return  # a blank never overwrites a value under prefer_*_unless_blank
    if f.limit is not None and isinstance(new, str) and len(new) == f.limit:
        result.warnings.append(f"{target}: value cut to {f.limit} characters")
    result.changes.append(FieldChange(side, target, old, new, rule.value, reason, f.key))


def apply(plan: Plan, sf: dict[str, Any], hs: dict[str, Any]) -> None:
    """Apply planned changes to in-memory records (what a successful write does)."""
    for change in plan.changes:
        (hs if change.side == "hubspot" else sf)[change.field] = change.new


def synced(planner: PairPlanner, sf: Mapping[str, Any], hs: Mapping[str, Any]
           ) -> dict[str, tuple[Any, Any]]:
    """The last-synced values to remember after a successful write."""
    return {f.key: (sf.get(f.sf), hs.get(f.hs)) for f in planner.fields}
