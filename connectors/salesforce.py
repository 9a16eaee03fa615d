"""Salesforce connector on simple-salesforce.

We sign in ourselves (``salesforce_auth``) and give simple-salesforce our Session, whose CA bundle
the ``REQUESTS_CA_BUNDLE`` variable cannot override (``connectors.http``). Every HTTP response
passes one hook that counts the call per endpoint and reads ``Sforce-Limit-Info``; every call
runs under the one retry policy, with one re-sign-in on an expired session.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import Any, TypeVar, overload

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession
from simple_salesforce.format import format_soql
from simple_salesforce.util import call_salesforce

from connectors.config import SalesforceSettings
from connectors.contract import CheckReport, ObjectSummary
from connectors.errors import (
    BulkJobError,
    ConfigurationError,
    ConnectorError,
    DataError,
    QuotaExhaustedError,
    ReauthenticateError,
    RetriableError,
    UnreachableError,
)
from connectors.http import make_session
from connectors.pacing import DailyBudget
from connectors.records import (
    Activity,
    DeletedRecord,
    DeletedRecords,
    FieldInfo,
    ObjectChanges,
    ObjectRead,
    ObjectSchema,
    Person,
    Record,
    Watermark,
    WriteError,
    WriteRecord,
    WriteResult,
)
from connectors.retry import RetryPolicy, describe_request
from connectors.salesforce_auth import authenticate
from connectors.salesforce_duplicates import likely_duplicates
from connectors.salesforce_permissions import permissions_lacking
from connectors.salesforce_values import format_datetime, from_csv, parse_datetime
from connectors.schema_cache import DESCRIBE, SchemaCache, Schemas

SYSTEM = "salesforce"
SYNCED_OBJECTS = ("Lead", "Contact", "Account", "Opportunity", "Task", "Event", "User")
# What the SLA clock reads of each activity object (``activity_soql``).
ACTIVITY_FIELDS = {"Task": ("Id", "WhoId", "CreatedDate", "Description", "SystemModstamp"),
                   "Event": ("Id", "WhoId", "StartDateTime", "CreatedDate", "Description",
                             "SystemModstamp")}
CURSOR = "SystemModstamp"
COLLECTION_SIZE = 200  # sObject Collections take at most 200 records per call
RETRIEVE_SIZE = 2000  # Collections retrieve takes up to 2,000 ids
EMAILS_PER_QUERY = 100  # keeps the SOQL well under its 100,000-character limit
DOMAINS_PER_QUERY = 20  # LIKE conditions OR-ed in one query
# Standard objects' field history (Salesforce Object Reference); a custom object's is
# ``Foo__History`` with ``ParentId``.
HISTORY_OBJECTS = {"Lead": ("LeadHistory", "LeadId"), "Contact": ("ContactHistory", "ContactId"),
                   "Account": ("AccountHistory", "AccountId"),
                   "Opportunity": ("OpportunityFieldHistory", "OpportunityId"),
                   "Case": ("CaseHistory", "CaseId")}
GET_DELETED_DAYS = 15  # Salesforce keeps deleted records (recycle bin, getDeleted) 15 days
# Compound fields repeat their parts; base64 bodies are not synced.
SKIPPED_TYPES = {"address", "location", "base64"}
DUPLICATE_RULE_HEADER = "Sforce-Duplicate-Rule-Header"  # REST API v52.0 and later
BULK_PAGE = 50_000  # rows a Bulk API 2.0 results page (its maximum)
BULK_POLL_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)  # between looks at a running query job
BULK_TIMEOUT = dt.timedelta(hours=2)
BY_STAMP = " ORDER BY SystemModstamp, Id"  # REST reads only: Bulk API 2.0 refuses ORDER BY
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?$")
_ID_SEGMENT = re.compile(r"^(?=.*\d)[A-Za-z0-9]{15,18}$|^[A-Za-z0-9]+-\d+$")
# INVALID_FIELD on a field the describe listed: deleted, or hidden from the user, since then.
# Queries say "on entity 'Lead'", writes "on sobject of type Lead".
_NO_SUCH_COLUMN = re.compile(r"No such column '[^']*' on (?:entity '|sobject of type )(\w+)")
T = TypeVar("T")


def classify(exc: SalesforceError, method: str | None = None) -> ConnectorError:
    """Map a simple-salesforce error to our kinds by Salesforce's errorCode.

    Salesforce reports an exhausted daily quota as 403 REQUEST_LIMIT_EXCEEDED, so the code, not
    the status, decides; its concurrent-request limits answer the same status and code, and only
    the message ("ConcurrentPerOrgLongTxn Limit exceeded.") tells that passing state apart.
    Errors that retrying will not fix name the request (``method`` when known, the URL without
    its query) so the message says where it failed.
    """
    content: list[object] = exc.content if isinstance(exc.content, list) else []
    first = content[0] if content and isinstance(content[0], dict) else {}
    code = str(first.get("errorCode", ""))
    message = str(first.get("message", "")).strip()
    where = f" ({describe_request(method, exc.url)})" if exc.url else ""
    if isinstance(exc, SalesforceExpiredSession) or code == "INVALID_SESSION_ID":
        return ReauthenticateError(SYSTEM, f"session expired or invalid{where}")
    if code == "REQUEST_LIMIT_EXCEEDED" and exc.status == 403 and not is_concurrency_limit(
            message):
        return QuotaExhaustedError(SYSTEM, f"the org's daily API limit is reached: {message}")
    if code == "REQUEST_LIMIT_EXCEEDED" or exc.status in (429, 503):
        return RetriableError(SYSTEM, f"{exc.status} {code} {message}".strip(), unapplied=True)
    if exc.status in (500, 502, 504):
        return RetriableError(SYSTEM, f"{exc.status} {code} {message}".strip())
    return ConfigurationError(SYSTEM, f"{exc.status} {code}: {message}".strip() + where)


def is_concurrency_limit(message: str) -> bool:
    """Whether a REQUEST_LIMIT_EXCEEDED message names a concurrent-request limit
    (``ConcurrentPerOrgLongTxn``: long requests in flight; ``ConcurrentRequests``), which clears
    as requests finish: back off and retry. Any other limit message (``TotalRequests``, or one
    not known) is taken as the daily quota, the reading that spends none of it on retries."""
    return message.startswith("Concurrent")


def stale_describe(code: str, message: str) -> str | None:
    """The object whose cached describe an error shows to be out of date, if it does."""
    found = _NO_SUCH_COLUMN.search(message) if code == "INVALID_FIELD" else None
    return found.group(1) if found else None


def _refusal(exc: SalesforceError) -> tuple[str, str]:
    """(errorCode, message) of Salesforce's error body."""
    content: list[object] = exc.content if isinstance(exc.content, list) else []
    first = content[0] if content and isinstance(content[0], dict) else {}
    return str(first.get("errorCode", "")), str(first.get("message", ""))


def endpoint_name(method: str, url: str) -> str:
    """``GET query``, ``PATCH composite/sobjects``, ``GET sobjects/Lead/{id}``: ids dropped."""
    path = url.split("?", 1)[0].split("://", 1)[-1]
    path = path.split("/", 1)[1] if "/" in path else ""
    path = re.sub(r"^services/data/v\d+\.\d+/?", "", path)
    parts = ["{id}" if _ID_SEGMENT.match(p) else p for p in path.strip("/").split("/") if p]
    return f"{method} {'/'.join(parts)}"


def _identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ConfigurationError(SYSTEM, f"{name!r} is not a Salesforce field or object name")
    return name


class SalesforceConnector:
    system = SYSTEM

    def __init__(self, settings: SalesforceSettings, policy: RetryPolicy | None = None) -> None:
        self.settings = settings
        self.http = make_session(settings.ca_bundle, settings.proxies, settings.timeout_seconds)
        self.http.hooks["response"].append(self._on_response)
        self.policy = policy or RetryPolicy(attempts=settings.retry_attempts)
        self.budget = DailyBudget(settings.quota_stop_share, settings.daily_call_budget)
        self.budget_day = _today()  # the UTC day ``budget.own_calls`` counts
        self._last_request: tuple[str, str] | None = None  # (method, url) of the last answer
        self.calls: Counter[str] = Counter()
        self._client: Salesforce | None = None
        self.schemas = Schemas.for_settings(SYSTEM, settings)
        self.duplicate_rules = "respect"  # the mapping's salesforce.duplicate_rules
        self._no_history: set[str] = set()  # history objects the org does not have

    # -- plumbing ------------------------------------------------------------------------
    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        method = response.request.method or "GET"
        self.calls[endpoint_name(method, response.url)] += 1
        self.policy.mark_answered(response.url)
        self._last_request = (method, response.url)
        self._new_budget_day()
        self.budget.own_calls += 1
        self.budget.observe(response.headers.get("Sforce-Limit-Info"))

    def _new_budget_day(self) -> None:
        """``daily_call_budget`` is per calendar day (UTC): a new day starts from zero."""
        today = _today()
        if today != self.budget_day:
            self.budget_day = today
            self.budget.own_calls = 0

    def client(self) -> Salesforce:
        if self._client is None:
            return self.policy.run(self._signed_in)
        return self._client

    def _reauthenticate(self) -> None:
        self._client = None
        self.client()

    def _signed_in(self) -> Salesforce:
        """The client, signing in with one attempt: the policy around the call retries (a
        policy inside a policy would multiply the attempts)."""
        if self._client is None:
            try:
                session = authenticate(self.settings, self.http)
            except ConfigurationError as exc:
                url = self.settings.token_url
                if url in exc.message or isinstance(exc, UnreachableError):
                    raise
                raise ConfigurationError(SYSTEM, f"{exc.message} ({describe_request('POST', url)}"
                                         ")") from None
            self._client = Salesforce(session_id=session.session_id,
                                      instance_url=session.instance_url,
                                      version=self.settings.api_version, session=self.http)
        return self._client

    def _guarded(self, call: Callable[[Salesforce], T], budgeted: bool = True) -> T:
        if budgeted:
            self._new_budget_day()
            self.budget.check()
        try:
            return call(self._signed_in())
        except SalesforceError as exc:
            last = self._last_request
            method = last[0] if last is not None and last[1] == exc.url else None
            self._drop_stale_describe(*_refusal(exc))
            raise classify(exc, method) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            refused = isinstance(exc, requests.ConnectionError) and "refused" in str(exc)
            where = describe_request(exc.request.method, str(exc.request.url)) if (
                exc.request is not None and exc.request.url) else "request"
            raise RetriableError(SYSTEM, f"network: {type(exc).__name__} on {where}",
                                 unapplied=refused) from None
        except requests.exceptions.ChunkedEncodingError:
            raise RetriableError(SYSTEM, "connection broken mid-response") from None

    def _call(self, call: Callable[[Salesforce], T], idempotent: bool = True) -> T:
        return self.policy.run(lambda: self._guarded(call), self._reauthenticate, idempotent)

    def recheck_quota(self) -> bool:
        """After a quota stop: is there room again? One call to the ``/limits`` resource
        (not refused by the local stop, which only a fresh reading can lift); no call at all
        while this agent's own daily budget is spent on the same UTC day."""
        self._new_budget_day()
        budget = self.budget
        if budget.max_calls is not None and budget.own_calls >= budget.max_calls:
            return False
        try:
            limits = self.policy.run(lambda: self._guarded(lambda sf: sf.limits(),
                                                           budgeted=False), self._reauthenticate)
        except QuotaExhaustedError:  # the org's whole allowance is spent: still no room
            return False
        daily = limits.get("DailyApiRequests") or {}
        if isinstance(daily.get("Max"), int) and isinstance(daily.get("Remaining"), int):
            budget.limit, budget.used = daily["Max"], daily["Max"] - daily["Remaining"]
        try:
            budget.check()
        except QuotaExhaustedError:
            return False
        return True

    @property
    def api_usage(self) -> tuple[int | None, int | None]:
        """(used, limit) of the org's daily API requests, from the last response."""
        return self.budget.used, self.budget.limit

    @property
    def lookback(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.settings.lookback_seconds)

    @property
    def full_id_interval(self) -> dt.timedelta:
        return dt.timedelta(hours=self.settings.full_id_check_hours)

    @property
    def activity_interval(self) -> dt.timedelta:
        """How often the SLA's activity is read (``activity_poll_minutes``)."""
        return dt.timedelta(minutes=self.settings.activity_poll_minutes)

    @property
    def schema_cache(self) -> SchemaCache | None:
        return self.schemas.cache

    def use_schema_cache(self, cache: SchemaCache | None) -> None:
        self.schemas.cache = cache

    def clear_cache(self) -> None:
        """Describe and read the users again, whatever the cache holds (a forced refresh)."""
        self.schemas.clear()

    def _drop_stale_describe(self, code: str, message: str) -> None:
        """An unknown field: the next describe of its object is live. Nothing is retried
        here; the failing call fails (or its record is refused) as it would anyway."""
        entity = stale_describe(code, message)
        if entity is not None:
            self.schemas.forget(DESCRIBE, entity)

    # -- schema --------------------------------------------------------------------------
    def describe(self, object_name: str) -> ObjectSchema:
        """Cached (memory, then the engine's cache) for ``schema_refresh_hours``."""
        return self.schemas.describe(object_name, lambda: self._describe_live(object_name))

    def _describe_live(self, object_name: str) -> ObjectSchema:
        name = _identifier(object_name)
        body = self._call(lambda sf: getattr(sf, name).describe())
        fields = {}
        for f in body["fields"]:
            if f["type"] in SKIPPED_TYPES:
                continue
            fields[f["name"]] = FieldInfo(
                name=f["name"], label=f["label"], type=f["type"], length=f.get("length") or None,
                nillable=f["nillable"], createable=f["createable"], updateable=f["updateable"],
                picklist_values=tuple(v["value"] for v in f.get("picklistValues") or []
                                      if v.get("active", True)),
                restricted_picklist=bool(f.get("restrictedPicklist")),
                calculated=bool(f.get("calculated")), unique=bool(f.get("unique")),
                external_id=bool(f.get("externalId")))
        # a recorded 2015 describe has no developerName: the type is then known by its name
        record_types = {str(t["recordTypeId"]): str(t.get("developerName") or t.get("name"))
                        for t in body.get("recordTypeInfos") or [] if not t.get("master")}
        return ObjectSchema(system=SYSTEM, object=body["name"], label=body["labelPlural"],
                            fields=fields, record_types=record_types,
                            deletable=bool(body.get("deletable", True)))

    def _fields(self, object_name: str, fields: Iterable[str] | None) -> list[str]:
        schema = self.describe(object_name)
        if fields is None:
            chosen = list(schema.fields)
        else:
            chosen = []
            for name in fields:
                if "." not in name and name not in schema.fields:
                    self.schemas.forget(DESCRIBE, object_name)  # a field added since: look again
                    raise ConfigurationError(SYSTEM, f"{object_name} has no field {name!r}")
                chosen.append(_identifier(name))
        for required in ("Id", CURSOR):
            if required not in chosen:
                chosen.insert(0, required)
        return chosen

    # -- reads ---------------------------------------------------------------------------
    def _to_record(self, object_name: str, row: dict[str, Any]) -> Record:
        values = {k: v for k, v in row.items() if k != "attributes"}
        return Record(system=SYSTEM, object=object_name, id=str(values["Id"]),
                      cursor=parse_datetime(str(values[CURSOR])), values=values)

    def _restful(self, path: str, method: str, idempotent: bool = True, **kwargs: Any) -> Any:
        return self._call(lambda sf: sf.restful(path, method=method, **kwargs), idempotent)

    def _query_more(self, next_url: str, include_deleted: bool) -> Any:
        return self._call(lambda sf: sf.query_more(next_url, identifier_is_url=True,
                                                   include_deleted=include_deleted))

    def _query_pages(self, soql: str, include_deleted: bool = False
                     ) -> Generator[tuple[int, list[dict[str, Any]]], None, None]:
        """Lazy pages of a query: (totalSize, records), each page one call under the policy."""
        page = self._call(lambda sf: sf.query(soql, include_deleted=include_deleted))
        while True:
            yield int(page["totalSize"]), list(page["records"])
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                return
            page = self._query_more(str(page["nextRecordsUrl"]), include_deleted)

    def read_changed(self, object_name: str, since: Watermark | dt.datetime,
                     until: dt.datetime, fields: Iterable[str] | None = None,
                     ordered: bool = True) -> Iterator[Record]:
        """Records with ``since <= SystemModstamp <= until``, ordered by (stamp, Id).

        The lower bound is inclusive (records sharing the watermark's stamp are not lost at a
        page or cycle boundary) and what the watermark already saw is skipped. The read starts
        ``lookback_seconds`` early for transactions that committed late. ``ordered=False``: a
        Bulk read comes in the job's own order, as its pages arrive (the caller orders it).
        """
        mark = since if isinstance(since, Watermark) else Watermark(cursor=since)
        start, end = self.window(mark, until)
        chosen = self._fields(object_name, fields)
        unordered = changed_soql(object_name, chosen, start, end)
        pages = self._query_pages(unordered + BY_STAMP)
        total, first = next(pages)
        if total > self.settings.bulk_threshold:
            pages.close()
            # Bulk API 2.0 takes no ORDER BY (it disables PK chunking): sorted here if asked.
            rows: Iterable[dict[str, Any]] = self.bulk_rows(object_name, unordered, chosen,
                                                            ordered)
        else:
            rows = self._chain(first, pages)
        yield from self.unseen(object_name, rows, mark)

    def window(self, mark: Watermark, until: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """(start, end) of a changes read, both inclusive: ``lookback`` before the watermark
        (late commits), never past ``until`` (the cycle's start)."""
        # SystemModstamp has whole seconds; round up so a fractional start never reaches back
        start = _ceil_second(mark.start(self.lookback, dt.timedelta(seconds=1)))
        return start, until.astimezone(dt.UTC).replace(microsecond=0)

    def unseen(self, object_name: str, rows: Iterable[dict[str, Any]], mark: Watermark
               ) -> Iterator[Record]:
        """The rows as records, without what the watermark saw and without a second copy of
        an id (a record changed while its pages were read)."""
        emitted: set[str] = set()
        for row in rows:
            record = self._to_record(object_name, row)
            if mark.skips(record) or record.id in emitted:
                continue
            emitted.add(record.id)
            yield record

    @overload
    def read_many(self, reads: list[ObjectRead], until: dt.datetime) -> dict[str, ObjectChanges]:
        ...

    @overload
    def read_many(self, reads: list[ObjectRead], until: dt.datetime, extra: Mapping[str, str],
                  lazy: bool = False
                  ) -> tuple[dict[str, ObjectChanges], dict[str, list[dict[str, Any]]]]: ...

    def read_many(self, reads: list[ObjectRead], until: dt.datetime,
                  extra: Mapping[str, str] | None = None, lazy: bool = False
                  ) -> (dict[str, ObjectChanges]
                        | tuple[dict[str, ObjectChanges], dict[str, list[dict[str, Any]]]]):
        """Changes and deletes of several objects (and the rows of ``extra`` raw queries,
        referenceId -> SOQL) in one Composite call per five queries: a quiet cycle's reads cost
        one API call. The rules are ``read_changed``'s; ``salesforce_composite`` says how."""
        from connectors.salesforce_composite import read_many  # it builds on this module

        changes, rows = read_many(self, reads, until, extra or {}, lazy)
        return changes if extra is None else (changes, rows)

    def query_all_many(self, soqls: Mapping[str, str], include_deleted: bool = False
                       ) -> dict[str, list[dict[str, Any]]]:
        """Every row of each query (referenceId -> SOQL), five first pages per Composite call,
        next pages only for the queries that have more."""
        from connectors.salesforce_composite import query_all_many

        return query_all_many(self, soqls, include_deleted)

    @staticmethod
    def _chain(first: list[dict[str, Any]], rest: Iterator[tuple[int, list[dict[str, Any]]]]
               ) -> Iterator[dict[str, Any]]:
        yield from first
        for _, page in rest:
            yield from page

    def bulk_rows(self, object_name: str, soql: str, fields: list[str], ordered: bool = True
                  ) -> Iterator[dict[str, Any]]:
        """A large read through Bulk API 2.0: CSV pages, converted to REST values. A bulk job
        does not promise an order: ``ordered`` sorts by (stamp, Id), holding every row; else
        the rows come a page at a time as the pages arrive (a spool orders them), each page
        fetched under the retry policy on its own."""
        if ordered:
            rows = list(self.bulk_rows(object_name, soql, fields, ordered=False))
            rows.sort(key=lambda r: (str(r[CURSOR]), str(r["Id"])))
            yield from rows
            return
        job_id = self._start_query_job(soql)
        self.bulk_wait(job_id)
        locator: str | None = None
        while True:
            rows, locator = self._bulk_results(object_name, job_id, locator, BULK_PAGE)
            yield from rows
            if locator is None:
                return

    # -- resumable Bulk API 2.0 extracts (backfills) ------------------------------------------
    def bulk_start(self, object_name: str, fields: Iterable[str] | None,
                   since: dt.datetime | None = None) -> str:
        """Start a Bulk API 2.0 query job over ``object_name`` (changed since ``since``);
        returns the job id, which a backfill stores so a restart picks up the same results."""
        chosen = self._fields(object_name, fields)
        soql = format_soql("SELECT {:literal} FROM {:literal}", ", ".join(chosen),
                           _identifier(object_name))
        if since is not None:
            soql += format_soql(" WHERE SystemModstamp >= {}",
                                since.astimezone(dt.UTC).replace(microsecond=0))
        return self._start_query_job(soql)

    def _start_query_job(self, soql: str) -> str:
        job = self._restful("jobs/query", "POST", idempotent=False, json={
            "operation": "query", "query": soql, "contentType": "CSV",
            "columnDelimiter": "COMMA", "lineEnding": "LF"})
        return str(job["id"])

    def bulk_state(self, job_id: str) -> tuple[str, int | None]:
        """(state, records) of a query job; ``records`` once it is JobComplete."""
        info = self._restful(f"jobs/query/{job_id}", "GET")
        return str(info["state"]), info.get("numberRecordsProcessed")

    def bulk_wait(self, job_id: str, timeout: dt.timedelta = BULK_TIMEOUT) -> int | None:
        """Poll a query job until it is JobComplete; returns its record count. A job that
        failed, was aborted or is still running after ``timeout`` is a ``BulkJobError``
        naming it."""
        deadline = time.monotonic() + timeout.total_seconds()
        attempt = 0
        while True:
            status, total = self.bulk_state(job_id)
            if status == "JobComplete":
                return total
            if status in ("Failed", "Aborted"):
                raise BulkJobError(SYSTEM, f"Bulk API job {job_id} ended {status}")
            if time.monotonic() > deadline:
                raise BulkJobError(SYSTEM, f"Bulk API job {job_id} still {status} after "
                                           f"{timeout}")
            time.sleep(BULK_POLL_SECONDS[min(attempt, len(BULK_POLL_SECONDS) - 1)])
            attempt += 1

    def bulk_page(self, object_name: str, job_id: str, locator: str | None,
                  size: int) -> tuple[list[Record], str | None]:
        """One page of a finished job's results and the locator of the next (None: done)."""
        rows, following = self._bulk_results(object_name, job_id, locator, size)
        return [self._to_record(object_name, row) for row in rows], following

    def _bulk_results(self, object_name: str, job_id: str, locator: str | None,
                      size: int) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a finished job's rows as REST values, and the next page's locator."""
        schema = self.describe(object_name)

        def fetch(sf: Salesforce) -> requests.Response:
            params: dict[str, Any] = {"maxRecords": size}
            if locator:
                params["locator"] = locator
            headers = {**sf.headers, "Accept": "text/csv"}
            response: requests.Response = call_salesforce(
                url=f"{sf.base_url}jobs/query/{job_id}/results", method="GET",
                session=sf.session, headers=headers, params=params)
            return response

        response = self._call(fetch)
        rows = [{k: from_csv(schema.fields.get(k), v) for k, v in raw.items()}
                for raw in csv.DictReader(io.StringIO(response.content.decode("utf-8")))]
        following = response.headers.get("Sforce-Locator") or ""
        return rows, None if following in ("", "null") else following

    def read_deleted(self, object_name: str, since: dt.datetime) -> DeletedRecords:
        """Deleted and merged-away records since ``since``, through queryAll.

        Salesforce keeps deletes for 15 days; asked for more, this says so (``complete`` is
        False) so the engine compares full id lists instead of trusting a partial answer.
        """
        schema = self.describe(object_name)
        columns = ["Id", CURSOR] + (["MasterRecordId"] if "MasterRecordId" in schema.fields
                                    else [])
        soql = format_soql("SELECT {:literal} FROM {:literal} WHERE IsDeleted = true AND "
                           "SystemModstamp >= {} ORDER BY SystemModstamp, Id",
                           ", ".join(columns), _identifier(object_name),
                           since.astimezone(dt.UTC).replace(microsecond=0))
        return deletes_since([deleted_record(object_name, row) for _, page in self._query_pages(
            soql, include_deleted=True) for row in page], since)

    def list_ids(self, object_name: str) -> Iterator[str]:
        """Every live id, for the full comparison when deletes are no longer listed."""
        soql = format_soql("SELECT Id FROM {:literal} ORDER BY Id", _identifier(object_name))
        for _, page in self._query_pages(soql):
            for row in page:
                yield str(row["Id"])

    def read_by_ids(self, object_name: str, ids: Iterable[str],
                    fields: Iterable[str] | None = None) -> list[Record]:
        chosen = self._fields(object_name, fields)
        name = _identifier(object_name)
        wanted = list(dict.fromkeys(ids))
        out: list[Record] = []
        for start in range(0, len(wanted), RETRIEVE_SIZE):
            chunk = wanted[start:start + RETRIEVE_SIZE]
            rows = self._restful(f"composite/sobjects/{name}", "POST",
                                 json={"ids": chunk, "fields": chosen})
            out += [self._to_record(object_name, row) for row in rows if row]
        return out

    def find_by_values(self, object_name: str, field: str, values: Iterable[str],
                       fields: Iterable[str] | None = None, *, domain: bool = False
                       ) -> list[Record]:
        """Match-key candidates: ``field`` equal to a value (SOQL compares text without
        case), or for ``domain`` a website naming the domain anywhere (``LIKE``, escaped),
        which the caller narrows to the websites whose host is that domain."""
        chosen = list(dict.fromkeys([*self._fields(object_name, fields), field]))
        name, column = _identifier(object_name), _identifier(field)
        wanted = sorted({str(v).strip() for v in values if v and str(v).strip()})
        size = DOMAINS_PER_QUERY if domain else EMAILS_PER_QUERY
        out: list[Record] = []
        for start in range(0, len(wanted), size):
            chunk = wanted[start:start + size]
            where = (" OR ".join(format_soql("{:literal} LIKE '%{:like}%'", column, v)
                                 for v in chunk) if domain
                     else format_soql("{:literal} IN {}", column, chunk))
            soql = format_soql("SELECT {:literal} FROM {:literal} WHERE {:literal} ORDER BY Id",
                               ", ".join(chosen), name, where)
            out += [self._to_record(object_name, row) for _, page in self._query_pages(soql)
                    for row in page]
        return out

    def field_times(self, object_name: str, ids: Iterable[str], fields: Iterable[str]
                    ) -> dict[str, dict[str, dt.datetime]]:
        """When each of ``fields`` last changed on each record, from the object's field
        history (LeadHistory, OpportunityFieldHistory, ``Foo__History``): only for fields
        the org tracks (Set History Tracking); the others have no entry, and the caller
        falls back on the record's own modification time. An object without history is
        remembered, so it costs one refused query a connector."""
        name = _identifier(object_name)
        history, parent = history_object(name)
        wanted = sorted(set(fields))
        out: dict[str, dict[str, dt.datetime]] = {}
        if history in self._no_history or not wanted:
            return out
        chosen = list(dict.fromkeys(ids))
        for start in range(0, len(chosen), EMAILS_PER_QUERY):
            soql = format_soql(
                "SELECT {:literal}, Field, CreatedDate FROM {:literal} WHERE {:literal} IN {} "
                "AND Field IN {} ORDER BY CreatedDate", parent, history, parent,
                chosen[start:start + EMAILS_PER_QUERY], wanted)
            try:
                rows = [row for _, page in self._query_pages(soql) for row in page]
            except ConfigurationError as exc:
                if "INVALID_TYPE" not in str(exc):
                    raise
                self._no_history.add(history)  # history tracking is off for the object
                return {}
            for row in rows:  # oldest first: the last one of a field is its latest change
                out.setdefault(str(row[parent]), {})[str(row["Field"])] = parse_datetime(
                    str(row["CreatedDate"]))
        return out

    def find_by_emails(self, object_name: str, emails: Iterable[str],
                       fields: Iterable[str] | None = None) -> list[Record]:
        """Records whose Email equals one of ``emails`` (SOQL compares case-insensitively)."""
        chosen = self._fields(object_name, fields)
        wanted = sorted({e.strip() for e in emails if e and e.strip()})
        out: list[Record] = []
        for start in range(0, len(wanted), EMAILS_PER_QUERY):
            soql = format_soql("SELECT {:literal} FROM {:literal} WHERE Email IN {} ORDER BY Id",
                               ", ".join(chosen), _identifier(object_name),
                               wanted[start:start + EMAILS_PER_QUERY])
            out += [self._to_record(object_name, row) for _, page in self._query_pages(soql)
                    for row in page]
        return out

    def people(self) -> list[Person]:
        """Every user (owners of records), to match HubSpot owners by email; cached for
        ``people_refresh_hours``."""
        return self.schemas.people("users", self._users)

    def _users(self) -> list[Person]:
        soql = "SELECT Id, Email, Name, IsActive FROM User ORDER BY Id"
        return [Person(id=str(row["Id"]), email=row.get("Email"), name=str(row.get("Name") or ""),
                       active=bool(row.get("IsActive", True)))
                for _, page in self._query_pages(soql) for row in page]

    def activity(self, object_name: str, ids: list[str], since: dt.datetime) -> list[Activity]:
        """Tasks on these leads or contacts (``WhoId``) created at or after ``since``."""
        _identifier(object_name)
        return [to_activity(row) for soql in activity_soqls(ids, since)
                for _, page in self._query_pages(soql) for row in page]

    def activity_soql(self, object_name: str, since: Watermark, until: dt.datetime) -> str:
        """Tasks or Events on a lead or contact changed since ``since``, up to ``until``,
        ordered by (stamp, Id): the window and order of ``read_changed``, as text so the
        engine can also send it inside a Composite request."""
        fields = ACTIVITY_FIELDS.get(object_name)
        if fields is None:
            raise ConfigurationError(SYSTEM, f"{object_name!r} is not an activity object "
                                     f"({', '.join(ACTIVITY_FIELDS)})")
        start, end = self.window(since, until)
        return format_soql(
            "SELECT {:literal} FROM {:literal} WHERE WhoId != null AND SystemModstamp >= {} AND "
            "SystemModstamp <= {}", ", ".join(fields), object_name, start, end) + BY_STAMP

    def parse_activity(self, object_name: str, rows: list[dict[str, Any]]) -> list[Activity]:
        """Rows of ``activity_soql`` as activity. A Task counts from its creation (its
        ActivityDate is a due date, set freely into the future or the past); an Event from
        its start, the moment the meeting or call takes place, or else its creation."""
        out: list[Activity] = []
        for row in rows:
            if not row.get("WhoId"):
                continue
            when = (row.get("StartDateTime") if object_name == "Event" else None) or row[
                "CreatedDate"]
            out.append(Activity(record_id=str(row["WhoId"]), id=str(row["Id"]),
                                at=parse_datetime(str(when)), note=row.get("Description"),
                                cursor=parse_datetime(str(row[CURSOR]))))
        return out

    def activity_changed(self, object_name: str, since: Watermark, until: dt.datetime
                         ) -> list[Activity]:
        """Activity changed since ``since``: one query a quiet cycle (more only past 2,000
        changed rows), whatever the number of leads; what ``since`` saw is skipped."""
        found = self.parse_activity(object_name, self._rows(
            self.activity_soql(object_name, since, until)))
        return [a for a in found if (a.id, a.cursor) not in since.seen]

    # -- writes --------------------------------------------------------------------------
    def upsert(self, object_name: str, records: list[WriteRecord]) -> list[WriteResult]:
        """Create (no id), update (id) or upsert on an external id (match), 200 per call with
        ``allOrNone=false``: one result per input, in input order, errors per record."""
        name = _identifier(object_name)
        groups: dict[tuple[str, str | None], list[int]] = {}
        for index, rec in enumerate(records):
            if rec.id is not None:
                key: tuple[str, str | None] = ("update", None)
            elif rec.match is not None:
                key = ("upsert", _identifier(rec.match[0]))
            else:
                key = ("create", None)
            groups.setdefault(key, []).append(index)
        results: dict[int, WriteResult] = {}
        for (kind, match_field), indexes in groups.items():
            for start in range(0, len(indexes), COLLECTION_SIZE):
                chunk = indexes[start:start + COLLECTION_SIZE]
                body = {"allOrNone": False,
                        "records": [self._payload(name, records[i], match_field) for i in chunk]}
                headers = self._duplicate_header()
                if kind == "create":
                    answer = self._restful("composite/sobjects", "POST", idempotent=False,
                                           json=body, headers=headers)
                elif kind == "update":
                    answer = self._restful("composite/sobjects", "PATCH", json=body,
                                           headers=headers)
                else:
                    answer = self._restful(f"composite/sobjects/{name}/{match_field}", "PATCH",
                                           json=body, headers=headers)
                for index, item in zip(chunk, answer, strict=True):
                    results[index] = _result(index, item, created=kind == "create")
        for refused in (r.error for r in results.values() if r.error is not None):
            self._drop_stale_describe(refused.code, refused.message)
        self._name_duplicates(object_name, records, results)
        return [results[i] for i in range(len(records))]

    def _name_duplicates(self, object_name: str, records: list[WriteRecord],
                         results: dict[int, WriteResult]) -> None:
        """Refusals by duplicate rules get the records the rules would match (a Collections
        answer names none), looked up for all of them together."""
        refused = [i for i, r in sorted(results.items()) if r.error is not None
                   and r.error.code == DUPLICATES_DETECTED and not r.error.matches]
        if not refused:
            return
        found = likely_duplicates(self._rows, object_name, [
            ({**(records[i].current or {}), **records[i].values}, records[i].id)
            for i in refused])
        for index, matches in zip(refused, found, strict=True):
            error = results[index].error
            assert error is not None
            results[index] = results[index].model_copy(update={
                "error": error.model_copy(update={"matches": matches})})

    def _rows(self, soql: str) -> list[dict[str, Any]]:
        return [row for _, page in self._query_pages(soql) for row in page]

    def _duplicate_header(self) -> dict[str, str]:
        """``allow_save`` in the mapping saves past duplicate rules that only alert; by default
        no header, so the org's rules decide and a refusal names the records it matched."""
        if self.duplicate_rules == "allow_save":
            return {DUPLICATE_RULE_HEADER: "allowSave=true"}
        return {}

    @staticmethod
    def _payload(name: str, rec: WriteRecord, match_field: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"attributes": {"type": name}}
        body.update({k: (format_datetime(v) if isinstance(v, dt.datetime) else v)
                     for k, v in rec.values.items()})
        if rec.id is not None:
            body["Id"] = rec.id
        if match_field is not None and rec.match is not None:
            body[match_field] = rec.match[1]
        return body

    def delete(self, object_name: str, ids: list[str]) -> list[WriteResult]:
        results = []
        for start in range(0, len(ids), COLLECTION_SIZE):
            chunk = ids[start:start + COLLECTION_SIZE]
            answer = self._restful("composite/sobjects", "DELETE",
                                   params={"ids": ",".join(chunk), "allOrNone": "false"})
            results += [_result(start + i, item, created=False) for i, item in enumerate(answer)]
        return results

    # -- check ---------------------------------------------------------------------------
    def check(self) -> CheckReport:
        objects = []
        for name in SYNCED_OBJECTS:
            schema = self.describe(name)
            soql = format_soql("SELECT COUNT() FROM {:literal}", name)
            count = next(self._query_pages(soql))[0]
            objects.append(ObjectSummary(name=name, label=schema.label, records=int(count),
                                         fields=len(schema.fields)))
        limits = self._call(lambda sf: sf.limits())
        daily = limits.get("DailyApiRequests", {})
        missing = permissions_lacking(self)
        return CheckReport(
            system=SYSTEM, endpoint=self.client().base_url, api_version=self.settings.api_version,
            identity=getattr(self.settings.auth, "username", self.settings.auth.kind),
            objects=objects,
            quota=f"{daily.get('Remaining')} of {daily.get('Max')} daily API requests left",
            calls=sum(self.calls.values()), missing=missing,
            permissions=None if missing else "API Enabled, Transfer Leads, and read, create "
            "and edit on every synced object (create on Task) granted")


def deleted_record(object_name: str, row: dict[str, Any]) -> DeletedRecord:
    """A queryAll row with ``IsDeleted`` true: a merged-away row names its survivor."""
    return DeletedRecord(system=SYSTEM, object=object_name, id=str(row["Id"]),
                         deleted_at=parse_datetime(str(row[CURSOR])),
                         merged_into=row.get("MasterRecordId"))


def deletes_since(found: list[DeletedRecord], since: dt.datetime) -> DeletedRecords:
    """The deletes read since ``since``. Salesforce keeps deletes for 15 days; asked for more,
    this says so (``complete`` is False) so the engine compares full id lists instead of
    trusting a partial answer."""
    horizon = dt.datetime.now(dt.UTC) - dt.timedelta(days=GET_DELETED_DAYS)
    if since < horizon:
        return DeletedRecords(records=found, complete=False, reason=(
            f"Salesforce keeps deleted records for {GET_DELETED_DAYS} days and the last "
            f"read was {since:%Y-%m-%d %H:%M} UTC; compare full id lists instead"))
    return DeletedRecords(records=found)


def activity_soqls(ids: Iterable[str], since: dt.datetime) -> list[str]:
    """The Task queries for activity on these leads or contacts (``WhoId``) since ``since``,
    100 ids each: one per query subrequest when they ride in a Composite read."""
    wanted = sorted(set(ids))
    return [format_soql("SELECT Id, WhoId, CreatedDate, Description FROM Task WHERE WhoId IN {} "
                        "AND CreatedDate >= {} ORDER BY CreatedDate",
                        wanted[start:start + EMAILS_PER_QUERY],
                        since.astimezone(dt.UTC).replace(microsecond=0))
            for start in range(0, len(wanted), EMAILS_PER_QUERY)]


def to_activity(row: dict[str, Any]) -> Activity:
    return Activity(record_id=str(row["WhoId"]), id=str(row["Id"]),
                    at=parse_datetime(str(row["CreatedDate"])), note=row.get("Description"))


def changed_soql(object_name: str, fields: list[str], start: dt.datetime,
                 end: dt.datetime) -> str:
    """The changes read of ``object_name`` (unordered: Bulk API 2.0 refuses ORDER BY), every
    value escaped."""
    return format_soql(
        "SELECT {:literal} FROM {:literal} WHERE SystemModstamp >= {} AND SystemModstamp <= {}",
        ", ".join(fields), _identifier(object_name), start, end)


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _ceil_second(value: dt.datetime) -> dt.datetime:
    whole = value.replace(microsecond=0)
    return whole if whole == value else whole + dt.timedelta(seconds=1)


def _result(index: int, item: dict[str, Any], created: bool) -> WriteResult:
    if item.get("success"):
        return WriteResult(index=index, id=item.get("id"),
                           created=bool(item.get("created", created)))
    errors = item.get("errors") or [{}]
    first = errors[0]
    return WriteResult(index=index, id=item.get("id"), error=WriteError(
        code=str(first.get("statusCode", "UNKNOWN")), message=str(first.get("message", "")),
        fields=tuple(first.get("fields") or ()), matches=duplicate_matches(first)))


DUPLICATES_DETECTED = "DUPLICATES_DETECTED"


def duplicate_matches(error: dict[str, Any]) -> tuple[str, ...]:
    """The ids a ``DUPLICATES_DETECTED`` error names
    (``duplicateResult.matchResults[].matchRecords[].record.Id``); none if it names none."""
    result = error.get("duplicateResult")
    found: list[str] = []
    for match in (result.get("matchResults") or []) if isinstance(result, dict) else []:
        for hit in (match.get("matchRecords") or []) if isinstance(match, dict) else []:
            record = hit.get("record") if isinstance(hit, dict) else None
            if isinstance(record, dict) and record.get("Id"):
                found.append(str(record["Id"]))
    return tuple(dict.fromkeys(found))


def data_error(object_name: str, result: WriteResult) -> DataError:
    """A failed write as an exception naming the record, field and vendor code."""
    assert result.error is not None
    field = result.error.fields[0] if result.error.fields else None
    return DataError(SYSTEM, f"{object_name} record #{result.index}"
                     f"{' ' + result.id if result.id else ''}: {result.error.code}: "
                     f"{result.error.message}", record_id=result.id, field=field,
                     code=result.error.code)


def history_object(object_name: str) -> tuple[str, str]:
    """The field history object of ``object_name`` and its field naming the record."""
    if object_name in HISTORY_OBJECTS:
        return HISTORY_OBJECTS[object_name]
    if object_name.endswith("__c"):
        return object_name[:-3] + "__History", "ParentId"
    return object_name + "History", object_name + "Id"
