"""HubSpot connector on hubspot-api-client.

Quirks handled here, each for a reason:
- every attribute access such as ``client.crm.contacts.search_api`` builds a new ApiClient and
  connection pool, so each API object is built once and kept;
- each sub-package raises its own ``ApiException`` class with no shared base, so errors are
  classified by ``.status``;
- urllib3's own Retry is turned off (it would not retry POSTs anyway); retries live in the one
  tenacity policy;
- search stops at 10,000 results and lags writes, so reads go window by window in time and page
  by ``hs_object_id`` inside a window, starting a lookback before the watermark;
- archiving does not bump the last-modified date, so archived records are polled separately,
  a slice per cycle (the archive lists only in id order, with no time filter);
- a merge makes a new record with a new id; reads by id of a merged-away id answer with it, and
  ``hs_merged_object_ids`` lists the ids merged into it;
- a lifecycle stage only moves backwards when first cleared, so backward moves are two writes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, TypeVar

import hubspot
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError
from urllib3.util import Timeout
from urllib3.util.retry import Retry

from connectors.config import HubSpotSettings
from connectors.contract import CheckReport, ObjectSummary
from connectors.errors import (
    ConfigurationError,
    ConnectorError,
    DailyLimitError,
    DataError,
    FatalError,
    ReauthenticateError,
    RetriableError,
)
from connectors.hubspot_auth import HubSpotTokens
from connectors.hubspot_limits import (
    SEARCH_BODY_CHARACTERS,
    body_size,
    check_search_request,
    daily_limit_error,
    missing_scopes,
    stopped_error,
    value_chunks,
)
from connectors.hubspot_pages import fetched, latest_changes, written
from connectors.hubspot_scopes import REQUIRED_SCOPES, scopes_lacking
from connectors.pacing import HeaderUsage, RollingWindow
from connectors.records import (
    Activity,
    DeletedRecord,
    DeletedRecords,
    FieldInfo,
    ObjectSchema,
    Person,
    Record,
    Stage,
    Watermark,
    WriteError,
    WriteRecord,
    WriteResult,
)
from connectors.retry import RetryPolicy
from connectors.schema_cache import DESCRIBE, SchemaCache, Schemas

SYSTEM = "hubspot"
OBJECT_TYPES = ("contacts", "companies", "deals")
# Engagements a rep logs (calls, meetings, logged emails), read by change for the activities
# written to Salesforce as Tasks; HubSpot's objects API serves them as any CRM object
# (developers.hubspot.com/docs/api/crm/calls, .../meetings, .../email).
ENGAGEMENT_TYPES = ("calls", "meetings", "emails")
LAST_MODIFIED = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate",
                 "deals": "hs_lastmodifieddate",
                 **{name: "hs_lastmodifieddate" for name in ENGAGEMENT_TYPES}}
BATCH_SIZE = 100  # HubSpot batch endpoints take at most 100 inputs
# v4 association batches: reads 1,000 inputs (developers.hubspot.com changelog, "Batch Read
# Limit for HubSpot Associations API", February 2025), creates and removals 2,000.
ASSOCIATION_READ_SIZE = 1000
ASSOCIATION_WRITE_SIZE = 2000
ASSOCIATION_USER_DEFINED_FROM = 1000  # HubSpot-defined type ids are below, labels above
HISTORY_BATCH = 50  # a batch read asking for property histories takes at most 50
SEARCH_PAGE = 200  # search pages hold at most 200 results
SEARCH_CAP = 10_000  # search never returns more than 10,000 results for one query
LIST_PAGE = 100  # list pages hold at most 100 records
# A watermark this early is the engine's first read of an object: list it, not search it.
FROM_THE_BEGINNING = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LIFECYCLE = "lifecyclestage"
ACTIVITY = "notes_last_updated"
# the widest "hs_object_id > last" filter paging adds to a search (ids up to 20 digits)
PAGING_FILTER = {"propertyName": "hs_object_id", "operator": "GT", "value": "9" * 20}
RATE_LIMIT_PAUSE = 1.0  # a 429 without Retry-After: HubSpot's windows free up within seconds
# A write naming a property the portal no longer has (deleted since the describe): the code of
# a request refused whole, and inside the message of a 207's "Property values were not valid".
UNKNOWN_PROPERTY = "PROPERTY_DOESNT_EXIST"
T = TypeVar("T")
log = logging.getLogger("stagesync.connectors")

# The generated client logs whole request and response bodies (personal data) at DEBUG.
for _name in ("hubspot", "urllib3"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def classify(exc: Exception) -> ConnectorError:
    """Map any sub-package's ApiException (or a urllib3 failure) to our kinds by status."""
    if isinstance(exc, Urllib3Error):
        return RetriableError(SYSTEM, f"network: {type(exc).__name__}",
                              unapplied=isinstance(exc, NewConnectionError))
    status = int(getattr(exc, "status", 0) or 0)
    reason = str(getattr(exc, "reason", "") or type(exc).__name__)
    headers = getattr(exc, "headers", None) or {}
    if status == 429:
        retry_after = headers.get("Retry-After")
        return RetriableError(SYSTEM, "429 rate limited",
                              retry_after=float(retry_after) if retry_after else RATE_LIMIT_PAUSE,
                              unapplied=True)
    if status in (502, 503, 504):
        return RetriableError(SYSTEM, f"{status} {reason}", unapplied=status == 503)
    if status >= 500 or status == 0:
        return RetriableError(SYSTEM, f"{status} {reason}")
    if status == 403 and (scopes := missing_scopes(_error_body(exc))) is not None:
        return ConfigurationError(SYSTEM, f"403 MISSING_SCOPES: the token lacks the scope(s) "
                                  f"{', '.join(scopes) or '(not named)'}: add them to the "
                                  "private app (or to the OAuth app and install it again)")
    if status in (401, 403):
        return ConfigurationError(SYSTEM, f"{status} {reason}: check the private app token and "
                                  "its scopes")
    body = _error_body(exc)
    details = body.get("errors") or [{}]
    first = details[0] if isinstance(details[0], dict) else {}
    fields = (first.get("context") or {}).get("propertyName") or [None]
    return DataError(SYSTEM, f"{status} {body.get('message') or reason}",
                     code=str(first.get("code") or body.get("category") or status),
                     field=fields[0])


def _error_body(exc: Exception) -> dict[str, Any]:
    """HubSpot's JSON error body (status, message, category, errors[]) if there is one."""
    try:
        body = json.loads(getattr(exc, "body", None) or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


class HubSpotConnector:
    system = SYSTEM

    def __init__(self, settings: HubSpotSettings, policy: RetryPolicy | None = None) -> None:
        self.settings = settings
        self.tokens = HubSpotTokens(settings)
        self.client = hubspot.Client.create(
            access_token=settings.access_token.get_secret_value()
            if settings.access_token is not None else "", host=settings.host,
            retry=Retry(total=0, connect=0, read=0, redirect=0, status=0, other=0,
                        raise_on_status=False))
        crm = self.client.crm
        self.basic = {"contacts": crm.contacts.basic_api, "companies": crm.companies.basic_api,
                      "deals": crm.deals.basic_api}
        self.batch = {"contacts": crm.contacts.batch_api, "companies": crm.companies.batch_api,
                      "deals": crm.deals.batch_api}
        self.search = {"contacts": crm.contacts.search_api, "companies": crm.companies.search_api,
                       "deals": crm.deals.search_api}
        for name in ENGAGEMENT_TYPES:
            engagement = getattr(crm.objects, name)
            self.basic[name] = engagement.basic_api
            self.batch[name] = engagement.batch_api
            self.search[name] = engagement.search_api
        self.properties_api = crm.properties.core_api
        self.pipelines_api = crm.pipelines.pipelines_api
        self.owners_api = crm.owners.owners_api
        self.associations_batch = crm.associations.v4.batch_api
        self.association_definitions = crm.associations.v4.schema.definitions_api
        self._apis = [*self.basic.values(), *self.batch.values(), *self.search.values(),
                      self.properties_api, self.pipelines_api, self.owners_api,
                      self.associations_batch, self.association_definitions]
        self._labels: dict[tuple[str, str], dict[str | None, int]] = {}
        self.daily_usage = HeaderUsage()
        for api in self._apis:
            _set_timeout(api, settings.timeout_seconds)
            _watch_usage(api, self.daily_usage)
        self._sent_token: str | None = None
        self.daily_stop: DailyLimitError | None = None  # set by a 429 DAILY until its reset
        self._daily_resumed_at: dt.datetime | None = None
        self.policy = policy or RetryPolicy(attempts=settings.retry_attempts)
        self.window = RollingWindow(settings.requests_per_ten_seconds, 10.0)
        self.search_window = RollingWindow(settings.searches_per_second, 1.0)
        self.calls: Counter[str] = Counter()
        self.rate_limited = 0
        self.schemas = Schemas.for_settings(SYSTEM, settings)

    # -- plumbing ------------------------------------------------------------------------
    def _authorize(self) -> None:
        """Put the current access token on every API object (an OAuth token is renewed
        before it expires); a private app token is set once."""
        token = self.tokens.current()
        if token != self._sent_token:
            for api in self._apis:
                api.api_client.configuration.access_token = token
            self._sent_token = token

    def _check_daily_stop(self) -> None:
        """While a 429 DAILY stop lasts, no call is made: each would be refused."""
        stop = self.daily_stop
        if stop is None:
            return
        now = dt.datetime.now(dt.UTC)
        if now < stop.resume_at:
            raise stopped_error(stop)
        self.daily_stop, self._daily_resumed_at = None, now
        log.info("HubSpot's daily limit has reset; HubSpot work resumes")

    def _refusal(self, exc: Exception, status: int) -> ConnectorError:
        """HubSpot's answer as our error, with the cases only this connector can judge: a 429
        DAILY stops HubSpot work until the reset; a 401 with OAuth renews the token once."""
        if status == 429:
            self.rate_limited += 1
            stop = daily_limit_error(_error_body(exc), dt.datetime.now(dt.UTC),
                                     self.settings.account_time_zone, self._daily_resumed_at)
            if stop is not None:
                self.daily_stop = stop
                log.warning("HubSpot's daily API limit is reached; HubSpot work stops until "
                            "the daily reset", extra={"resume_at": stop.resume_at.isoformat(),
                                                      "time_zone":
                                                      self.settings.account_time_zone})
                return stop
        if status == 401 and self.tokens.oauth:
            return ReauthenticateError(SYSTEM, "401: the OAuth access token was refused")
        return classify(exc)

    def _once(self, endpoint: str, call: Callable[[], T]) -> T:
        self._check_daily_stop()
        (self.search_window if endpoint.endswith(".search") else self.window).acquire()
        self._authorize()
        self.calls[endpoint] += 1
        try:
            return call()
        except Exception as exc:
            if not (hasattr(exc, "status") or isinstance(exc, Urllib3Error)):
                raise
            error = self._refusal(exc, int(getattr(exc, "status", 0) or 0))
            if type(error) is ConfigurationError:  # no retry mends it: say where it happened
                error = ConfigurationError(SYSTEM, f"{error.message} ({endpoint} at "
                                           f"{self.settings.host})")
            raise error from None

    def _call(self, endpoint: str, call: Callable[[], T], idempotent: bool = True) -> T:
        reauthenticate = self.tokens.force_refresh if self.tokens.oauth else None
        try:
            return self.policy.run(lambda: self._once(endpoint, call),
                                   reauthenticate=reauthenticate, idempotent=idempotent)
        except ReauthenticateError:  # refused again with a fresh token
            raise ConfigurationError(SYSTEM, f"401 even with a freshly refreshed OAuth access "
                                     f"token ({endpoint} at {self.settings.host}): check the "
                                     "OAuth app and its installation") from None

    def _object(self, object_type: str) -> str:
        if object_type not in OBJECT_TYPES and object_type not in ENGAGEMENT_TYPES:
            raise ConfigurationError(SYSTEM, f"unknown object type {object_type!r}; "
                                     f"use one of {OBJECT_TYPES + ENGAGEMENT_TYPES}")
        return object_type

    @property
    def api_usage(self) -> tuple[int | None, int | None]:
        """(used, limit) of the account's daily API calls, from the last response that said."""
        return self.daily_usage.used, self.daily_usage.limit

    @property
    def lookback(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.settings.search_lookback_seconds)

    @property
    def schema_cache(self) -> SchemaCache | None:
        return self.schemas.cache

    def use_schema_cache(self, cache: SchemaCache | None) -> None:
        self.schemas.cache = cache

    def clear_cache(self) -> None:
        """Describe and read the owners again, whatever the cache holds (a forced refresh)."""
        self.schemas.clear()

    # -- schema --------------------------------------------------------------------------
    def describe(self, object_type: str) -> ObjectSchema:
        """Properties and pipelines, cached (memory, then the engine's cache) for
        ``schema_refresh_hours``."""
        return self.schemas.describe(object_type, lambda: self._describe_live(object_type))

    def _describe_live(self, object_type: str) -> ObjectSchema:
        name = self._object(object_type)
        props = self._call("properties.list",
                           lambda: self.properties_api.get_all(object_type=name)).results
        fields = {p.name: FieldInfo(
            name=p.name, label=p.label, type=p.type, nillable=True,
            createable=not p.modification_metadata.read_only_value,
            updateable=not p.modification_metadata.read_only_value,
            picklist_values=tuple(o.value for o in sorted(
                p.options or [], key=lambda o: o.display_order if o.display_order is not None
                else 0)),
            restricted_picklist=p.type == "enumeration" and not p.external_options,
            calculated=bool(p.calculated), unique=bool(p.has_unique_value),
            forward_only=p.name == LIFECYCLE) for p in props}
        pipelines: dict[str, list[Stage]] = {}
        if name in PIPELINED:
            source = PIPELINED[name]
            found = self._call("pipelines.list",
                               lambda: self.pipelines_api.get_all(object_type=source)).results
            for pipeline in sorted(found, key=lambda p: p.display_order or 0):
                pipelines[pipeline.id] = [Stage(
                    id=s.id, label=s.label, order=s.display_order,
                    probability=float(s.metadata["probability"])
                    if s.metadata.get("probability") not in (None, "") else None,
                    closed=str(s.metadata.get("isClosed", "false")) == "true")
                    for s in sorted(pipeline.stages, key=lambda s: s.display_order)]
            fields = _options_from_pipelines(name, fields, pipelines)
        return ObjectSchema(system=SYSTEM, object=name, fields=fields, pipelines=pipelines)

    def _properties(self, object_type: str, fields: Iterable[str] | None) -> list[str]:
        cursor = LAST_MODIFIED[object_type]
        if object_type in ENGAGEMENT_TYPES and fields is not None:
            # HubSpot's own engagement properties, asked for by name: no describe (whose
            # scope for engagements differs from the contacts' the reads need)
            return list(dict.fromkeys([cursor, *fields]))
        schema = self.describe(object_type)
        chosen = list(schema.fields) if fields is None else list(fields)
        unknown = [f for f in chosen if f not in schema.fields]
        if unknown:
            self.schemas.forget(DESCRIBE, object_type)  # a property added since: look again
            raise ConfigurationError(SYSTEM, f"{object_type} has no properties {unknown}")
        cursor = LAST_MODIFIED[object_type]
        return list(dict.fromkeys([cursor, *chosen]))

    # -- reads ---------------------------------------------------------------------------
    def _to_record(self, object_type: str, item: Any) -> Record:
        properties = dict(item.properties or {})
        stamp = properties.get(LAST_MODIFIED[object_type])
        cursor = _parse(stamp) if stamp else item.updated_at.astimezone(dt.UTC)
        return Record(system=SYSTEM, object=object_type, id=str(item.id), cursor=cursor,
                      values=properties)

    def _search_request(self, filters: list[dict[str, Any]], properties: list[str],
                        limit: int) -> dict[str, Any]:
        return {"filterGroups": [{"filters": filters}], "properties": properties,
                "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                "limit": limit}

    def _search_page(self, object_type: str, filters: list[dict[str, Any]],
                     properties: list[str], limit: int) -> Any:
        """One page of a search. A body past HubSpot's 3,000 characters because of a long
        property list searches for the cursor only, then reads the properties by id."""
        request = self._search_request(filters, properties, limit)
        slim = [LAST_MODIFIED[object_type]]
        if body_size(request) > SEARCH_BODY_CHARACTERS and properties != slim:
            page = self._search_page(object_type, filters, slim, limit)
            ids = [str(i.id) for i in page.results]
            full = {str(r.id): r for r in self.batch_read_raw(object_type, ids, properties)}
            # paging goes by what search returned; a record archived in between is left out
            # rather than passed on with its other properties missing
            page.stagesync_ids = ids
            page.results = [full[i] for i in ids if i in full]
            return page
        check_search_request(request)
        api = self.search[object_type]
        return self._call(f"{object_type}.search", fetched(partial(
            api.do_search, public_object_search_request=request)))

    def batch_read_raw(self, object_type: str, ids: list[str], properties: list[str]
                       ) -> list[Any]:
        """Batch read by id, as plain items (for search pages read in two steps)."""
        api = self.batch[object_type]
        out: list[Any] = []
        for start in range(0, len(ids), BATCH_SIZE):
            body = {"inputs": [{"id": k} for k in ids[start:start + BATCH_SIZE]],
                    "properties": properties, "propertiesWithHistory": []}
            answer = self._call(f"{object_type}.batch.read", fetched(partial(
                api.read, batch_read_input_simple_public_object_id=body)))
            out += list(answer.results)
        return out

    def _window(self, object_type: str, start: int, end: int, properties: list[str]
                ) -> Iterator[list[Record]]:
        """Records modified in [start, end] ms, as lists sorted by (cursor, id).

        Pages are taken by ``hs_object_id > last`` rather than an offset, so no query ever
        passes the 10,000-result cap, even when more than 10,000 records share one timestamp.
        A window holding more than 10,000 records is halved (when it spans more than 1 ms) to
        keep memory bounded while sorting.
        """
        cursor = LAST_MODIFIED[object_type]
        base = [{"propertyName": cursor, "operator": "GTE", "value": str(start)},
                {"propertyName": cursor, "operator": "LTE", "value": str(end)}]
        first = self._search_page(object_type, base, properties, SEARCH_PAGE)
        if first.total > SEARCH_CAP and end > start:
            low, high = self._cursor_range(object_type, base)
            if (low, high) != (start, end):  # shrink to what is really there, then look again
                yield from self._window(object_type, low, high, properties)
                return
            middle = (start + end) // 2
            yield from self._window(object_type, start, middle, properties)
            yield from self._window(object_type, middle + 1, end, properties)
            return
        records = list(self._pages_from(object_type, base, properties, first))
        records.sort(key=lambda r: (r.cursor, int(r.id)))
        yield records

    def _pages_from(self, object_type: str, base: list[dict[str, Any]],
                    properties: list[str], first: Any) -> Iterator[Record]:
        """A search's records from its first page on, paging by ``hs_object_id > last``
        (never an offset, so no query passes the 10,000-result cap)."""
        page = first
        yield from (self._to_record(object_type, item) for item in page.results)
        while len(ids := _searched_ids(page)) == SEARCH_PAGE:
            page = self._search_page(object_type, [*base, {
                "propertyName": "hs_object_id", "operator": "GT",
                "value": ids[-1]}], properties, SEARCH_PAGE)
            yield from (self._to_record(object_type, item) for item in page.results)

    def _cursor_range(self, object_type: str, base: list[dict[str, Any]]) -> tuple[int, int]:
        """The first and last modification time (ms) inside a window: two one-row searches."""
        cursor = LAST_MODIFIED[object_type]
        api = self.search[object_type]
        ends = []
        for direction in ("ASCENDING", "DESCENDING"):
            request = {"filterGroups": [{"filters": base}], "properties": [cursor], "limit": 1,
                       "sorts": [{"propertyName": cursor, "direction": direction}]}
            page = self._call(f"{object_type}.search", partial(
                api.do_search, public_object_search_request=request))
            ends.append(_ms(self._to_record(object_type, page.results[0]).cursor))
        return ends[0], ends[1]

    def read_changed(self, object_type: str, since: Watermark | dt.datetime,
                     until: dt.datetime, fields: Iterable[str] | None = None,
                     ordered: bool = True) -> Iterator[Record]:
        """Records with ``since <= last modified <= until``, ordered by (cursor, id), starting
        ``search_lookback_seconds`` early because search lags writes; what the watermark
        already saw is skipped. ``ordered=False``: a read from the beginning comes a listed
        page at a time, in the list's order (the caller orders it)."""
        name = self._object(object_type)
        mark = since if isinstance(since, Watermark) else Watermark(cursor=since)
        properties = self._properties(name, fields)
        if mark.cursor <= FROM_THE_BEGINNING:
            listed = self._listed(name, properties, until)
            yield from (sorted(listed, key=lambda r: (r.cursor, int(r.id))) if ordered
                        else listed)
            return
        start = _ms(mark.start(self.lookback, dt.timedelta(milliseconds=1)))
        emitted: set[str] = set()
        for batch in self._window(name, max(start, 0), _ms(until), properties):
            for record in batch:
                if mark.skips(record) or record.id in emitted:
                    continue
                emitted.add(record.id)
                yield record

    def _listed(self, name: str, properties: list[str], until: dt.datetime
                ) -> Iterator[Record]:
        """Every record modified up to ``until``, from the list endpoint, a page at a time in
        the list's order. A read from the beginning lists rather than searches: a list reads
        the records as they are, where search serves an index that lags writes by seconds (a
        stale copy would decide a field on old values), and has no 10,000-result cap. Records
        modified after ``until`` are left for the next read, as a search window would leave
        them."""
        api = self.basic[name]
        after: str | None = None
        while True:
            page = self._call(f"{name}.list", fetched(partial(api.get_page,
                limit=LIST_PAGE, after=after, properties=properties)))
            yield from (r for r in (self._to_record(name, item) for item in page.results)
                        if r.cursor <= until)
            if page.paging is None or page.paging.next is None:
                return
            after = page.paging.next.after

    def read_deleted(self, object_type: str, since: dt.datetime) -> DeletedRecords:
        """Archived records since ``since``: archiving does not change the last-modified date,
        so search never shows them; they are listed with ``archived=true``."""
        name = self._object(object_type)
        api = self.basic[name]
        found: list[DeletedRecord] = []
        after: str | None = None
        while True:
            page = self._call(f"{name}.list", fetched(partial(api.get_page,
                limit=100, after=after, archived=True, properties=["hs_object_id"])))
            for item in page.results:
                archived_at = (item.archived_at or item.updated_at).astimezone(dt.UTC)
                if archived_at >= since:
                    found.append(DeletedRecord(system=SYSTEM, object=name, id=str(item.id),
                                               deleted_at=archived_at))
            if page.paging is None or page.paging.next is None:
                break
            after = page.paging.next.after
        return DeletedRecords(records=found)

    def read_archived(self, object_type: str, after: str | None, pages: int
                      ) -> tuple[list[DeletedRecord], str | None]:
        """Up to ``pages`` pages (100 each) of archived records from id ``after`` on, and the
        id the next slice starts after (None once the end of the archive is reached).

        HubSpot lists archived records only in id order, with no filter on the archive time,
        and search never shows them: reading the whole archive every cycle would cost one call
        per 100 archived records (500 calls a cycle for 50,000). So the engine reads it a slice
        per cycle, picking up where the last slice stopped."""
        name = self._object(object_type)
        api = self.basic[name]
        found: list[DeletedRecord] = []
        for _ in range(pages):
            page = self._call(f"{name}.list", fetched(partial(api.get_page,
                limit=100, after=after, archived=True, properties=["hs_object_id"])))
            found += [DeletedRecord(system=SYSTEM, object=name, id=str(item.id), deleted_at=(
                item.archived_at or item.updated_at).astimezone(dt.UTC)) for item in page.results]
            if page.paging is None or page.paging.next is None:
                return found, None
            after = page.paging.next.after
        return found, after

    @property
    def full_id_interval(self) -> dt.timedelta:
        return dt.timedelta(hours=self.settings.full_id_check_hours)

    @property
    def archive_pages(self) -> int:
        return self.settings.archive_pages_per_cycle

    @property
    def archive_interval(self) -> dt.timedelta:
        """How often the next slice of the archive is read (``archive_poll_minutes``)."""
        return dt.timedelta(minutes=self.settings.archive_poll_minutes)

    def list_ids(self, object_type: str) -> Iterator[str]:
        name = self._object(object_type)
        api = self.basic[name]
        after: str | None = None
        while True:
            page = self._call(f"{name}.list", fetched(partial(api.get_page,
                limit=100, after=after, properties=["hs_object_id"])))
            for item in page.results:
                yield str(item.id)
            if page.paging is None or page.paging.next is None:
                return
            after = page.paging.next.after

    def _batch_read(self, object_type: str, keys: list[str], properties: list[str],
                    id_property: str | None = None) -> list[Record]:
        name = self._object(object_type)
        api = self.batch[name]
        out: list[Record] = []
        for start in range(0, len(keys), BATCH_SIZE):
            body: dict[str, Any] = {"inputs": [{"id": k} for k in keys[start:start + BATCH_SIZE]],
                                    "properties": properties, "propertiesWithHistory": []}
            if id_property:
                body["idProperty"] = id_property
            answer = self._call(f"{name}.batch.read", fetched(partial(api.read,
                batch_read_input_simple_public_object_id=body)))
            out += [self._to_record(name, item) for item in answer.results]
        return out

    def find_by_values(self, object_type: str, field: str, values: Iterable[str],
                       fields: Iterable[str] | None = None, *, domain: bool = False
                       ) -> list[Record]:
        """Match-key candidates by search: ``field`` equal to a value (text keys compare
        folded, so case is left to the caller), or for ``domain`` the bare domain or its
        ``www.`` form, as a company's domain is usually stored."""
        wanted = {str(v) for v in values if v}
        if domain:
            wanted |= {f"www.{v}" for v in wanted}
        name = self._object(object_type)
        properties = list(dict.fromkeys([*self._properties(name, fields), field]))
        return self._search_in(name, field, sorted({v.lower() for v in wanted}), properties)

    def _search_in(self, name: str, prop: str, wanted: list[str], properties: list[str]
                   ) -> list[Record]:
        """Records whose ``prop`` is one of ``wanted`` (lower-cased), by search."""
        def fits(chunk: list[str]) -> bool:  # with room for the paging filter added later
            return body_size(self._search_request(
                [{"propertyName": prop, "operator": "IN", "values": chunk}, PAGING_FILTER],
                [LAST_MODIFIED[name]], SEARCH_PAGE)) <= SEARCH_BODY_CHARACTERS

        out: list[Record] = []
        for chunk in value_chunks(wanted, fits, BATCH_SIZE):
            base = [{"propertyName": prop, "operator": "IN", "values": chunk}]
            first = self._search_page(name, base, properties, SEARCH_PAGE)
            out += self._pages_from(name, base, properties, first)
        return out

    def field_times(self, object_type: str, ids: Iterable[str], fields: Iterable[str]
                    ) -> dict[str, dict[str, dt.datetime]]:
        """When each property last changed on each record, from its property history
        (``propertiesWithHistory``, HubSpot's batch read: at most 50 records a call). Asked
        only for records whose fields changed on both sides since the last sync."""
        name = self._object(object_type)
        api = self.batch[name]
        wanted = sorted(set(fields))
        keys = list(dict.fromkeys(ids))
        out: dict[str, dict[str, dt.datetime]] = {}
        for start in range(0, len(keys), HISTORY_BATCH):
            body = {"inputs": [{"id": k} for k in keys[start:start + HISTORY_BATCH]],
                    "properties": [], "propertiesWithHistory": wanted}
            answer = self._call(f"{name}.batch.history", latest_changes(partial(
                api.read, batch_read_input_simple_public_object_id=body)))
            out.update(answer)
        return out

    def read_by_ids(self, object_type: str, ids: Iterable[str],
                    fields: Iterable[str] | None = None) -> list[Record]:
        properties = self._properties(object_type, fields)
        return self._batch_read(object_type, list(dict.fromkeys(ids)), properties)

    def find_by_emails(self, object_type: str, emails: Iterable[str],
                       fields: Iterable[str] | None = None) -> list[Record]:
        """Contacts by email (HubSpot stores emails lower-cased), 100 per call."""
        if object_type != "contacts":
            raise ConfigurationError(SYSTEM, "only contacts have an email to look up")
        properties = self._properties(object_type, fields)
        wanted = sorted({e.strip().lower() for e in emails if e and e.strip()})
        return self._batch_read(object_type, wanted, properties, id_property="email")

    # -- writes --------------------------------------------------------------------------
    def upsert(self, object_type: str, records: list[WriteRecord]) -> list[WriteResult]:
        """Create (no id), update (id) or upsert by a unique property (match), 100 per call.

        HubSpot's results echo no ``objectWriteTraceId`` and come in no promised order, so
        they are matched to inputs by what was sent (``match_results``); errors do name the
        trace id, so a 207 fails only the records it names. A request refused whole (400) is
        halved until the bad record stands alone, so one bad record never sinks the other 99.
        """
        name = self._object(object_type)
        records = self._resolve_matches(name, records)
        self._clear_backward_lifecycle(name, records)
        results: dict[int, WriteResult] = {}
        groups: dict[str, list[int]] = {"create": [], "update": [], "upsert": []}
        for index, rec in enumerate(records):
            kind = "update" if rec.id else "upsert" if rec.match else "create"
            groups[kind].append(index)
        for kind, indexes in groups.items():
            for start in range(0, len(indexes), BATCH_SIZE):
                self._write(name, kind, records, indexes[start:start + BATCH_SIZE], results)
        if any(r.error is not None and UNKNOWN_PROPERTY in f"{r.error.code} {r.error.message}"
               for r in results.values()):
            self.schemas.forget(DESCRIBE, name)  # the next describe is live; nothing retried
        return [results[i] for i in range(len(records))]

    def _resolve_matches(self, name: str, records: list[WriteRecord]) -> list[WriteRecord]:
        """HubSpot upserts only on unique properties. A match on another property (a company's
        ``salesforceaccountid``) is looked up by search first, so a re-run after a crash
        updates the record it created instead of creating it twice."""
        if not any(r.match and not r.id and r.match[0] != "email" for r in records):
            return records  # contacts upsert on email natively
        fields = self.describe(name).fields
        loose = [r for r in records if r.match and not r.id and not (
            r.match[0] in fields and fields[r.match[0]].unique)]
        if not loose:
            return records
        found: dict[tuple[str, str], str] = {}
        for prop in sorted({r.match[0] for r in loose if r.match}):
            values = [r.match[1] for r in loose if r.match and r.match[0] == prop]
            for record in self.find_by(name, prop, values, [prop]):
                found.setdefault((prop, str(record.values.get(prop))), record.id)
        loose_ids = {id(r) for r in loose}
        out = []
        for rec in records:
            if id(rec) in loose_ids and rec.match is not None:
                existing = found.get((rec.match[0], rec.match[1]))
                rec = dataclasses.replace(rec, id=existing, match=None)
            out.append(rec)
        return out

    def find_by(self, object_type: str, prop: str, values: Iterable[str],
                fields: Iterable[str] | None = None) -> list[Record]:
        """Records whose ``prop`` equals one of ``values``: search, 100 values per filter.

        HubSpot compares ``IN`` values for string properties against the lower-cased stored
        value, so the values go lower-cased (a Salesforce id is mixed-case); what comes back is
        then kept only where it equals a wanted value exactly, as text compares elsewhere.
        Search lags writes: a record written seconds ago may be missing, so callers look in
        the state store and full reads first."""
        name = self._object(object_type)
        properties = list(dict.fromkeys([*self._properties(name, fields), prop]))
        exact = {str(v) for v in values if v}
        out = self._search_in(name, prop, sorted({v.lower() for v in exact}), properties)
        return [r for r in out if str(r.values.get(prop) or "") in exact]

    def _inputs(self, kind: str, records: list[WriteRecord], chunk: list[int]
                ) -> list[dict[str, Any]]:
        inputs = []
        for index in chunk:
            rec = records[index]
            values = {k: _hs_value(v) for k, v in rec.values.items()}
            item: dict[str, Any] = {"properties": values, "objectWriteTraceId": str(index)}
            if kind == "update":
                item["id"] = rec.id
            elif kind == "upsert" and rec.match is not None:
                item["idProperty"], item["id"] = rec.match
                if rec.match[0] == "email":
                    item["id"] = rec.match[1].strip().lower()
                values.setdefault(item["idProperty"], item["id"])  # echoed: matches the result
            else:
                item["associations"] = []
            inputs.append(item)
        return inputs

    def _write(self, name: str, kind: str, records: list[WriteRecord], chunk: list[int],
               results: dict[int, WriteResult]) -> None:
        api = self.batch[name]
        inputs = self._inputs(kind, records, chunk)
        body = {"inputs": inputs}
        try:
            if kind == "create":
                answer = self._call(f"{name}.batch.create", written(partial(
                    api.create, batch_input_simple_public_object_batch_input_for_create=body)),
                    idempotent=False)
            elif kind == "update":
                answer = self._call(f"{name}.batch.update", written(partial(
                    api.update, batch_input_simple_public_object_batch_input=body)))
            else:
                answer = self._call(f"{name}.batch.upsert", written(partial(
                    api.upsert, batch_input_simple_public_object_batch_input_upsert=body)))
        except FatalError as exc:
            if len(chunk) > 1:
                middle = len(chunk) // 2
                self._write(name, kind, records, chunk[:middle], results)
                self._write(name, kind, records, chunk[middle:], results)
                return
            results[chunk[0]] = WriteResult(index=chunk[0], id=records[chunk[0]].id,
                                            error=_error_from(exc))
            return
        by_id = {records[i].id: i for i in chunk if records[i].id}
        errors = answer.errors
        failed = {int(t) for e in errors for t in e.context.get("objectWriteTraceId", [])
                  if str(t).isdigit()}
        matched = match_results(kind, [(i, inputs[n]) for n, i in enumerate(chunk)
                                       if i not in failed], answer.results)
        for index, item in matched:
            created = item.new if kind == "upsert" else kind == "create"
            results[index] = WriteResult(index=index, id=item.id, created=created,
                                         values=item.properties)
        for error in errors:
            context = error.context
            targets = [int(t) for t in context.get("objectWriteTraceId", [])] or [
                by_id[i] for i in context.get("ids", []) + context.get("id", []) if i in by_id]
            for index in targets:
                results[index] = WriteResult(index=index, id=records[index].id, error=WriteError(
                    code=str(error.category), message=str(error.message),
                    fields=tuple(context.get("propertyName") or [])))
        for index in chunk:  # nothing silently dropped
            results.setdefault(index, WriteResult(index=index, id=records[index].id,
                                                  error=WriteError(
                code="NO_RESULT", message="HubSpot returned no result for this input")))

    def _clear_backward_lifecycle(self, name: str, records: list[WriteRecord]) -> None:
        """HubSpot ignores a lifecycle stage set earlier in the funnel unless the stage was
        cleared first: clear those records' stage in one batch before the real write."""
        if name not in ("contacts", "companies") or not any(
                LIFECYCLE in r.values for r in records):
            return
        order = {v: i for i, v in enumerate(self.describe(name).fields[LIFECYCLE].picklist_values)}
        unknown = [r.id for r in records if LIFECYCLE in r.values and r.id and r.current is None]
        current = {r.id: r.values.get(LIFECYCLE) for r in self._batch_read(
            name, [i for i in unknown if i], [LIFECYCLE])}
        backward = []
        for rec in records:
            target = rec.values.get(LIFECYCLE)
            if not target or not rec.id:
                continue
            now = (rec.current or {}).get(LIFECYCLE) if rec.current is not None else current.get(
                rec.id)
            if now and order.get(str(target), 0) < order.get(str(now), 0):
                backward.append(rec.id)
        api = self.batch[name]
        for start in range(0, len(backward), BATCH_SIZE):
            body = {"inputs": [{"id": i, "properties": {LIFECYCLE: ""}}
                               for i in backward[start:start + BATCH_SIZE]]}
            self._call(f"{name}.batch.update", partial(api.update,
                batch_input_simple_public_object_batch_input=body))

    def delete(self, object_type: str, ids: list[str]) -> list[WriteResult]:
        """Archive (HubSpot's delete), 100 per call."""
        name = self._object(object_type)
        api = self.batch[name]
        for start in range(0, len(ids), BATCH_SIZE):
            body = {"inputs": [{"id": i} for i in ids[start:start + BATCH_SIZE]]}
            self._call(f"{name}.batch.archive", partial(api.archive,
                batch_input_simple_public_object_id=body))
        return [WriteResult(index=i, id=record_id) for i, record_id in enumerate(ids)]

    # -- owners and associations ---------------------------------------------------------
    def owners(self) -> list[dict[str, Any]]:
        """Owners (id, email, name): matched to Salesforce users by email."""
        out: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page = self._call("owners.list", partial(self.owners_api.get_page,
                limit=100, after=after))
            out += [{"id": str(o.id), "email": o.email, "firstName": o.first_name,
                     "lastName": o.last_name, "archived": bool(o.archived)}
                    for o in page.results]
            if page.paging is None or page.paging.next is None:
                return out
            after = page.paging.next.after

    def people(self) -> list[Person]:
        """Active and archived owners, to match Salesforce users by email; cached for
        ``people_refresh_hours``."""
        return self.schemas.people("owners", lambda: [
            Person(id=o["id"], email=o["email"],
                   name=f"{o['firstName'] or ''} {o['lastName'] or ''}".strip(),
                   active=not o["archived"]) for o in self.owners()])

    def activity(self, object_name: str, ids: list[str], since: dt.datetime) -> list[Activity]:
        """HubSpot's last activity date (``notes_last_updated``) where it is at or after
        ``since``."""
        name = self._object(object_name)
        if name != "contacts" or not ids:
            return []
        out = []
        for record in self._batch_read(name, sorted(set(ids)), [ACTIVITY]):
            raw = record.values.get(ACTIVITY)
            if raw and _parse(str(raw)) >= since:
                out.append(Activity(record_id=record.id, id=ACTIVITY, at=_parse(str(raw))))
        return out

    def associate(self, from_type: str, to_type: str, pairs: list[tuple[str, str]]) -> int:
        """Default (unlabeled) associations, 2,000 a call; returns how many were made."""
        made = 0
        for start in range(0, len(pairs), ASSOCIATION_WRITE_SIZE):
            body = {"inputs": [{"from": {"id": a}, "to": {"id": b}}
                               for a, b in pairs[start:start + ASSOCIATION_WRITE_SIZE]]}
            answer = self._call("associations.batch.default",
                                partial(self.associations_batch.create_default,
                                    from_type, to_type,
                                    batch_input_public_default_association_multi_post=body))
            made += len(answer.results or [])
        return made

    def associated(self, from_type: str, to_type: str, ids: list[str]) -> dict[str, list[str]]:
        """The records each of ``ids`` is associated with, whatever the label."""
        return {from_id: sorted(to) for from_id, to in
                self.associations_of(from_type, to_type, ids).items()}

    def association_labels(self, from_type: str, to_type: str) -> dict[str | None, int]:
        """The association types between two objects, label -> type id (None: unlabeled),
        read once per pair of objects."""
        key = (self._object(from_type), self._object(to_type))
        if key not in self._labels:
            answer = self._call("associations.labels", partial(
                self.association_definitions.get_all, from_type, to_type))
            self._labels[key] = {}
            for spec in answer.results or []:
                self._labels[key].setdefault(spec.label or None, int(spec.type_id))
        return self._labels[key]

    def associations_of(self, from_type: str, to_type: str, ids: Iterable[str]
                        ) -> dict[str, dict[str, set[int]]]:
        """For each record of ``ids``: the records it is associated with and by which type
        ids. v4 batch read, 1,000 records a call (HubSpot's limit since February 2025);
        a record with none is simply absent (HubSpot lists it as an error)."""
        wanted = sorted(set(ids))
        out: dict[str, dict[str, set[int]]] = {}
        for start in range(0, len(wanted), ASSOCIATION_READ_SIZE):
            body = {"inputs": [{"id": i} for i in wanted[start:start + ASSOCIATION_READ_SIZE]]}
            answer = self._call("associations.batch.read", partial(
                self.associations_batch.get_page, from_type, to_type,
                batch_input_public_fetch_associations_batch_request=body))
            for result in answer.results or []:
                linked = out.setdefault(str(result._from.id), {})
                for target in result.to or []:
                    linked.setdefault(str(target.to_object_id), set()).update(
                        int(t.type_id) for t in target.association_types or [])
        return out

    def associate_labeled(self, from_type: str, to_type: str, pairs: list[tuple[str, str]],
                          type_id: int) -> list[WriteResult]:
        """Associations of one type (a label, or the unlabeled type) between each pair,
        2,000 a call; a result per pair, in order, with HubSpot's error where it refused."""
        return self._association_batch("associations.batch.create", from_type, to_type, pairs,
                                       type_id, self.associations_batch.create,
                                       "batch_input_public_association_multi_post")

    def remove_association_label(self, from_type: str, to_type: str,
                                 pairs: list[tuple[str, str]], type_id: int
                                 ) -> list[WriteResult]:
        """Take one label off each pair's association (an unlabeled type removes the whole
        association, as HubSpot documents), 2,000 a call."""
        return self._association_batch("associations.batch.labels.archive", from_type,
                                       to_type, pairs, type_id,
                                       self.associations_batch.archive_labels,
                                       "batch_input_public_association_multi_post")

    def _association_batch(self, endpoint: str, from_type: str, to_type: str,
                           pairs: list[tuple[str, str]], type_id: int,
                           method: Callable[..., Any], body_name: str) -> list[WriteResult]:
        out: list[WriteResult] = []
        kind = "HUBSPOT_DEFINED" if type_id < ASSOCIATION_USER_DEFINED_FROM else "USER_DEFINED"
        for start in range(0, len(pairs), ASSOCIATION_WRITE_SIZE):
            chunk = pairs[start:start + ASSOCIATION_WRITE_SIZE]
            body = {"inputs": [{"from": {"id": a}, "to": {"id": b}, "types": [
                {"associationCategory": kind, "associationTypeId": type_id}]}
                for a, b in chunk]}
            answer = self._call(endpoint, partial(method, from_type, to_type,
                                                  **{body_name: body}))
            refused = _association_errors(answer, {a for a, _ in chunk})
            out += [WriteResult(index=start + i, id=a, error=refused.get(a))
                    for i, (a, _) in enumerate(chunk)]
        return out

    # -- check ---------------------------------------------------------------------------
    def check(self) -> CheckReport:
        how, missing = scopes_lacking(self)
        if missing:
            return CheckReport(
                system=SYSTEM, endpoint=self.settings.host, api_version="CRM v3",
                identity=self._identity_kind(), objects=[], calls=sum(self.calls.values()),
                permissions=f"scopes checked through {how}",
                missing=[f"scope {s}" for s in missing])
        objects = []
        for name in OBJECT_TYPES:
            schema = self.describe(name)
            found = self._call(f"{name}.search", partial(self.search[name].do_search,
                public_object_search_request={"limit": 1, "filterGroups": []}))
            objects.append(ObjectSummary(name=name, label=name.title(), records=int(found.total),
                                         fields=len(schema.fields)))
        owners = self.owners()
        deals = self.describe("deals")
        stages = sum(len(s) for s in deals.pipelines.values())
        return CheckReport(
            system=SYSTEM, endpoint=self.settings.host, api_version="CRM v3",
            identity=f"{self._identity_kind()}; {len(owners)} owners, {len(deals.pipelines)} "
            f"deal pipeline(s) with {stages} stages", objects=objects,
            calls=sum(self.calls.values()),
            permissions=f"all {len(REQUIRED_SCOPES)} scopes granted (checked through {how})")

    def _identity_kind(self) -> str:
        return "OAuth app" if self.tokens.oauth else "private app"


def _searched_ids(page: Any) -> list[str]:
    """The ids a search page returned, in order (kept aside when the page's records were then
    read by id)."""
    kept = getattr(page, "stagesync_ids", None)
    return list(kept) if kept is not None else [str(item.id) for item in page.results]


def _comparable(value: Any) -> str:
    """A property value as HubSpot echoes it back: text trimmed and folded, numbers as
    numbers (``5`` sent comes back ``5`` or ``5.0``)."""
    text = str(value if value is not None else "").strip()
    try:
        return repr(float(text)) if text and text.lstrip("-").replace(".", "", 1).isdigit() \
            else text.casefold()
    except ValueError:
        return text.casefold()


def _signature(properties: dict[str, Any], names: Iterable[str]) -> tuple[str, ...]:
    return tuple(_comparable(properties.get(n)) for n in names)


def match_results(kind: str, sent: list[tuple[int, dict[str, Any]]], results: list[Any]
                  ) -> list[tuple[int, Any]]:
    """Pair batch results with the inputs that produced them, by what was sent.

    Updates carry their id. A created record echoes the properties it was created with, so
    each result is matched on the sent properties that tell the inputs apart: the upsert key
    or a carried Salesforce id first, then the whole set of sent values. Inputs that are
    indistinguishable are interchangeable (either result is right for either). A result that
    matches no input is left out rather than guessed: the caller reports that input as having
    no result, and the carried id finds the record on the next cycle."""
    if kind == "update":
        by_id = {str(item["id"]): index for index, item in sent}
        return [(by_id[str(r.id)], r) for r in results if str(r.id) in by_id]
    free: dict[tuple[str, ...], list[int]] = {}
    keys: dict[int, tuple[str, ...]] = {}
    names = sorted(set.intersection(*(set(item["properties"]) for _, item in sent))) if sent \
        else []
    key_names = [n for n in names if n == "email" or (n.startswith("salesforce") and
                                                      n.endswith("id"))]
    chosen = next((n for n in key_names if len({_comparable(item["properties"][n])
                                                 for _, item in sent}) == len(sent)), None)
    fields = [chosen] if chosen else names
    for index, item in sent:
        keys[index] = _signature(item["properties"], fields)
        free.setdefault(keys[index], []).append(index)
    out: list[tuple[int, Any]] = []
    unmatched = []
    for result in results:
        echoed = dict(result.properties or {})
        waiting = free.get(_signature(echoed, fields))
        if waiting:
            out.append((waiting.pop(0), result))
        else:
            unmatched.append(result)
    left = [i for group in free.values() for i in group]
    if len(left) == 1 and len(unmatched) == 1:  # the one input left made the one result left
        out.append((left[0], unmatched[0]))
    return out


def _set_timeout(api: Any, seconds: float) -> None:
    """The generated client sends no timeout unless one is passed per call; a hung socket would
    hang the agent. Give its connection pools a default instead."""
    pool = api.api_client.rest_client.pool_manager
    pool.connection_pool_kw["timeout"] = Timeout(connect=min(seconds, 10.0), read=seconds)


def _watch_usage(api: Any, usage: HeaderUsage) -> None:
    """Hand every response's headers to ``usage`` (the generated client keeps only the
    body); a pool shared by several API objects is watched once."""
    pool = api.api_client.rest_client.pool_manager
    if getattr(pool, "_stagesync_watched", False):
        return
    send = pool.request

    def request(*args: Any, **kwargs: Any) -> Any:
        response = send(*args, **kwargs)
        usage.observe(getattr(response, "headers", None))
        return response

    pool.request = request
    pool._stagesync_watched = True


def _hs_value(value: Any) -> Any:
    """HubSpot takes every value as a string; datetimes as ISO-8601 in UTC."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _error_from(exc: ConnectorError) -> WriteError:
    if isinstance(exc, DataError):
        return WriteError(code=exc.code or "ERROR", message=exc.message,
                          fields=(exc.field,) if exc.field else ())
    return WriteError(code=type(exc).__name__, message=exc.message)


def data_error(object_type: str, result: WriteResult) -> DataError:
    assert result.error is not None
    return DataError(SYSTEM, f"{object_type} record #{result.index}: {result.error.code}: "
                     f"{result.error.message}", record_id=result.id,
                     field=result.error.fields[0] if result.error.fields else None,
                     code=result.error.code)


# Objects whose stage properties take their values from a pipeline, and whose: lifecycle
# stages are one set for contacts and companies, read from the contacts' lifecycle pipeline
# (the recorded amp-pipelines-contacts-lifecycle.json; a companies one is not recorded).
PIPELINED = {"contacts": "contacts", "companies": "contacts", "deals": "deals"}


def _options_from_pipelines(name: str, fields: dict[str, FieldInfo],
                            pipelines: dict[str, list[Stage]]) -> dict[str, FieldInfo]:
    """The valid values of properties with ``externalOptions: true`` come from pipelines:
    ``dealstage`` lists no options at all and ``lifecyclestage`` only HubSpot's defaults, so
    a portal's own lifecycle stages and every deal pipeline's (often numeric) stage ids are
    known only from there. HubSpot refuses any other value, so the property is restricted."""
    stage_ids = tuple(dict.fromkeys(s.id for stages in pipelines.values() for s in stages))
    values = {"dealstage": stage_ids, "pipeline": tuple(pipelines)} if name == "deals" else {
        LIFECYCLE: stage_ids}
    out = dict(fields)
    for prop, allowed in values.items():
        if prop in out and allowed:
            out[prop] = out[prop].model_copy(update={"picklist_values": allowed,
                                                     "restricted_picklist": True})
    return out


def _association_errors(answer: Any, sent: set[str]) -> dict[str, WriteError]:
    """A v4 association batch's errors by the record they name (``context.fromObjectId``,
    else an id the message quotes); an error naming none is every record's."""
    out: dict[str, WriteError] = {}
    for error in getattr(answer, "errors", None) or []:
        context = getattr(error, "context", None) or {}
        named = [str(i) for i in context.get("fromObjectId", []) if str(i) in sent]
        message = str(getattr(error, "message", "") or "refused")
        if not named:
            named = [i for i in sent if i in message] or sorted(sent)
        for record_id in named:
            out[record_id] = WriteError(code=str(getattr(error, "category", "") or "ERROR"),
                                        message=message)
    return out
