"""What every connector offers the engine, and the report ``check()`` returns."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel


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


class Connector(Protocol):
    system: str

    def check(self) -> CheckReport:
        """Sign in, read what the product needs, and summarise it; raises on any failure."""
        ...
