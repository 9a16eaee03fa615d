"""The contract both connectors implement, and the report ``check()`` returns.

The engine talks to connectors only through this Protocol; connectors persist nothing (the
engine owns watermarks, links and state).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from connectors.records import (
    Activity,
    DeletedRecords,
    ObjectSchema,
    Person,
    Record,
    Watermark,
    WriteRecord,
    WriteResult,
)
from connectors.schema_cache import SchemaCache


class ObjectSummary(BaseModel):
    name: str
    label: str
    records: int
    fields: int


class CheckReport(BaseModel):
    """What ``stagesync check`` prints for one system."""

    system: str
    endpoint: str
    api_version: str
    identity: str
    objects: list[ObjectSummary]
    quota: str | None = None
    calls: int = 0
    permissions: str | None = None  # how scopes and permissions were verified
    missing: list[str] = Field(default_factory=list)  # each needed permission that is lacking


class Connector(Protocol):
    system: str
    calls: Counter[str]  # every call, per endpoint, since the connector was built

    @property
    def lookback(self) -> dt.timedelta:
        """How far behind a watermark reads start again (late commits, search lag)."""
        ...

    def check(self) -> CheckReport:
        """Sign in, read what the product needs, and summarise it; raises on any failure."""
        ...

    @property
    def schema_cache(self) -> SchemaCache | None:
        """Where describes and people lists outlive the process (set by the engine)."""
        ...

    def use_schema_cache(self, cache: SchemaCache | None) -> None: ...

    def describe(self, object_name: str) -> ObjectSchema:
        """Fields (type, length, nillable, updateable, picklists) and pipelines; cached in
        memory and in ``schema_cache`` for ``schema_refresh_hours``, dropped on an unknown-field
        error so the next describe is live."""
        ...

    def clear_cache(self) -> None:
        """Fetch describes and people again on next use, whatever the caches hold."""
        ...

    def read_changed(self, object_name: str, since: Watermark | dt.datetime,
                     until: dt.datetime, fields: Iterable[str] | None = None,
                     ordered: bool = True) -> Iterator[Record]:
        """Changed records, sorted by cursor, inclusive lower bound, what ``since`` saw skipped,
        never past ``until`` (the cycle's start). ``ordered=False`` lets a large read come in
        the vendor's own order as it arrives, for a caller that orders it (a spool)."""
        ...

    def read_deleted(self, object_name: str, since: dt.datetime) -> DeletedRecords: ...

    def list_ids(self, object_name: str) -> Iterator[str]: ...

    def read_by_ids(self, object_name: str, ids: Iterable[str],
                    fields: Iterable[str] | None = None) -> list[Record]: ...

    def find_by_values(self, object_name: str, field: str, values: Iterable[str],
                       fields: Iterable[str] | None = None, *, domain: bool = False
                       ) -> list[Record]:
        """Records whose ``field`` equals one of ``values`` (or, ``domain``, whose website
        or domain names one of these bare domains): candidates for a match key, which the
        caller compares whole."""
        ...

    def field_times(self, object_name: str, ids: Iterable[str], fields: Iterable[str]
                    ) -> dict[str, dict[str, dt.datetime]]:
        """When each field last changed on each record, where the system keeps field history
        (HubSpot always; Salesforce for tracked fields). Fields without history are absent."""
        ...

    def find_by_emails(self, object_name: str, emails: Iterable[str],
                       fields: Iterable[str] | None = None) -> list[Record]: ...

    def upsert(self, object_name: str, records: list[WriteRecord]) -> list[WriteResult]:
        """One result per input, in input order: an id, or the vendor's error for that
        record; the rest of a batch goes on."""
        ...

    def delete(self, object_name: str, ids: list[str]) -> list[WriteResult]: ...

    def people(self) -> list[Person]:
        """Users (Salesforce) or owners (HubSpot), cached as describes are, for
        ``people_refresh_hours``."""
        ...

    def activity(self, object_name: str, ids: list[str], since: dt.datetime) -> list[Activity]:
        """Sales activity on these records since ``since`` (Salesforce Tasks; HubSpot's last
        activity date)."""
        ...


@runtime_checkable
class ReadsActivity(Protocol):
    """A connector that reads sales activity by change (Salesforce Tasks and Events), so the
    SLA clock costs one query per object and cycle, however many leads wait at a stage."""

    @property
    def lookback(self) -> dt.timedelta: ...

    def activity_soql(self, object_name: str, since: Watermark, until: dt.datetime) -> str:
        """The query for activity changed since ``since`` up to ``until``, as text, so the
        engine may also send it inside a Composite request."""
        ...

    def parse_activity(self, object_name: str, rows: list[dict[str, Any]]) -> list[Activity]:
        """That query's rows as activity, each with its change cursor."""
        ...

    def activity_changed(self, object_name: str, since: Watermark, until: dt.datetime
                         ) -> list[Activity]:
        """Run that query: what ``since`` saw is skipped, as ``read_changed`` does."""
        ...
