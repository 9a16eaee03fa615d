"""HTTP routes of the HubSpot emulator, in the shapes of HubSpot's OpenAPI specs and recordings."""

from __future__ import annotations

import collections
import datetime as dt
import functools
import itertools
import random
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any, cast
from zoneinfo import ZoneInfo

from starlette.responses import Response

from sandbox.faults import Fault, FaultInjector
from sandbox.http import Call, EmulatorApp, Route, Vendor, json_response
from sandbox.hubspot.access import Access
from sandbox.hubspot.portal import ARCHIVE_DAYS, HsRecord, Portal, ValidationFailed
from sandbox.hubspot.schema import (
    ALIASES,
    ASSOCIATION_TYPES,
    DEFAULT_PROPERTIES,
    LAST_MODIFIED,
    OBJECT_TYPE_IDS,
    SINGULAR,
    Prop,
    property_body,
)
from sandbox.requestlog import RequestLog
from sandbox.timeutil import epoch_ms, hs_format, parse_iso

BATCH_LIMIT = 100
# PropertyCreate in HubSpot's properties OpenAPI spec (crm-properties-v3.json): what a create
# must name, and the closed lists of type and fieldType.
PROPERTY_REQUIRED = ("name", "label", "type", "fieldType", "groupName")
PROPERTY_TYPES = ("bool", "date", "datetime", "enumeration", "number", "phone_number", "string")
PROPERTY_FIELD_TYPES = ("booleancheckbox", "calculation_equation", "checkbox", "date", "file",
                        "html", "number", "phonenumber", "radio", "select", "text", "textarea")
HISTORY_BATCH_LIMIT = 50  # inputs of a batch read that asks for property histories
# v4 association batches: reads take 1,000 inputs (HubSpot developer changelog, February
# 2025), creates and removals 2,000 (the limit integrations document for batch create).
ASSOCIATION_READ_LIMIT = 1000
ASSOCIATION_WRITE_LIMIT = 2000
LIST_LIMIT = 100
SEARCH_LIMIT = 200
SEARCH_RESULT_CAP = 10_000
WINDOW_SECONDS = 10.0
SEARCH_PER_SECOND = 4  # "four requests per second" (HubSpot CRM search docs, Limitations)
SEARCH_BODY_CHARACTERS = 3_000  # a search request body may be at most 3,000 characters
MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS = 25
OPERATORS = {"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
             "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}


def hs_error(status: int, message: str, category: str | None = None,
             **extra: Any) -> Response:
    body: dict[str, Any] = {"status": "error", "message": message,
                            "correlationId": str(uuid.uuid4())}
    body.update(extra)
    if category is not None:
        body["category"] = category
    return json_response(body, status)


class RateLimiter:
    """HubSpot's rolling ten-second window, the search endpoints' per-second limit, and the
    daily limit, which resets at midnight in the account's time zone (``time_zone``)."""

    def __init__(self, per_ten_seconds: int = 100, search_per_second: int = SEARCH_PER_SECOND,
                 daily: int = 1_000_000, time_zone: str = "UTC") -> None:
        self.per_ten_seconds = per_ten_seconds
        self.search_per_second = search_per_second
        self.daily = daily
        self.daily_used = 0
        self.time_zone = time_zone
        self._day = self._today()
        self._window: collections.deque[float] = collections.deque()
        self._search: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def _today(self) -> dt.date:
        return dt.datetime.now(ZoneInfo(self.time_zone)).date()

    def admit(self, search: bool) -> tuple[bool, int]:
        """(allowed, remaining in the window) for one request now."""
        refused, remaining = self.admit_policy(search)
        return refused is None, remaining

    def admit_policy(self, search: bool) -> tuple[str | None, int]:
        """(the policy that refuses the request or None, remaining in the window): the daily
        limit is checked first, and a refused request counts against nothing."""
        now = time.monotonic()
        with self._lock:
            today = self._today()
            if today != self._day:  # midnight in the account's time zone: a new day's allowance
                self._day, self.daily_used = today, 0
            if self.daily > 0 and self.daily_used >= self.daily:
                return "DAILY", 0
            queue, span, limit = ((self._search, 1.0, self.search_per_second) if search
                                  else (self._window, WINDOW_SECONDS, self.per_ten_seconds))
            while queue and queue[0] <= now - span:
                queue.popleft()
            if limit > 0 and len(queue) >= limit:
                return ("SECONDLY" if search else "TEN_SECONDLY_ROLLING"), 0
            queue.append(now)
            self.daily_used += 1
            remaining = (limit - len(queue)) if limit > 0 else 1_000_000
            return None, remaining


class HubSpotVendor(Vendor):
    def __init__(self, token: str, limiter: RateLimiter, access: Access | None = None) -> None:
        self.token = token
        self.limiter = limiter
        self.access = access or Access(private_token=token)

    def not_found(self, call: Call) -> Response:
        return hs_error(404, f"Unable to route {call.method} {call.path}", "OBJECT_NOT_FOUND")

    def method_not_allowed(self, call: Call, allowed: list[str]) -> Response:
        return hs_error(405, f"HTTP {call.method} is not supported by this URL. Allowed: "
                        f"{', '.join(sorted(set(allowed)))}", "VALIDATION_ERROR")

    def malformed_json(self, call: Call, message: str) -> Response:
        return hs_error(400, f"Invalid input JSON on line 1: {message}", "VALIDATION_ERROR")

    def authenticate(self, call: Call) -> Response | None:
        return self.access.authenticate(call, ALIASES)

    def admit(self, call: Call) -> Response | None:
        search = call.endpoint.endswith(".search")
        refused, remaining = self.limiter.admit_policy(search)
        call.context["remaining"] = remaining
        if refused is None:
            return None
        if refused == "DAILY":
            return json_response(_daily_body(), 429)
        if search:
            return json_response(_rate_body("secondly", "SECONDLY"), 429)
        return json_response(_rate_body("ten_secondly_rolling", "TEN_SECONDLY_ROLLING"), 429)

    def fault_response(self, call: Call, fault: Fault) -> Response:
        if fault.kind == "429":
            return json_response(_rate_body("ten_secondly_rolling", "TEN_SECONDLY_ROLLING"), 429)
        if fault.kind == "503":
            return hs_error(503, "Service Unavailable", "SERVICE_UNAVAILABLE")
        if fault.kind == "expired":
            return self.authenticate(Call("GET", "", {}, {}, {}, b"", "")) or hs_error(
                401, "expired", "INVALID_AUTHENTICATION")
        return hs_error(500, "internal error", "INTERNAL_ERROR")

    def decorate(self, call: Call, response: Response) -> None:
        if call.endpoint.endswith(".search"):
            return  # HubSpot's search responses carry no rate-limit headers
        limiter = self.limiter
        window = limiter.per_ten_seconds or 1_000_000
        remaining = call.context.get("remaining", 0 if response.status_code == 429 else window)
        secondly = max(window // 10, 1)
        response.headers.update({
            "X-HubSpot-RateLimit-Daily": str(limiter.daily),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(limiter.daily - limiter.daily_used,
                                                           0)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(WINDOW_SECONDS * 1000)),
            "X-HubSpot-RateLimit-Max": str(window),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Secondly": str(secondly),
            "X-HubSpot-RateLimit-Secondly-Remaining": str(min(secondly, remaining)),
        })


def _daily_body() -> dict[str, Any]:
    """The daily limit's 429, in the shape of HubSpot's documented example
    (``hubspot/doc-429-daily.body.json``): no ``groupName``, a ``requestId``."""
    return {"status": "error", "message": "You have reached your daily limit.",
            "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
            "policyName": "DAILY", "requestId": str(uuid.uuid4())}


def _rate_body(label: str, policy: str) -> dict[str, Any]:
    body = {"status": "error", "message": f"You have reached your {label} limit.",
            "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "groupName": f"publicapi:private-app-api-calls-{label.replace('_', '-')}:1"}
    if policy == "SECONDLY":  # recorded with a requestId (issue-429-secondly.body.json)
        body["requestId"] = uuid.uuid4().hex
    return body


def search_limits_error(raw: bytes, groups: list[Any]) -> Response | None:
    """A 400 for a search past HubSpot's documented limits: a body over 3,000 characters, more
    than 5 filter groups, 10 filters in a group or 25 in all. No live error text for these is
    recorded; the messages are the emulator's own, in HubSpot's ``VALIDATION_ERROR`` shape."""
    length = len(raw.decode("utf-8", "replace"))
    if length > SEARCH_BODY_CHARACTERS:
        return hs_error(400, f"The search request is {length} characters long; the maximum is "
                        f"{SEARCH_BODY_CHARACTERS}.", "VALIDATION_ERROR")
    sizes = [len(g.get("filters") or []) if isinstance(g, dict) else 0 for g in groups]
    if len(groups) > MAX_FILTER_GROUPS:
        return hs_error(400, f"The search request has {len(groups)} filterGroups; the maximum "
                        f"is {MAX_FILTER_GROUPS}.", "VALIDATION_ERROR")
    if any(n > MAX_FILTERS_PER_GROUP for n in sizes):
        return hs_error(400, f"A filterGroup has {max(sizes)} filters; the maximum is "
                        f"{MAX_FILTERS_PER_GROUP} per group.", "VALIDATION_ERROR")
    if sum(sizes) > MAX_FILTERS:
        return hs_error(400, f"The search request has {sum(sizes)} filters; the maximum is "
                        f"{MAX_FILTERS} in all.", "VALIDATION_ERROR")
    return None


class HubSpotEmulator:
    """The routes. By default they answer as the live API does; each lenience is a named knob:

    - ``batch_trace_ids``: batch results echo each input's ``objectWriteTraceId`` (the live API
      names it only in ``errors[].context``);
    - ``batch_results_in_input_order``: batch results come in input order (the live API's come
      in no promised order; the emulator shuffles them, seeded per request, and never answers
      two or more in input order);
    - ``case_insensitive_in``: search ``IN``/``NOT_IN`` on string properties folds the values'
      case (the live API compares them as given with the lower-cased stored value).
    """

    # Creates answer 200: HubSpot was recorded so (nango-create-contact.test.json,
    # nango-batch-create-companies.test.json; HubSpot/hubspot-api-python#448 and
    # hubspot-api-php#506 report the same switch on v3 association creates), while its spec
    # and other reports (hubspot-api-php#603) say 201. 200 is the harsher reading:
    # hubspot-api-client v12 maps only 201 and drops a 200's body. ``creates_201``
    # (SandboxConfig.hubspot_creates_201) is the lenience.
    creates_201 = False

    def __init__(self, portal: Portal, limiter: RateLimiter, *, seed: int = 0,
                 batch_trace_ids: bool = False, batch_results_in_input_order: bool = False,
                 case_insensitive_in: bool = False) -> None:
        self.portal = portal
        self.limiter = limiter
        self.seed = seed
        self.batch_trace_ids = batch_trace_ids
        self.batch_results_in_input_order = batch_results_in_input_order
        self.case_insensitive_in = case_insensitive_in
        self._batch_requests = itertools.count(1)
        self.access: Access | None = None

    # -- helpers -------------------------------------------------------------------------
    def _created(self) -> int:
        return 201 if self.creates_201 else 200

    def _type(self, call: Call, key: str = "object") -> str | Response:
        raw = call.params[key]
        object_type = ALIASES.get(raw.lower())
        if object_type is None:
            return hs_error(400, f"Unable to infer object type from: {raw}")
        return object_type

    def _wire(self, object_type: str, record: HsRecord, wanted: list[str] | None,
              only_set: bool = False, sent: Iterable[str] | None = None,
              with_history: list[str] | None = None) -> dict[str, Any]:
        props = self.portal.properties[object_type]
        if only_set:
            properties: dict[str, str | None] = {
                k: v for k, v in record.properties.items() if v is not None}
            if sent is not None:
                properties = _echoed(object_type, properties, sent)
        else:
            names = wanted if wanted else DEFAULT_PROPERTIES[object_type]
            properties = {n: record.properties.get(n) for n in names if n in props}
            # Asked-for properties come with the record's id, creation and modification dates
            # (recorded: nango-get-contact, nango-list-contacts, nango-list-deals).
            for always in ("createdate", "hs_object_id", LAST_MODIFIED[object_type]):
                properties[always] = record.properties.get(always)
            properties["hs_object_id"] = record.id  # HubSpot always returns the record id
        out: dict[str, Any] = {
            "id": record.id, "properties": properties,
            "createdAt": hs_format(record.created), "updatedAt": hs_format(record.updated),
            "archived": record.archived, "url": self._record_url(object_type, record.id),
        }
        if record.archived and record.archived_at is not None:
            out["archivedAt"] = hs_format(record.archived_at)
        if with_history:  # newest first, each with its time and what wrote it
            out["propertiesWithHistory"] = {
                name: [{"value": value or "", "timestamp": hs_format(when), "sourceType": source}
                       for value, when, source in record.history.get(name, [])]
                for name in with_history if name in props}
        return out

    def _record_url(self, object_type: str, record_id: str) -> str:
        """The record's page in HubSpot's app, which every recorded object body carries."""
        type_id = OBJECT_TYPE_IDS[object_type]
        return f"https://app.hubspot.com/contacts/{self.portal.portal_id}/record/{type_id}/" \
               f"{record_id}"

    def _wanted(self, call: Call) -> list[str] | None:
        raw = call.query.get("properties")
        if not raw:
            return None
        return [p for value in raw for p in value.split(",") if p]

    def _batch_inputs(self, call: Call, limit: int = BATCH_LIMIT) -> list[Any] | Response:
        body = call.json()
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
            return hs_error(400, "Invalid input JSON: inputs is required", "VALIDATION_ERROR")
        inputs = body["inputs"]
        if len(inputs) > limit:
            return hs_error(400, f"Batch input of size {len(inputs)} is too large; the maximum "
                            f"is {limit}", "VALIDATION_ERROR",
                            context={"inputs": [str(len(inputs))]})
        if not all(isinstance(i, dict) for i in inputs):
            return hs_error(400, "Invalid input JSON: each input must be an object",
                            "VALIDATION_ERROR")
        return cast(list[Any], inputs)

    @staticmethod
    def _batch_response(results: list[dict[str, Any]], errors: list[dict[str, Any]],
                        started: dt.datetime, ok_status: int = 200) -> Response:
        body: dict[str, Any] = {"completedAt": hs_format(dt.datetime.now(dt.UTC)),
                                "status": "COMPLETE", "startedAt": hs_format(started),
                                "results": results}
        if errors:
            body["errors"] = errors
            body["numErrors"] = len(errors)
            return json_response(body, 207)
        return json_response(body, ok_status)

    def _traced(self, result: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        """Only with ``batch_trace_ids``: the result echoes the input's ``objectWriteTraceId``.
        Live results carry none (amp-batch-create-contacts-207-conflict.json)."""
        if self.batch_trace_ids and "objectWriteTraceId" in item:
            result["objectWriteTraceId"] = str(item["objectWriteTraceId"])
        return result

    def _unordered(self, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Batch results in no promised order, as HubSpot returns them: a shuffle seeded by the
        sandbox seed and the request's number (so runs repeat), and never the input order when
        there are two or more (a shuffle that lands on it is rotated by one)."""
        if self.batch_results_in_input_order or len(results) < 2:
            return results
        rng = random.Random(f"{self.seed}:{next(self._batch_requests)}")  # noqa: S311 - order
        order = list(range(len(results)))
        rng.shuffle(order)
        if order == sorted(order):
            order = order[1:] + order[:1]
        return [results[i] for i in order]

    # -- objects -------------------------------------------------------------------------
    def list_objects(self, call: Call) -> Response:
        object_type = self._type(call)
        if isinstance(object_type, Response):
            return object_type
        limit = int(call.arg("limit") or "10")
        if not 1 <= limit <= LIST_LIMIT:
            return hs_error(400, f"limit must be between 1 and {LIST_LIMIT}",
                            "VALIDATION_ERROR")
        archived = (call.arg("archived") or "false").lower() == "true"
        after = int(call.arg("after") or "0") if (call.arg("after") or "0").isdigit() else 0
        with self.portal.lock:
            self.portal.settle()
            page, more = self.portal.listed(object_type, archived, after, limit)
        wanted = self._wanted(call)
        body: dict[str, Any] = {"results": [self._wire(object_type, r, wanted) for r in page]}
        if more:
            nxt = page[-1].id
            body["paging"] = {"next": {"after": nxt, "link": (
                f"?limit={limit}&after={nxt}")}}
        return json_response(body)

    def get_object(self, call: Call) -> Response:
        object_type = self._type(call)
        if isinstance(object_type, Response):
            return object_type
        archived = (call.arg("archived") or "false").lower() == "true"
        id_property = call.arg("idProperty")
        with self.portal.lock:
            self.portal.settle()
            if id_property and not archived:
                record = self.portal.find_by(object_type, id_property, call.params["id"])
            elif archived:
                record = self.portal.get(object_type, call.params["id"], archived)
            else:  # a merged-away id answers with the record it was merged into
                record = self.portal.resolve(object_type, call.params["id"])
        if record is None:
            return hs_error(404, "Object not found.  objectId are usually numeric.",
                            "OBJECT_NOT_FOUND", context={"id": [call.params["id"]]})
        return json_response(self._wire(object_type, record, self._wanted(call)))

    def create_object(self, call: Call) -> Response:
        object_type = self._type(call)
        if isinstance(object_type, Response):
            return object_type
        body = call.json()
        if not isinstance(body, dict):
            return hs_error(400, "Invalid input JSON", "VALIDATION_ERROR")
        with self.portal.lock:
            try:
                values = self.portal.validate(object_type, body.get("properties", {}),
                                              creating=True)
            except ValidationFailed as exc:
                return json_response(exc.body(str(uuid.uuid4())), 400)
            existing = self._email_conflict(object_type, values)
            if existing:
                return hs_error(409, f"Contact already exists. Existing ID: {existing}",
                                "CONFLICT")
            record = self.portal.create(object_type, values, self.portal.now())
            for assoc in body.get("associations") or []:
                self._associate_input(object_type, record.id, assoc)
        return json_response(self._wire(object_type, record, None, only_set=True,
                                        sent=[*values, *SET_ON_CREATE]), self._created())

    def _email_conflict(self, object_type: str, values: dict[str, str]) -> str | None:
        if object_type != "contacts" or not values.get("email"):
            return None
        return self.portal.email_owner(values["email"])

    def _associate_input(self, object_type: str, record_id: str, assoc: Any) -> None:
        if not isinstance(assoc, dict):
            return
        to_id = str((assoc.get("to") or {}).get("id", ""))
        for type_spec in assoc.get("types") or []:
            for f, t in ASSOCIATION_TYPES:
                types = self.portal.association_types(f, t)
                wanted = type_spec.get("associationTypeId")
                if (f == object_type and any(tid == wanted for tid, _ in types)
                        and self.portal.get(t, to_id)):
                        self.portal.associate(f, record_id, t, to_id,
                                              [int(type_spec["associationTypeId"])])

    def update_object(self, call: Call) -> Response:
        object_type = self._type(call)
        if isinstance(object_type, Response):
            return object_type
        body = call.json()
        if not isinstance(body, dict):
            return hs_error(400, "Invalid input JSON", "VALIDATION_ERROR")
        with self.portal.lock:
            id_property = call.arg("idProperty")
            record = (self.portal.find_by(object_type, id_property, call.params["id"])
                      if id_property else self.portal.get(object_type, call.params["id"]))
            if record is None:
                return hs_error(404, "Object not found.  objectId are usually numeric.",
                                "OBJECT_NOT_FOUND", context={"id": [call.params["id"]]})
            try:
                values = self.portal.validate(object_type, body.get("properties", {}),
                                              current=record)
            except ValidationFailed as exc:
                return json_response(exc.body(str(uuid.uuid4())), 400)
            clash = self._email_conflict(object_type, values)
            if clash and clash != record.id:
                return hs_error(409, f"Contact already exists. Existing ID: {clash}", "CONFLICT")
            self.portal.update(object_type, record, values, self.portal.now())
        return json_response(self._wire(object_type, record, None, only_set=True, sent=values))

    def archive_object(self, call: Call) -> Response:
        object_type = self._type(call)
        if isinstance(object_type, Response):
            return object_type
        with self.portal.lock:
            record = self.portal.get(object_type, call.params["id"])
            if record is not None:
                self.portal.archive(object_type, record, self.portal.now())
        return Response(status_code=204)

    # -- batch ---------------------------------------------------------------------------
    def _batch(self, call: Call, validate: bool = False, creating: bool = False
               ) -> tuple[str, list[Any], list[dict[str, str]]] | Response:
        """What every batch route starts with: object type, inputs (<= 100) and, when asked,
        each input's validated properties (any invalid one refuses the whole batch, as HubSpot
        does)."""
        object_type = self._type(call)
        if isinstance(object_type, Response):
            return object_type
        inputs = self._batch_inputs(call)
        if isinstance(inputs, Response):
            return inputs
        prepared: list[dict[str, str]] = []
        if validate:
            try:
                prepared = [self.portal.validate(object_type, i.get("properties", {}),
                                                 creating=creating) for i in inputs]
            except ValidationFailed as exc:
                return json_response(exc.body(str(uuid.uuid4())), 400)
        return object_type, inputs, prepared

    def batch_read(self, call: Call) -> Response:
        batch = self._batch(call)
        if isinstance(batch, Response):
            return batch
        object_type, inputs, _ = batch
        body = call.json()
        started = dt.datetime.now(dt.UTC)
        wanted = [p for p in body.get("properties") or [] if isinstance(p, str)]
        with_history = [p for p in body.get("propertiesWithHistory") or [] if isinstance(p, str)]
        if with_history and len(inputs) > HISTORY_BATCH_LIMIT:
            # as HubSpot answers (quoted in PipedreamHQ/pipedream#8462)
            return hs_error(400, "The maximum number of inputs supported in a batch request "
                            f"for property histories is {HISTORY_BATCH_LIMIT}. Please reduce "
                            "the number of items and try again", "VALIDATION_ERROR")
        id_property = body.get("idProperty")
        archived = (call.arg("archived") or "false").lower() == "true"
        results: list[dict[str, Any]] = []
        missing: list[str] = []
        with self.portal.lock:
            self.portal.settle()
            for item in inputs:
                key = str(item.get("id", ""))
                record = (self.portal.find_by(object_type, id_property, key) if id_property
                          else self.portal.get(object_type, key, True) if archived
                          else self.portal.resolve(object_type, key))
                if record is None:
                    missing.append(key)
                else:
                    results.append(self._wire(object_type, record, wanted or None,
                                              with_history=with_history))
        errors = [_not_found_error(object_type, missing)] if missing else []
        return self._batch_response(self._unordered(results), errors, started)

    def batch_create(self, call: Call) -> Response:
        batch = self._batch(call, validate=True, creating=True)
        if isinstance(batch, Response):
            return batch
        object_type, inputs, prepared = batch
        started = dt.datetime.now(dt.UTC)
        with self.portal.lock:
            now = self.portal.now()
            results: list[dict[str, Any]] = []
            errors: list[dict[str, Any]] = []
            for index, (item, values) in enumerate(zip(inputs, prepared, strict=True)):
                trace = str(item.get("objectWriteTraceId", index))
                existing = self._email_conflict(object_type, values)
                if existing:
                    errors.append({"status": "error", "category": "CONFLICT",
                                   "message": f"Contact already exists. Existing ID: {existing}",
                                   "context": {"objectWriteTraceId": [trace],
                                               "existingId": [existing]}})
                    continue
                record = self.portal.create(object_type, values, now)
                for assoc in item.get("associations") or []:
                    self._associate_input(object_type, record.id, assoc)
                results.append(self._traced(self._wire(
                    object_type, record, None, only_set=True,
                    sent=[*values, *SET_ON_CREATE]), item))
        if errors and not results:
            return hs_error(409, errors[0]["message"], "CONFLICT")
        return self._batch_response(self._unordered(results), errors, started,
                                    ok_status=self._created())

    def batch_update(self, call: Call) -> Response:
        batch = self._batch(call, validate=True)
        if isinstance(batch, Response):
            return batch
        object_type, inputs, prepared = batch
        body = call.json()
        id_property = body.get("idProperty")
        started = dt.datetime.now(dt.UTC)
        keys = [str(i.get("id", "")) for i in inputs]
        duplicated = sorted({k for k in keys if keys.count(k) > 1})
        if duplicated:
            return hs_error(400, f"Duplicate IDs found in batch input: [{', '.join(duplicated)}]."
                            " IDs must be unique", "VALIDATION_ERROR",
                            context={"ids": duplicated})
        with self.portal.lock:
            try:  # each input against its own record's pipeline, before any write
                for item, key in zip(inputs, keys, strict=True):
                    found = (self.portal.find_by(object_type, id_property, key) if id_property
                             else self.portal.get(object_type, key))
                    if found is not None:
                        self.portal.validate(object_type, item.get("properties", {}),
                                             current=found)
            except ValidationFailed as exc:
                return json_response(exc.body(str(uuid.uuid4())), 400)
            now = self.portal.now()
            results: list[dict[str, Any]] = []
            missing: list[str] = []
            errors: list[dict[str, Any]] = []
            for item, key, values in zip(inputs, keys, prepared, strict=True):
                record = (self.portal.find_by(object_type, id_property, key) if id_property
                          else self.portal.get(object_type, key))
                if record is None:
                    missing.append(key)
                    continue
                clash = self._email_conflict(object_type, values)
                if clash and clash != record.id:
                    context = {"id": [key], "existingId": [clash]}
                    if "objectWriteTraceId" in item:
                        context["objectWriteTraceId"] = [str(item["objectWriteTraceId"])]
                    errors.append({"status": "error", "category": "CONFLICT",
                                   "message": f"Contact already exists. Existing ID: {clash}",
                                   "context": context})
                    continue
                self.portal.update(object_type, record, values, now)
                results.append(self._traced(
                    self._wire(object_type, record, None, only_set=True, sent=values), item))
        if missing:
            errors.insert(0, _not_found_error(object_type, missing))
        return self._batch_response(self._unordered(results), errors, started)

    def batch_upsert(self, call: Call) -> Response:
        batch = self._batch(call, validate=True)
        if isinstance(batch, Response):
            return batch
        object_type, inputs, prepared = batch
        started = dt.datetime.now(dt.UTC)
        with self.portal.lock:
            for item in inputs:
                id_property = item.get("idProperty")
                prop = (self.portal.properties[object_type].get(str(id_property))
                        if id_property else None)
                if id_property and (prop is None or not prop.unique) and (
                        id_property != "hs_object_id"):
                    return hs_error(400, f"{id_property} is not a unique property and cannot "
                                    "be used as an idProperty", "VALIDATION_ERROR")
            now = self.portal.now()
            results = []
            for item, values in zip(inputs, prepared, strict=True):
                id_property = str(item.get("idProperty") or "hs_object_id")
                key = str(item.get("id", ""))
                record = self.portal.find_by(object_type, id_property, key)
                created = record is None
                if record is None:
                    if id_property != "hs_object_id":
                        values.setdefault(id_property, key)
                    record = self.portal.create(object_type, values, now)
                else:
                    self.portal.update(object_type, record, values, now)
                wired = self._traced(self._wire(
                    object_type, record, None, only_set=True,
                    sent=[*values, id_property, *(SET_ON_CREATE if created else ())]), item)
                wired["new"] = created
                results.append(wired)
        return self._batch_response(self._unordered(results), [], started)

    def batch_archive(self, call: Call) -> Response:
        batch = self._batch(call)
        if isinstance(batch, Response):
            return batch
        object_type, inputs, _ = batch
        with self.portal.lock:
            now = self.portal.now()
            for item in inputs:
                record = self.portal.get(object_type, str(item.get("id", "")))
                if record is not None:
                    self.portal.archive(object_type, record, now)
        return Response(status_code=204)

    # -- search --------------------------------------------------------------------------
    def search(self, call: Call) -> Response:
        object_type = self._type(call)
        if isinstance(object_type, Response):
            return object_type
        body = call.json()
        if not isinstance(body, dict):
            return hs_error(400, "Invalid input JSON", "VALIDATION_ERROR")
        limit = int(body.get("limit") or 10)
        after = int(body.get("after") or 0) if str(body.get("after") or "0").isdigit() else -1
        if not 1 <= limit <= SEARCH_LIMIT or after < 0:
            return hs_error(400, f"limit must be between 1 and {SEARCH_LIMIT} and after a "
                            "non-negative offset", "VALIDATION_ERROR")
        if after + limit > SEARCH_RESULT_CAP:
            return hs_error(400, f"The search API returns at most {SEARCH_RESULT_CAP} results "
                            "for a query; narrow the filters to page further.",
                            "VALIDATION_ERROR")
        groups = body.get("filterGroups") or []
        refusal = search_limits_error(call.body, groups)
        if refusal is not None:
            return refusal
        try:
            props = self.portal.properties[object_type]
            predicate = _compile_groups(object_type, props, groups, self.case_insensitive_in)
            order = _sorts(props, body.get("sorts") or [])
        except ValueError as exc:
            return hs_error(400, str(exc), "VALIDATION_ERROR")
        rows = [r for r in self.portal.searchable(object_type) if predicate(r)]
        rows.sort(key=lambda r: int(r.id))
        for prop, descending in reversed(order):
            rows.sort(key=functools.partial(_sort_key, props, prop), reverse=descending)
        page = rows[after:after + limit]
        wanted = [p for p in body.get("properties") or [] if isinstance(p, str)] or None
        out: dict[str, Any] = {"total": len(rows),
                               "results": [self._wire(object_type, r, wanted) for r in page]}
        if after + limit < len(rows):
            out["paging"] = {"next": {"after": str(after + limit)}}
        return json_response(out)

    # -- metadata ------------------------------------------------------------------------
    def merge(self, call: Call) -> Response:
        """``POST /crm/v3/objects/{type}/merge``: the merged record, with its new id."""
        object_type = self._type(call)
        if isinstance(object_type, Response):
            return object_type
        body = call.json()
        if not isinstance(body, dict) or not all(
                isinstance(body.get(k), str | int) for k in ("primaryObjectId", "objectIdToMerge")):
            return hs_error(400, "Invalid input JSON: primaryObjectId and objectIdToMerge are "
                            "required", "VALIDATION_ERROR")
        primary_id, other_id = str(body["primaryObjectId"]), str(body["objectIdToMerge"])
        if primary_id == other_id:
            return hs_error(400, "Cannot merge an object with itself", "VALIDATION_ERROR")
        with self.portal.lock:
            self.portal.settle()
            primary = self.portal.get(object_type, primary_id)
            other = self.portal.get(object_type, other_id)
            missing = [i for i, r in ((primary_id, primary), (other_id, other)) if r is None]
            if primary is None or other is None:
                return hs_error(404, "Object not found.  objectId are usually numeric.",
                                "OBJECT_NOT_FOUND", context={"id": missing})
            record = self.portal.merge(object_type, primary, other, self.portal.now())
            return json_response(self._wire(object_type, record, None, only_set=True))

    def properties(self, call: Call) -> Response:
        object_type = self._type(call)
        if isinstance(object_type, Response):
            return object_type
        return json_response({"results": [property_body(p, self.portal.owners) for p in
                                          self.portal.properties[object_type].values()]})

    def property(self, call: Call) -> Response:
        object_type = self._type(call)
        if isinstance(object_type, Response):
            return object_type
        prop = self.portal.properties[object_type].get(call.params["name"])
        if prop is None:
            return hs_error(404, f"Unable to find property {call.params['name']} for object "
                            f"type {object_type}", "OBJECT_NOT_FOUND")
        return json_response(property_body(prop, self.portal.owners))

    def create_property(self, call: Call) -> Response:
        """``POST /crm/v3/properties/{objectType}`` as HubSpot's properties OpenAPI spec has
        it (``PropertyCreate``: ``name``, ``label``, ``type``, ``fieldType`` and
        ``groupName`` required, ``type`` and ``fieldType`` from closed lists, ``options``
        required for enumerated properties): 201 with the new ``Property``. A name the object
        already has is a 409 (HubSpot's create-property reference: "Property names must be
        unique"); the scope is the object's ``crm.schemas.*.write``."""
        object_type = self._type(call)
        if isinstance(object_type, Response):
            return object_type
        body = call.json()
        if not isinstance(body, dict):
            return hs_error(400, "Invalid input JSON: a PropertyCreate object is required",
                            "VALIDATION_ERROR")
        missing = [k for k in PROPERTY_REQUIRED if not isinstance(body.get(k), str)
                   or not body[k]]
        if missing:
            return hs_error(400, f"Invalid input JSON: missing required {', '.join(missing)}",
                            "VALIDATION_ERROR", context={"missing": missing})
        for key, allowed in (("type", PROPERTY_TYPES), ("fieldType", PROPERTY_FIELD_TYPES)):
            if body[key] not in allowed:
                return hs_error(400, f"{key} {body[key]!r} is not one of {list(allowed)}",
                                "VALIDATION_ERROR")
        options = body.get("options") or []
        if not isinstance(options, list) or any(
                not isinstance(o, dict) or not isinstance(o.get("value"), str)
                or not isinstance(o.get("label"), str) for o in options):
            return hs_error(400, "options must be a list of {label, value, hidden}",
                            "VALIDATION_ERROR")
        if body["type"] == "enumeration" and not options:
            return hs_error(400, "options are required for an enumeration property",
                            "VALIDATION_ERROR")
        with self.portal.lock:
            table = self.portal.properties[object_type]
            if body["name"] in table:
                return hs_error(409, f"A property named {body['name']!r} already exists on "
                                f"{object_type}", "CONFLICT")
            prop = Prop(body["name"], body["label"], body["type"], body["fieldType"],
                        body["groupName"],
                        tuple((o["value"], o["label"]) for o in options),
                        unique=bool(body.get("hasUniqueValue")), hubspot_defined=False)
            table[prop.name] = prop
        return json_response(property_body(prop, self.portal.owners), 201)

    def pipelines(self, call: Call) -> Response:
        object_type = self._type(call)
        if isinstance(object_type, Response):
            return object_type
        return json_response({"results": self.portal.pipelines(object_type)})

    def pipeline(self, call: Call) -> Response:
        object_type = self._type(call)
        if isinstance(object_type, Response):
            return object_type
        for item in self.portal.pipelines(object_type):
            if item["id"] == call.params["pipeline"]:
                return json_response(item)
        return hs_error(404, f"Unable to find pipeline {call.params['pipeline']}",
                        "OBJECT_NOT_FOUND")

    def pipeline_stages(self, call: Call) -> Response:
        object_type = self._type(call)
        if isinstance(object_type, Response):
            return object_type
        for item in self.portal.pipelines(object_type):
            if item["id"] == call.params["pipeline"]:
                return json_response({"results": item["stages"]})
        return hs_error(404, f"Unable to find pipeline {call.params['pipeline']}",
                        "OBJECT_NOT_FOUND")

    def owners(self, call: Call) -> Response:
        email = call.arg("email")
        limit = int(call.arg("limit") or "100")
        after = int(call.arg("after") or "0") if (call.arg("after") or "0").isdigit() else 0
        archived = (call.arg("archived") or "false").lower() == "true"
        rows = [o for o in self.portal.owners if o["archived"] == archived
                and (email is None or o["email"].lower() == email.lower())]
        page = rows[after:after + limit]
        body: dict[str, Any] = {"results": page}
        if after + limit < len(rows):
            body["paging"] = {"next": {"after": str(after + limit)}}
        return json_response(body)

    def owner(self, call: Call) -> Response:
        for owner in self.portal.owners:
            if owner["id"] == call.params["owner"]:
                return json_response(owner)
        return hs_error(404, f"Owner {call.params['owner']} not found", "OBJECT_NOT_FOUND")

    # -- associations v4 -----------------------------------------------------------------
    def _pair(self, call: Call) -> tuple[str, str] | Response:
        from_type = self._type(call, "from")
        if isinstance(from_type, Response):
            return from_type
        to_type = self._type(call, "to")
        if isinstance(to_type, Response):
            return to_type
        if (from_type, to_type) not in ASSOCIATION_TYPES:
            return hs_error(400, f"No associations between {from_type} and {to_type}",
                            "VALIDATION_ERROR")
        return from_type, to_type

    def _assoc_batch(self, call: Call, limit: int = ASSOCIATION_WRITE_LIMIT
                     ) -> tuple[str, str, list[Any]] | Response:
        """What every association batch route starts with: the object pair and its inputs
        (2,000 to write, 1,000 to read)."""
        pair = self._pair(call)
        if isinstance(pair, Response):
            return pair
        inputs = self._batch_inputs(call, limit)
        if isinstance(inputs, Response):
            return inputs
        return pair[0], pair[1], inputs

    def _assoc_result(self, from_type: str, from_id: str, to_type: str, to_id: str,
                      type_ids: set[int]) -> dict[str, Any]:
        labels = dict(self.portal.association_types(from_type, to_type))
        return {"fromObjectTypeId": OBJECT_TYPE_IDS[from_type], "fromObjectId": int(from_id),
                "toObjectTypeId": OBJECT_TYPE_IDS[to_type], "toObjectId": int(to_id),
                "labels": [labels[t] for t in sorted(type_ids) if labels.get(t)]}

    @staticmethod
    def _default_result(from_id: str, to_id: str, type_id: int) -> dict[str, Any]:
        """``PublicDefaultAssociation``, as the v4 spec defines the default-association result."""
        return {"associationSpec": {"associationCategory": "HUBSPOT_DEFINED",
                                    "associationTypeId": type_id},
                "from": {"id": from_id}, "to": {"id": to_id}}

    def associate_default(self, call: Call) -> Response:
        pair = self._pair(call)
        if isinstance(pair, Response):
            return pair
        from_type, to_type = pair
        started = dt.datetime.now(dt.UTC)
        with self.portal.lock:
            a = self.portal.get(from_type, call.params["fromId"])
            b = self.portal.get(to_type, call.params["toId"])
            if a is None or b is None:
                return hs_error(404, "One or more objects were not found", "OBJECT_NOT_FOUND")
            type_id = self.portal.association_types(from_type, to_type)[0][0]
            self.portal.associate(from_type, a.id, to_type, b.id, [type_id])
            result = self._default_result(a.id, b.id, type_id)
        return self._batch_response([result], [], started)

    def list_associations(self, call: Call) -> Response:
        pair = self._pair(call)
        if isinstance(pair, Response):
            return pair
        from_type, to_type = pair
        labels = dict(self.portal.association_types(from_type, to_type))
        with self.portal.lock:
            linked = self.portal.associated(from_type, call.params["fromId"], to_type)
            results = [{"toObjectId": int(to_id), "associationTypes": [
                {"category": _category(t), "typeId": t, "label": labels.get(t)}
                for t in sorted(types)]} for to_id, types in sorted(linked.items())]
        return json_response({"results": results})

    def batch_associate_default(self, call: Call) -> Response:
        batch = self._assoc_batch(call)
        if isinstance(batch, Response):
            return batch
        from_type, to_type, inputs = batch
        started = dt.datetime.now(dt.UTC)
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        type_id = self.portal.association_types(from_type, to_type)[0][0]
        with self.portal.lock:
            for item in inputs:
                from_id = str((item.get("from") or {}).get("id", ""))
                to_id = str((item.get("to") or {}).get("id", ""))
                if self.portal.get(from_type, from_id) is None or self.portal.get(
                        to_type, to_id) is None:
                    errors.append(_assoc_missing(from_type, from_id, to_type))
                    continue
                self.portal.associate(from_type, from_id, to_type, to_id, [type_id])
                results.append(self._default_result(from_id, to_id, type_id))
        return self._batch_response(results, errors, started)

    def batch_associate(self, call: Call) -> Response:
        batch = self._assoc_batch(call)
        if isinstance(batch, Response):
            return batch
        from_type, to_type, inputs = batch
        started = dt.datetime.now(dt.UTC)
        known = {t for t, _ in self.portal.association_types(from_type, to_type)}
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        with self.portal.lock:
            for item in inputs:
                from_id = str((item.get("from") or {}).get("id", ""))
                to_id = str((item.get("to") or {}).get("id", ""))
                type_ids = {int(t.get("associationTypeId", 0)) for t in item.get("types") or []}
                if not type_ids or not type_ids <= known:
                    return hs_error(400, f"Invalid association type ids {sorted(type_ids)} for "
                                    f"{from_type} to {to_type}", "VALIDATION_ERROR")
                if self.portal.get(from_type, from_id) is None or self.portal.get(
                        to_type, to_id) is None:
                    errors.append(_assoc_missing(from_type, from_id, to_type))
                    continue
                self.portal.associate(from_type, from_id, to_type, to_id, sorted(type_ids))
                results.append(self._assoc_result(from_type, from_id, to_type, to_id,
                                                  type_ids))
        return self._batch_response(results, errors, started, ok_status=201)

    def batch_read_associations(self, call: Call) -> Response:
        batch = self._assoc_batch(call, ASSOCIATION_READ_LIMIT)
        if isinstance(batch, Response):
            return batch
        from_type, to_type, inputs = batch
        started = dt.datetime.now(dt.UTC)
        labels = dict(self.portal.association_types(from_type, to_type))
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        with self.portal.lock:
            for item in inputs:
                from_id = str(item.get("id", ""))
                linked = self.portal.associated(from_type, from_id, to_type)
                if not linked:
                    errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                                   "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                                   "message": f"No {self.portal.singular(to_type)} is associated"
                                   f" with {self.portal.singular(from_type)} {from_id}.",
                                   "context": {"fromObjectId": [from_id],
                                               "fromObjectType": [
                                                   self.portal.singular(from_type)],
                                               "toObjectType": [self.portal.singular(to_type)]}})
                    continue
                results.append({"from": {"id": from_id}, "to": [
                    {"toObjectId": int(to_id), "associationTypes": [
                        {"category": _category(t), "typeId": t, "label": labels.get(t)}
                        for t in sorted(types)]}
                    for to_id, types in sorted(linked.items())]})
        return self._batch_response(results, errors, started)

    def batch_archive_associations(self, call: Call) -> Response:
        batch = self._assoc_batch(call)
        if isinstance(batch, Response):
            return batch
        from_type, to_type, inputs = batch
        with self.portal.lock:
            for item in inputs:
                from_id = str((item.get("from") or {}).get("id", ""))
                for target in item.get("to") or []:
                    self.portal.dissociate(from_type, from_id, to_type, str(target.get("id")))
        return Response(status_code=204)

    def batch_archive_labels(self, call: Call) -> Response:
        """``batch/labels/archive``: the given types off each pair; the unlabeled type takes
        the whole association. Answers 204, as ``batch/archive`` does."""
        batch = self._assoc_batch(call)
        if isinstance(batch, Response):
            return batch
        from_type, to_type, inputs = batch
        known = {t for t, _ in self.portal.association_types(from_type, to_type)}
        with self.portal.lock:
            for item in inputs:
                type_ids = {int(t.get("associationTypeId", 0)) for t in item.get("types") or []}
                if not type_ids or not type_ids <= known:
                    return hs_error(400, f"Invalid association type ids {sorted(type_ids)} for "
                                    f"{from_type} to {to_type}", "VALIDATION_ERROR")
            for item in inputs:
                self.portal.remove_types(
                    from_type, str((item.get("from") or {}).get("id", "")), to_type,
                    str((item.get("to") or {}).get("id", "")),
                    {int(t.get("associationTypeId", 0)) for t in item.get("types") or []})
        return Response(status_code=204)

    def association_labels(self, call: Call) -> Response:
        pair = self._pair(call)
        if isinstance(pair, Response):
            return pair
        return json_response({"results": [
            {"category": _category(t), "typeId": t, "label": label}
            for t, label in self.portal.association_types(*pair)]})

    def create_association_label(self, call: Call) -> Response:
        """``POST .../labels`` (``PublicAssociationDefinitionCreateRequest``: ``label`` and
        ``name`` required, ``inverseLabel`` optional): the new types, both directions."""
        pair = self._pair(call)
        if isinstance(pair, Response):
            return pair
        body = call.json() or {}
        label, name = body.get("label"), body.get("name")
        if not isinstance(label, str) or not label or not isinstance(name, str) or not name:
            return hs_error(400, "label and name are required", "VALIDATION_ERROR")
        if any(existing == label for _, existing in self.portal.association_types(*pair)):
            return hs_error(400, f"An association label {label} already exists",
                            "VALIDATION_ERROR")
        made = self.portal.add_label(pair[0], pair[1], label, body.get("inverseLabel"))
        return json_response({"results": [
            {"category": "USER_DEFINED", "typeId": t, "label": text} for t, text in made]})

    # -- admin ---------------------------------------------------------------------------
    def admin_config(self, call: Call) -> Response:
        body = call.json() or {}
        if "searchLagSeconds" in body:
            self.portal.search_lag = float(body["searchLagSeconds"])
        if "perTenSeconds" in body:
            self.limiter.per_ten_seconds = int(body["perTenSeconds"])
        if "searchPerSecond" in body:
            self.limiter.search_per_second = int(body["searchPerSecond"])
        if "batchTraceIds" in body:
            self.batch_trace_ids = bool(body["batchTraceIds"])
        if "batchResultsInInputOrder" in body:
            self.batch_results_in_input_order = bool(body["batchResultsInInputOrder"])
        if "caseInsensitiveIn" in body:
            self.case_insensitive_in = bool(body["caseInsensitiveIn"])
        self._configure_limits_and_access(body)
        if "defaultLifecycle" in body:
            self.portal.default_lifecycle = bool(body["defaultLifecycle"])
        if "calculatedTouch" in body:
            self.portal.calculated_touch = bool(body["calculatedTouch"])
        return json_response({"searchLagSeconds": self.portal.search_lag,
                              "perTenSeconds": self.limiter.per_ten_seconds,
                              "searchPerSecond": self.limiter.search_per_second,
                              "batchTraceIds": self.batch_trace_ids,
                              "batchResultsInInputOrder": self.batch_results_in_input_order,
                              "caseInsensitiveIn": self.case_insensitive_in,
                              "defaultLifecycle": self.portal.default_lifecycle,
                              "calculatedTouch": self.portal.calculated_touch})

    def _configure_limits_and_access(self, body: dict[str, Any]) -> None:
        """Admin knobs of the daily limit and of the tokens: ``dailyLimit``, ``dailyUsed``,
        ``scopes`` (granted to every token), ``oauthLifetimeSeconds``, ``expireTokens``."""
        if "dailyLimit" in body:
            self.limiter.daily = int(body["dailyLimit"])
        if "dailyUsed" in body:
            self.limiter.daily_used = int(body["dailyUsed"])
        if self.access is None:
            return
        if "scopes" in body:
            self.access.set_scopes(str(s) for s in body["scopes"])
        if "oauthLifetimeSeconds" in body:
            self.access.oauth_lifetime = float(body["oauthLifetimeSeconds"])
        if body.get("expireTokens"):
            self.access.expire_all()

    def admin_delete_property(self, call: Call) -> Response:
        """An admin deletes a custom property (``{object, property}``): HubSpot's own
        properties cannot be deleted. It leaves the property list, reads and writes."""
        body = call.json() or {}
        object_type = ALIASES.get(str(body.get("object", "")))
        name = str(body.get("property", ""))
        with self.portal.lock:
            table = self.portal.properties.get(object_type or "", {})
            prop = table.get(name)
            if prop is None or prop.hubspot_defined:
                return json_response({"error": f"{body.get('object')} has no custom property "
                                      f"{name!r}"}, 400)
            del table[name]
        return json_response({"deleted": f"{object_type}.{name}"})

    def admin_counts(self, call: Call) -> Response:
        with self.portal.lock:
            return json_response({name: sum(1 for r in rows.values() if not r.archived)
                                  for name, rows in self.portal.records.items()})

    def admin_touch(self, call: Call) -> Response:
        """Give many records one identical modification time, as a big batch update does."""
        body = call.json() or {}
        object_type = ALIASES.get(str(body.get("object", "contacts")))
        if object_type is None:
            return json_response({"error": "unknown object"}, 400)
        ids = [str(i) for i in body.get("ids") or []]
        stamp = parse_iso(body["at"]) if body.get("at") else self.portal.now()
        with self.portal.lock:
            touched = 0
            for rid in ids or list(self.portal.records[object_type]):
                record = self.portal.get(object_type, rid)
                if record is not None:
                    self.portal.update(object_type, record, {}, stamp)
                    touched += 1
        return json_response({"touched": touched, "at": hs_format(stamp),
                              "epochMs": epoch_ms(stamp)})

    def admin_calculate(self, call: Call) -> Response:
        """HubSpot recalculates a property of these records: their last-modified date moves,
        no user-writable value changes."""
        body = call.json() or {}
        object_type = ALIASES.get(str(body.get("object", "contacts")))
        if object_type is None:
            return json_response({"error": "unknown object"}, 400)
        stamp = parse_iso(body["at"]) if body.get("at") else self.portal.now()
        with self.portal.lock:
            touched = 0
            for rid in [str(i) for i in body.get("ids") or []]:
                record = self.portal.get(object_type, rid)
                if record is not None:
                    self.portal.calculate(object_type, record, stamp)
                    touched += 1
        return json_response({"touched": touched, "at": hs_format(stamp)})

    def admin_purge(self, call: Call) -> Response:
        """Records gone for good, without an archive entry left: the given ids (archived or
        not: a purge, a GDPR delete), or every archive older than ``olderThanDays``."""
        body = call.json() or {}
        ids = {str(i) for i in body.get("ids") or []} or None
        days = float(body.get("olderThanDays", ARCHIVE_DAYS))
        before = self.portal.now() - dt.timedelta(days=days)
        return json_response({"purged": self.portal.purge_archived(before, ids)})

    def admin_restore(self, call: Call) -> Response:
        """``{object, ids}``: archived records restored (see ``Portal.restore``)."""
        body = call.json() or {}
        object_type = ALIASES.get(str(body.get("object", "contacts")))
        if object_type is None:
            return json_response({"error": "unknown object"}, 400)
        return json_response({"restored": self.portal.restore(
            object_type, [str(i) for i in body.get("ids") or []])})

    def admin_age_archive(self, call: Call) -> Response:
        """Move archived records' archive time ``days`` into the past (90 days: purged)."""
        body = call.json() or {}
        object_type = ALIASES.get(str(body.get("object", "contacts")))
        if object_type is None:
            return json_response({"error": "unknown object"}, 400)
        delta = dt.timedelta(days=float(body.get("days", 0)))
        aged = 0
        with self.portal.lock:
            for rid in [str(i) for i in body.get("ids") or []]:
                record = self.portal.get(object_type, rid, archived=True)
                if record is not None and record.archived_at is not None:
                    record.archived_at -= delta
                    aged += 1
        return json_response({"aged": aged})

    def routes(self) -> list[Route]:
        o = "/crm/v3/objects/{object}"
        a = "/crm/v4/associations/{from}/{to}"
        return [
            Route("GET", o, "hubspot.objects.list", self.list_objects),
            Route("POST", o, "hubspot.objects.create", self.create_object),
            Route("POST", o + "/search", "hubspot.objects.search", self.search),
            Route("POST", o + "/merge", "hubspot.objects.merge", self.merge),
            Route("POST", o + "/batch/read", "hubspot.batch.read", self.batch_read),
            Route("POST", o + "/batch/create", "hubspot.batch.create", self.batch_create),
            Route("POST", o + "/batch/update", "hubspot.batch.update", self.batch_update),
            Route("POST", o + "/batch/upsert", "hubspot.batch.upsert", self.batch_upsert),
            Route("POST", o + "/batch/archive", "hubspot.batch.archive", self.batch_archive),
            Route("GET", o + "/{id}", "hubspot.objects.get", self.get_object),
            Route("PATCH", o + "/{id}", "hubspot.objects.update", self.update_object),
            Route("DELETE", o + "/{id}", "hubspot.objects.archive", self.archive_object),
            Route("GET", "/crm/v3/properties/{object}", "hubspot.properties.list",
                  self.properties),
            Route("POST", "/crm/v3/properties/{object}", "hubspot.properties.create",
                  self.create_property),
            Route("GET", "/crm/v3/properties/{object}/{name}", "hubspot.properties.get",
                  self.property),
            Route("GET", "/crm/v3/pipelines/{object}", "hubspot.pipelines.list", self.pipelines),
            Route("GET", "/crm/v3/pipelines/{object}/{pipeline}", "hubspot.pipelines.get",
                  self.pipeline),
            Route("GET", "/crm/v3/pipelines/{object}/{pipeline}/stages",
                  "hubspot.pipelines.stages", self.pipeline_stages),
            Route("GET", "/crm/v3/owners", "hubspot.owners.list", self.owners),
            Route("GET", "/crm/v3/owners/{owner}", "hubspot.owners.get", self.owner),
            Route("PUT", "/crm/v4/objects/{from}/{fromId}/associations/default/{to}/{toId}",
                  "hubspot.associations.default", self.associate_default),
            Route("GET", "/crm/v4/objects/{from}/{fromId}/associations/{to}",
                  "hubspot.associations.list", self.list_associations),
            Route("POST", a + "/batch/associate/default", "hubspot.associations.batch.default",
                  self.batch_associate_default),
            Route("POST", a + "/batch/create", "hubspot.associations.batch.create",
                  self.batch_associate),
            Route("POST", a + "/batch/read", "hubspot.associations.batch.read",
                  self.batch_read_associations),
            Route("POST", a + "/batch/labels/archive",
                  "hubspot.associations.batch.labels.archive", self.batch_archive_labels),
            Route("POST", a + "/batch/archive", "hubspot.associations.batch.archive",
                  self.batch_archive_associations),
            Route("GET", a + "/labels", "hubspot.associations.labels", self.association_labels),
            Route("POST", a + "/labels", "hubspot.associations.labels.create",
                  self.create_association_label),
            Route("GET", "/crm/associations/v4/{from}/{to}/labels",
                  "hubspot.associations.labels", self.association_labels),
        ]

    def admin_routes(self) -> list[Route]:
        return [
            Route("POST", "/__sandbox/hubspot/config", "admin", self.admin_config),
            Route("GET", "/__sandbox/hubspot/counts", "admin", self.admin_counts),
            Route("POST", "/__sandbox/hubspot/touch", "admin", self.admin_touch),
            Route("POST", "/__sandbox/hubspot/calculate", "admin", self.admin_calculate),
            Route("POST", "/__sandbox/hubspot/purge", "admin", self.admin_purge),
            Route("POST", "/__sandbox/hubspot/ageArchive", "admin", self.admin_age_archive),
            Route("POST", "/__sandbox/hubspot/restore", "admin", self.admin_restore),
            Route("POST", "/__sandbox/hubspot/deleteProperty", "admin",
                  self.admin_delete_property),
        ]


# What a create echoes beyond what was sent: the lifecycle stage HubSpot gives a contact or
# company created without one (recorded: amp-batch-create-contacts-success.json and
# nango-create-contact.test.json answer "lifecyclestage": "lead" for creates that sent none).
SET_ON_CREATE = ("lifecyclestage",)


def _echoed(object_type: str, properties: dict[str, str | None], sent: Iterable[str]
            ) -> dict[str, str | None]:
    """What a write echoes: the properties sent, with the record's id and dates. Recorded
    updates echo no other stored property (nango-update-contact: no email; a contact's
    hs_lastmodifieddate never). The portal's computed properties (hs_object_source, ...)
    depend on its settings and are left out: the harsher reading for matching by echo."""
    keep = {*sent, "createdate", "hs_object_id", LAST_MODIFIED[object_type]}
    return {k: v for k, v in properties.items() if k in keep}


def _not_found_error(object_type: str, ids: list[str]) -> dict[str, Any]:
    return {"status": "error", "category": "OBJECT_NOT_FOUND",
            "message": f"Could not get some {SINGULAR[object_type].upper()} objects, they may be "
            "deleted or not exist. Check that ids are valid.",
            "context": {"ids": ids}}


USER_DEFINED_FROM = 1000  # HubSpot's own type ids are below; the portal's labels from here


def _category(type_id: int) -> str:
    """``AssociationSpecWithLabel.category``: a label the portal's users made is theirs."""
    return "HUBSPOT_DEFINED" if type_id < USER_DEFINED_FROM else "USER_DEFINED"


def _assoc_missing(from_type: str, from_id: str, to_type: str) -> dict[str, Any]:
    return {"status": "error", "category": "OBJECT_NOT_FOUND",
            "message": f"One or more {to_type} or {from_type} objects were not found",
            "context": {"fromObjectId": [from_id]}}


def _value_key(props: dict[str, Prop], prop: str, raw: Any) -> Any:
    """Comparable form of a property value: numbers and datetimes numerically, text folded."""
    spec = props.get(prop)
    if raw is None:
        return None
    text = str(raw)
    if (spec is not None and spec.type == "number") or prop == "hs_object_id":
        try:
            return float(text)
        except ValueError:
            return None
    if spec is not None and spec.type in ("datetime", "date"):
        if text.lstrip("-").isdigit():
            return int(text)
        try:
            return epoch_ms(parse_iso(text))
        except ValueError:
            return None
    return text.casefold()


def _record_value(props: dict[str, Prop], prop: str, record: HsRecord) -> Any:
    try:
        return record.keys[prop]
    except KeyError:
        value = (float(record.id) if prop == "hs_object_id"
                 else _value_key(props, prop, record.properties.get(prop)))
        record.keys[prop] = value
        return value


def _compile_groups(object_type: str, props: dict[str, Prop], groups: list[Any],
                    fold_in: bool = False) -> Any:
    compiled = []
    for group in groups:
        filters = []
        for f in group.get("filters") or []:
            prop = f.get("propertyName")
            op = f.get("operator")
            if op not in OPERATORS:
                raise ValueError(f"Unknown operator {op!r}; use one of {sorted(OPERATORS)}")
            if prop not in props and prop != "hs_object_id":
                raise ValueError(f"Property {prop!r} does not exist on {object_type}")
            filters.append((prop, op, f.get("value"), f.get("values"), f.get("highValue")))
        compiled.append(filters)

    def matches(record: HsRecord) -> bool:
        if not compiled:
            return True
        return any(all(_test(props, record, *f, fold_in=fold_in) for f in fs)
                   for fs in compiled)

    return matches


def _test(props: dict[str, Prop], record: HsRecord, prop: str, op: str, value: Any,
          values: Any, high: Any, fold_in: bool = False) -> bool:
    current = _record_value(props, prop, record)
    if op == "HAS_PROPERTY":
        return current is not None
    if op == "NOT_HAS_PROPERTY":
        return current is None
    if op in ("IN", "NOT_IN"):
        spec = props.get(prop)
        if not fold_in and spec is not None and spec.type == "string":
            # HubSpot: IN with a string property compares the values as given with the stored
            # value lower-cased, so a value that is not lower case never matches.
            stored = record.properties.get(prop)
            found = stored is not None and stored.lower() in {str(v) for v in values or []}
            return found == (op == "IN")
        keys = {_value_key(props, prop, v) for v in values or []}
        return bool((current in keys) == (op == "IN"))
    target = _value_key(props, prop, value)
    if op == "EQ":
        return bool(current == target)
    if op == "NEQ":
        return bool(current != target)
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(value or "").casefold().strip("*")
        found = current is not None and token in str(current)
        return found == (op == "CONTAINS_TOKEN")
    if current is None or target is None:
        return False
    try:
        if op == "LT":
            return bool(current < target)
        if op == "LTE":
            return bool(current <= target)
        if op == "GT":
            return bool(current > target)
        if op == "GTE":
            return bool(current >= target)
        if op == "BETWEEN":
            return bool(target <= current <= _value_key(props, prop, high))
    except TypeError:
        return False
    return False


def _sorts(props: dict[str, Prop], sorts: list[Any]) -> list[tuple[str, bool]]:
    out = []
    for item in sorts:
        if isinstance(item, str):
            prop, descending = item.lstrip("-"), item.startswith("-")
        else:
            prop = item.get("propertyName")
            descending = str(item.get("direction", "ASCENDING")).upper() == "DESCENDING"
        if prop not in props and prop != "hs_object_id":
            raise ValueError(f"Cannot sort by unknown property {prop!r}")
        out.append((prop, descending))
    return out


def _sort_key(props: dict[str, Prop], prop: str, record: HsRecord) -> tuple[int, Any]:
    value = _record_value(props, prop, record)
    return (0, 0) if value is None else (1, value)


def build_app(portal: Portal, token: str, limiter: RateLimiter, faults: FaultInjector,
              log: RequestLog, *, seed: int = 0, batch_trace_ids: bool = False,
              batch_results_in_input_order: bool = False,
              case_insensitive_in: bool = False,
              access: Access | None = None) -> tuple[EmulatorApp, HubSpotEmulator]:
    emulator = HubSpotEmulator(portal, limiter, seed=seed, batch_trace_ids=batch_trace_ids,
                               batch_results_in_input_order=batch_results_in_input_order,
                               case_insensitive_in=case_insensitive_in)
    vendor = HubSpotVendor(token, limiter, access)
    emulator.access = vendor.access
    oauth = [Route("POST", "/oauth/v1/token", "hubspot.oauth.token",
                   vendor.access.token_route, public=True),
             Route("GET", "/oauth/v1/access-tokens/{token}", "hubspot.oauth.tokenInfo",
                   vendor.access.token_info_route, public=True)]
    app = EmulatorApp(vendor, emulator.routes() + oauth, emulator.admin_routes(), faults, log)
    return app, emulator
