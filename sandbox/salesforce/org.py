"""The emulated org's data and the rules a real org enforces on it.

Records are kept as dicts of native values (datetime, date, bool, numbers, str). Like Salesforce:
every write stamps ``SystemModstamp``/``LastModifiedDate`` to the second (so whole batches share
one stamp), ``""`` is stored as null, deletes go to a recycle bin seen by ``queryAll``, formula
fields are computed on read and never bump ``SystemModstamp``, and converted leads are read-only.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from sandbox.salesforce.duplicates import (
    DuplicateHeader,
    duplicate_error,
    find_duplicates,
    person_name,
)
from sandbox.salesforce.events import derive_times, missing_times
from sandbox.salesforce.ids import make_id, to18
from sandbox.salesforce.schema import (
    HISTORY_OF,
    OBJECTS,
    STAGE_PROBABILITY,
    Field,
    SObject,
)
from sandbox.timeutil import parse_iso, sf_format

EMAIL_PATTERN = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
GET_DELETED_RETENTION = dt.timedelta(days=15)
REPLICATION_WINDOW = dt.timedelta(days=30)


def sf_now() -> dt.datetime:
    """Salesforce stamps records to the second."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def error(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    """One entry of a save result's ``errors``."""
    return {"statusCode": code, "message": message, "fields": fields or []}


@dataclass
class SaveResult:
    id: str | None
    errors: list[dict[str, Any]]
    created: bool | None = None

    @property
    def success(self) -> bool:
        return not self.errors

    def body(self, with_created: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.id is not None:
            out["id"] = self.id
        out["success"] = self.success
        # A Collections result's errors carry no duplicateResult (recorded:
        # doc-collections-create-duplicates-detected-*.json); a single-record answer does.
        out["errors"] = [{k: v for k, v in e.items() if k != "duplicateResult"}
                         for e in self.errors]
        if with_created:
            out["created"] = bool(self.created)
        return out


@dataclass
class DeletedEntry:
    sobject: str
    id: str
    deleted: dt.datetime


@dataclass
class Session:
    token: str
    user_id: str
    issued: dt.datetime
    expires: dt.datetime


@dataclass
class Org:
    """All records of the emulated org, guarded by one lock (the server is single-process)."""

    org_id: str = "00D5g000004SANDBX"
    duplicate_rule: bool = True  # the standard Lead and Contact duplicate rules (``duplicates``)
    api_daily_max: int = 1_000_000
    api_used: int = 0
    session_seconds: int = 7200
    records: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {name: {} for name in OBJECTS})
    deleted_log: list[DeletedEntry] = field(default_factory=list)
    sessions: dict[str, Session] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    integration_user_id: str = ""
    # Which objects each queue (Group of Type Queue) may own: Salesforce's QueueSobject rows.
    queue_objects: dict[str, frozenset[str]] = field(default_factory=dict)
    # Custom fields an admin deleted ("Lead.Lead_Score__c"): gone from describe, SOQL, writes.
    deleted_fields: set[str] = field(default_factory=set)
    created_at: dt.datetime = field(default_factory=sf_now)
    _counters: dict[str, itertools.count[int]] = field(default_factory=dict)
    _email_index: dict[str, dict[str, set[str]]] = field(
        default_factory=lambda: {"Lead": {}, "Contact": {}})
    _name_index: dict[str, dict[tuple[str, str], set[str]]] = field(
        default_factory=lambda: {"Lead": {}, "Contact": {}})
    _unique_index: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    cursors: OrderedDict[str, list[dict[str, Any]]] = field(default_factory=OrderedDict)
    # Fields whose history the org tracks ("Lead": {"Title", "Status"}): an org setting
    # (Setup > Object Manager > Fields & Relationships > Set History Tracking), none by default.
    history_tracked: dict[str, frozenset[str]] = field(default_factory=dict)

    def live_field(self, sobject: SObject, name: str) -> Field | None:
        """A field of ``sobject`` by name (case-insensitive) as this org has it: a deleted
        custom field is no field at all."""
        found = sobject.field_ci(name)
        if found is None or f"{sobject.name}.{found.name}" in self.deleted_fields:
            return None
        return found

    def delete_field(self, sobject_name: str, name: str) -> str:
        """Delete a custom field (standard fields cannot be deleted); its full name."""
        sobject = OBJECTS.get(sobject_name)
        found = self.live_field(sobject, name) if sobject is not None else None
        if sobject is None or found is None or not found.custom:
            raise ValueError(f"{sobject_name} has no custom field {name!r}")
        with self.lock:
            self.deleted_fields.add(f"{sobject.name}.{found.name}")
        return f"{sobject.name}.{found.name}"

    # -- ids -----------------------------------------------------------------------------
    def new_id(self, sobject: str) -> str:
        prefix = OBJECTS[sobject].key_prefix  # the history objects share theirs
        counter = self._counters.setdefault(prefix, itertools.count(1))
        return make_id(prefix, next(counter))

    def find(self, record_id: str) -> tuple[str, dict[str, Any]] | None:
        """Locate any record by id (15 or 18 chars), including deleted ones."""
        full = to18(record_id)
        if full is None:
            return None
        for obj in OBJECTS.values():
            if full.startswith(obj.key_prefix):
                rec = self.records[obj.name].get(full)
                return (obj.name, rec) if rec is not None else None
        return None

    def live(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        full = to18(record_id)
        rec = self.records[sobject].get(full) if full else None
        if rec is None or rec["IsDeleted"]:
            return None
        return rec

    # -- indexes -------------------------------------------------------------------------
    def _index(self, sobject: str, rec: dict[str, Any], add: bool) -> None:
        index = self._email_index.get(sobject)
        email = rec.get("Email")
        if index is not None and isinstance(email, str):
            key = email.strip().casefold()
            bucket = index.setdefault(key, set())
            if add:
                bucket.add(rec["Id"])
            else:
                bucket.discard(rec["Id"])
        names = self._name_index.get(sobject)
        name = person_name(rec)
        if names is not None and name is not None:
            if add:
                names.setdefault(name, set()).add(rec["Id"])
            else:
                names.get(name, set()).discard(rec["Id"])
        for fld in OBJECTS[sobject].fields.values():
            if fld.unique and rec.get(fld.name) is not None:
                uindex = self._unique_index.setdefault((sobject, fld.name), {})
                key = str(rec[fld.name]).casefold()
                if add:
                    uindex[key] = rec["Id"]
                elif uindex.get(key) == rec["Id"]:
                    del uindex[key]

    def ids_with_name(self, sobject: str, name: tuple[str, str]) -> set[str]:
        return set(self._name_index.get(sobject, {}).get(name, set()))

    def ids_with_email(self, sobject: str, email: str) -> set[str]:
        return set(self._email_index.get(sobject, {}).get(email.strip().casefold(), set()))

    def find_by_field(self, sobject: str, fld: Field, value: Any) -> list[str]:
        if fld.unique:
            hit = self._unique_index.get((sobject, fld.name), {}).get(str(value).casefold())
            return [hit] if hit and not self.records[sobject][hit]["IsDeleted"] else []
        if fld.name == "Email" and sobject in self._email_index:
            return sorted(i for i in self.ids_with_email(sobject, str(value))
                          if not self.records[sobject][i]["IsDeleted"])
        if fld.name == "Id":
            rec = self.live(sobject, str(value))
            return [rec["Id"]] if rec else []
        wanted = str(value).casefold()
        return [i for i, r in self.records[sobject].items()
                if not r["IsDeleted"] and str(r.get(fld.name, "")).casefold() == wanted]

    # -- coercion and validation ---------------------------------------------------------
    def _coerce(self, sobject: SObject, fld: Field, raw: Any) -> tuple[Any, dict[str, Any] | None]:
        """Convert a JSON value to the stored value, or return the error Salesforce gives."""
        if raw is None or raw == "":
            return None, None
        t = fld.type
        if t == "boolean":
            if isinstance(raw, bool):
                return raw, None
            if isinstance(raw, str) and raw.lower() in ("true", "false"):
                return raw.lower() == "true", None
            return None, _parser_error("boolean", raw)
        if t in ("int", "double", "currency", "percent"):
            if isinstance(raw, bool):
                return None, _parser_error("double", raw)
            try:
                number = float(raw) if isinstance(raw, str) else raw
            except ValueError:
                return None, _parser_error("double", raw)
            if not isinstance(number, int | float):
                return None, _parser_error("double", raw)
            return (int(number) if t == "int" else number), None
        if t == "date":
            try:
                return dt.date.fromisoformat(str(raw)[:10]), None
            except ValueError:
                return None, _parser_error("date", raw)
        if t == "datetime":
            try:
                return parse_iso(str(raw)).replace(microsecond=0), None
            except ValueError:
                return None, _parser_error("datetime", raw)
        if isinstance(raw, dict | list):
            return None, error("JSON_PARSER_ERROR",
                               f"Cannot deserialize instance of string from START_OBJECT value "
                               f"for field {fld.name}")
        value = raw if isinstance(raw, str) else (
            ("true" if raw else "false") if isinstance(raw, bool) else str(raw))
        if t == "reference":
            full = to18(value)
            if full is None:
                return None, error("MALFORMED_ID", f"{fld.label}: id value of incorrect type: "
                                   f"{value}", [fld.name])
            target = self.find(full)
            allowed = fld.reference_to or tuple(OBJECTS)
            if target is None or target[0] not in allowed or target[1]["IsDeleted"]:
                return None, error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id",
                                   [fld.name])
            if target[0] == "Group" and sobject.name not in self.queue_objects.get(full, ()):
                # describe lists Group, but only a queue that supports the object may own it
                return None, error("INVALID_CROSS_REFERENCE_KEY",
                                   f"{fld.label}: the queue {target[1].get('Name')!r} does not "
                                   f"support {sobject.name} records", [fld.name])
            return full, None
        if t == "email" and not EMAIL_PATTERN.match(value.strip()):
            return None, error("INVALID_EMAIL_ADDRESS",
                               f"{fld.label}: invalid email address: {value}", [fld.name])
        if fld.length and len(value) > fld.length:
            return None, error("STRING_TOO_LONG",
                               f"{fld.label}: data value too large: {value} "
                               f"(max length={fld.length})", [fld.name])
        if fld.picklist is not None and fld.picklist.restricted and (
                value not in fld.picklist.values):
            return None, error("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                               f"{fld.label}: bad value for restricted picklist field: {value}",
                               [fld.name])
        return value, None

    def _prepare(self, sobject: SObject, values: dict[str, Any], creating: bool
                 ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Validate and coerce the writable values of one record."""
        out: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        readonly: list[str] = []
        for name, raw in values.items():
            if name in ("attributes", "Id"):
                continue
            fld = self.live_field(sobject, name)
            if fld is None:
                errors.append(error("INVALID_FIELD",
                                    f"No such column '{name}' on sobject of type {sobject.name}"))
                continue
            if not (fld.createable if creating else fld.updateable):
                readonly.append(fld.name)
                continue
            value, problem = self._coerce(sobject, fld, raw)
            if problem is not None:
                errors.append(problem)
            else:
                out[fld.name] = value
        if readonly:
            errors.append(error(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(readonly)}. Please check the "
                "security settings of this field and verify that it is read/write for your "
                "profile or permission set.", readonly))
        return out, errors

    def _missing_required(self, sobject: SObject, merged: dict[str, Any]) -> dict[str, Any] | None:
        missing = [f.name for f in sobject.fields.values()
                   if f.required_on_create and merged.get(f.name) is None]
        if sobject.name == "Event":
            missing += missing_times(merged)
        if missing:
            return error("REQUIRED_FIELD_MISSING",
                         f"Required fields are missing: [{', '.join(missing)}]", missing)
        return None

    def _duplicate(self, sobject: str, rec: dict[str, Any], own_id: str | None,
                   header: DuplicateHeader | None = None, version: str = "59.0"
                   ) -> dict[str, Any] | None:
        """The standard duplicate rules (``duplicates``): they alert, so an API save is refused
        unless the request's duplicate rule header says ``allowSave=true``."""
        header = header or DuplicateHeader()
        if not self.duplicate_rule or sobject not in ("Lead", "Contact") or header.allow_save:
            return None
        found = find_duplicates(self, sobject, rec, own_id)
        return duplicate_error(self, sobject, found, header, version) if found else None

    def _unique_clash(self, sobject: SObject, rec: dict[str, Any], own_id: str | None
                      ) -> dict[str, Any] | None:
        for fld in sobject.fields.values():
            if fld.unique and rec.get(fld.name) is not None:
                hits = self.find_by_field(sobject.name, fld, rec[fld.name])
                if any(h != own_id for h in hits):
                    return error("DUPLICATE_VALUE",
                                 f"duplicate value found: {fld.name} duplicates value on record "
                                 f"with id: {hits[0]}", [fld.name])
        return None

    def _derive(self, sobject: str, rec: dict[str, Any], given: Collection[str] = ()) -> None:
        """Server-computed fields (``given``: the fields this write set)."""
        if "LastName" in OBJECTS[sobject].fields:
            rec["Name"] = " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p)
        if sobject == "Opportunity":
            stage = rec.get("StageName")
            rec["IsClosed"] = stage in ("Closed Won", "Closed Lost")
            rec["IsWon"] = stage == "Closed Won"
        if sobject == "Task":
            rec["IsClosed"] = rec.get("Status") == "Completed"
        if sobject == "Event":
            derive_times(rec, given)

    # -- writes --------------------------------------------------------------------------
    def plan_create(self, sobject_name: str, values: dict[str, Any], user_id: str,
                    stamp: dt.datetime, header: DuplicateHeader | None = None,
                    version: str = "59.0"
                    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        sobject = OBJECTS[sobject_name]
        if not sobject.createable:
            return None, [error("CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
                                f"entity type {sobject_name} does not support insert")]
        prepared, errors = self._prepare(sobject, values, creating=True)
        if errors:
            return None, errors
        rec: dict[str, Any] = {f.name: None for f in sobject.fields.values()}
        rec.update({
            "IsDeleted": False, "CreatedDate": stamp, "LastModifiedDate": stamp,
            "SystemModstamp": stamp, "CreatedById": user_id, "LastModifiedById": user_id,
        })
        if "OwnerId" in sobject.fields:
            rec["OwnerId"] = user_id
        for fld in sobject.fields.values():
            if fld.type == "boolean" and rec.get(fld.name) is None:
                rec[fld.name] = False
            if fld.picklist is not None and fld.picklist.default and fld.default_on_create:
                rec[fld.name] = fld.picklist.default
        rec.update(prepared)
        if sobject_name == "Opportunity" and "Probability" not in prepared:
            rec["Probability"] = STAGE_PROBABILITY.get(rec.get("StageName") or "", None)
        problem = (self._missing_required(sobject, rec)
                   or self._duplicate(sobject_name, rec, None, header, version)
                   or self._unique_clash(sobject, rec, None))
        if problem is not None:
            return None, [problem]
        self._derive(sobject_name, rec, prepared)
        return rec, []

    def commit_create(self, sobject_name: str, rec: dict[str, Any]) -> str:
        rec["Id"] = self.new_id(sobject_name)
        self.records[sobject_name][rec["Id"]] = rec
        self._one_primary(sobject_name, rec)
        self._index(sobject_name, rec, add=True)
        if self.history_tracked.get(sobject_name):
            self._track(sobject_name, rec, "created", None, None)
        return str(rec["Id"])

    def _one_primary(self, sobject_name: str, rec: dict[str, Any]) -> None:
        """An Opportunity has one primary contact (object reference, OpportunityContactRole
        .IsPrimary): a role made primary demotes the one that was, whose stamps move with it
        (its field changed) so a change read sees the demotion."""
        if sobject_name != "OpportunityContactRole" or not rec.get("IsPrimary"):
            return
        for other in self.records[sobject_name].values():
            if (other["Id"] != rec["Id"] and not other["IsDeleted"] and other["IsPrimary"]
                    and other["OpportunityId"] == rec["OpportunityId"]):
                other["IsPrimary"] = False
                other["LastModifiedDate"] = rec["LastModifiedDate"]
                other["SystemModstamp"] = rec["SystemModstamp"]
                other["LastModifiedById"] = rec["LastModifiedById"]

    def _track(self, sobject_name: str, rec: dict[str, Any], name: str, old: Any,
               new: Any) -> None:
        """One field history row, stamped with the change's time and user."""
        history, parent = HISTORY_OF[sobject_name]
        row_id = self.new_id(history)
        self.records[history][row_id] = {
            "Id": row_id, "IsDeleted": False, parent: rec["Id"],
            "CreatedById": rec.get("LastModifiedById") or rec.get("CreatedById"),
            "CreatedDate": rec.get("LastModifiedDate") or rec.get("CreatedDate"),
            "Field": name, "DataType": "Text" if name != "created" else None,
            "OldValue": old, "NewValue": new}

    def plan_update(self, sobject_name: str, record_id: str | None, values: dict[str, Any],
                    user_id: str, stamp: dt.datetime, header: DuplicateHeader | None = None,
                    version: str = "59.0"
                    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        sobject = OBJECTS[sobject_name]
        if not record_id:
            return None, [error("MISSING_ARGUMENT", "Id not specified in an update call")]
        full = to18(record_id)
        if full is None:
            return None, [error("MALFORMED_ID", f"malformed id {record_id}")]
        current = self.records[sobject_name].get(full)
        if current is None:
            found = self.find(full)
            if found is None:
                return None, [error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")]
            return None, [error("INVALID_ID_FIELD", f"Id {record_id} is not of type "
                                f"{sobject_name}")]
        if current["IsDeleted"]:
            return None, [error("ENTITY_IS_DELETED", "entity is deleted")]
        if sobject_name == "Lead" and current.get("IsConverted"):
            return None, [error("CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead")]
        prepared, errors = self._prepare(sobject, values, creating=False)
        if errors:
            return None, errors
        merged = dict(current)
        merged.update(prepared)
        nulled_required = [f.name for f in sobject.fields.values()
                           if not f.nillable and f.updateable and f.name in prepared
                           and prepared[f.name] is None]
        if nulled_required:
            return None, [error("REQUIRED_FIELD_MISSING",
                                f"Required fields are missing: [{', '.join(nulled_required)}]",
                                nulled_required)]
        problem = self._duplicate(sobject_name, merged, full, header, version) or (
            self._unique_clash(sobject, merged, full))
        if problem is not None:
            return None, [problem]
        if sobject_name == "Opportunity" and "StageName" in prepared and "Probability" not in (
                prepared):
            merged["Probability"] = STAGE_PROBABILITY.get(merged.get("StageName") or "")
        merged["LastModifiedDate"] = stamp
        merged["SystemModstamp"] = stamp
        merged["LastModifiedById"] = user_id
        self._derive(sobject_name, merged, prepared)
        return merged, []

    def commit_update(self, sobject_name: str, merged: dict[str, Any]) -> str:
        old = self.records[sobject_name][merged["Id"]]
        for name in sorted(self.history_tracked.get(sobject_name, ())):
            if old.get(name) != merged.get(name):
                self._track(sobject_name, merged, name, old.get(name), merged.get(name))
        self._index(sobject_name, old, add=False)
        self.records[sobject_name][merged["Id"]] = merged
        self._index(sobject_name, merged, add=True)
        self._one_primary(sobject_name, merged)
        return str(merged["Id"])

    def plan_delete(self, record_id: str, may_delete: Callable[[str], bool] = lambda _: True
                    ) -> tuple[tuple[str, str] | None, list[dict[str, Any]]]:
        full = to18(record_id)
        if full is None:
            return None, [error("MALFORMED_ID", f"malformed id {record_id}")]
        found = self.find(full)
        if found is None:
            return None, [error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")]
        sobject_name, rec = found
        if rec["IsDeleted"]:
            return None, [error("ENTITY_IS_DELETED", "entity is deleted")]
        if not OBJECTS[sobject_name].deletable or not may_delete(sobject_name):
            return None, [error("INSUFFICIENT_ACCESS_OR_READONLY",
                                "insufficient access rights on object id")]
        return (sobject_name, full), []

    def commit_delete(self, sobject_name: str, record_id: str, stamp: dt.datetime,
                      master_id: str | None = None) -> None:
        rec = self.records[sobject_name][record_id]
        self._index(sobject_name, rec, add=False)
        rec["IsDeleted"] = True
        rec["SystemModstamp"] = stamp
        if master_id is not None:
            rec["MasterRecordId"] = master_id
        self.deleted_log.append(DeletedEntry(sobject_name, record_id, stamp))

    # -- batches -------------------------------------------------------------------------
    def save_many(self, kind: str, sobject_names: list[str | None],
                  payloads: list[dict[str, Any]], all_or_none: bool, user_id: str,
                  header: DuplicateHeader | None = None, version: str = "59.0"
                  ) -> list[SaveResult]:
        """Create or update records in one transaction (one shared timestamp)."""
        stamp = sf_now()
        with self.lock:
            planned: list[tuple[str, dict[str, Any]] | None] = []
            results: list[SaveResult] = []
            for name, payload in zip(sobject_names, payloads, strict=True):
                if name is None or name not in OBJECTS:
                    planned.append(None)
                    results.append(SaveResult(None, [error(
                        "INVALID_TYPE", "Must send a concrete entity type.")]))
                    continue
                if kind == "create":
                    rec, errors = self.plan_create(name, payload, user_id, stamp, header,
                                                   version)
                else:
                    rec, errors = self.plan_update(name, payload.get("Id"), payload, user_id,
                                                   stamp, header, version)
                planned.append((name, rec) if rec is not None else None)
                results.append(SaveResult(None, errors))
            if all_or_none and any(not r.success for r in results):
                return [r if not r.success else SaveResult(None, [error(
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "Record rolled back because not all records were valid and the request was "
                    "using AllOrNone header")]) for r in results]
            for index, item in enumerate(planned):
                if item is None:
                    continue
                name, rec = item
                if kind == "create":
                    results[index] = SaveResult(self.commit_create(name, rec), [], created=True)
                else:
                    results[index] = SaveResult(self.commit_update(name, rec), [], created=False)
            return results

    def delete_many(self, ids: list[str], all_or_none: bool,
                    may_delete: Callable[[str], bool] = lambda _: True) -> list[SaveResult]:
        stamp = sf_now()
        with self.lock:
            planned = [self.plan_delete(i, may_delete) for i in ids]
            results = [SaveResult(i, errs) for i, (_, errs) in zip(ids, planned, strict=True)]
            if all_or_none and any(not r.success for r in results):
                return [r if not r.success else SaveResult(r.id, [error(
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "Record rolled back because not all records were valid and the request was "
                    "using AllOrNone header")]) for r in results]
            for (target, _), result in zip(planned, results, strict=True):
                if target is not None:
                    self.commit_delete(target[0], target[1], stamp)
                    result.id = target[1]
            return results

    def upsert(self, sobject_name: str, fld: Field, value: Any, payload: dict[str, Any],
               user_id: str, header: DuplicateHeader | None = None, version: str = "59.0"
               ) -> tuple[SaveResult, list[str]]:
        """Upsert one record by an external id; returns the result and, on >1 match, the ids."""
        with self.lock:
            matches = (self.find_by_field(sobject_name, fld, value)
                       if value not in (None, "") else [])
            if len(matches) > 1:
                return SaveResult(None, []), matches
            body = dict(payload)
            body.pop(fld.name, None)
            if matches:
                body["Id"] = matches[0]
                result = self.save_many("update", [sobject_name], [body], False, user_id,
                                        header, version)[0]
                result.created = False
            else:
                if fld.name != "Id":
                    body[fld.name] = value
                result = self.save_many("create", [sobject_name], [body], False, user_id,
                                        header, version)[0]
                result.created = result.success
            return result, []

    # -- conversion and merge (admin) ----------------------------------------------------
    def convert_lead(self, lead_id: str, converted_status: str | None,
                     create_opportunity: bool, opportunity_name: str | None,
                     account_id: str | None, contact_id: str | None) -> dict[str, Any]:
        """What ``Database.convertLead`` does: Account, Contact, optional Opportunity."""
        from sandbox.salesforce.schema import LEAD_STATUS

        with self.lock:
            lead = self.live("Lead", lead_id)
            if lead is None:
                raise ValueError(f"no live Lead with id {lead_id}")
            if lead["IsConverted"]:
                raise ValueError(f"Lead {lead_id} is already converted")
            status = converted_status or sorted(LEAD_STATUS.converted)[0]
            if status not in LEAD_STATUS.converted:
                raise ValueError(f"{status!r} is not a converted Lead status")
            stamp = sf_now()
            owner = lead["OwnerId"]
            if account_id is None:
                account, errs = self.plan_create("Account", {"Name": lead["Company"],
                                                             "Website": lead.get("Website"),
                                                             "Industry": lead.get("Industry")},
                                                 owner, stamp)
                if account is None:
                    raise ValueError(f"account: {errs}")
                account["OwnerId"] = owner
                account_id = self.commit_create("Account", account)
            if contact_id is None:
                contact_values = {k: lead.get(k) for k in ("FirstName", "LastName", "Email",
                                                           "Phone", "Title", "LeadSource",
                                                           "Lead_Score__c")}
                contact_values["AccountId"] = account_id
                dup = self.duplicate_rule
                self.duplicate_rule = False
                try:
                    contact, errs = self.plan_create("Contact", contact_values, owner, stamp)
                finally:
                    self.duplicate_rule = dup
                if contact is None:
                    raise ValueError(f"contact: {errs}")
                contact["OwnerId"] = owner
                contact_id = self.commit_create("Contact", contact)
            opportunity_id = None
            if create_opportunity:
                opp, errs = self.plan_create("Opportunity", {
                    "Name": opportunity_name or f"{lead['Company']}-",
                    "AccountId": account_id, "ContactId": contact_id,
                    "StageName": "Prospecting",
                    "CloseDate": (stamp + dt.timedelta(days=30)).date().isoformat(),
                    "LeadSource": lead.get("LeadSource"),
                }, owner, stamp)
                if opp is None:
                    raise ValueError(f"opportunity: {errs}")
                opp["OwnerId"] = owner
                opportunity_id = self.commit_create("Opportunity", opp)
            lead.update({
                "IsConverted": True, "Status": status, "ConvertedDate": stamp.date(),
                "ConvertedAccountId": account_id, "ConvertedContactId": contact_id,
                "ConvertedOpportunityId": opportunity_id, "LastModifiedDate": stamp,
                "SystemModstamp": stamp,
            })
            return {"leadId": lead["Id"], "accountId": account_id, "contactId": contact_id,
                    "opportunityId": opportunity_id, "success": True}

    def merge(self, sobject_name: str, master_id: str, merged_ids: list[str]) -> dict[str, Any]:
        """Merge records into a master: the others are deleted with ``MasterRecordId`` set."""
        with self.lock:
            if not OBJECTS[sobject_name].mergeable:
                raise ValueError(f"{sobject_name} records cannot be merged")
            master = self.live(sobject_name, master_id)
            if master is None:
                raise ValueError(f"no live {sobject_name} with id {master_id}")
            if not 1 <= len(merged_ids) <= 2:
                raise ValueError("merge takes one or two records besides the master")
            stamp = sf_now()
            gone = []
            for other in merged_ids:
                rec = self.live(sobject_name, other)
                if rec is None:
                    raise ValueError(f"no live {sobject_name} with id {other}")
                self.commit_delete(sobject_name, rec["Id"], stamp, master_id=master["Id"])
                gone.append(rec["Id"])
            master["LastModifiedDate"] = stamp
            master["SystemModstamp"] = stamp
            return {"id": master["Id"], "mergedRecordIds": gone, "success": True}

    # -- transactions --------------------------------------------------------------------
    def snapshot(self) -> tuple[Any, ...]:
        """The org's data as it is now, for ``restore``: a Composite request with
        ``allOrNone`` true rolls back every write of its subrequests when one fails. Id
        counters are left out on purpose: Salesforce never hands out a rolled-back id again."""
        with self.lock:
            return copy.deepcopy((self.records, self.deleted_log, self._email_index,
                                  self._name_index, self._unique_index))

    def restore(self, state: tuple[Any, ...]) -> None:
        with self.lock:
            (self.records, self.deleted_log, self._email_index, self._name_index,
             self._unique_index) = state

    def purge(self, ids: list[str] | None = None) -> int:
        """Rows gone for good: the given ids (a hard delete, or ``emptyRecycleBin`` of
        deleted ones), or, with none given, every deleted row (the recycle bin emptied).
        Purged rows show in neither ``queryAll`` nor ``getDeleted``."""
        wanted = {to18(i) for i in ids} if ids is not None else None
        purged: set[str] = set()
        with self.lock:
            for sobject, rows in self.records.items():
                doomed = [rid for rid, rec in rows.items()
                          if (rid in wanted if wanted is not None else rec["IsDeleted"])]
                for rid in doomed:
                    rec = rows.pop(rid)
                    if not rec["IsDeleted"]:
                        self._index(sobject, rec, add=False)
                    purged.add(rid)
            self.deleted_log = [e for e in self.deleted_log if e.id not in purged]
        return len(purged)

    def undelete(self, ids: list[str]) -> list[str]:
        """Rows back from the Recycle Bin, with their own ids (SOAP ``undelete()``, or a person
        restoring them). Their stamps stay as they were: no vendor page says a restore moves
        ``SystemModstamp``, so the sandbox takes the reading under which a change read never
        shows a restore. They leave the deleted list. Purged rows cannot come back."""
        restored: list[str] = []
        with self.lock:
            for record_id in ids:
                found = self.find(record_id)
                if found is None or not found[1]["IsDeleted"]:
                    continue
                sobject, rec = found
                rec["IsDeleted"] = False
                self._index(sobject, rec, add=True)
                self.deleted_log = [e for e in self.deleted_log if e.id != rec["Id"]]
                restored.append(str(rec["Id"]))
        return restored

    def age(self, record_id: str, delta: dt.timedelta) -> None:
        """Move a record's stamps (and its deletion, if deleted) ``delta`` into the past."""
        with self.lock:
            found = self.find(record_id)
            if found is None:
                raise ValueError(f"no record with id {record_id}")
            rec = found[1]
            for name in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
                rec[name] = rec[name] - delta
            for entry in self.deleted_log:
                if entry.id == rec["Id"]:
                    entry.deleted -= delta

    # -- reads ---------------------------------------------------------------------------
    def computed(self, sobject_name: str, rec: dict[str, Any], name: str) -> Any:
        if name == "Days_Since_Created__c":
            created: dt.datetime = rec["CreatedDate"]
            return float((sf_now().date() - created.date()).days)
        return rec.get(name)

    def wire(self, sobject_name: str, rec: dict[str, Any], fields: list[str] | None,
             version: str) -> dict[str, Any]:
        """A record as REST returns it: ``attributes`` first, then the requested fields."""
        sobject = OBJECTS[sobject_name]
        out: dict[str, Any] = {"attributes": {
            "type": sobject_name,
            "url": f"/services/data/v{version}/sobjects/{sobject_name}/{rec['Id']}",
        }}
        for name in fields if fields is not None else list(sobject.fields):
            if "." in name:
                rel, _, target = name.partition(".")
                ref_id = rec.get(rel + "Id")
                related = self.find(ref_id) if ref_id else None
                if related is None:
                    out[rel] = None
                    continue
                rel_obj, rel_rec = related
                nested = out.get(rel) or {"attributes": {
                    "type": rel_obj,
                    "url": f"/services/data/v{version}/sobjects/{rel_obj}/{rel_rec['Id']}"}}
                nested[target] = to_json(self.computed(rel_obj, rel_rec, target))
                out[rel] = nested
                continue
            out[name] = to_json(self.computed(sobject_name, rec, name))
        return out

    def rows(self, sobject_name: str, include_deleted: bool) -> list[dict[str, Any]]:
        rows = self.records[sobject_name].values()
        if include_deleted:
            return list(rows)
        return [r for r in rows if not r["IsDeleted"]]


def to_json(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return sf_format(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _parser_error(kind: str, raw: Any) -> dict[str, Any]:
    token = "VALUE_STRING" if isinstance(raw, str) else "VALUE_NUMBER_INT"
    return error("JSON_PARSER_ERROR",
                 f"Cannot deserialize instance of {kind} from {token} value {raw} or request "
                 "may be missing a required field")
