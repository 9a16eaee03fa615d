"""Retrying dead letters: records a vendor refused.

A refused sync is retried by syncing its source record again as it is *now* (read by id),
through the same identity and field rules as a cycle: a stale payload is never replayed over
newer data, a create that succeeds is linked as usual, and a record fixed by hand on the other
side settles with no write at all. Writes of SLA actions (a follow-up Task) have no source
record to re-read, so their stored payload is replayed. A letter that fails again keeps its id,
counts the attempt and backs off (5 min, 30 min, 2 h, then 12 h).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from connectors.contract import Connector
from connectors.records import WriteRecord
from mapping.model import MappingFile
from sync_agent import state
from sync_agent.context import CycleReport, Run, calls_now, calls_since, fields_of, prepare
from sync_agent.cycle import apply_records
from sync_agent.stages import StageBook
from sync_agent.store import Store
from sync_agent.tables import DeadLetter


@dataclass
class RetryResult:
    tried: int = 0
    resolved: int = 0
    failed: int = 0
    gone: int = 0  # the source record no longer exists


def retry_dead_letters(store: Store, mapping: MappingFile, sf: Connector, hs: Connector,
                       everything: bool = False) -> RetryResult:
    """Retry the letters that are due (all unresolved ones with ``everything``)."""
    result = RetryResult()
    before = calls_now(sf, hs)
    setup = prepare(mapping, sf, hs)
    report = CycleReport()
    page: Run | None = None
    with store.session() as session:
        run = state.start_run(session, "retry")
        moment = dt.datetime(9999, 1, 1, tzinfo=dt.UTC) if everything else None
        letters = state.due_dead_letters(session, moment)
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
