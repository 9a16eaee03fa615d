"""What a change of mapping would do: pairs added or removed, field rules changed, stages
remapped, SLAs changed. Compares meanings, not text."""

from __future__ import annotations

from mapping.model import MappingFile, MatchKey
from mapping.transforms import stage_translator

_VENDOR = {"salesforce": "Salesforce", "hubspot": "HubSpot"}
_DELETES = {  # what a rule does, as a diff line says it
    "gap": "a record deleted in {side} leaves a gap",
    "delete_counterpart": "a record deleted in {side} deletes its counterpart",
    "recreate": "a record deleted in {side} is made again from its counterpart"}


def diff(old: MappingFile, new: MappingFile) -> list[str]:
    lines: list[str] = []
    old_pairs = {p.name: p for p in old.objects}
    new_pairs = {p.name: p for p in new.objects}
    for name in sorted(set(old_pairs) - set(new_pairs)):
        lines.append(f"- pair {name}: removed (its records stop syncing)")
    for name in sorted(set(new_pairs) - set(old_pairs)):
        pair = new_pairs[name]
        lines.append(f"+ pair {name}: {pair.salesforce} <-> {pair.hubspot} added")
    for name in sorted(set(old_pairs) & set(new_pairs)):
        before = {f"{f.salesforce}>{f.hubspot}": f for f in old_pairs[name].fields}
        after = {f"{f.salesforce}>{f.hubspot}": f for f in new_pairs[name].fields}
        for key in sorted(set(before) - set(after)):
            lines.append(f"- {name}.{key}: no longer mapped")
        for key in sorted(set(after) - set(before)):
            lines.append(f"+ {name}.{key}: mapped, rule {after[key].rule.value}")
        for key in sorted(set(before) & set(after)):
            a, b = before[key], after[key]
            if a.rule != b.rule:
                lines.append(f"~ {name}.{key}: rule {a.rule.value} -> {b.rule.value}")
            if a.transforms != b.transforms:
                lines.append(f"~ {name}.{key}: transforms changed")
            if a.stage_map != b.stage_map:
                lines.append(f"~ {name}.{key}: stage map {a.stage_map} -> {b.stage_map}")
        was_key, now_key = old_pairs[name].match, new_pairs[name].match
        if was_key != now_key:
            lines.append(f"~ {name}.match: {_key(was_key)} -> {_key(now_key)} (records "
                         "not yet linked pair up by the new key)")
        for side in ("create_in_hubspot", "create_in_salesforce"):
            if getattr(old_pairs[name], side) != getattr(new_pairs[name], side):
                lines.append(f"~ {name}.{side}: {getattr(old_pairs[name], side)} -> "
                             f"{getattr(new_pairs[name], side)}")
        for side in ("salesforce", "hubspot"):
            was_rule = getattr(old_pairs[name].on_delete, side)
            now_rule = getattr(new_pairs[name].on_delete, side)
            if was_rule != now_rule:
                lines.append(f"~ {name}.on_delete.{side}: {was_rule.value} -> {now_rule.value}"
                             f" ({_DELETES[now_rule.value].format(side=_VENDOR[side])})")
    for name in sorted(set(old.stage_maps) | set(new.stage_maps)):
        was, now = old.stage_maps.get(name), new.stage_maps.get(name)
        if was is None or now is None:
            lines.append(f"{'+' if was is None else '-'} stage map {name}")
            continue
        for side, target in (("salesforce", "hubspot"), ("hubspot", "salesforce")):
            before_fn, after_fn = stage_translator(was, target), stage_translator(now, target)
            values = sorted({v for p in was.stages + now.stages for v in getattr(p, side)})
            for value in values:
                x, y = before_fn(value), after_fn(value)
                if str(x) != str(y):
                    lines.append(f"~ stage map {name}: {side} {value!r} -> {target} "
                                 f"{_show(x)} becomes {_show(y)}")
        if was.recycle != now.recycle:
            lines.append(f"~ stage map {name}: recycle rules changed")
    old_sla = {s.name: s for s in old.sla}
    new_sla = {s.name: s for s in new.sla}
    for name in sorted(set(old_sla) ^ set(new_sla)):
        lines.append(f"{'+' if name in new_sla else '-'} SLA {name}")
    for name in sorted(set(old_sla) & set(new_sla)):
        if old_sla[name] != new_sla[name]:
            lines.append(f"~ SLA {name}: changed")
    lines += _associations(old, new)
    lines += _activities(old, new)
    return lines


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
    if not now.enabled:
        return []
    lines = []
    after = now.model_dump(mode="json")
    for key, before in was.model_dump(mode="json").items():
        if before != after[key]:
            lines.append(f"~ activities.{key}: {_plain(before)} -> {_plain(after[key])}")
    return lines


def _associations(old: MappingFile, new: MappingFile) -> list[str]:
    """Associations and stage follows added, removed, or changed setting by setting."""
    lines: list[str] = []
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
                lines.append(f"~ association {name}.{key}: {_plain(before)} -> "
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
                             f"{was_label or 'unlabeled'} -> {now_label or 'unlabeled'}")
        after_all = after_roles.model_dump(by_alias=True, mode="json", exclude={"labels"})
        for key, before in before_roles.model_dump(by_alias=True, mode="json",
                                                   exclude={"labels"}).items():
            if before != after_all[key]:
                lines.append(f"~ contact roles {name}.{key}: {_plain(before)} -> "
                             f"{_plain(after_all[key])}")
    follows_was = {f.name: f for f in old.stage_follows}
    follows_now = {f.name: f for f in new.stage_follows}
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
                             f"{_plain(before_map.get(stage))} -> "
                             f"{_plain(after_map.get(stage))}")
    return lines


def _plain(value: object) -> str:
    return "none" if value is None else str(getattr(value, "value", value))


def _show(value: object) -> str:
    return getattr(value, "reason", None) or repr(value)


def _key(key: MatchKey | None) -> str:
    """A match key as an admin reads it: ``Website <-> domain (domain)`` and its parts."""
    if key is None:
        return "none"
    parts = [f"{key.salesforce} <-> {key.hubspot} ({key.normalize})",
             *(f"{p.salesforce} <-> {p.hubspot}" for p in key.also)]
    return " + ".join(parts)
