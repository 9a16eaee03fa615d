"""Live validation: the mapping against both systems' real schemas (through ``describe``).

Every field exists on its side, written fields are writable, types fit, text fits, formula
fields are not used to notice changes, and every picklist value either system can hold is
covered (restricted picklists refuse anything else), including deal pipelines' stages.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from connectors.errors import (
    ConnectorError,
    ReauthenticateError,
    RetriableError,
    UnreachableError,
)
from connectors.records import FieldInfo, ObjectSchema
from mapping.loader import Located, PathKey
from mapping.model import (
    Coerce,
    DeleteRule,
    FieldRule,
    MappingFile,
    Rule,
    StageMap,
    Truncate,
    ValueMap,
)
from mapping.problems import Problem
from mapping.rules import pair_rules
from mapping.transforms import Unmapped, compile_chain

Describe = Callable[[str], ObjectSchema]
Labels = Callable[[str, str], dict[str | None, int]]  # association label -> type id
TEXT = {"string", "email", "phone", "url", "textarea", "picklist", "combobox", "id",
        "reference", "enumeration", "phone_number", "multipicklist"}
NUMBER = {"int", "double", "currency", "percent", "number"}
TIME = {"date", "datetime"}


def _family(kind: str) -> str:
    if kind in NUMBER:
        return "number"
    if kind in TIME:
        return "time"
    if kind in ("boolean", "bool"):
        return "boolean"
    return "text"


class LiveChecker:
    def __init__(self, located: Located, salesforce: Describe, hubspot: Describe) -> None:
        self.located = located
        self.describe = {"salesforce": salesforce, "hubspot": hubspot}
        self.cache: dict[tuple[str, str], ObjectSchema | None] = {}
        self.problems: list[Problem] = []
        # the first refusal of each system, and whether any describe of it succeeded
        self.refused: dict[str, ConnectorError] = {}
        self.answered: set[str] = set()

    def add(self, path: PathKey, message: str, fix: str, severity: str = "error") -> None:
        line, column = self.located.where(path)
        self.problems.append(Problem(self.located.file, line, column,
                                     ".".join(str(p) for p in self.located.original(path)),
                                     message, fix,
                                     "warning" if severity == "warning" else "error"))

    def schema(self, side: str, name: str, path: PathKey) -> ObjectSchema | None:
        key = (side, name)
        if key not in self.cache:
            try:
                self.cache[key] = self.describe[side](name)
                self.answered.add(side)
            except (RetriableError, ReauthenticateError, UnreachableError):
                raise  # the system, not the mapping: no object of it can be judged
            except ConnectorError as exc:
                self.cache[key] = None
                self.refused.setdefault(side, exc)
                self.add(path, f"cannot describe {side} object {name!r}: {exc.message}",
                         "check the object name and the integration user's access")
        return self.cache[key]

    def raise_if_unreachable(self) -> None:
        """A system that refused every describe refused the agent, not an object name (a
        wrong password or token): that is one error to fix, not a problem per object."""
        for side, exc in self.refused.items():
            if side not in self.answered:
                raise exc

    def field(self, side: str, schema: ObjectSchema, name: str, path: PathKey
              ) -> FieldInfo | None:
        found = schema.fields.get(name)
        if found is None:
            close = difflib.get_close_matches(name, list(schema.fields), n=1)
            self.add(path, f"{side} {schema.object} has no field {name!r}",
                     f"did you mean {close[0]!r}?" if close else "check the API name")
        return found


def check_live(mapping: MappingFile, located: Located, salesforce: Describe,
               hubspot: Describe, labels: Labels | None = None) -> list[Problem]:
    check = LiveChecker(located, salesforce, hubspot)
    for index, pair in enumerate(mapping.objects):
        base: PathKey = ("objects", index)
        sf = check.schema("salesforce", pair.salesforce, (*base, "salesforce"))
        hs = check.schema("hubspot", pair.hubspot, (*base, "hubspot"))
        if sf is None or hs is None:
            continue
        rules = pair_rules(mapping, pair.name)
        for f_index, rule in enumerate(rules):
            path: PathKey = ((*base, "fields", f_index) if f_index < len(pair.fields)
                             else ("lead_score",))
            _check_rule(check, mapping, rule, sf, hs, path)
        if pair.match is not None:
            check.field("salesforce", sf, pair.match.salesforce, (*base, "match", "salesforce"))
            check.field("hubspot", hs, pair.match.hubspot, (*base, "match", "hubspot"))
            for p_index, part in enumerate(pair.match.also):
                where = (*base, "match", "also", p_index)
                check.field("salesforce", sf, part.salesforce, (*where, "salesforce"))
                check.field("hubspot", hs, part.hubspot, (*where, "hubspot"))
        if pair.on_delete.hubspot is DeleteRule.DELETE_COUNTERPART and not sf.deletable:
            check.add((*base, "on_delete", "hubspot"),
                      f"the integration user may not delete {pair.salesforce} records "
                      "(describe says deletable: false)",
                      f"give it Delete on {pair.salesforce}, or use gap")
        owners = mapping.owners
        if "OwnerId" in sf.fields:
            check.field("hubspot", hs, owners.hubspot_property, ("owners", "hubspot_property"))
    for name, smap in mapping.stage_maps.items():
        _check_stage_map(check, name, smap, mapping)
    _check_deal_pipelines(check, mapping)
    for index, sla in enumerate(mapping.sla):
        sla_pair = next((p for p in mapping.objects if p.name == sla.pair), None)
        sla_hs = check.cache.get(("hubspot", sla_pair.hubspot)) if sla_pair else None
        for a_index, action in enumerate(sla.actions):
            prop = getattr(action, "property", None)
            if prop and sla_hs is not None:
                check.field("hubspot", sla_hs, prop, ("sla", index, "actions", a_index, "property"))
    _check_associations(check, mapping, labels)
    _check_contact_roles(check, mapping, labels)
    _check_activities(check, mapping)
    check.raise_if_unreachable()
    return sorted(check.problems, key=lambda p: (p.line, p.column))


def _check_rule(check: LiveChecker, mapping: MappingFile, rule: FieldRule, sf: ObjectSchema,
                hs: ObjectSchema, path: PathKey) -> None:
    sf_field = check.field("salesforce", sf, rule.salesforce, (*path, "salesforce"))
    hs_field = check.field("hubspot", hs, rule.hubspot, (*path, "hubspot"))
    if sf_field is None or hs_field is None or rule.rule is Rule.NONE:
        return
    if rule.rule.writes("salesforce") and not sf_field.updateable:
        check.add((*path, "rule"), f"rule {rule.rule.value} writes {sf.object}.{sf_field.name}, "
                  "which Salesforce does not let the integration user update",
                  "use always_salesforce or none for this field")
    if rule.rule.writes("hubspot") and not hs_field.updateable:
        check.add((*path, "rule"), f"rule {rule.rule.value} writes {hs.object}.{hs_field.name}, "
                  "which is read-only in HubSpot", "use always_hubspot or none for this field")
    coerced = any(isinstance(t, Coerce) for t in rule.transforms) or rule.stage_map
    if _family(sf_field.type) != _family(hs_field.type) and not coerced:
        check.add((*path, "transforms"), f"{sf_field.name} is {sf_field.type} but "
                  f"{hs_field.name} is {hs_field.type}", "add a coerce transform",
                  "warning")
    if sf_field.calculated and rule.rule.writes("hubspot"):
        check.add((*path, "salesforce"), f"{sf_field.name} is a formula field: its changes never "
                  "bump SystemModstamp, so they are not noticed", "map the fields it is "
                  "computed from, or accept that it syncs only when the record changes",
                  "warning")
    if (rule.rule.writes("salesforce") and _family(sf_field.type) == "text"
            and sf_field.length and sf_field.length < 255 and hs_field.type == "string"
            and not any(isinstance(t, Truncate) for t in rule.transforms)
            and not sf_field.picklist_values and sf_field.type not in ("id", "reference")):
        check.add((*path, "transforms"), f"{sf.object}.{sf_field.name} holds "
                  f"{sf_field.length} characters; longer HubSpot values would be refused",
                  f"add {{kind: truncate, length: {sf_field.length}}}", "warning")
    if rule.stage_map:
        return  # stage maps are checked as a whole below
    vmap = next((t for t in rule.transforms if isinstance(t, ValueMap)), None)
    stage = mapping.stage_maps.get(rule.stage_map) if rule.stage_map else None
    if rule.rule.writes("salesforce") and sf_field.restricted_picklist:
        _coverage(check, rule, hs_field, sf_field, "salesforce", stage, path)
    if rule.rule.writes("hubspot") and hs_field.picklist_values and (
            vmap is not None or hs_field.restricted_picklist):
        _coverage(check, rule, sf_field, hs_field, "hubspot", stage, path)


def _coverage(check: LiveChecker, rule: FieldRule, source: FieldInfo, target: FieldInfo,
              target_side: str, stage: StageMap | None, path: PathKey) -> None:
    """Every value the source can hold must become a value the target accepts."""
    if not source.picklist_values:
        return
    convert, _ = compile_chain(rule.transforms, target_side, stage)
    allowed = set(target.picklist_values)
    vmap = next((t for t in rule.transforms if isinstance(t, ValueMap)), None)
    ignored = set((vmap.ignore_salesforce if target_side == "hubspot" else vmap.ignore_hubspot)
                  if vmap is not None else ())
    for value in source.picklist_values:
        if value in ignored:
            continue  # left out on purpose
        carried = convert(value)
        if isinstance(carried, Unmapped) or (carried is not None and str(carried) not in allowed):
            check.add((*path, "transforms"), f"{source.name} value {value!r} becomes "
                      f"{carried.reason if isinstance(carried, Unmapped) else repr(carried)}, "
                      f"which {target.name} does not accept",
                      f"map {value!r} to one of {sorted(allowed)[:8]}")


def _pipelines_of(mapping: MappingFile | None, name: str, schema: ObjectSchema
                  ) -> list[tuple[str, str]]:
    """The deal pipelines stage map ``name`` writes stages into, each with the mapping path
    that sends deals there: the routes of ``deal_pipelines`` using it, else HubSpot's default
    pipeline (where a deal without one goes)."""
    routing = mapping.deal_pipelines if mapping is not None else None
    routed = [(r.pipeline, "deal_pipelines." + (where if where == "default"
                                                else f"record_types.{where}"))
              for where, r in (routing.routes() if routing else []) if r.stage_map == name]
    if routed:
        return list(dict((p, w) for p, w in reversed(routed) if p in schema.pipelines).items())
    first = "default" if "default" in schema.pipelines else next(iter(schema.pipelines))
    return [(first, "HubSpot's default pipeline")]


def _check_stage_map(check: LiveChecker, name: str, smap: StageMap,
                     mapping: MappingFile | None = None) -> None:
    base: PathKey = ("stage_maps", name)
    for side, spec in (("salesforce", smap.salesforce_field), ("hubspot", smap.hubspot_field)):
        object_name, _, field_name = spec.partition(".")
        schema = check.schema(side, object_name, (*base, f"{side}_field"))
        if schema is None:
            continue
        found = check.field(side, schema, field_name, (*base, f"{side}_field"))
        if found is None:
            continue
        mapped = {v for pair in smap.stages for v in getattr(pair, side)}
        ignored = set(getattr(smap, f"ignore_{side}"))
        # Deal stage ids belong to one pipeline: check against each pipeline the map serves.
        targets: list[tuple[set[str], str]] = [(set(found.picklist_values), "")]
        if side == "hubspot" and field_name == "dealstage" and schema.pipelines:
            targets = [({s.id for s in schema.pipelines[p]},
                        f" in pipeline {p!r} (where {via} sends deals)")
                       for p, via in _pipelines_of(mapping, name, schema)]
        for real, where in targets:
            unmapped = real - mapped - ignored
            meant: set[str] = set()  # a misspelt stage is one mistake, not also "not mapped"
            for index, pair in enumerate(smap.stages):
                for value in getattr(pair, side):
                    if real and value not in real:
                        close = difflib.get_close_matches(value, sorted(unmapped - meant), n=1)
                        meant |= set(close)
                        check.add((*base, "stages", index, side),
                                  f"{spec} has no stage {value!r}{where}",
                                  f"did you mean {close[0]!r}?" if close else
                                  f"use one of {sorted(real)[:10]}")
            for value in sorted(unmapped - meant):
                check.add((*base, "stages"), f"{side} stage {value!r} of {spec} is not "
                          f"mapped{where}", f"map it in stages:, or list it under "
                          f"ignore_{side}:")


def _check_deal_pipelines(check: LiveChecker, mapping: MappingFile) -> None:
    """Every routed pipeline exists, every record type named exists on the Salesforce object,
    and every stage map is of the Opportunity stage and deal stage fields."""
    routing = mapping.deal_pipelines
    pair = next((p for p in mapping.objects if routing and p.name == routing.pair), None)
    if routing is None or pair is None:
        return
    base: PathKey = ("deal_pipelines",)
    sf = check.schema("salesforce", pair.salesforce, (*base, "pair"))
    hs = check.schema("hubspot", pair.hubspot, (*base, "pair"))
    if sf is None or hs is None:
        return
    check.field("salesforce", sf, routing.record_type_field, (*base, "record_type_field"))
    known = sorted(sf.record_types.values())
    for name in routing.record_types:
        if name not in known:
            check.add((*base, "record_types", name), f"{sf.object} has no record type {name!r}",
                      f"use one of {known}" if known else
                      f"{sf.object} has no record types: remove record_types")
    for where, route in routing.routes():
        path: PathKey = (*base, where) if where == "default" else (*base, "record_types", where)
        if route.pipeline not in hs.pipelines:
            labels = sorted(hs.pipelines)
            check.add((*path, "pipeline"), f"HubSpot has no {pair.hubspot} pipeline "
                      f"{route.pipeline!r}", f"use a pipeline's internal id, one of {labels}")


def _check_contact_roles(check: LiveChecker, mapping: MappingFile, labels: Labels | None
                         ) -> None:
    """Each contact roles setting's object and fields exist (the two lookups point at the
    pairs' objects, the role is a picklist holding every role mapped), and each label exists
    between the two HubSpot objects: a label the portal lacks would quietly go unlabeled."""
    pairs = {p.name: p for p in mapping.objects}
    for index, roles in enumerate(mapping.contact_roles):
        base: PathKey = ("contact_roles", index)
        source, target = pairs.get(roles.from_pair), pairs.get(roles.to_pair)
        if source is None or target is None:
            continue  # offline validation names it
        sf = check.schema("salesforce", roles.salesforce_object, (*base, "salesforce_object"))
        if sf is not None:
            for key, name, pair in (("parent_field", roles.parent_field, source),
                                    ("target_field", roles.target_field, target)):
                found = check.field("salesforce", sf, name, (*base, key))
                if found is not None and found.type != "reference":
                    check.add((*base, key), f"{sf.object}.{name} is a {found.type} field, "
                              "not a lookup", f"name a lookup to {pair.salesforce}")
            role = check.field("salesforce", sf, roles.role_field, (*base, "role_field"))
            if role is not None and role.picklist_values:
                for value in roles.labels:
                    if value not in role.picklist_values:
                        check.add((*base, "labels", value), f"{sf.object}.{roles.role_field} "
                                  f"has no value {value!r}",
                                  f"use one of {list(role.picklist_values)}")
        if labels is None or not roles.labels:
            continue
        try:
            known = labels(source.hubspot, target.hubspot)
        except ConnectorError as exc:
            check.add((*base, "labels"), f"cannot read the association labels from "
                      f"{source.hubspot} to {target.hubspot}: {exc.message}",
                      "check the private app's scopes")
            continue
        names = sorted(str(k) for k in known if k is not None)
        for value, label in roles.labels.items():
            if label not in known:
                check.add((*base, "labels", value), f"HubSpot has no association label "
                          f"{label!r} from {source.hubspot} to {target.hubspot}",
                          f"create it (Settings > Objects > Associations) or use one of "
                          f"{names}")


def _check_associations(check: LiveChecker, mapping: MappingFile, labels: Labels | None
                        ) -> None:
    """Each association's lookup is a reference field Salesforce lets the rule write, its
    label exists between the two HubSpot objects, and each stage follow's stages exist."""
    pairs = {p.name: p for p in mapping.objects}
    for index, assoc in enumerate(mapping.associations):
        base: PathKey = ("associations", index)
        source, target = pairs.get(assoc.from_pair), pairs.get(assoc.to_pair)
        if source is None or target is None:
            continue  # offline validation names it
        sf = check.schema("salesforce", source.salesforce, (*base, "from"))
        if sf is not None:
            found = check.field("salesforce", sf, assoc.salesforce_field,
                                (*base, "salesforce_field"))
            if found is not None and found.type != "reference":
                check.add((*base, "salesforce_field"), f"{source.salesforce}."
                          f"{assoc.salesforce_field} is a {found.type} field, not a lookup",
                          f"name a lookup to {target.salesforce}")
            elif found is not None and assoc.rule.writes("salesforce") and not found.updateable:
                check.add((*base, "rule"), f"{source.salesforce}.{assoc.salesforce_field} "
                          "cannot be updated, and the rule writes it",
                          "use always_salesforce")
        if labels is None:
            continue
        try:
            known = labels(source.hubspot, target.hubspot)
        except ConnectorError as exc:
            check.add((*base, "hubspot_label"), f"cannot read the association labels from "
                      f"{source.hubspot} to {target.hubspot}: {exc.message}",
                      "check the private app's scopes")
            continue
        if assoc.hubspot_label not in known:
            names = sorted(str(k) for k in known if k is not None)
            check.add((*base, "hubspot_label"), f"HubSpot has no association label "
                      f"{assoc.hubspot_label!r} from {source.hubspot} to {target.hubspot}",
                      f"use one of {names} or null (unlabeled)")
    for index, follow in enumerate(mapping.stage_follows):
        pair = pairs.get(follow.pair)
        if pair is None:
            continue
        hs = check.schema("hubspot", pair.hubspot, ("stage_follows", index, "pair"))
        if hs is None:
            continue
        prop = check.field("hubspot", hs, follow.hubspot_property,
                           ("stage_follows", index, "hubspot_property"))
        if prop is None or not prop.picklist_values:
            continue
        for s_index, stage in enumerate(follow.stages):
            if stage.hubspot not in prop.picklist_values:
                check.add(("stage_follows", index, "stages", s_index, "hubspot"),
                          f"{pair.hubspot}.{follow.hubspot_property} has no option "
                          f"{stage.hubspot!r}", f"use one of {list(prop.picklist_values)}")


# The Task fields the activities setting writes on every Task (TaskSubtype, CallType and
# CallDurationInSeconds are written only where the org has them).
ACTIVITY_TASK_FIELDS = ("Subject", "Status", "Priority", "ActivityDate", "Description", "WhoId",
                        "OwnerId")


def _check_activities(check: LiveChecker, mapping: MappingFile) -> None:
    """Every Task field the activities setting writes exists and may be created and updated
    (an upsert does both), its Status and Priority are values the picklists hold, the
    external id field is a unique external id."""
    settings = mapping.activities
    if not settings.enabled:
        return
    task = check.schema("salesforce", "Task", ("activities", "enabled"))
    if task is not None:
        for name in ACTIVITY_TASK_FIELDS:
            found = check.field("salesforce", task, name, ("activities", "enabled"))
            if found is not None and not (found.createable and found.updateable):
                check.add(("activities", "enabled"), f"Task.{name} cannot be created and "
                          "updated by the integration user", "grant edit access to the field")
        for key, value in (("status", settings.status), ("priority", settings.priority)):
            found = task.fields.get(key.title())
            if found is not None and found.picklist_values and value not in \
                    found.picklist_values:
                check.add(("activities", key), f"Task.{key.title()} has no value {value!r}",
                          f"use one of {list(found.picklist_values)}")
        ext = check.field("salesforce", task, settings.external_id_field,
                          ("activities", "external_id_field"))
        if ext is not None and not (ext.external_id and ext.unique):
            check.add(("activities", "external_id_field"), f"Task.{ext.name} is not a unique "
                      "external id: an upsert on it could not promise one Task per engagement",
                      "tick External ID and Unique on the field")
        elif ext is not None and not (ext.createable and ext.updateable):
            check.add(("activities", "external_id_field"), f"Task.{ext.name} cannot be "
                      "written by the integration user", "grant edit access to the field")
