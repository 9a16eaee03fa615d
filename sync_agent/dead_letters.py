"""Retrying dead letters: records a vendor refused.

A refused sync is retried by syncing its source record again as it is *now* (read by id),
through the same identity and field rules as a cycle: a stale payload is never replayed over
newer data, a create that succeeds is linked as usual, and a record fixed by hand on the other
side settles with no write at all. Writes of SLA actions (a follow-up Task) have no source
record to re-read, so their stored payload is replayed.

When a letter is due: 5 min after the refusal that made it, then 30 min, 2 h and 12 h after
each refusal of a retry (12 h from then on). A change to its record comes first: a cycle that
reads its record (or the linked counterpart) changed sends it again at once
(``changed_letters``), and ``stagesync retry`` reads the records of the letters not yet due
and retries those changed since they were last refused.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from connectors.contract import Connector
from connectors.records import WriteRecord
from mapping.model import MappingFile
from sync_agent import state
from sync_agent.changed_letters import counterparts_of, other_side, source_of
from sync_agent.context import (
    CycleReport,
    Run,
    Setup,
    calls_now,
    calls_since,
    fields_of,
    prepare,
)
from sync_agent.cycle import apply_records
from sync_agent.stages import StageBook
from sync_agent.store import Store
from sync_agent.tables import DeadLetter

EVERYTHING = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Scheduled:
    """One waiting letter as ``stagesync retry`` lists it: what, and when it is due, why."""

    id: int
    system: str
    object: str
    record: str
    code: str
    attempts: int
    due_at: dt.datetime
    reason: str


def _waits() -> list[str]:
    return [_duration(w) for w in state.RETRY_BACKOFF]


def _duration(wait: dt.timedelta) -> str:
    minutes = int(wait.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes >= 60 and minutes % 60 == 0 else f"{minutes} min"


def reason_of(letter: DeadLetter) -> str:
    """Why the letter is due when it is: its record changed, or its backoff."""
    if letter.source_changed_at is not None:
        return "source changed"
    step = min(letter.attempts, len(state.RETRY_BACKOFF))
    refusal = "the refusal" if letter.attempts == 1 else f"refusal {letter.attempts}"
    return f"backoff {step}: {_waits()[step - 1]} after {refusal}"


def _record(letter: DeadLetter) -> str:
    source = source_of(letter)
    if letter.record_id:
        return letter.record_id
    if source is not None:
        return f"new, from {source['system']} {source['object']} {source['id']}"
    return "new"


def schedule(session: Session) -> list[Scheduled]:
    """Every waiting letter, soonest due first."""
    return [Scheduled(letter.id, letter.system, letter.object, _record(letter),
                      letter.error_code, letter.attempts, state._aware(letter.next_retry_at),
                      reason_of(letter))
            for letter in state.open_dead_letters(session)]


def follow_sources(session: Session, setup: Setup, at: dt.datetime) -> int:
    """Make due now the letters not yet due whose record, or linked counterpart, changed
    since they were last refused (read by id: one read per object). Returns how many."""
    pairs = {p.name: p for p in setup.mapping.objects}
    waiting = [(letter, source) for letter in state.open_dead_letters(session)
               if state._aware(letter.next_retry_at) > at
               and (source := source_of(letter)) is not None and source.get("pair") in pairs]
    if not waiting:
        return 0
    others = counterparts_of(session, {(s["pair"], s["system"], s["id"]) for _, s in waiting})
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for _, source in waiting:
        wanted[(source["system"], source["object"])].add(source["id"])
        other = others.get((source["pair"], source["system"], source["id"]))
        if other is not None:
            pair = pairs[source["pair"]]
            wanted[other_side(source["system"], pair.salesforce, pair.hubspot)].add(other)
    stamps: dict[tuple[str, str], dict[str, dt.datetime]] = {}
    for (system, obj), ids in wanted.items():
        connector = setup.sf if system == "salesforce" else setup.hs
        stamps[(system, obj)] = {r.id: r.cursor for r in connector.read_by_ids(
            obj, sorted(ids), fields_of(setup, system, obj))}
    marked = 0
    for letter, source in waiting:
        pair = pairs[source["pair"]]
        tried = state.last_tried(letter)
        mine = stamps[(source["system"], source["object"])].get(source["id"])
        other = others.get((source["pair"], source["system"], source["id"]))
        theirs = (stamps[other_side(source["system"], pair.salesforce, pair.hubspot)].get(other)
                  if other is not None else None)
        if any(stamp is not None and stamp > tried for stamp in (mine, theirs)):
            state.source_changed(letter, at)
            marked += 1
    return marked


@dataclass
class RetryResult:
    tried: int = 0
    resolved: int = 0
    failed: int = 0
    gone: int = 0  # the source record no longer exists
    changed: int = 0  # made due because their record changed (``follow``)
    waiting: list[Scheduled] = field(default_factory=list)  # before retrying, soonest first


def retry_dead_letters(store: Store, mapping: MappingFile, sf: Connector, hs: Connector,
                       everything: bool = False, follow: bool = False) -> RetryResult:
    """Retry the letters that are due (all unresolved ones with ``everything``); with
    ``follow``, first make due those whose record changed since they were refused."""
    result = RetryResult()
    before = calls_now(sf, hs)
    setup = prepare(mapping, sf, hs)
    report = CycleReport()
    page: Run | None = None
    with store.session() as session:
        if follow and not everything:
            result.changed = follow_sources(session, setup, state.now())
            session.commit()
        result.waiting = schedule(session)
        run = state.start_run(session, "retry")
        letters = state.due_dead_letters(session, EVERYTHING if everything else None)
        result.tried = len(letters)
        resync: dict[tuple[str, str], list[DeadLetter]] = defaultdict(list)
        for letter in letters:
            source = letter.payload.get("source")
            if letter.payload.get("replay") or not source:
                _replay(letter, sf if letter.system == "salesforce" else hs, result)
                continue
            resync[(source["system"], source["object"])].append(letter)
        for (system, obj), group in resync.items():
            connector = sf if system == "salesforce" else hs
            ids = [str(letter.payload["source"]["id"]) for letter in group]
            records = connector.read_by_ids(obj, ids, fields_of(setup, system, obj))
            found = {r.id for r in records}
            retrying = {(letter.payload["source"]["pair"],
                         str(letter.payload["source"]["id"])): letter
                        for letter in group if letter.payload["source"]["id"] in found}
            page = apply_records(session, setup, report, StageBook(), system, obj, records,
                                 run.id, retrying, page)
            for letter in group:
                source = letter.payload["source"]
                if source["id"] not in found:
                    letter.resolved_at = state.now()
                    letter.error_message += " (the record no longer exists)"
                    result.gone += 1
                elif (source["pair"], source["id"]) in page.failed_sources:
                    result.failed += 1
                else:
                    state.retried(letter, True)
                    state.close_gaps(session, source["pair"], source["id"], ("sync_error",))
                    result.resolved += 1
        state.finish_run(session, run, "ok", {"tried": result.tried,
                                              "resolved": result.resolved,
                                              "failed": result.failed, "gone": result.gone},
                         calls_since(before, sf, hs))
        session.commit()
    return result


def _replay(letter: DeadLetter, connector: Connector, result: RetryResult) -> None:
    match = letter.payload.get("match")
    write = WriteRecord(id=letter.record_id, values=letter.payload.get("values", {}),
                        match=tuple(match) if match else None)
    outcome = connector.upsert(letter.object, [write])[0]
    if outcome.ok:
        state.retried(letter, True)
        result.resolved += 1
    else:
        assert outcome.error is not None
        state.retried(letter, False, f"{outcome.error.code}: {outcome.error.message}")
        result.failed += 1
