"""Describes and user lists kept across cycles and processes.

A describe is several calls (HubSpot: properties and pipelines) whose answer changes when an
admin edits the org or portal, which is rare; fetched on every process start or cycle, they
were most of a quiet cycle's calls. So a connector looks in memory, then in a cache the engine
hands it (``SchemaCache``, backed by the state store: the engine owns state, connectors only
ask and tell), and calls the API only when neither holds an entry younger than the refresh
interval. An unknown-field error drops the object's entry, so the next describe is live.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from pydantic import BaseModel, TypeAdapter, ValidationError

from connectors.config import SchemaRefresh
from connectors.records import ObjectSchema, Person

DESCRIBE = "describe"  # one entry per object: its ObjectSchema
PEOPLE = "people"  # one entry per system: Salesforce users or HubSpot owners
T = TypeVar("T")


class SchemaCache(Protocol):
    """Where entries outlive the process; every method may quietly do nothing (a cache)."""

    def get(self, system: str, kind: str, name: str) -> tuple[Any, dt.datetime] | None:
        """(body, when it was fetched from the vendor), or None."""
        ...

    def put(self, system: str, kind: str, name: str, body: Any,
            fetched_at: dt.datetime) -> None: ...

    def drop(self, system: str, kind: str, name: str) -> None: ...


def _format(model: type[BaseModel]) -> str:
    """A fingerprint of a model's shape: an entry an older agent wrote in another shape is
    fetched again rather than read with defaults standing in for what it lacks."""
    text = json.dumps(model.model_json_schema(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_PEOPLE = TypeAdapter(list[Person])
FORMATS = {DESCRIBE: _format(ObjectSchema), PEOPLE: _format(Person)}


def dump_schema(schema: ObjectSchema) -> dict[str, Any]:
    return {"format": FORMATS[DESCRIBE], "value": schema.model_dump(mode="json")}


def load_schema(body: Any) -> ObjectSchema | None:
    if not isinstance(body, dict) or body.get("format") != FORMATS[DESCRIBE]:
        return None
    try:
        return ObjectSchema.model_validate(body.get("value"))
    except ValidationError:
        return None


def dump_people(people: list[Person]) -> dict[str, Any]:
    return {"format": FORMATS[PEOPLE], "value": _PEOPLE.dump_python(people, mode="json")}


def load_people(body: Any) -> list[Person] | None:
    if not isinstance(body, dict) or body.get("format") != FORMATS[PEOPLE]:
        return None
    try:
        return _PEOPLE.validate_python(body.get("value"))
    except ValidationError:
        return None


@dataclass
class _Entry:
    value: Any
    fetched_at: dt.datetime


class Schemas:
    """One connector's describes and people list: memory, then the engine's cache, then the
    API (and the answer goes back to both). ``max_age`` per kind is the refresh interval."""

    def __init__(self, system: str, describe_max_age: dt.timedelta,
                 people_max_age: dt.timedelta) -> None:
        self.system = system
        self.max_age = {DESCRIBE: describe_max_age, PEOPLE: people_max_age}
        self.cache: SchemaCache | None = None
        self._memory: dict[tuple[str, str], _Entry] = {}
        # set by ``clear``: entries fetched before it are fetched again (a forced refresh)
        self._fresh_after: dt.datetime | None = None

    @classmethod
    def for_settings(cls, system: str, settings: SchemaRefresh) -> Schemas:
        return cls(system, dt.timedelta(hours=settings.schema_refresh_hours),
                   dt.timedelta(hours=settings.people_refresh_hours))

    def describe(self, name: str, fetch: Callable[[], ObjectSchema]) -> ObjectSchema:
        return self._cached(DESCRIBE, name, fetch, load_schema, dump_schema)

    def people(self, name: str, fetch: Callable[[], list[Person]]) -> list[Person]:
        return self._cached(PEOPLE, name, fetch, load_people, dump_people)

    def forget(self, kind: str, name: str) -> None:
        """Drop one entry here and in the engine's cache: the next ask goes to the API."""
        self._memory.pop((kind, name), None)
        if self.cache is not None:
            self.cache.drop(self.system, kind, name)

    def forget_all(self, kind: str) -> None:
        """Drop every entry of ``kind`` held in memory, here and in the engine's cache (an
        error that does not say which object it was about)."""
        for held_kind, name in list(self._memory):
            if held_kind == kind:
                self.forget(kind, name)

    def clear(self) -> None:
        """Forget everything in memory and treat what the engine's cache holds as stale."""
        self._memory.clear()
        self._fresh_after = _now()

    def _young(self, kind: str, fetched_at: dt.datetime, now: dt.datetime) -> bool:
        if self._fresh_after is not None and fetched_at < self._fresh_after:
            return False
        return now - fetched_at < self.max_age[kind]

    def _cached(self, kind: str, name: str, fetch: Callable[[], T],
                load: Callable[[Any], T | None], dump: Callable[[T], Any]) -> T:
        now = _now()
        entry = self._memory.get((kind, name))
        if entry is not None and self._young(kind, entry.fetched_at, now):
            return cast(T, entry.value)
        stored = self.cache.get(self.system, kind, name) if self.cache is not None else None
        if stored is not None and self._young(kind, stored[1], now):
            value = load(stored[0])
            if value is not None:
                self._memory[(kind, name)] = _Entry(value, stored[1])
                return value
        fresh = fetch()
        self._memory[(kind, name)] = _Entry(fresh, now)
        if self.cache is not None:
            self.cache.put(self.system, kind, name, dump(fresh), now)
        return fresh


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
