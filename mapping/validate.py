"""Offline validation of a mapping file: every problem at once, each with its line and fix.

Sections are validated one by one (each object pair, stage map and SLA rule on its own), so a
broken section does not hide the problems of the others. Then the checks no schema can express:
fields targeted twice, stages mapped twice or left out, recycle cycles, dangling references.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from mapping.lenient import error_path, lenient
from mapping.loader import LoadError, Located, PathKey, load_file, load_text
from mapping.model import (
    ActivityTasks,
    Association,
    BusinessHours,
    ContactRoles,
    DealPipelines,
    DeleteRule,
    LeadScore,
    MappingFile,
    ObjectPair,
    Owners,
    Recycle,
    SlaRule,
    StageFollow,
    StageMap,
    ValueMap,
)
from mapping.problems import Problem

SECTIONS: dict[str, type[BaseModel]] = {"business_hours": BusinessHours, "owners": Owners,
                                        "lead_score": LeadScore,
                                        "deal_pipelines": DealPipelines,
                                        "activities": ActivityTasks}
# What a Task's WhoId may point to: a pair for activities syncs these with HubSpot contacts.
WHO_OBJECTS = ("Lead", "Contact")


def _vocabulary() -> list[str]:
    words: set[str] = set()
    pending: list[type[BaseModel]] = [MappingFile]
    seen: set[type[BaseModel]] = set()
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            words.add(info.alias or name)
            annotation = info.annotation
            for candidate in _models_in(annotation):
                pending.append(candidate)
    return sorted(words)


def _models_in(annotation: Any) -> Iterable[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        yield from _models_in(arg)
    for meta in getattr(annotation, "__metadata__", ()) or ():
        yield from _models_in(meta)


VOCABULARY = _vocabulary()


@dataclass(frozen=True)
class Known:
    """Names the file gives pairs, stage maps and associations, broken ones too: a reference
    to a broken part is not reported again (the part's own problems are)."""

    pairs: frozenset[str] = frozenset()
    stage_maps: frozenset[str] = frozenset()
    associations: frozenset[str] = frozenset()
    sections: frozenset[str] = frozenset()  # the top-level keys written

    @classmethod
    def written(cls, data: Any) -> Known:
        if not isinstance(data, dict):
            return cls()

        def names(key: str) -> frozenset[str]:
            items = data.get(key)
            return frozenset(str(i["name"]) for i in items if isinstance(i, dict)
                             and isinstance(i.get("name"), str)) if isinstance(items, list) \
                else frozenset()

        maps = data.get("stage_maps")
        return cls(pairs=names("objects"),
                   stage_maps=frozenset(str(k) for k in maps) if isinstance(maps, dict)
                   else frozenset(),
                   associations=names("associations") | names("contact_roles"),
                   sections=frozenset(str(k) for k in data))


class Checker:
    def __init__(self, located: Located, known: Known | None = None) -> None:
        self.located = located
        self.known = known or Known()
        self.problems: list[Problem] = []

    def dangling(self, kind: Literal["pairs", "stage_maps", "associations"], name: str,
                 present: Iterable[str]) -> bool:
        """Whether a reference names nothing: not among the parts that parsed, nor among
        the broken ones (whose own problems are reported)."""
        return name not in set(present) and name not in getattr(self.known, kind)

    def add(self, path: PathKey, message: str, fix: str, severity: str = "error",
            at_key: bool = False) -> None:
        line, column = self.located.where(path, key=at_key)
        key = ".".join(str(p) for p in self.located.original(path))
        self.problems.append(Problem(self.located.file, line, column, key, message, fix,
                                     "warning" if severity == "warning" else "error"))

    def pydantic(self, exc: ValidationError, base: PathKey) -> None:
        errors = exc.errors()
        # A misspelt required key is one mistake: "unknown key" with its "did you mean",
        # not also "required".
        meant: set[PathKey] = set()
        for error in errors:
            path = (*base, *error_path(error["loc"]))
            if error["type"] == "extra_forbidden":
                close = difflib.get_close_matches(str(path[-1]), VOCABULARY, n=1, cutoff=0.6)
                meant |= {(*path[:-1], close[0])} if close else set()
        for error in errors:
            path = (*base, *error_path(error["loc"]))
            kind = error["type"]
            if kind == "extra_forbidden":
                key = str(path[-1])
                close = difflib.get_close_matches(key, VOCABULARY, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}?" if close else "remove it"
                self.add(path, f"unknown key {key!r}", hint, at_key=True)
            elif kind == "missing":
                if path not in meant:
                    self.add(path[:-1], f"{path[-1]!r} is required", f"add {path[-1]}:")
            elif kind in ("literal_error", "enum"):
                expected = error.get("ctx", {}).get("expected", "")
                self.add(path, f"{error['input']!r} is not allowed", f"use one of {expected}")
            elif kind == "union_tag_invalid":
                expected = error.get("ctx", {}).get("expected_tags", "")
                self.add(path, f"unknown kind {error['input'].get('kind')!r}"
                         if isinstance(error["input"], dict) else error["msg"],
                         f"use one of {expected}")
            else:
                self.add(path, error["msg"], "give a value of the expected type")


def _parse(check: Checker) -> MappingFile | None:
    data = check.located.data
    if not isinstance(data, dict):
        check.add((), "the file must be a mapping of keys (version, objects, ...)",
                  "start from `stagesync init`")
        return None
    try:
        return MappingFile.model_validate(data)
    except ValidationError:
        pass
    # Validate section by section so every section's problems are reported.
    top = {k: v for k, v in data.items()}
    for key in top:
        if key not in MappingFile.model_fields:
            close = difflib.get_close_matches(str(key), list(MappingFile.model_fields), n=1)
            check.add((key,), f"unknown key {key!r}",
                      f"did you mean {close[0]!r}?" if close else "remove it", at_key=True)
    if top.get("version") != 1:
        shown = repr(top.get("version"))
        shown = shown if len(shown) <= 40 else shown[:37] + "..."  # one readable line
        check.add(("version",), f"version {shown} is not supported",
                  "write `version: 1`")
    pairs = top.get("objects")
    if not isinstance(pairs, list):
        check.add(("objects",), "objects must be a list of object pairs",
                  "list the object pairs under objects:")
    else:
        for index, item in enumerate(pairs):
            _section(check, ObjectPair, item, ("objects", index))
    maps = top.get("stage_maps") or {}
    if isinstance(maps, dict):
        for name, item in maps.items():
            _section(check, StageMap, item, ("stage_maps", name))
    for index, item in enumerate(top.get("sla") or []):
        _section(check, SlaRule, item, ("sla", index))
    listed: tuple[tuple[str, type[BaseModel]], ...] = (("associations", Association),
                                                       ("contact_roles", ContactRoles),
                                                       ("stage_follows", StageFollow))
    for key, kind in listed:
        for index, item in enumerate(top.get(key) or []):
            _section(check, kind, item, (key, index))
    for key, model in SECTIONS.items():
        if key in top and top[key] is not None:
            _section(check, model, top[key], (key,))
    return None


def _section(check: Checker, model: type[BaseModel], data: Any, path: PathKey) -> None:
    try:
        model.model_validate(data)
    except ValidationError as exc:
        check.pydantic(exc, path)


def _semantics(check: Checker, pairs: list[tuple[int, ObjectPair]], maps: dict[str, StageMap],
               slas: list[tuple[int, SlaRule]], business: BusinessHours | None,
               score: LeadScore | None) -> None:
    names: dict[str, int] = {}
    for index, pair in pairs:
        if pair.name in names:
            check.add(("objects", index, "name"), f"pair name {pair.name!r} is used twice",
                      "give each object pair its own name")
        names[pair.name] = index
    _check_conversions(check, pairs)
    for index, pair in pairs:
        base: PathKey = ("objects", index)
        _check_delete_rules(check, pair, base)
        if pair.conversion is not None and check.dangling("pairs", pair.conversion.to_pair,
                                                          names):
            check.add((*base, "conversion", "to_pair"),
                      f"no object pair named {pair.conversion.to_pair!r}",
                      f"use one of {sorted(names)}")
        written: dict[tuple[str, str], int] = {}
        for f_index, rule in enumerate(pair.fields):
            path = (*base, "fields", f_index)
            sides: tuple[tuple[Literal["salesforce", "hubspot"], str, str], ...] = (
                ("salesforce", "Salesforce field", pair.salesforce),
                ("hubspot", "HubSpot property", pair.hubspot))
            for side, label, obj in sides:
                target = getattr(rule, side)
                if not rule.rule.writes(side):
                    continue
                if (side, target) in written:
                    check.add((*path, side),
                              f"{label} {obj}.{target} is written by two rules (also field "
                              f"#{written[(side, target)]})",
                              "keep one rule per target field, or set one rule to none")
                written[(side, target)] = int(check.located.original(path)[-1])
            if rule.stage_map is not None:
                smap = maps.get(rule.stage_map)
                if smap is None and check.dangling("stage_maps", rule.stage_map, maps):
                    check.add((*path, "stage_map"), f"no stage map named {rule.stage_map!r}",
                              f"use one of {sorted(maps)}")
                elif smap is not None and (
                        smap.salesforce_field != f"{pair.salesforce}.{rule.salesforce}"
                        or smap.hubspot_field != f"{pair.hubspot}.{rule.hubspot}"):
                    check.add((*path, "stage_map"),
                              f"stage map {rule.stage_map!r} is for {smap.salesforce_field} and "
                              f"{smap.hubspot_field}, not {pair.salesforce}.{rule.salesforce} "
                              f"and {pair.hubspot}.{rule.hubspot}",
                              "use the stage map of these fields")
            for t_index, transform in enumerate(rule.transforms):
                if isinstance(transform, ValueMap):
                    _check_value_map(check, transform, (*path, "transforms", t_index))
    if score is not None:
        for _, pair in pairs:
            if pair.name in score.pairs and any(
                    r.salesforce == score.salesforce_field
                    and r.rule.writes("salesforce")
                    for r in pair.fields):
                check.add(("lead_score", "salesforce_field"),
                          f"{pair.salesforce}.{score.salesforce_field} is written by the lead "
                          f"score and by a field rule of pair {pair.name!r}",
                          "keep one of the two")
        for p_index, name in enumerate(score.pairs):
            if check.dangling("pairs", name, names):
                check.add(("lead_score", "pairs", p_index), f"no object pair named {name!r}",
                          f"use one of {sorted(names)}")
    for name, smap in maps.items():
        _check_stage_map(check, name, smap)
    for index, sla in slas:
        path = ("sla", index)
        if check.dangling("pairs", sla.pair, names):
            check.add((*path, "pair"), f"no object pair named {sla.pair!r}",
                      f"use one of {sorted(names)}")
        smap = maps.get(sla.stage_map)
        if smap is None:
            if check.dangling("stage_maps", sla.stage_map, maps):
                check.add((*path, "stage_map"), f"no stage map named {sla.stage_map!r}",
                          f"use one of {sorted(maps)}")
        elif sla.stage not in _side_values(smap, "salesforce") | _side_values(smap, "hubspot"):
            check.add((*path, "stage"), f"stage {sla.stage!r} is not in stage map "
                      f"{sla.stage_map!r}", "name a stage the map lists")
    if business is not None and business.start >= business.end:
        check.add(("business_hours",), f"business hours start at {business.start} but end at "
                  f"{business.end}", "make start earlier than end")


VENDOR = {"salesforce": "Salesforce", "hubspot": "HubSpot"}


def _check_conversions(check: Checker, pairs: list[tuple[int, ObjectPair]]) -> None:
    """A conversion moves a converted Lead's link to the pair of its new Contact: it must end
    there. A pair converting into itself, or conversions leading back to where they began,
    would move links round for ever."""
    order = {pair.name: index for index, pair in pairs}
    into = {pair.name: pair.conversion.to_pair for _, pair in pairs if pair.conversion}
    for index, pair in pairs:
        if pair.conversion is None:
            continue
        path: PathKey = ("objects", index, "conversion", "to_pair")
        if pair.conversion.to_pair == pair.name:
            check.add(path, f"pair {pair.name!r} converts into itself",
                      "name the pair the converted records belong to (a Lead pair converts "
                      "into a Contact pair)")
            continue
        chain, current = [pair.name], pair.conversion.to_pair
        while current in into and current not in chain:
            chain.append(current)
            current = into[current]
        if current == pair.name and index == min(order[name] for name in chain):
            check.add(path, "conversions go round in a cycle: "
                      f"{' → '.join([*chain, pair.name])}",
                      "a conversion must end at a pair that converts no further: remove the "
                      f"conversion of {chain[-1]!r}")


def _check_delete_rules(check: Checker, pair: ObjectPair, base: PathKey) -> None:
    """``recreate`` makes the deleted record again on its own side: the pair must be allowed
    to create there."""
    for side, create in (("salesforce", pair.create_in_salesforce),
                         ("hubspot", pair.create_in_hubspot)):
        if getattr(pair.on_delete, side) is DeleteRule.RECREATE and not create.enabled:
            check.add((*base, "on_delete", side),
                      f"pair {pair.name!r} re-creates records deleted in {VENDOR[side]}"
                      f" but may not create records there",
                      f"set create_in_{side}: {{enabled: true}}, or use gap or "
                      "delete_counterpart")


def _side_values(smap: StageMap, side: str) -> set[str]:
    return {v for pair in smap.stages for v in getattr(pair, side)}


def _check_value_map(check: Checker, vmap: ValueMap, path: PathKey) -> None:
    targets: dict[str, list[str]] = {}
    for source, target in vmap.values.items():
        targets.setdefault(target, []).append(source)
    for target, sources in targets.items():
        if len(sources) > 1 and target not in vmap.reverse:
            check.add((*path, "values"), f"{sources} all map to {target!r}, so the way back is "
                      "ambiguous", f"add reverse: {{{target}: {sources[0]}}}")


def _check_stage_map(check: Checker, name: str, smap: StageMap) -> None:
    base: PathKey = ("stage_maps", name)
    for side in ("salesforce", "hubspot"):
        first: dict[str, int] = {}
        for index, pair in enumerate(smap.stages):
            for value in getattr(pair, side):
                if value in first and first[value] != index:
                    check.add((*base, "stages", index, side),
                              f"{side} stage {value!r} is mapped to two stages (entries "
                              f"{first[value]} and {index})",
                              "list each stage in one entry only")
                first.setdefault(value, index)
        ignored = set(getattr(smap, f"ignore_{side}"))
        for value in ignored & set(first):
            check.add((*base, f"ignore_{side}"), f"{side} stage {value!r} is both mapped and "
                      "ignored", "remove it from one of the two")
    graph: dict[tuple[str, str], str] = {}
    for index, rule in enumerate(smap.recycle):
        known = _side_values(smap, rule.side)
        for attr, label in (("from_stage", "from"), ("to_stage", "to")):
            value = getattr(rule, attr)
            if value not in known:
                check.add((*base, "recycle", index, label),
                          f"{rule.side} stage {value!r} is not mapped in {name!r}",
                          "map the stage in stages:, or name a mapped one")
        graph[(rule.side, rule.from_stage)] = rule.to_stage
    for index, rule in enumerate(smap.recycle):
        if _cycles(graph, rule):
            check.add((*base, "recycle", index),
                      f"recycling {rule.from_stage!r} leads back to itself on {rule.side}",
                      "break the cycle: a recycled record must come to rest")


def _cycles(graph: dict[tuple[str, str], str], rule: Recycle) -> bool:
    seen = {rule.from_stage}
    current = rule.to_stage
    while (rule.side, current) in graph:
        if current in seen:
            return True
        seen.add(current)
        current = graph[(rule.side, current)]
    return current in seen


def _check_deal_pipelines(check: Checker, parsed: MappingFile) -> None:
    """Deals need a pipeline; each route's stage map must be of the pair's stage fields."""
    routing = parsed.deal_pipelines
    deals = [(i, p) for i, p in enumerate(parsed.objects) if p.hubspot == "deals"]
    if routing is None:
        if "deal_pipelines" in check.known.sections:
            return  # written, and broken: its own problems say so
        for index, pair in deals:
            if pair.create_in_hubspot.enabled:
                check.add(("objects", index, "create_in_hubspot"),
                          f"pair {pair.name!r} creates HubSpot deals, which need a pipeline",
                          "add deal_pipelines: {pair: ..., default: {pipeline: default, "
                          "stage_map: ...}}")
        return
    routed = next((p for _, p in deals if p.name == routing.pair), None)
    if routed is None:
        if not check.dangling("pairs", routing.pair, [p.name for _, p in deals]):
            return
        check.add(("deal_pipelines", "pair"), f"no object pair of HubSpot deals named "
                  f"{routing.pair!r}", f"use one of {sorted(p.name for _, p in deals)}")
        return
    pair = routed
    stage = next((f for f in pair.fields if f.stage_map is not None
                  and f.hubspot == "dealstage"), None)
    for where, route in routing.routes():
        path = ("deal_pipelines", where) if where == "default" else (
            "deal_pipelines", "record_types", where)
        smap = parsed.stage_maps.get(route.stage_map)
        if smap is None:
            if check.dangling("stage_maps", route.stage_map, parsed.stage_maps):
                check.add((*path, "stage_map"), f"no stage map named {route.stage_map!r}",
                          f"use one of {sorted(parsed.stage_maps)}")
        elif stage is not None and (
                smap.salesforce_field != f"{pair.salesforce}.{stage.salesforce}"
                or smap.hubspot_field != f"{pair.hubspot}.dealstage"):
            check.add((*path, "stage_map"), f"stage map {route.stage_map!r} is for "
                      f"{smap.salesforce_field} and {smap.hubspot_field}, not "
                      f"{pair.salesforce}.{stage.salesforce} and {pair.hubspot}.dealstage",
                      "use a stage map of these fields")


def _check_associations(check: Checker, parsed: MappingFile) -> None:
    """Associations name two pairs and a lookup no field rule also writes; a stage follow
    names a pair, an association into it, and stages of its property."""
    pairs = {p.name: p for p in parsed.objects}
    names: dict[str, int] = {}
    for index, assoc in enumerate(parsed.associations):
        path = ("associations", index)
        if assoc.name in names:
            check.add((*path, "name"), f"association name {assoc.name!r} is used twice",
                      "give each association its own name")
        names[assoc.name] = index
        for key, name in (("from", assoc.from_pair), ("to", assoc.to_pair)):
            if check.dangling("pairs", name, pairs):
                check.add((*path, key), f"no object pair named {name!r}",
                          f"use one of {sorted(pairs)}")
        source = pairs.get(assoc.from_pair)
        if source is not None and any(f.salesforce == assoc.salesforce_field
                                      and f.rule.writes("salesforce") for f in source.fields):
            check.add((*path, "salesforce_field"),
                      f"{source.salesforce}.{assoc.salesforce_field} is written by a field rule "
                      f"of pair {source.name!r} and by this association",
                      "keep one of the two (set the field rule to none)")
    for index, roles in enumerate(parsed.contact_roles):
        path = ("contact_roles", index)
        if roles.name in names:
            check.add((*path, "name"), f"name {roles.name!r} is used twice",
                      "give each association and contact roles setting its own name")
        names[roles.name] = index
        for key, name in (("from", roles.from_pair), ("to", roles.to_pair)):
            if check.dangling("pairs", name, pairs):
                check.add((*path, key), f"no object pair named {name!r}",
                          f"use one of {sorted(pairs)}")
        if roles.salesforce_object in {p.salesforce for p in parsed.objects}:
            check.add((*path, "salesforce_object"), f"{roles.salesforce_object} is an object "
                      "pair's object, not a roles object", "name OpportunityContactRole")
    for index, follow in enumerate(parsed.stage_follows):
        path = ("stage_follows", index)
        if check.dangling("pairs", follow.pair, pairs):
            check.add((*path, "pair"), f"no object pair named {follow.pair!r}",
                      f"use one of {sorted(pairs)}")
        named = next((a for a in parsed.associations if a.name == follow.association), None)
        if named is None:
            if check.dangling("associations", follow.association, names):
                check.add((*path, "association"),
                          f"no association named {follow.association!r}",
                          f"use one of {sorted(names)}")
        elif named.to_pair != follow.pair:
            check.add((*path, "association"),
                      f"association {named.name!r} points to pair {named.to_pair!r}, not "
                      f"{follow.pair!r}", "name an association whose `to` is this pair")


def _check_activities(check: Checker, objects: list[ObjectPair],
                      settings: ActivityTasks | None) -> None:
    """Activities name pairs of HubSpot contacts and Salesforce Leads or Contacts: a Task's
    WhoId is a Lead or a Contact, and only contacts carry the engagements."""
    if settings is None or not settings.enabled:
        return
    pairs = {p.name: p for p in objects}
    for index, name in enumerate(settings.pairs):
        path = ("activities", "pairs", index)
        pair = pairs.get(name)
        if pair is None:
            if not check.dangling("pairs", name, pairs):
                continue
            close = difflib.get_close_matches(name, list(pairs), n=1)
            check.add(path, f"no object pair named {name!r}",
                      f"did you mean {close[0]!r}?" if close else f"use one of {sorted(pairs)}")
        elif pair.salesforce not in WHO_OBJECTS or pair.hubspot != "contacts":
            fitting = sorted(p.name for p in objects
                             if p.salesforce in WHO_OBJECTS and p.hubspot == "contacts")
            check.add(path, f"pair {name!r} syncs {pair.salesforce} with {pair.hubspot}: a "
                      "Task is written on a Lead or Contact linked to a HubSpot contact",
                      f"use one of {fitting}")


@dataclass
class Checked:
    """What offline validation found: the mapping when it has no error (``strict``), the
    mapping without its broken parts (``lenient``, None when the file's frame is broken) and
    where that one's parts stand in the file (``located``), and every problem."""

    strict: MappingFile | None
    lenient: MappingFile | None
    located: Located
    problems: list[Problem]


def check_all(located: Located) -> Checked:
    """Every offline problem: each part's own (section by section), then the checks across
    parts, run on the parts that parsed so a broken one costs only its own problems."""
    check = Checker(located)
    _parse(check)
    built = lenient(located)
    problems = list(check.problems)
    model, where = built if built is not None else (None, located)
    if model is not None:
        rest = Checker(where, Known.written(located.data))
        _semantics(rest, list(enumerate(model.objects)), dict(model.stage_maps),
                   list(enumerate(model.sla)), model.business_hours, model.lead_score)
        _check_deal_pipelines(rest, model)
        _check_associations(rest, model)
        _check_activities(rest, model.objects, model.activities)
        problems += rest.problems
    problems.sort(key=lambda p: (p.line, p.column))
    has_error = any(p.severity == "error" for p in problems)
    return Checked(model if not has_error else None, model, where, problems)


def check_located(located: Located) -> tuple[MappingFile | None, list[Problem]]:
    """The mapping (None on any error) and every problem found offline."""
    checked = check_all(located)
    return checked.strict, checked.problems


def check_file(path: Path) -> tuple[MappingFile | None, list[Problem]]:
    """Load and validate; returns the mapping (None on any error) and every problem found."""
    try:
        located = load_file(path)
    except LoadError as exc:
        return None, [exc.problem]
    return check_located(located)


def check_text(text: str, file: str = "<mapping>") -> tuple[MappingFile | None, list[Problem]]:
    try:
        located = load_text(text, file)
    except LoadError as exc:
        return None, [exc.problem]
    return check_located(located)
