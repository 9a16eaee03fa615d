"""HubSpot read answers (search, batch read, list pages) as plain data, parsed from the body.

hubspot-api-client turns every answer into its model objects, parsing each record's
``createdAt``/``updatedAt``/``archivedAt`` with dateutil: for a page of 100 records that cost
more than the rest of the engine spends on them (a 1,000-record steady cycle spent a third of
its time there). Reads ask the client for the raw answer (``_preload_content=False``: same
request, same status handling and errors) and keep only what the connector uses.
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


def fetched(call: Callable[..., Any]) -> Callable[[], Page]:
    """``call`` (a client API method with its arguments bound) answered as a ``Page``."""
    def run() -> Page:
        answer = call(_preload_content=False)
        return parse_page(answer.data)
    return run
