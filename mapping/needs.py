"""The fields and properties a mapping needs on each side, with the type each must have.

A mapping names fields the org and the portal must have: the default one a custom field on Lead
and Contact (``Lead_Score__c``) and custom properties holding the Salesforce ids and the
cold-lead flag. ``stagesync check`` lists the ones missing; ``stagesync init --create-fields``
creates the HubSpot ones and prints the Salesforce Setup steps (``mapping.field_setup``).

A needed field's type is the one its counterpart has on the other side (a Salesforce Id is held
in a text property), unless the rule converts it (``coerce``), or the setting says (the lead
score is a number, the activities' external id a unique text field).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Literal

from connectors.errors import (
    ConnectorError,
    ReauthenticateError,
    RetriableError,
    UnreachableError,
)
from connectors.records import FieldInfo, ObjectSchema
from mapping.model import Coerce, FieldRule, MappingFile, SetProperty, StageMap, Truncate

System = Literal["salesforce", "hubspot"]
Kind = Literal["text", "number", "integer", "boolean", "date", "datetime", "picklist", "lookup"]
VENDOR = {"salesforce": "Salesforce", "hubspot": "HubSpot"}
TEXT_LENGTH = 255  # Salesforce's longest Text field
ID_LENGTH = 18  # a Salesforce record id
EXTERNAL_ID_LENGTH = 40  # the length of the seeded HubSpot id fields, enough for any HubSpot id
_KINDS: dict[str, Kind] = {
    "int": "integer", "double": "number", "currency": "number", "percent": "number",
    "number": "number", "boolean": "boolean", "bool": "boolean", "date": "date",
    "datetime": "datetime"}
_COERCED: dict[str, Kind] = {"number": "number", "integer": "integer", "boolean": "boolean",
                             "date": "date", "datetime": "datetime", "string": "text"}


@dataclass(frozen=True)
class FieldNeed:
    """One field (Salesforce) or property (HubSpot) the mapping names: where, what type, and
    which setting needs it (``why``)."""

    system: System
    object: str
    name: str
    kind: Kind
    label: str
    why: str
    length: int | None = None  # text
    options: tuple[str, ...] = ()  # picklist
    reference_to: str | None = None  # lookup
    external_id: bool = False  # a unique external id (records are upserted on it)

    @property
    def custom(self) -> bool:
        """Whether the admin adds it (Salesforce custom fields end in ``__c``; a HubSpot
        portal has every property of its own, so a missing one is the admin's to add)."""
        return self.system == "hubspot" or self.name.endswith("__c")

    def type_label(self) -> str:
        """The type as the vendor's Setup or property editor names it."""
        if self.system == "hubspot":
            kind, field_type = hubspot_type(self)
            return f"{kind} ({field_type})"
        return salesforce_type(self)


def hubspot_type(need: FieldNeed) -> tuple[str, str]:
    """``type`` and ``fieldType`` of the HubSpot property (the properties API's values)."""
    return {"text": ("string", "text"), "number": ("number", "number"),
            "integer": ("number", "number"), "boolean": ("bool", "booleancheckbox"),
            "date": ("date", "date"), "datetime": ("datetime", "date"),
            "picklist": ("enumeration", "select"),
            "lookup": ("string", "text")}[need.kind]


def salesforce_type(need: FieldNeed) -> str:
    """The field type as Salesforce Setup names it, with its size."""
    if need.kind == "text":
        size = f"Text({min(need.length or TEXT_LENGTH, TEXT_LENGTH)})"
        return f"{size}, External ID, Unique" if need.external_id else size
    return {"number": "Number(16, 2)", "integer": "Number(18, 0)", "boolean": "Checkbox",
            "date": "Date", "datetime": "Date/Time", "picklist": "Picklist",
            "lookup": f"Lookup({need.reference_to})"}[need.kind]


def label_for(name: str) -> str:
    """A label from an API name: ``Lead_Score__c`` is "Lead Score", ``salesforceleadid``
    stays as it is (the caller may know better)."""
    if "_" not in name and not re.search(r"[a-z][A-Z]", name):
        return name
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name.removesuffix("__c")).replace("_", " ")
    return " ".join(w[:1].upper() + w[1:] for w in words.split()) or name


def _kind_of(info: FieldInfo | None) -> tuple[Kind, int | None]:
    if info is None:
        return "text", None
    if info.type in ("id", "reference"):
        return "text", ID_LENGTH
    kind = _KINDS.get(info.type, "text")
    return kind, (info.length or TEXT_LENGTH) if kind == "text" else None


def _rule_kind(rule: FieldRule, counterpart: FieldInfo | None) -> tuple[Kind, int | None]:
    """The counterpart's kind, unless the rule converts the value."""
    kind, length = _kind_of(counterpart)
    for transform in rule.transforms:
        if isinstance(transform, Coerce):
            kind = _COERCED[transform.to]
            length = TEXT_LENGTH if kind == "text" else None
        elif isinstance(transform, Truncate) and kind == "text":
            length = transform.length
    return kind, length


Schemas = Callable[[System, str], ObjectSchema | None]


def needs(mapping: MappingFile, schemas: Schemas) -> list[FieldNeed]:
    """Every field and property the mapping names, once each (the first setting that needs
    it gives its type), in the order of the file."""
    found: dict[tuple[str, str, str], FieldNeed] = {}
    for need in _named(mapping, schemas):
        key = (need.system, need.object, need.name)
        if key in found:
            if need.why not in found[key].why:
                found[key] = replace(found[key], why=f"{found[key].why}; {need.why}")
            continue
        found[key] = need
    return list(found.values())


def _field(schemas: Schemas, system: System, obj: str, name: str) -> FieldInfo | None:
    schema = schemas(system, obj)
    return schema.fields.get(name) if schema is not None else None


def _named(mapping: MappingFile, schemas: Schemas) -> Iterator[FieldNeed]:
    pairs = {p.name: p for p in mapping.objects}
    for pair in mapping.objects:
        sides: tuple[tuple[System, str], ...] = (("salesforce", pair.salesforce),
                                                 ("hubspot", pair.hubspot))
        for rule in pair.fields:
            why = f"{pair.name}: {rule.salesforce} <-> {rule.hubspot}"
            for (side, obj), (other, other_obj) in (sides, sides[::-1]):
                name, other_name = ((rule.salesforce, rule.hubspot) if side == "salesforce"
                                    else (rule.hubspot, rule.salesforce))
                counterpart = _field(schemas, other, other_obj, other_name)
                kind, length = _rule_kind(rule, counterpart)
                label = label_for(name)
                if label == name and counterpart is not None:
                    label = f"{VENDOR[other]} {counterpart.label}"
                yield FieldNeed(side, obj, name, kind, label, why, length=length)
        if pair.match is not None:
            parts = [(pair.match.salesforce, pair.match.hubspot),
                     *((p.salesforce, p.hubspot) for p in pair.match.also)]
            for sf_name, hs_name in parts:
                why = f"{pair.name}: match key {sf_name} <-> {hs_name}"
                yield FieldNeed("salesforce", pair.salesforce, sf_name, "text",
                                label_for(sf_name), why)
                yield FieldNeed("hubspot", pair.hubspot, hs_name, "text", label_for(hs_name),
                                why)
        for side, create, obj in (("salesforce", pair.create_in_hubspot, pair.salesforce),
                                  ("hubspot", pair.create_in_salesforce, pair.hubspot)):
            for name, values in create.only_when.items():
                yield FieldNeed(side, obj, name, "picklist", label_for(name),
                                f"{pair.name}: create rule only_when", options=tuple(values))
    score = mapping.lead_score
    if score is not None:
        for name in score.pairs:
            scored = pairs.get(name)
            if scored is None:
                continue
            why = f"lead_score of {scored.name}"
            yield FieldNeed("salesforce", scored.salesforce, score.salesforce_field, "integer",
                            label_for(score.salesforce_field), why)
            yield FieldNeed("hubspot", scored.hubspot, score.hubspot_property, "number",
                            label_for(score.hubspot_property), why)
    for name, smap in mapping.stage_maps.items():
        yield from _stage_fields(name, smap)
    for sla in mapping.sla:
        cold = pairs.get(sla.pair)
        for action in sla.actions:
            if cold is not None and isinstance(action, SetProperty):
                flag = action.value.lower() in ("true", "false")
                yield FieldNeed("hubspot", cold.hubspot, action.property,
                                "boolean" if flag else "text", label_for(action.property),
                                f"SLA {sla.name}: set_hubspot_property")
    for assoc in mapping.associations:
        source, target = pairs.get(assoc.from_pair), pairs.get(assoc.to_pair)
        if source is not None and target is not None:
            yield FieldNeed("salesforce", source.salesforce, assoc.salesforce_field, "lookup",
                            label_for(assoc.salesforce_field), f"association {assoc.name}",
                            reference_to=target.salesforce)
    for follow in mapping.stage_follows:
        follower = pairs.get(follow.pair)
        if follower is not None:
            yield FieldNeed("hubspot", follower.hubspot, follow.hubspot_property, "picklist",
                            label_for(follow.hubspot_property), f"stage follow {follow.name}",
                            options=tuple(dict.fromkeys(s.hubspot for s in follow.stages)))
    activities = mapping.activities
    if activities.enabled:
        yield FieldNeed("salesforce", "Task", activities.external_id_field, "text",
                        label_for(activities.external_id_field), "activities",
                        length=EXTERNAL_ID_LENGTH, external_id=True)


def _stage_fields(name: str, smap: StageMap) -> Iterator[FieldNeed]:
    for side, spec in (("salesforce", smap.salesforce_field), ("hubspot", smap.hubspot_field)):
        obj, _, field = spec.partition(".")
        values = tuple(dict.fromkeys(v for p in smap.stages for v in getattr(p, side)))
        system: System = "salesforce" if side == "salesforce" else "hubspot"
        yield FieldNeed(system, obj, field, "picklist", label_for(field), f"stage map {name}",
                        options=values)


class Described:
    """Each object's schema, described once; an object that cannot be described is None (the
    live validation names it). A system that cannot be reached is raised."""

    def __init__(self, salesforce: Callable[[str], ObjectSchema],
                 hubspot: Callable[[str], ObjectSchema]) -> None:
        self.describe = {"salesforce": salesforce, "hubspot": hubspot}
        self.found: dict[tuple[str, str], ObjectSchema | None] = {}

    def __call__(self, system: System, obj: str) -> ObjectSchema | None:
        key = (system, obj)
        if key not in self.found:
            try:
                self.found[key] = self.describe[system](obj)
            except (RetriableError, ReauthenticateError, UnreachableError):
                raise
            except ConnectorError:
                self.found[key] = None
        return self.found[key]


def missing(mapping: MappingFile, schemas: Schemas) -> list[FieldNeed]:
    """The needed fields and properties an object that could be described lacks."""
    out = []
    for need in needs(mapping, schemas):
        schema = schemas(need.system, need.object)
        if schema is not None and need.name not in schema.fields:
            out.append(need)
    return out
