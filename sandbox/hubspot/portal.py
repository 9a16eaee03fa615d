"""The emulated HubSpot portal's records and the rules HubSpot applies to writes.

Reproduced on purpose: values are stored and returned as strings; ``lifecyclestage`` only moves
forward unless it is first cleared (a backward set is silently ignored); every record of one
batch gets the same modification timestamp; archiving does not touch the last-modified date;
and search reads an index that lags writes by ``search_lag`` seconds.

Record lifecycle, as HubSpot runs it (sources in sandbox/README.md's fidelity table): a contact
or company created without ``lifecyclestage`` gets ``lead``; a second after a create HubSpot
fills in a calculated property, which moves the last-modified date with no user edit; a merge
makes a new record with a new id (``hs_merged_object_ids`` lists both old ids), the old ids leave
no archive entry and only reads by id still answer for them (with the new record); archives are
purged after ``ARCHIVE_DAYS`` days.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from sandbox.hubspot.schema import (
    ASSOCIATION_TYPES,
    DEAL_REQUIRED,
    DEFAULT_PIPELINE,
    ENGAGEMENTS,
    EXTERNAL_OPTIONS,
    LAST_MODIFIED,
    LIFECYCLE_STAGES,
    PROPERTIES,
    ROLLUP_COUNTS,
    SINGULAR,
    Pipeline,
    Prop,
    pipelines_body,
)
from sandbox.timeutil import hs_format, parse_iso, utcnow

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CALCULATED_AFTER_SECONDS = 1.0  # HubSpot's own update of calculated properties after a create
CALCULATED_PROPERTY = "hs_analytics_source_data_1"
ARCHIVE_DAYS = 90  # HubSpot purges archived records after 90 days
MERGED = "hs_merged_object_ids"


class ValidationFailed(Exception):
    """The whole request is refused with HubSpot's 400 VALIDATION_ERROR body."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        super().__init__(problems)
        self.problems = problems

    def body(self, correlation_id: str) -> dict[str, Any]:
        listed = [{"isValid": False, "message": p["message"], "error": p["code"],
                   "name": p["name"]} for p in self.problems]
        return {
            "status": "error",
            "message": "Property values were not valid: " + json.dumps(listed,
                                                                       separators=(",", ":")),
            "correlationId": correlation_id,
            "errors": [{"message": p["message"], "code": p["code"],
                        "context": {"propertyName": [p["name"]]}} for p in self.problems],
            "category": "VALIDATION_ERROR",
        }


@dataclass
class HsRecord:
    id: str
    properties: dict[str, str | None]
    created: dt.datetime
    updated: dt.datetime
    archived: bool = False
    archived_at: dt.datetime | None = None
    # Comparable forms of property values, memoised by search. Only search-index snapshots,
    # which never change after publication, use it.
    keys: dict[str, Any] = field(default_factory=dict)
    # Each property's values, newest first: (value, when, source type), as HubSpot keeps
    # them and answers ``propertiesWithHistory`` with.
    history: dict[str, list[tuple[str | None, dt.datetime, str]]] = field(default_factory=dict)

    def note(self, before: dict[str, str | None], now: dt.datetime, source: str) -> None:
        """History entries for the properties that changed from ``before``."""
        for name, value in self.properties.items():
            if name not in before or before[name] != value:
                self.history.setdefault(name, []).insert(0, (value, now, source))


@dataclass
class Portal:
    """All records of the emulated portal. One lock: the server is a single process."""

    portal_id: int = 44237313
    search_lag: float = 0.0
    records: dict[str, dict[str, HsRecord]] = field(
        default_factory=lambda: {name: {} for name in PROPERTIES})
    # The portal's property definitions, per object: HubSpot's own and the custom ones seeded,
    # plus what ``POST /crm/v3/properties/{objectType}`` creates (and an admin deletes).
    properties: dict[str, dict[str, Prop]] = field(
        default_factory=lambda: {name: dict(props) for name, props in PROPERTIES.items()})
    owners: list[dict[str, Any]] = field(default_factory=list)
    associations: dict[tuple[str, str], dict[str, dict[str, set[int]]]] = field(
        default_factory=dict)
    # Association labels the portal's users made (Settings > Objects > Associations, or
    # ``POST /crm/v4/associations/{from}/{to}/labels``): none in a new portal.
    user_labels: dict[tuple[str, str], list[tuple[int, str | None]]] = field(
        default_factory=dict)
    _label_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    lock: threading.RLock = field(default_factory=threading.RLock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))
    _emails: dict[str, str] = field(default_factory=dict)
    _search_view: dict[str, dict[str, HsRecord]] = field(
        default_factory=lambda: {name: {} for name in PROPERTIES})
    _pending: list[tuple[float, int, str, str, HsRecord | None]] = field(default_factory=list)
    # The latest write applied to search, by record: a write made later never loses to an
    # earlier one still waiting (a write dated in the past is due at once).
    _applied: dict[tuple[str, str], int] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    default_lifecycle: bool = True  # contacts and companies created without a stage get "lead"
    calculated_touch: bool = True  # HubSpot updates a calculated property after each create
    _calculated: list[tuple[float, int, str, str]] = field(default_factory=list)
    merged_into: dict[str, dict[str, str]] = field(
        default_factory=lambda: {name: {} for name in PROPERTIES})
    # The portal's deal pipelines and lifecycle stages (in funnel order): the only source of
    # valid dealstage, pipeline and lifecyclestage values (their properties have
    # externalOptions: true and list no, or only the default, options).
    deal_pipelines: list[Pipeline] = field(default_factory=lambda: [DEFAULT_PIPELINE])
    lifecycle: list[tuple[str, str]] = field(default_factory=lambda: list(LIFECYCLE_STAGES))
    _listing: dict[str, tuple[tuple[int, str | None], list[int]]] = field(default_factory=dict)

    # -- the list endpoint ---------------------------------------------------------------
    def listed(self, object_type: str, archived: bool, after: int, limit: int
               ) -> tuple[list[HsRecord], bool]:
        """A page of the list endpoint: records in id order past ``after``, and whether more
        follow. The ids in order are kept between pages (found again when records come or go:
        a create always adds the newest id, a removal shortens the table), so a page costs
        its own records, not a sort of the whole table: a 200,000-contact listing read 100 a
        page was quadratic."""
        rows = self.records[object_type]
        version = (len(rows), next(reversed(rows), None))
        cached = self._listing.get(object_type)
        if cached is None or cached[0] != version:
            cached = (version, sorted(int(i) for i in rows))
            self._listing[object_type] = cached
        ids = cached[1]
        page: list[HsRecord] = []
        at = bisect.bisect_right(ids, after)
        while at < len(ids) and len(page) <= limit:
            record = rows[str(ids[at])]
            if record.archived == archived:
                page.append(record)
            at += 1
        return page[:limit], len(page) > limit

    # -- pipelines -----------------------------------------------------------------------
    def add_lifecycle_stage(self, stage_id: str, label: str, after: str) -> None:
        """A stage the portal defined itself, placed after ``after`` in the funnel."""
        at = next((i + 1 for i, (v, _) in enumerate(self.lifecycle) if v == after),
                  len(self.lifecycle))
        self.lifecycle.insert(at, (stage_id, label))

    def pipelines(self, object_type: str) -> list[dict[str, Any]]:
        """``GET /crm/v3/pipelines/{objectType}``'s results."""
        return pipelines_body(object_type, self.deal_pipelines, self.lifecycle)

    def _lifecycle_position(self, stage: str) -> int:
        return next((i for i, (v, _) in enumerate(self.lifecycle) if v == stage), 0)

    def _closed_stages(self) -> set[str]:
        return {sid for p in self.deal_pipelines for sid, _, _, closed in p.stages
                if closed == "true"}

    def _external(self, object_type: str, values: dict[str, str],
                  current: dict[str, str | None] | None) -> list[dict[str, Any]]:
        """Checks only the pipelines can make: a lifecycle stage of the portal's lifecycle
        pipeline; an existing pipeline; a deal stage of the deal's own pipeline."""
        problems: list[dict[str, Any]] = []

        def refuse(name: str, text: str, allowed: list[str]) -> None:
            problems.append({"name": name, "code": "INVALID_OPTION",
                             "message": f"{text} was not one of the allowed options: "
                             f"[{', '.join(allowed)}]"})

        stage = values.get("lifecyclestage")
        if stage and object_type in ("contacts", "companies"):
            allowed = [v for v, _ in self.lifecycle]
            if stage not in allowed:
                refuse("lifecyclestage", stage, allowed)
        if object_type != "deals":
            return problems
        by_id = {p.id: p for p in self.deal_pipelines}
        pipeline_id = values.get("pipeline") or (current or {}).get("pipeline")
        if values.get("pipeline") and values["pipeline"] not in by_id:
            refuse("pipeline", values["pipeline"], list(by_id))
            return problems
        deal_stage = values.get("dealstage") or (
            (current or {}).get("dealstage") if "pipeline" in values else None)
        if deal_stage and pipeline_id in by_id:
            stage_ids = [sid for sid, _, _, _ in by_id[str(pipeline_id)].stages]
            if deal_stage not in stage_ids:
                problems.append({"name": "dealstage", "code": "INVALID_OPTION",
                                 "message": f"{deal_stage} is not a valid stage of pipeline "
                                 f"{pipeline_id}: [{', '.join(stage_ids)}]"})
        elif deal_stage and pipeline_id is None:  # no record to hand: any pipeline's stage
            every = [sid for p in self.deal_pipelines for sid, _, _, _ in p.stages]
            if deal_stage not in every:
                refuse("dealstage", deal_stage, every)
        return problems

    # -- search index --------------------------------------------------------------------
    def _publish(self, object_type: str, record: HsRecord, now: dt.datetime) -> None:
        snapshot = None if record.archived else HsRecord(
            record.id, dict(record.properties), record.created, record.updated)
        if self.search_lag <= 0:
            self._apply(object_type, record.id, snapshot)
            return
        due = now.timestamp() + self.search_lag
        heapq.heappush(self._pending, (due, next(self._seq), object_type, record.id, snapshot))

    def _unpublish(self, object_type: str, record_id: str, now: dt.datetime) -> None:
        """A record leaves the search index, as late as writes reach it."""
        if self.search_lag <= 0:
            self._apply(object_type, record_id, None)
            return
        heapq.heappush(self._pending, (now.timestamp() + self.search_lag, next(self._seq),
                                       object_type, record_id, None))

    def _apply(self, object_type: str, record_id: str, snapshot: HsRecord | None) -> None:
        if snapshot is None:
            self._search_view[object_type].pop(record_id, None)
        else:
            self._search_view[object_type][record_id] = snapshot

    def searchable(self, object_type: str) -> list[HsRecord]:
        """What search sees now: writes older than the lag, in id order."""
        now = utcnow().timestamp()
        with self.lock:
            self.settle()
            while self._pending and self._pending[0][0] <= now:
                _, seq, obj, rid, snapshot = heapq.heappop(self._pending)
                if seq >= self._applied.get((obj, rid), -1):  # never older over newer
                    self._applied[(obj, rid)] = seq
                    self._apply(obj, rid, snapshot)
            return list(self._search_view[object_type].values())

    # -- values --------------------------------------------------------------------------
    def new_id(self) -> str:
        return str(next(self._ids))

    def _owner_ids(self) -> set[str]:
        return {o["id"] for o in self.owners}

    def _coerce(self, object_type: str, name: str, raw: Any) -> tuple[str | None,
                                                                      dict[str, Any] | None]:
        prop = self.properties[object_type].get(name)
        if prop is None:
            return None, {"name": name, "code": "PROPERTY_DOESNT_EXIST",
                          "message": f'Property "{name}" does not exist'}
        if prop.read_only:
            return None, {"name": name, "code": "READ_ONLY_VALUE",
                          "message": f'"{name}" is a read only property; its value cannot be set.'}
        if raw is None or raw == "":
            return "", None
        text = raw if isinstance(raw, str) else (
            ("true" if raw else "false") if isinstance(raw, bool) else str(raw))
        return _typed(prop, text, self._owner_ids())

    def validate(self, object_type: str, properties: Any, *, creating: bool = False,
                 current: HsRecord | None = None) -> dict[str, str]:
        """The properties as stored, or ``ValidationFailed`` naming every bad one. A deal
        create needs a name, a pipeline and a stage of that pipeline; an update is checked
        against the record's pipeline (``current``)."""
        if not isinstance(properties, dict):
            raise ValidationFailed([{"name": "properties", "code": "INVALID_INPUT",
                                     "message": "properties must be an object"}])
        out: dict[str, str] = {}
        problems = []
        for name, raw in properties.items():
            value, problem = self._coerce(object_type, name, raw)
            if problem is not None:
                problems.append(problem)
            elif value is not None:
                out[name] = value
        if creating and object_type == "deals":
            problems += [{"name": name, "code": "REQUIRED_PROPERTY",
                          "message": f'Property "{name}" is required to create a deal'}
                         for name in DEAL_REQUIRED if not out.get(name)]
        if not problems:
            problems = self._external(object_type, out,
                                      current.properties if current is not None else None)
        if problems:
            raise ValidationFailed(problems)
        return out

    # -- writes --------------------------------------------------------------------------
    def email_owner(self, email: str) -> str | None:
        found = self._emails.get(email.strip().lower())
        if found is None:
            return None
        rec = self.records["contacts"].get(found)
        return found if rec is not None and not rec.archived else None

    def create(self, object_type: str, values: dict[str, str], now: dt.datetime) -> HsRecord:
        record = HsRecord(self.new_id(), {}, now, now)
        self._assign(object_type, record, values)
        stamp = hs_format(now)
        record.properties.update({"createdate": stamp, "hs_object_id": record.id,
                                  LAST_MODIFIED[object_type]: stamp})
        if object_type == "contacts":
            record.properties["hs_lastmodifieddate"] = stamp
        if self.default_lifecycle and object_type in ("contacts", "companies") and not \
                record.properties.get("lifecyclestage"):
            record.properties["lifecyclestage"] = "lead"
        self._derive(object_type, record)
        record.note({}, now, "API")
        self.records[object_type][record.id] = record
        if self.calculated_touch:
            heapq.heappush(self._calculated, (now.timestamp() + CALCULATED_AFTER_SECONDS,
                                              next(self._seq), object_type, record.id))
        if object_type == "contacts" and record.properties.get("email"):
            self._emails[str(record.properties["email"])] = record.id
        self._publish(object_type, record, now)
        return record

    def update(self, object_type: str, record: HsRecord, values: dict[str, str],
               now: dt.datetime) -> None:
        old_email = record.properties.get("email")
        before = dict(record.properties)
        self._assign(object_type, record, values)
        record.updated = now
        stamp = hs_format(now)
        record.properties[LAST_MODIFIED[object_type]] = stamp
        if object_type == "contacts":
            record.properties["hs_lastmodifieddate"] = stamp
            new_email = record.properties.get("email")
            if old_email != new_email:
                if old_email:
                    self._emails.pop(old_email, None)
                if new_email:
                    self._emails[new_email] = record.id
        self._derive(object_type, record)
        record.note(before, now, "API")
        self._publish(object_type, record, now)

    def _assign(self, object_type: str, record: HsRecord, values: dict[str, str]) -> None:
        for name, value in values.items():
            if name == "lifecyclestage" and value and record.properties.get(name):
                current = str(record.properties[name])
                if self._lifecycle_position(value) < self._lifecycle_position(current):
                    continue  # HubSpot ignores a backward move unless the stage was cleared
            if name == "email" and value:
                value = value.strip().lower()
            record.properties[name] = value if value != "" else None

    def _derive(self, object_type: str, record: HsRecord) -> None:
        if object_type == "deals":
            stage = record.properties.get("dealstage")
            record.properties["hs_is_closed"] = ("true" if stage in self._closed_stages()
                                                 else "false")

    # -- HubSpot's own changes, merges and purges ----------------------------------------
    def settle(self) -> None:
        """Apply HubSpot's calculated-property updates that are due and purge archives past
        ``ARCHIVE_DAYS``. Called by every read; each update is stamped at its due time (or at
        the record's last write, if a write came later), so results do not depend on when
        they are looked at."""
        now = utcnow()
        with self.lock:
            while self._calculated and self._calculated[0][0] <= now.timestamp():
                due, _, object_type, record_id = heapq.heappop(self._calculated)
                record = self.get(object_type, record_id)
                if record is not None:
                    stamp = max(dt.datetime.fromtimestamp(due, dt.UTC), record.updated)
                    self.calculate(object_type, record, stamp)
            self.purge_archived(now - dt.timedelta(days=ARCHIVE_DAYS))

    def calculate(self, object_type: str, record: HsRecord, stamp: dt.datetime) -> None:
        """HubSpot recalculates a property on its own: the last-modified date moves, no value a
        user can write changes."""
        before = dict(record.properties)
        record.properties[CALCULATED_PROPERTY] = "INTEGRATION"
        record.updated = stamp
        text = hs_format(stamp)
        record.properties[LAST_MODIFIED[object_type]] = text
        record.properties["hs_lastmodifieddate"] = text
        record.note(before, stamp, "CALCULATED")
        self._publish(object_type, record, stamp)

    def purge_archived(self, before: dt.datetime, ids: set[str] | None = None) -> int:
        """Archived records archived before ``before`` (or these ids, archived or not) are
        gone for good: no list, read or search shows them again."""
        purged = 0
        with self.lock:
            for object_type, rows in self.records.items():
                if ids is not None:
                    doomed = [rid for rid in rows if rid in ids]
                else:
                    doomed = [rid for rid, r in rows.items() if r.archived and r.archived_at
                              is not None and r.archived_at < before]
                for rid in doomed:
                    record = rows.pop(rid)
                    email = record.properties.get("email")
                    if object_type == "contacts" and email and self._emails.get(
                            str(email)) == rid:
                        self._emails.pop(str(email), None)
                    self._unpublish(object_type, rid, utcnow())
                    purged += 1
        return purged

    def merge(self, object_type: str, primary: HsRecord, secondary: HsRecord,
              now: dt.datetime) -> HsRecord:
        """HubSpot's merge: a new record with a new id takes the primary's values (the
        secondary's where the primary has none); both old records disappear without an
        archive entry, and their ids (and the ids merged into them before) are listed in
        ``hs_merged_object_ids``. Associations of both move to the new record."""
        merged_ids = {primary.id, secondary.id}
        for old in (primary, secondary):
            merged_ids.update(i for i in str(old.properties.get(MERGED) or "").split(";") if i)
        values: dict[str, str | None] = {
            k: v for k, v in secondary.properties.items() if v is not None}
        values.update({k: v for k, v in primary.properties.items() if v is not None})
        record = HsRecord(self.new_id(), values, now, now)
        stamp = hs_format(now)
        record.properties.update({
            "createdate": stamp, "hs_object_id": record.id, LAST_MODIFIED[object_type]: stamp,
            "hs_lastmodifieddate": stamp,
            MERGED: ";".join(sorted(merged_ids, key=int))})
        # the survivor's history: the values it kept, with the history they came with
        record.history = {**secondary.history, **{
            k: v for k, v in primary.history.items() if primary.properties.get(k) is not None}}
        record.note({k: v for k, v in values.items()}, now, "MERGE")
        rows = self.records[object_type]
        for old in (primary, secondary):
            rows.pop(old.id, None)
            self._unpublish(object_type, old.id, now)
            if old.properties.get("email"):
                self._emails.pop(str(old.properties["email"]), None)
        for alias, target in list(self.merged_into[object_type].items()):
            if target in merged_ids:
                self.merged_into[object_type][alias] = record.id
        for old_id in merged_ids:
            self.merged_into[object_type][old_id] = record.id
        rows[record.id] = record
        if object_type == "contacts" and record.properties.get("email"):
            self._emails[str(record.properties["email"])] = record.id
        for (from_type, to_type), table in list(self.associations.items()):
            for old in (primary, secondary):
                if from_type == object_type and old.id in table:
                    for to_id, types in table.pop(old.id).items():
                        table.setdefault(record.id, {}).setdefault(to_id, set()).update(types)
                if to_type == object_type:
                    for targets in table.values():
                        if old.id in targets:
                            targets.setdefault(record.id, set()).update(targets.pop(old.id))
        self._publish(object_type, record, now)
        return record

    def resolve(self, object_type: str, record_id: str) -> HsRecord | None:
        """A read by id: a merged-away id answers with the record it was merged into (with
        that record's own, new id), as HubSpot's reads by id do."""
        record = self.get(object_type, record_id)
        if record is None and record_id in self.merged_into[object_type]:
            record = self.get(object_type, self.merged_into[object_type][record_id])
        return record

    def archive(self, object_type: str, record: HsRecord, now: dt.datetime) -> None:
        record.archived = True
        record.archived_at = now
        if object_type == "contacts" and record.properties.get("email"):
            self._emails.pop(str(record.properties["email"]), None)
        self._publish(object_type, record, now)

    def restore(self, object_type: str, ids: list[str]) -> list[str]:
        """Archived records back from the recycling bin with their own ids, as a person
        restores them (HubSpot's API has no restore). A contact whose email another contact
        took meanwhile stays archived. Dates stay as they were: no page says a restore moves
        ``lastmodifieddate``, so the sandbox takes the reading under which a change search
        never shows it. Search shows the record again, as late as writes reach it."""
        restored: list[str] = []
        with self.lock:
            for record_id in ids:
                record = self.get(object_type, record_id, archived=True)
                if record is None:
                    continue
                email = str(record.properties.get("email") or "")
                if object_type == "contacts" and email and self.email_owner(email):
                    continue
                record.archived = False
                record.archived_at = None
                if object_type == "contacts" and email:
                    self._emails[email] = record.id
                self._publish(object_type, record, utcnow())
                restored.append(record.id)
        return restored

    def get(self, object_type: str, record_id: str, archived: bool = False) -> HsRecord | None:
        record = self.records[object_type].get(record_id)
        if record is None or record.archived != archived:
            return None
        return record

    def find_by(self, object_type: str, prop: str, value: str) -> HsRecord | None:
        if prop == "hs_object_id":
            return self.get(object_type, value)
        if object_type == "contacts" and prop == "email":
            rid = self.email_owner(value)
            return self.records["contacts"][rid] if rid else None
        for record in self.records[object_type].values():
            if not record.archived and record.properties.get(prop) == value:
                return record
        return None

    # -- associations --------------------------------------------------------------------
    def association_types(self, from_type: str, to_type: str) -> list[tuple[int, str | None]]:
        """The types between two objects: HubSpot's own (unlabeled first), then the labels
        the portal's users made. A label has a type id each way at the same place in both
        lists, so the mirror of a type is found by its index."""
        return [*ASSOCIATION_TYPES.get((from_type, to_type), []),
                *self.user_labels.get((from_type, to_type), [])]

    def add_label(self, from_type: str, to_type: str, label: str,
                  inverse_label: str | None = None) -> list[tuple[int, str | None]]:
        """A user-defined label, as ``POST .../labels`` makes it: a new type id for each
        direction (ids from 1000 up, where HubSpot's user-defined ones start); the inverse
        label names the other direction (the same label when none is given)."""
        with self.lock:
            forward = (next(self._label_ids), label)
            backward = (next(self._label_ids), inverse_label or label)
            self.user_labels.setdefault((from_type, to_type), []).append(forward)
            if (to_type, from_type) != (from_type, to_type):
                self.user_labels.setdefault((to_type, from_type), []).append(backward)
            return [forward, backward]

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str,
                  type_ids: list[int]) -> None:
        """Associate two records with these types, as HubSpot does: a label comes with the
        unlabeled type (batch reads list both, as recorded); a record has one ``Primary``
        of an object, so a new primary demotes the old one to unlabeled (HubSpot's
        associations guide); and the rollup properties of both records follow."""
        pairs = self.association_types(from_type, to_type)
        reverse = self.association_types(to_type, from_type)
        wanted = set(type_ids) | {pairs[0][0]} if pairs else set(type_ids)
        forward = self.associations.setdefault((from_type, to_type), {})
        backward = self.associations.setdefault((to_type, from_type), {})
        for index, (type_id, label) in enumerate(pairs):
            if type_id in wanted and label == "Primary":
                mirror = reverse[index][0] if index < len(reverse) else None
                for other, types in forward.get(from_id, {}).items():
                    if other != to_id and type_id in types:
                        types.discard(type_id)
                        if mirror is not None:
                            backward.get(other, {}).get(from_id, set()).discard(mirror)
        forward.setdefault(from_id, {}).setdefault(to_id, set()).update(wanted)
        mirrored = [reverse[i][0] for i, (t, _) in enumerate(pairs)
                    if t in wanted and i < len(reverse)]
        backward.setdefault(to_id, {}).setdefault(from_id, set()).update(mirrored)
        self._rollups(from_type, from_id)
        self._rollups(to_type, to_id)

    def remove_types(self, from_type: str, from_id: str, to_type: str, to_id: str,
                     type_ids: set[int]) -> None:
        """Take labels off an association; the unlabeled type takes the whole association
        (``batch/labels/archive``, as the v4 spec describes it)."""
        pairs = self.association_types(from_type, to_type)
        if pairs and pairs[0][0] in type_ids:
            self.dissociate(from_type, from_id, to_type, to_id)
            return
        reverse = self.association_types(to_type, from_type)
        types = self.associations.get((from_type, to_type), {}).get(from_id, {}).get(to_id)
        back = self.associations.get((to_type, from_type), {}).get(to_id, {}).get(from_id)
        for index, (type_id, _) in enumerate(pairs):
            if type_id in type_ids:
                if types is not None:
                    types.discard(type_id)
                if back is not None and index < len(reverse):
                    back.discard(reverse[index][0])
        self._rollups(from_type, from_id)
        self._rollups(to_type, to_id)

    def dissociate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        self.associations.get((from_type, to_type), {}).get(from_id, {}).pop(to_id, None)
        self.associations.get((to_type, from_type), {}).get(to_id, {}).pop(from_id, None)
        self._rollups(from_type, from_id)
        self._rollups(to_type, to_id)

    def _rollups(self, object_type: str, record_id: str) -> None:
        """The properties HubSpot keeps from a record's associations: a contact's
        ``associatedcompanyid`` (its primary company, in the recorded property list) and the
        ``num_associated_*`` counts. A change moves the record's last-modified date, which is
        how an incremental read sees an association change (deals record no company rollup:
        a deal's company changed alone is seen when the deal next changes)."""
        record = self.get(object_type, record_id)
        if record is None:
            return
        values: dict[str, str | None] = {}
        for prop, to_type in ROLLUP_COUNTS.get(object_type, ()):
            values[prop] = str(len(self.associated(object_type, record_id, to_type)))
        if object_type == "contacts":
            primary = [to for to, types in self.associated(
                "contacts", record_id, "companies").items() if 1 in types]
            values["associatedcompanyid"] = primary[0] if primary else None
            logged = [str(done.properties.get("hs_timestamp")) for kind in ENGAGEMENTS
                      if kind != "tasks" for done_id in self.associated("contacts", record_id, kind)
                      if (done := self.get(kind, done_id)) is not None
                      and done.properties.get("hs_timestamp")]
            # "Last activity date": the latest call, email, meeting or note logged for it
            # (HubSpot's definition; a task is a plan, not an activity)
            if logged:
                values["notes_last_updated"] = max(logged, key=parse_iso)
        if all(record.properties.get(k) == v for k, v in values.items()):
            return
        now = utcnow()
        before = dict(record.properties)
        record.properties.update(values)
        record.updated = now
        stamp = hs_format(now)
        record.properties[LAST_MODIFIED[object_type]] = stamp
        if object_type == "contacts":
            record.properties["hs_lastmodifieddate"] = stamp
        record.note(before, now, "CALCULATED")
        self._publish(object_type, record, now)

    def associated(self, from_type: str, from_id: str, to_type: str) -> dict[str, set[int]]:
        return {to: types for to, types in self.associations.get(
            (from_type, to_type), {}).get(from_id, {}).items() if types}

    def now(self) -> dt.datetime:
        return utcnow()

    def singular(self, object_type: str) -> str:
        return SINGULAR[object_type]


def _typed(prop: Prop, text: str, owner_ids: set[str]) -> tuple[str | None,
                                                                dict[str, Any] | None]:
    name = prop.name
    if prop.type == "number":
        try:
            number = float(text)
        except ValueError:
            return None, {"name": name, "code": "INVALID_DECIMAL",
                          "message": f"{text} was not a valid decimal"}
        return (str(int(number)) if number.is_integer() and "." not in text else text), None
    if prop.type == "bool":
        if text.lower() not in ("true", "false"):
            return None, {"name": name, "code": "INVALID_BOOLEAN",
                          "message": f"{text} was not a valid boolean"}
        return text.lower(), None
    if prop.type in ("datetime", "date"):
        try:
            value = (dt.datetime.fromtimestamp(int(text) / 1000, dt.UTC) if text.isdigit()
                     else parse_iso(text))
        except (ValueError, OverflowError):
            return None, {"name": name, "code": "INVALID_DATE",
                          "message": f"{text} was not a valid date"}
        return hs_format(value), None
    if name == "hubspot_owner_id":
        if text not in owner_ids:
            return None, {"name": name, "code": "INVALID_OWNER_ID",
                          "message": f"{text} is not a valid owner id"}
        return text, None
    if prop.type == "enumeration" and name not in EXTERNAL_OPTIONS:
        allowed = [value for value, _ in prop.options]
        if text not in allowed:
            return None, {"name": name, "code": "INVALID_OPTION",
                          "message": f"{text} was not one of the allowed options: "
                          f"[{', '.join(allowed)}]"}
        return text, None
    if name == "email" and not EMAIL_PATTERN.match(text.strip()):
        return None, {"name": name, "code": "INVALID_EMAIL",
                      "message": f"Email address {text} is invalid"}
    if len(text) > 65536:
        return None, {"name": name, "code": "INVALID_STRING",
                      "message": "value is longer than 65536 characters"}
    return text, None
