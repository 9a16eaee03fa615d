"""HubSpot answers (search, batch read, list pages, batch writes) as plain data, parsed from
the body.

hubspot-api-client turns every answer into its model objects, parsing each record's
``createdAt``/``updatedAt``/``archivedAt`` with dateutil: for a page of 100 records that cost
more than the rest of the engine spends on them (a 1,000-record steady cycle spent a third of
its time there). Reads and batch writes ask the client for the raw answer
(``_preload_content=False``: same request, same status handling and errors) and keep only
what the connector uses. A raw answer is parsed whatever its 2xx status: the generated
client maps only the statuses the spec names and returns None for another (HubSpot was
recorded answering a batch create 200, ``nango-batch-create-companies.test.json``), which
would lose the ids of records created.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NEVER = dt.datetime.min.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Item:
    id: str
    properties: dict[str, Any]
    updated_at: dt.datetime = NEVER  # HubSpot always sends it, in fact
    archived_at: dt.datetime | None = None


@dataclass(frozen=True)
class Next:
    after: str


@dataclass(frozen=True)
class Paging:
    next: Next | None


@dataclass
class Page:
    results: list[Item] = field(default_factory=list)
    paging: Paging | None = None
    total: int = 0


def _time(text: Any) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")).astimezone(dt.UTC)


def parse_page(body: bytes | str) -> Page:
    """A search, batch-read or list answer: results, the next page's cursor, the total."""
    data = json.loads(body)
    results = [Item(id=str(r["id"]), properties=dict(r.get("properties") or {}),
                    updated_at=_time(r.get("updatedAt")) or NEVER,
                    archived_at=_time(r.get("archivedAt")))
               for r in data.get("results") or []]
    following = ((data.get("paging") or {}).get("next") or {}).get("after")
    return Page(results=results,
                paging=Paging(Next(str(following))) if following is not None else None,
                total=int(data.get("total") or 0))


def latest_changes(call: Callable[..., Any]) -> Callable[[], dict[str, dict[str, dt.datetime]]]:
    """A batch read with ``propertiesWithHistory``, answered as each record's properties'
    latest change times (HubSpot lists a property's history newest first; the newest time
    is taken whatever the order)."""
    def run() -> dict[str, dict[str, dt.datetime]]:
        data = json.loads(call(_preload_content=False).data)
        out: dict[str, dict[str, dt.datetime]] = {}
        for result in data.get("results") or []:
            times: dict[str, dt.datetime] = {}
            for name, entries in (result.get("propertiesWithHistory") or {}).items():
                stamps = [t for t in (_time(e.get("timestamp")) for e in entries or []) if t]
                if stamps:
                    times[name] = max(stamps)
            out[str(result["id"])] = times
        return out
    return run


def fetched(call: Callable[..., Any]) -> Callable[[], Page]:
    """``call`` (a client API method with its arguments bound) answered as a ``Page``."""
    def run() -> Page:
        answer = call(_preload_content=False)
        return parse_page(answer.data)
    return run


@dataclass(frozen=True)
class Written:
    """One result of a batch write: the record's id, the properties HubSpot echoes, and for
    an upsert whether it was created."""

    id: str
    properties: dict[str, Any]
    new: bool | None = None


@dataclass(frozen=True)
class Failure:
    """One error of a 207 answer: its category, message and context (which inputs it names:
    ``objectWriteTraceId``, ``ids``, ``propertyName``)."""

    category: str
    message: str
    context: dict[str, list[str]]


@dataclass
class BatchAnswer:
    results: list[Written] = field(default_factory=list)
    errors: list[Failure] = field(default_factory=list)


def parse_batch_answer(body: bytes | str) -> BatchAnswer:
    """A batch create, update or upsert answer (200, 201 or 207 alike)."""
    data = json.loads(body) if body else {}
    return BatchAnswer(
        results=[Written(id=str(r["id"]), properties=dict(r.get("properties") or {}),
                         new=r.get("new")) for r in data.get("results") or []],
        errors=[Failure(category=str(e.get("category")), message=str(e.get("message")),
                        context={k: [str(v) for v in vs] if isinstance(vs, list) else [str(vs)]
                                 for k, vs in (e.get("context") or {}).items()})
                for e in data.get("errors") or []])


def written(call: Callable[..., Any]) -> Callable[[], BatchAnswer]:
    """``call`` (a client batch-write method with its arguments bound) as a ``BatchAnswer``."""
    def run() -> BatchAnswer:
        answer = call(_preload_content=False)
        return parse_batch_answer(answer.data)
    return run
