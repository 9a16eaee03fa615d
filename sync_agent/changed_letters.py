"""Dead letters follow the data: a refused record that changes is tried again at once.

A cycle reads every changed record anyway and plans its writes from what it read, so the
refused write of a record that changed since (someone fixed it, on its side or on its
counterpart's) is sent again by the cycle itself, whatever the letter's backoff. This module
makes that send count as the letter's retry: before matching, the open letters whose record,
or whose linked counterpart, is in the cycle's change set ride along in ``run.retrying``, so
the record stage resolves a letter whose write lands and backs off the same letter (never a
second one) when it is refused again. A letter the cycle read but did not send (its record
is in sync now, or its create is held) is made due now, "source changed", for the retry that
follows the cycle (the agent's) or ``stagesync retry``: they sync it again as it is and decide.
A record read again with nothing the letter refused changed (a vendor's own touch, a re-read
at the watermark's edge) is not sent before the letter is due (``hold_back``).

Letters of SLA actions replay a stored payload and have no record to follow.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from sync_agent import state
from sync_agent.context import Run, whole
from sync_agent.plan import json_safe
from sync_agent.spool import Spooled
from sync_agent.tables import DeadLetter, Link
from sync_agent.write import Write

CHUNK = 500  # ids an IN list


def source_of(letter: DeadLetter) -> dict[str, str] | None:
    source = letter.payload.get("source")
    if letter.payload.get("replay") or not isinstance(source, dict):
        return None
    return {k: str(v) for k, v in source.items()}


def _read_ids(run: Run, system: str, obj: str, wanted: set[str]) -> set[str]:
    """Which of ``wanted`` the cycle read of ``obj``."""
    if (system, obj) not in run.changed:
        return set()
    records = whole(run, system, obj)
    if isinstance(records, Spooled):
        return set(records.get(wanted))
    return wanted & {r.id for r in records}


def counterparts_of(session: Session, keys: set[tuple[str, str, str]]
                  ) -> dict[tuple[str, str, str], str]:
    """(pair, system, id) -> the linked record's id on the other side."""
    out: dict[tuple[str, str, str], str] = {}
    for system, column in (("salesforce", Link.sf_id), ("hubspot", Link.hs_id)):
        ids = sorted({i for (_, s, i) in keys if s == system})
        for start in range(0, len(ids), CHUNK):
            for link in session.scalars(select(Link).where(
                    column.in_(ids[start:start + CHUNK]))):
                mine, other = ((link.sf_id, link.hs_id) if system == "salesforce"
                               else (link.hs_id, link.sf_id))
                if (link.pair, system, mine) in keys:
                    out[(link.pair, system, mine)] = other
    return out


def take(run: Run, session: Session) -> list[DeadLetter]:
    """Put the open letters whose record or counterpart this cycle read in ``run.retrying``;
    returns them (``settle`` takes them at the end of the cycle)."""
    pairs = {p.name: p for p in run.setup.mapping.objects}
    letters = [(letter, source) for letter in state.open_dead_letters(session)
               if (source := source_of(letter)) is not None and source.get("pair") in pairs]
    if not letters:
        return []
    counterparts = counterparts_of(session, {(s["pair"], s["system"], s["id"])
                                           for _, s in letters})
    wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
    for _, source in letters:
        pair = pairs[source["pair"]]
        wanted[(source["system"], source["object"])].add(source["id"])
        other = counterparts.get((source["pair"], source["system"], source["id"]))
        if other is not None:
            wanted[other_side(source["system"], pair.salesforce, pair.hubspot)].add(other)
    read = {key: _read_ids(run, *key, ids) for key, ids in wanted.items()}
    taken: list[DeadLetter] = []
    for letter, source in sorted(letters, key=lambda item: item[0].id):
        pair = pairs[source["pair"]]
        other = counterparts.get((source["pair"], source["system"], source["id"]))
        changed = source["id"] in read.get((source["system"], source["object"]), set()) or (
            other is not None and other in read.get(
                other_side(source["system"], pair.salesforce, pair.hubspot), set()))
        if changed:
            run.retrying.setdefault((source["pair"], source["id"]), letter)
            taken.append(letter)
    return taken


def hold_back(run: Run, writes: list[Write], at: dt.datetime) -> list[Write]:
    """The writes to send: a letter's write that would send exactly what was refused, before
    the letter is due, is held back (the record was read, but what the letter refused did
    not change: a vendor's own touch, a re-read at the watermark's edge) and stays refused:
    its gap open, its side remembered as it was, its letter on its backoff."""
    sent: list[Write] = []
    for planned in writes:
        key = (planned.pair.name, planned.source_id)
        letter = run.retrying.get(key)
        if (letter is None or planned.action is not None
                or state._aware(letter.next_retry_at) <= at
                or json_safe(planned.record.values) != letter.payload.get("values")):
            sent.append(planned)
            continue
        del run.retrying[key]  # not a retry: ``settle`` leaves it alone
        run.failed_sources.add(key)
        if planned.record.id is not None:
            run.unwritten.add((planned.system, planned.record.id))
        run.new_creates.pop(planned.create_key, None)  # never sent: nothing to hold
    return sent


def other_side(system: str, sf_object: str, hs_object: str) -> tuple[str, str]:
    return ("hubspot", hs_object) if system == "salesforce" else ("salesforce", sf_object)


def settle(run: Run, letters: list[DeadLetter], started: dt.datetime) -> int:
    """After the cycle's writes: a letter written (resolved) or refused again (backed off)
    is settled; one the cycle read but sent nothing for is due now. Older letters of the same
    record (kept twice before letters followed the data) share the outcome. Returns how
    many were made due."""
    due = 0
    for letter in letters:
        source = source_of(letter)
        assert source is not None
        lead = run.retrying.get((source["pair"], source["id"]))
        if lead is None:  # held back: nothing it refused changed
            continue
        if lead is not letter:  # a second letter of the same record
            if lead.resolved_at is not None:
                state.retried(letter, True)
            continue
        if letter.resolved_at is not None or state.last_tried(letter) >= started:
            continue
        state.source_changed(letter)
        due += 1
    return due
