"""What a change of mapping would do: pairs added or removed, field rules changed, stages
remapped, and every other setting as ``old → new``. Compares meanings, not text.

The changes that need words (a stage that now translates differently, a delete rule, a match
key) are said in words; every other setting that differs, wherever it is, is listed by its
place in the file with its old and new value, so no change goes unmentioned.
"""

from __future__ import annotations

from typing import Any

from mapping.model import MappingFile, MatchKey
from mapping.transforms import stage_translator

Path = tuple[str, ...]
ARROW = "→"
# Lists whose items are named, so an item is compared with its namesake, not its position.
NAMED = {("objects",): "name", ("sla",): "name", ("associations",): "name",
         ("contact_roles",): "name", ("stage_follows",): "name"}

_VENDOR = {"salesforce": "Salesforce", "hubspot": "HubSpot"}
_DELETES = {  # what a rule does, as a diff line says it
    "gap": "a record deleted in {side} leaves a gap",
    "delete_counterpart": "a record deleted in {side} deletes its counterpart",
    "recreate": "a record deleted in {side} is made again from its counterpart"}


def diff(old: MappingFile, new: MappingFile) -> list[str]:
    lines: list[str] = []
    covered: set[Path] = set()  # what the lines in words already say
    old_pairs = {p.name: p for p in old.objects}
    new_pairs = {p.name: p for p in new.objects}
    for name in sorted(set(old_pairs) - set(new_pairs)):
        lines.append(f"- pair {name}: removed (its records stop syncing)")
    for name in sorted(set(new_pairs) - set(old_pairs)):
        pair = new_pairs[name]
        lines.append(f"+ pair {name}: {pair.salesforce} <-> {pair.hubspot} added")
    covered |= {("objects", n) for n in set(old_pairs) ^ set(new_pairs)}
    for name in sorted(set(old_pairs) & set(new_pairs)):
        before = {_rule_key(f): f for f in old_pairs[name].fields}
        after = {_rule_key(f): f for f in new_pairs[name].fields}
        for key in sorted(set(before) - set(after)):
            lines.append(f"- {name}.{key}: no longer mapped")
        for key in sorted(set(after) - set(before)):
            lines.append(f"+ {name}.{key}: mapped, rule {after[key].rule.value}")
        covered |= {("objects", name, "fields", k) for k in set(before) ^ set(after)}
        for key in sorted(set(before) & set(after)):
            a, b = before[key], after[key]
            if a.rule != b.rule:
                lines.append(f"~ {name}.{key}: rule {a.rule.value} {ARROW} {b.rule.value}")
            if a.stage_map != b.stage_map:
                lines.append(f"~ {name}.{key}: stage map {a.stage_map} {ARROW} {b.stage_map}")
            covered |= {("objects", name, "fields", key, "rule"),
                        ("objects", name, "fields", key, "stage_map")}
        was_key, now_key = old_pairs[name].match, new_pairs[name].match
        if was_key != now_key:
            lines.append(f"~ {name}.match: {_key(was_key)} {ARROW} {_key(now_key)} (records "
                         "not yet linked pair up by the new key)")
        covered.add(("objects", name, "match"))
        for side in ("salesforce", "hubspot"):
            was_rule = getattr(old_pairs[name].on_delete, side)
            now_rule = getattr(new_pairs[name].on_delete, side)
            if was_rule != now_rule:
                lines.append(f"~ {name}.on_delete.{side}: {was_rule.value} {ARROW} "
                             f"{now_rule.value} "
                             f"({_DELETES[now_rule.value].format(side=_VENDOR[side])})")
        covered.add(("objects", name, "on_delete"))
    for name in sorted(set(old.stage_maps) | set(new.stage_maps)):
        was, now = old.stage_maps.get(name), new.stage_maps.get(name)
        if was is None or now is None:
            lines.append(f"{'+' if was is None else '-'} stage map {name}")
            covered.add(("stage_maps", name))
            continue
        covered.add(("stage_maps", name, "stages"))
        for side, target in (("salesforce", "hubspot"), ("hubspot", "salesforce")):
            before_fn, after_fn = stage_translator(was, target), stage_translator(now, target)
            values = sorted({v for p in was.stages + now.stages for v in getattr(p, side)})
            for value in values:
                x, y = before_fn(value), after_fn(value)
                if str(x) != str(y):
                    lines.append(f"~ stage map {name}: {side} {value!r} -> {target} "
                                 f"{_show(x)} becomes {_show(y)}")
    old_sla = {s.name: s for s in old.sla}
    new_sla = {s.name: s for s in new.sla}
    for name in sorted(set(old_sla) ^ set(new_sla)):
        lines.append(f"{'+' if name in new_sla else '-'} SLA {name}")
        covered.add(("sla", name))
    assoc_lines, assoc_covered = _associations(old, new)
    lines += assoc_lines
    covered |= assoc_covered
    lines += _activities(old, new)
    covered.add(("activities",))
    lines += _settings(old, new, covered)
    return lines


def _rule_key(rule: Any) -> str:
    return f"{rule.salesforce}>{rule.hubspot}"


def _settings(old: MappingFile, new: MappingFile, covered: set[Path]) -> list[str]:
    """Every other setting that differs, by its place in the file: ``old → new``."""
    found: list[tuple[str, Path, Any, Any]] = []
    _compare(old.model_dump(mode="json", by_alias=True),
             new.model_dump(mode="json", by_alias=True), (), found)
    lines = []
    for sign, path, before, after in found:
        if any(path[:len(c)] == c for c in covered):
            continue
        where = _place(path)
        if sign == "+":
            lines.append(f"+ {where}: {_plain_value(after)}")
        elif sign == "-":
            lines.append(f"- {where}: {_plain_value(before)}")
        else:
            lines.append(f"~ {where}: {_plain_value(before)} {ARROW} {_plain_value(after)}")
    return lines


def _compare(before: Any, after: Any, path: Path, out: list[tuple[str, Path, Any, Any]]
             ) -> None:
    if before == after:
        return
    if isinstance(before, list) and isinstance(after, list):
        keyed = _keyed(path, before, after)
        if keyed is not None:
            _compare(keyed[0], keyed[1], path, out)
            return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in [*before, *(k for k in after if k not in before)]:
            here = (*path, str(key))
            if key not in after:
                out.append(("-", here, before[key], None))
            elif key not in before:
                out.append(("+", here, None, after[key]))
            else:
                _compare(before[key], after[key], here, out)
        return
    out.append(("~", path, before, after))


def _keyed(path: Path, before: list[Any], after: list[Any]
           ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Lists of settings as dicts: named items by name, field rules by their fields, other
    lists of mappings by position; None for a list of plain values (compared whole)."""
    items = before + after
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    if len(path) == 3 and path[0] == "objects" and path[2] == "fields":
        key = _rule_key_of
    elif path in NAMED:
        def key(item: dict[str, Any]) -> str:
            return str(item.get(NAMED[path]))
    else:
        return ({str(i): v for i, v in enumerate(before)},
                {str(i): v for i, v in enumerate(after)})
    return {key(i): i for i in before}, {key(i): i for i in after}


def _rule_key_of(item: dict[str, Any]) -> str:
    return f"{item.get('salesforce')}>{item.get('hubspot')}"


def _place(path: Path) -> str:
    """A setting's place as an admin finds it: ``leads.Website>website.transforms.0.length``,
    ``SLA mql_follow_up.within_business_hours``, ``business_hours.timezone``."""
    head, rest = path[0], list(path[1:])
    if head == "objects" and rest:
        if len(rest) >= 2 and rest[1] == "fields":
            rest = [rest[0], *rest[2:]]
        return ".".join(rest)
    words = {"sla": "SLA", "stage_maps": "stage map", "associations": "association",
             "contact_roles": "contact roles", "stage_follows": "stage follow"}
    if head in words and rest:
        return f"{words[head]} {'.'.join(rest)}"
    return ".".join(path)


def _plain_value(value: Any) -> str:
    """A value as the file would hold it: ``4`` not ``4.0``, ``none``, ``[mon, tue]``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + ", ".join(_plain_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_plain_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    return text if text else '""'


def _activities(old: MappingFile, new: MappingFile) -> list[str]:
    """The activities setting turned on or off, or changed setting by setting."""
    was, now = old.activities, new.activities
    if was.enabled != now.enabled:
        if now.enabled:
            return [f"+ activities: HubSpot {', '.join(now.types)} on the contacts of "
                    f"{', '.join(now.pairs)} written to Salesforce as completed Tasks (upsert "
                    f"on Task.{now.external_id_field}), from "
                    f"{now.since or 'the first cycle after the change'}"]
        return ["- activities: no longer written to Salesforce (the Tasks written stay)"]
    off = "" if now.enabled else " (activities are off: it applies once they are on)"
    lines = []
    after = now.model_dump(mode="json")
    for key, before in was.model_dump(mode="json").items():
        if before != after[key]:
            lines.append(f"~ activities.{key}: {_plain(before)} {ARROW} "
                         f"{_plain(after[key])}{off}")
    return lines


def _associations(old: MappingFile, new: MappingFile) -> tuple[list[str], set[Path]]:
    """Associations and stage follows added, removed, or changed setting by setting; and
    what the lines cover."""
    lines: list[str] = []
    covered: set[Path] = {("associations",), ("contact_roles",)}
    was = {a.name: a for a in old.associations}
    now = {a.name: a for a in new.associations}
    for name in sorted(set(was) - set(now)):
        lines.append(f"- association {name}: removed (references stop syncing)")
    for name in sorted(set(now) - set(was)):
        a = now[name]
        lines.append(f"+ association {name}: {a.from_pair}.{a.salesforce_field} <-> "
                     f"{a.to_pair} ({a.hubspot_label or 'unlabeled'}), rule {a.rule.value}")
    for name in sorted(set(was) & set(now)):
        after_all = now[name].model_dump(by_alias=True, mode="json")
        for key, before in was[name].model_dump(by_alias=True, mode="json").items():
            after = after_all[key]
            if before != after:
                lines.append(f"~ association {name}.{key}: {_plain(before)} {ARROW} "
                             f"{_plain(after)}")
    roles_was = {r.name: r for r in old.contact_roles}
    roles_now = {r.name: r for r in new.contact_roles}
    for name in sorted(set(roles_was) - set(roles_now)):
        lines.append(f"- contact roles {name}: removed (roles stop syncing; labels stay)")
    for name in sorted(set(roles_now) - set(roles_was)):
        r = roles_now[name]
        lines.append(f"+ contact roles {name}: {r.salesforce_object} -> {r.from_pair}-"
                     f"{r.to_pair} associations, {len(r.labels)} role(s) labelled, rule "
                     f"{r.rule}")
    for name in sorted(set(roles_was) & set(roles_now)):
        before_roles, after_roles = roles_was[name], roles_now[name]
        for role in sorted(set(before_roles.labels) | set(after_roles.labels)):
            was_label = before_roles.labels.get(role)
            now_label = after_roles.labels.get(role)
            if was_label != now_label:
                lines.append(f"~ contact roles {name}: role {role!r} "
                             f"{was_label or 'unlabeled'} {ARROW} "
                             f"{now_label or 'unlabeled'}")
        after_all = after_roles.model_dump(by_alias=True, mode="json", exclude={"labels"})
        for key, before in before_roles.model_dump(by_alias=True, mode="json",
                                                   exclude={"labels"}).items():
            if before != after_all[key]:
                lines.append(f"~ contact roles {name}.{key}: {_plain(before)} {ARROW} "
                             f"{_plain(after_all[key])}")
    follows_was = {f.name: f for f in old.stage_follows}
    follows_now = {f.name: f for f in new.stage_follows}
    covered |= {("stage_follows", name) for name in set(follows_was) ^ set(follows_now)}
    covered |= {("stage_follows", name, "stages") for name in follows_now}
    for name in sorted(set(follows_was) ^ set(follows_now)):
        added = name in follows_now
        f = (follows_now if added else follows_was)[name]
        lines.append(f"{'+' if added else '-'} stage follow {name}: {f.pair}."
                     f"{f.hubspot_property} {'follows' if added else 'no longer follows'} "
                     f"{f.association}")
    for name in sorted(set(follows_was) & set(follows_now)):
        before_map = {s: e.hubspot for e in follows_was[name].stages for s in e.salesforce}
        after_map = {s: e.hubspot for e in follows_now[name].stages for s in e.salesforce}
        for stage in sorted(set(before_map) | set(after_map)):
            if before_map.get(stage) != after_map.get(stage):
                lines.append(f"~ stage follow {name}: {stage!r} lifts to "
                             f"{_plain(before_map.get(stage))} {ARROW} "
                             f"{_plain(after_map.get(stage))}")
    return lines, covered


def _plain(value: object) -> str:
    return _plain_value(getattr(value, "value", value))


def _show(value: object) -> str:
    return getattr(value, "reason", None) or repr(value)


def _key(key: MatchKey | None) -> str:
    """A match key as an admin reads it: ``Website <-> domain (domain)`` and its parts."""
    if key is None:
        return "none"
    parts = [f"{key.salesforce} <-> {key.hubspot} ({key.normalize})",
             *(f"{p.salesforce} <-> {p.hubspot}" for p in key.also)]
    return " + ".join(parts)
