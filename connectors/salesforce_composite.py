"""Reads of several Salesforce objects in one API call, through the Composite resource.

A quiet cycle asks Salesforce the same questions every time: what changed on each synced object
since its watermark, and what was deleted or merged away. Sent alone, that is a query and a
queryAll per object. A Composite request (``POST V/composite``) carries up to 25 subrequests, at
most 5 of them query operations, and "the entire series of requests counts as a single call
toward your API limits" (REST API Developer Guide, "Send Multiple Requests Using Composite").
One queryAll per object answers both questions, because a delete stamps ``SystemModstamp`` and
``IsDeleted`` tells the rows apart (a merge sets ``MasterRecordId`` on the merged-away rows):
four objects and the SLA's Task query cost one call.

Next pages ride the same way, the next pages of up to five queries per call (the guide's older
text counts "Query More" requests among the query operations). A subrequest's error is raised
as the error the same query sent alone raises.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from connectors.errors import ConfigurationError, ConnectorError, RetriableError
from connectors.records import DeletedRecord, DeletedRecords, ObjectChanges, ObjectRead, Record
from connectors.salesforce import (
    BY_STAMP,
    SYSTEM,
    changed_soql,
    classify,
    deleted_record,
    deletes_since,
)

if TYPE_CHECKING:
    from simple_salesforce.api import Salesforce

    from connectors.salesforce import SalesforceConnector

QUERIES_PER_CALL = 5  # "Up to 5 of these subrequests can be sObject Collections or query ..."
SOFT_DELETE = ("IsDeleted", "MasterRecordId")  # the queryAll columns that tell deletes apart
# "The referenceId must start with a letter or a number" and hold only those and underscores.
_REFERENCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]*")
Rows = list[dict[str, Any]]
# simple_salesforce.util.exception_handler's table: the class a direct call would raise
_RAISED: dict[int, type[SalesforceError]] = {
    300: SalesforceMoreThanOneRecord, 400: SalesforceMalformedRequest,
    401: SalesforceExpiredSession, 403: SalesforceRefusedRequest, 404: SalesforceResourceNotFound}


@dataclass(frozen=True)
class _Plan:
    """One object's read: the record's fields, the queryAll's columns and its window."""

    read: ObjectRead
    fields: list[str]
    columns: list[str]
    start: dt.datetime
    end: dt.datetime


def read_many(sf: SalesforceConnector, reads: list[ObjectRead], until: dt.datetime,
              extra: Mapping[str, str], lazy: bool = False
              ) -> tuple[dict[str, ObjectChanges], dict[str, Rows]]:
    """Each object's changes and deletes since its watermark, up to ``until``, and the rows of
    each ``extra`` query (referenceId -> SOQL, sent as given), in as few calls as the
    five-query cap allows: one for up to five queries whose answers fit a page each.

    ``lazy``: each object's records come as ``stream``, made as it is iterated (a Bulk read
    runs then, and its rows come a page at a time in the job's own order, unsorted), so a
    caller that spools them one object after another never holds them all."""
    _check_names([read.object for read in reads], extra)
    plans = {read.object: _plan(sf, read, until) for read in reads}
    queries = {name: (changed_soql(name, plan.columns, plan.start, plan.end) + BY_STAMP, True)
               for name, plan in plans.items()}
    queries.update({ref: (soql, False) for ref, soql in extra.items()})
    firsts = composite_get(sf, {ref: query_url(sf, soql, deleted)
                                for ref, (soql, deleted) in queries.items()})
    bulk = {name for name in plans if int(firsts[name]["totalSize"]) > sf.settings.bulk_threshold}
    rows = follow(sf, {ref: page for ref, page in firsts.items() if ref not in bulk})
    changes = {name: (_bulk_changes(sf, plan, firsts[name], lazy) if name in bulk
                      else _changes(sf, plan, rows.pop(name), lazy))
               for name, plan in plans.items()}
    return changes, {ref: rows[ref] for ref in extra}


def query_all_many(sf: SalesforceConnector, soqls: Mapping[str, str],
                   include_deleted: bool = False) -> dict[str, Rows]:
    """Every row of each query (referenceId -> SOQL, values already escaped), first pages in
    one Composite call per five queries, next pages only for the queries not done."""
    _check_names([], soqls)
    return follow(sf, composite_get(sf, {ref: query_url(sf, soql, include_deleted)
                                         for ref, soql in soqls.items()}))


def query_url(sf: SalesforceConnector, soql: str, include_deleted: bool) -> str:
    """A subrequest's url, in the documented form (``/services/data/vXX.X/query/?q=soql``,
    as simple-salesforce sends it alone): "The query string must be URL-encoded"."""
    resource = "queryAll" if include_deleted else "query"
    return f"/services/data/v{sf.settings.api_version}/{resource}/?q={quote(soql, safe='')}"


def follow(sf: SalesforceConnector, firsts: Mapping[str, Any]) -> dict[str, Rows]:
    """Each query's rows: its first page, then the next pages of the queries not yet done,
    up to five in each Composite call, until every one is done."""
    rows = {ref: list(page["records"]) for ref, page in firsts.items()}
    pending = {ref: page for ref, page in firsts.items() if _more(page)}
    while pending:
        pages = composite_get(sf, {ref: str(page["nextRecordsUrl"])
                                   for ref, page in pending.items()})
        for ref, page in pages.items():
            rows[ref] += page["records"]
        pending = {ref: page for ref, page in pages.items() if _more(page)}
    return rows


def composite_get(sf: SalesforceConnector, urls: Mapping[str, str]) -> dict[str, Any]:
    """The body of ``GET url`` for each referenceId, five subrequests per Composite call, each
    call counted once in ``sf.calls`` and retried as one under the connector's policy."""
    items = list(urls.items())
    out: dict[str, Any] = {}
    for start in range(0, len(items), QUERIES_PER_CALL):
        chunk = dict(items[start:start + QUERIES_PER_CALL])
        out.update(sf._call(partial(_send, sf, urls=chunk)))
    return out


def _send(sf: SalesforceConnector, client: Salesforce, urls: dict[str, str]) -> dict[str, Any]:
    """One Composite call with ``allOrNone`` false (reads roll nothing back); the first
    failed subrequest raises, so a passing failure (a 503 in one subrequest) retries the call.
    An unknown field in a subrequest drops its object's cached describe, as a direct query's
    would."""
    answer: Any = client.restful("composite", method="POST", json={
        "allOrNone": False, "compositeRequest": [
            {"method": "GET", "url": url, "referenceId": ref} for ref, url in urls.items()]})
    out: dict[str, Any] = {}
    for item in answer["compositeResponse"]:
        ref, status = str(item["referenceId"]), int(item["httpStatusCode"])
        if status >= 300:
            body = item.get("body")
            first = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else {}
            sf._drop_stale_describe(str(first.get("errorCode", "")), str(first.get("message", "")))
            raise subrequest_error(client, urls[ref], status, body)
        out[ref] = item["body"]
    if set(out) != set(urls):
        raise RetriableError(SYSTEM, "a Composite answer lacks subrequests "
                             f"{sorted(set(urls) - set(out))}")
    return out


def subrequest_error(client: Salesforce, url: str, status: int, body: Any) -> ConnectorError:
    """The error the same request sent alone would raise: a subrequest's answer carries the
    same status and error array (``errorCode``, ``message``) as the direct call's, so it goes
    through simple-salesforce's status-to-exception table and ``classify`` as that would."""
    instance = str(client.base_url).split("/services/", 1)[0]
    content = body if isinstance(body, list) else [{"message": str(body)}]
    kind = _RAISED.get(status, SalesforceGeneralError)
    # simple-salesforce hands its exceptions the parsed JSON body, whatever the annotation says
    return classify(kind(instance + url, status, "composite", cast(bytes, content)), "GET")


def _more(page: Any) -> bool:
    return not page.get("done", True) and bool(page.get("nextRecordsUrl"))


def _check_names(objects: list[str], extra: Iterable[str]) -> None:
    """ReferenceIds are the object names and the extra queries' keys: each must be one
    Salesforce accepts (otherwise it refuses the whole request) and none twice."""
    names = [*objects, *extra]
    bad = [n for n in names if not _REFERENCE_ID.fullmatch(n)]
    if bad:
        raise ConfigurationError(SYSTEM, f"{bad} cannot name a Composite subrequest: letters, "
                                 "numbers and underscores only, starting with a letter or number")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigurationError(SYSTEM, f"{twice} named twice in one Composite read")


def _plan(sf: SalesforceConnector, read: ObjectRead, until: dt.datetime) -> _Plan:
    fields = sf._fields(read.object, read.fields)
    known = sf.describe(read.object).fields
    extra = [c for c in SOFT_DELETE if c in known and c not in fields]
    start, end = sf.window(read.since, until)
    return _Plan(read, fields, fields + extra, start, end)


def _changes(sf: SalesforceConnector, plan: _Plan, rows: Rows, lazy: bool) -> ObjectChanges:
    """Rows of the queryAll split: live ones become records (without the columns only the
    split needed), deleted ones become deletes."""
    name = plan.read.object
    added = [c for c in plan.columns if c not in plan.fields]
    live = ({k: v for k, v in row.items() if k not in added} for row in rows
            if not row.get("IsDeleted"))
    deleted = _deletes(plan, rows)
    records = sf.unseen(name, live, plan.read.since)
    return (ObjectChanges(name, [], deleted, stream=records) if lazy
            else ObjectChanges(name, list(records), deleted))


def _bulk_changes(sf: SalesforceConnector, plan: _Plan, first: Any, lazy: bool
                  ) -> ObjectChanges:
    """A read too large for REST pages: live records through Bulk API 2.0 (its query sees no
    deleted rows), deletes from the first page when it held every row, else one queryAll of
    the deleted ones alone."""
    name = plan.read.object
    unordered = changed_soql(name, plan.fields, plan.start, plan.end)

    def live() -> Iterator[Record]:  # lazy: as the job's pages arrive, in no promised order
        yield from sf.unseen(name, sf.bulk_rows(name, unordered, plan.fields, ordered=not lazy),
                             plan.read.since)

    if first.get("done", True):
        deleted = _deletes(plan, first["records"])
    else:
        answer = sf.read_deleted(name, plan.start)
        within = [d for d in answer.records if d.deleted_at <= plan.end]
        deleted = answer.model_copy(update={"records": _unseen(plan, within)})
    return (ObjectChanges(name, [], deleted, stream=live()) if lazy
            else ObjectChanges(name, list(live()), deleted))


def _deletes(plan: _Plan, rows: Rows) -> DeletedRecords:
    gone = [deleted_record(plan.read.object, row) for row in rows if row.get("IsDeleted")]
    return deletes_since(_unseen(plan, gone), plan.start)


def _unseen(plan: _Plan, deletes: list[DeletedRecord]) -> list[DeletedRecord]:
    """Each delete once, without those the watermark saw: an engine that advances its
    watermark over deletes too is not told of them again within the lookback."""
    found: dict[str, DeletedRecord] = {}
    for gone in deletes:
        if (gone.id, gone.deleted_at) not in plan.read.since.seen:
            found.setdefault(gone.id, gone)
    return list(found.values())
