"""The write stage: the cycle's planned writes as plain data, batched per object and sent.

A ``Write`` says what to send and what recording its success needs (the pair it settles,
the link a create makes, the SLA action it carries out), so the record stage works from
data, not from callbacks that close over the cycle. Batches go Salesforce first: a lead
created there has its id before HubSpot is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from connectors.contract import Connector
from connectors.records import Record, WriteRecord, WriteResult
from mapping.model import ObjectPair
from mapping.rules import FieldChange, PairPlanner, Plan
from sync_agent.context import Settling
from sync_agent.sla import ActionWrite

SYNC_CLOSES = ("sync_error", "missing_in_hubspot", "missing_in_salesforce")


@dataclass
class Creation:
    """What linking a created record needs once its create succeeds."""

    into: str
    key: str | None  # the match key the link is made on
    planner: PairPlanner
    plan: Plan
    values: dict[str, Any]  # what was sent
    source: Record


@dataclass
class Write:
    pair: ObjectPair
    system: str
    object: str
    record: WriteRecord
    source_id: str  # the record the write comes from (an update's own id)
    changes: list[FieldChange]
    closes: tuple[str, ...] = SYNC_CLOSES  # gap kinds its success settles
    settles: Settling | None = None  # an update of a linked pair
    values_after: dict[str, Any] | None = None  # what the written side holds after it
    creates: Creation | None = None
    action: ActionWrite | None = None

    @property
    def create_key(self) -> tuple[str, str, str]:
        return (self.pair.name, self.system, self.source_id)


def batches(writes: Iterable[Write]) -> list[tuple[tuple[str, str], list[Write]]]:
    """Writes per (system, object), each in the order planned; Salesforce's first."""
    grouped: dict[tuple[str, str], list[Write]] = {}
    for write in writes:
        grouped.setdefault((write.system, write.object), []).append(write)
    return [(key, grouped[key]) for key in sorted(
        grouped, key=lambda k: (k[0] != "salesforce", k))]


def send(connector: Connector, obj: str, batch: list[Write]) -> list[WriteResult]:
    """One object's writes through the connector (which batches and paces them); the
    results come back matched to the writes, in their order."""
    return connector.upsert(obj, [w.record for w in batch])
