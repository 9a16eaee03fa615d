"""Retrying dead letters: records a vendor refused.

A refused sync is retried by syncing its source record again as it is *now* (read by id),
through the same identity and field rules as a cycle: a stale payload is never replayed over
newer data, a create that succeeds is linked as usual, and a record fixed by hand on the other
side settles with no write at all. Writes of SLA actions (a follow-up Task) have no source
record to re-read, so their stored payload is replayed.

When a letter is due: 5 min after the refusal that made it, then 30 min, 2 h and 12 h after
each refusal of a retry (12 h from then on). A change to what it refused comes first: a cycle
that reads its record (or the linked counterpart) and would now send something else sends it
at once (``changed_letters``); ``stagesync retry`` (``follow``) re-reads the records of every
waiting letter and sends those whose write changed, holding back, until due, a write that
would send exactly what was refused.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from connectors.contract import Connector
from connectors.records import WriteRecord
from mapping.model import MappingFile
from sync_agent import state
from sync_agent.changed_letters import source_of
from sync_agent.context import CycleReport, Run, calls_now, calls_since, fields_of, prepare
from sync_agent.cycle import apply_records
from sync_agent.stages import StageBook
from sync_agent.store import Store
from sync_agent.tables import DeadLetter

EVERYTHING = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Letter:
    """One letter as ``stagesync retry`` lists it: what was refused, when it is (or was) due
    and why, and what this retry did with it."""

    id: int
    system: str
    object: str
    record: str
    code: str
    attempts: int
    due_at: dt.datetime
    reason: str  # "backoff N: ...", "source changed", "--all"
    outcome: str  # resolved, refused again, gone, waiting


@dataclass
class RetryResult:
    tried: int = 0
    resolved: int = 0
    failed: int = 0
    gone: int = 0  # the source record no longer exists
    letters: list[Letter] = field(default_factory=list)  # every letter looked at, by id


def _duration(wait: dt.timedelta) -> str:
    minutes = int(wait.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes >= 60 and minutes % 60 == 0 else f"{minutes} min"


def reason_of(letter: DeadLetter) -> str:
    """Why the letter is due when it is: its record changed, or its backoff."""
    if letter.source_changed_at is not None:
        return "source changed"
    step = min(letter.attempts, len(state.RETRY_BACKOFF))
    refusal = "the refusal" if letter.attempts == 1 else f"refusal {letter.attempts}"
    return f"backoff {step}: {_duration(state.RETRY_BACKOFF[step - 1])} after {refusal}"


def _record(letter: DeadLetter) -> str:
    source = source_of(letter)
    if letter.record_id:
        return letter.record_id
    if source is not None:
        return f"new, from {source['system']} {source['object']} {source['id']}"
    return "new"


@dataclass
class _Seen:
    """A letter as it stood before this retry touched it."""

    letter: DeadLetter
    due_at: dt.datetime
    reason: str
    attempts: int


def retry_dead_letters(store: Store, mapping: MappingFile, sf: Connector, hs: Connector,
                       everything: bool = False, follow: bool = False) -> RetryResult:
    """Retry the letters that are due (every waiting one with ``everything``). With
    ``follow``, the records of the letters not yet due are read and synced too, and the
    write of each is sent only if it is no longer what was refused ("source changed")."""
    result = RetryResult()
    before = calls_now(sf, hs)
    setup = prepare(mapping, sf, hs)
    report = CycleReport()
    page: Run | None = None
    with store.session() as session:
        run = state.start_run(session, "retry")
        now = state.now()
        due = {letter.id for letter in state.due_dead_letters(
            session, EVERYTHING if everything else now)}
        waiting = state.open_dead_letters(session)
        seen = {letter.id: _Seen(letter, state._aware(letter.next_retry_at),
                                 "--all" if everything and letter.id not in due
                                 else reason_of(letter), letter.attempts)
                for letter in waiting}
        outcome: dict[int, str] = {}
        resync: dict[tuple[str, str], list[DeadLetter]] = defaultdict(list)
        for letter in waiting:
            source = source_of(letter)
            if source is None:  # a stored payload to replay: only when due
                if letter.id in due:
                    outcome[letter.id] = _replay(letter, sf if letter.system == "salesforce"
                                                 else hs)
                continue
            if letter.id in due or follow:
                if letter.id in due:  # --all: due now, so its write is sent as it is
                    letter.next_retry_at = min(state._aware(letter.next_retry_at), now)
                resync[(source["system"], source["object"])].append(letter)
        for (system, obj), group in resync.items():
            connector = sf if system == "salesforce" else hs
            ids = sorted({source["id"] for letter in group
                          if (source := source_of(letter)) is not None})
            records = connector.read_by_ids(obj, ids, fields_of(setup, system, obj))
            found = {r.id for r in records}
            retrying = {(source["pair"], source["id"]): letter for letter in group
                        if (source := source_of(letter)) is not None and source["id"] in found}
            page = apply_records(session, setup, report, StageBook(), system, obj, records,
                                 run.id, retrying, page)
            for letter in group:
                source = source_of(letter)
                assert source is not None
                key = (source["pair"], source["id"])
                if source["id"] not in found:
                    letter.resolved_at = state.now()
                    letter.error_message += " (the record no longer exists)"
                    outcome[letter.id] = "gone"
                elif key not in retrying:  # held back: not due, and nothing it refused changed
                    continue
                elif key in page.failed_sources:
                    outcome[letter.id] = "refused again"
                else:
                    state.retried(letter, True)
                    state.close_gaps(session, source["pair"], source["id"], ("sync_error",))
                    outcome[letter.id] = "resolved"
        for letter_id, was in seen.items():
            happened = outcome.get(letter_id, "waiting")
            reason = was.reason
            if happened != "waiting" and letter_id not in due:
                reason = "source changed"  # not due: sent because what it refused changed
            letter = was.letter
            result.letters.append(Letter(
                letter.id, letter.system, letter.object, _record(letter), letter.error_code,
                was.attempts, was.due_at if happened != "waiting" else
                state._aware(letter.next_retry_at), reason, happened))
        result.tried = len(outcome)
        result.resolved = sum(1 for o in outcome.values() if o == "resolved")
        result.failed = sum(1 for o in outcome.values() if o == "refused again")
        result.gone = sum(1 for o in outcome.values() if o == "gone")
        state.finish_run(session, run, "ok", {"tried": result.tried,
                                              "resolved": result.resolved,
                                              "failed": result.failed, "gone": result.gone},
                         calls_since(before, sf, hs))
        session.commit()
    return result


def _replay(letter: DeadLetter, connector: Connector) -> str:
    match = letter.payload.get("match")
    write = WriteRecord(id=letter.record_id, values=letter.payload.get("values", {}),
                        match=tuple(match) if match else None)
    outcome = connector.upsert(letter.object, [write])[0]
    if outcome.ok:
        state.retried(letter, True)
        return "resolved"
    assert outcome.error is not None
    state.retried(letter, False, f"{outcome.error.code}: {outcome.error.message}")
    return "refused again"
