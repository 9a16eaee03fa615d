"""Writes a slice of a first sync planned and did not send yet, carried to the next slice.

Each vendor call takes a batch of one kind of write to one object: a HubSpot batch create,
update or upsert of 100, a Salesforce Collections create, update or upsert of 200. A slice
that sent everything it planned ended with a part-filled call of each kind, so a first sync
in ten slices made up to ten times the calls its last batches needed. Here a slice sends only
full calls and hands the rest to the next slice, which sends them with its own; the last slice
of each pair sends whatever is left (``slices``), so a carried write never outlives the slices
of the pair that planned it (a later pair's stages then see it landed, as in a whole cycle).

What stays true while a write waits:
- its write-ahead record is already committed (the intent of an update, the pending create of
  a create), and a pending create is settled only by the slice that sends it and records the
  answer; a failure drops the carried creates never sent, as it drops a cycle's own;
- a pair whose writes went out in part is remembered only once all of them have been sent
  (a side that failed or never went out keeps what it held), over what the store holds then;
- a create carried from an earlier slice is linked in the slice that sends it, and that
  slice's second write pass and associations take care of it (``arrived``);
- a record's writes land in the order planned, never two in one call;
- the stage a written record was read at is observed with its write, not before it (one
  cycle keeps one observation a record: the last), so it opens no stay a whole cycle would
  not have.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Set
from contextlib import contextmanager
from dataclasses import dataclass, field

from connectors.hubspot import BATCH_SIZE as HUBSPOT_CALL
from connectors.records import Record
from connectors.salesforce import COLLECTION_SIZE as SALESFORCE_CALL
from sync_agent.context import CreateKey, Run, Settling
from sync_agent.stages import Observation
from sync_agent.write import Write

CALL_SIZE = {"salesforce": SALESFORCE_CALL, "hubspot": HUBSPOT_CALL}  # writes per call


def call_of(write: Write) -> tuple[str, str, str]:
    """The call a write goes out in, as the connectors group them: updates (an id), upserts
    on one match field, creates apart, per system and object. (A HubSpot match on a field
    that is not unique is looked up first and then goes as a create or an update; grouped
    here as an upsert, it is only sent in fewer-filled calls, never wrongly.)"""
    record = write.record
    kind = ("update" if record.id else f"upsert:{record.match[0]}" if record.match
            else "create")
    return (write.system, write.object, kind)


def split(writes: Iterable[Write], everything: bool, never: Set[tuple[str, str]] = frozenset()
          ) -> tuple[list[Write], list[Write]]:
    """``writes`` cut into what fills whole calls (every write, ``everything``), oldest first,
    and the part-filled rest of each call kind; writes to an object in ``never`` all go now."""
    by_call: dict[tuple[str, str, str], list[Write]] = {}
    for write in writes:
        by_call.setdefault(call_of(write), []).append(write)
    send: list[Write] = []
    rest: list[Write] = []
    for (system, obj, _), group in by_call.items():
        size = CALL_SIZE.get(system, 1)
        cut = (len(group) if everything or (system, obj) in never
               else len(group) - len(group) % size)
        send += group[:cut]
        rest += group[cut:]
    return send, rest


def _touched(writes: Iterable[Write]) -> set[tuple[str, str, str]]:
    return {(w.system, w.object, w.record.id) for w in writes if w.record.id is not None}


@dataclass
class Carry:
    """The writes one slice hands the next, and what recording them needs. ``never``: the
    (system, object) whose writes a later stage of the same slice may read back (a stage
    follow lifting its own pair's records), so they are never carried."""

    never: set[tuple[str, str]] = field(default_factory=set)
    writes: list[Write] = field(default_factory=list)
    creates: dict[CreateKey, dt.datetime] = field(default_factory=dict)  # their pending rows
    settling: dict[int, Settling] = field(default_factory=dict)  # pairs written in part
    unwritten: set[tuple[str, str]] = field(default_factory=set)  # their sides not written
    arrived: list[Record] = field(default_factory=list)  # sources of creates from before
    observed: dict[tuple[str, str, str], Observation] = field(default_factory=dict)
    _before: set[int] = field(default_factory=set)  # the writes carried into this slice

    def __bool__(self) -> bool:
        return bool(self.writes)

    def join(self, run: Run) -> None:
        """A slice takes the carry over, after committing its own write-ahead records: the
        carried creates count as its own (sent, they are settled with its; never sent, a
        failure drops them), and the pairs waiting to be remembered are read back from the
        store as it now is (a stage of an earlier slice may have remembered more of them)."""
        run.new_creates.update(self.creates)
        for key, observation in self.observed.items():  # this slice's own are later ones
            run.stages.seen.setdefault(key, observation)
        self.observed = {}
        waiting = {id(s): s for s in [*self.settling.values(),
                                      *(w.settles for w in self.writes if w.settles)]}
        run.synced.load(s.link for s in waiting.values())
        for settling in waiting.values():
            settling.stored = run.synced.get(settling.link)
        self._before = {id(w) for w in self.writes}
        self.arrived = []

    def take(self, run: Run, writes: list[Write], everything: bool) -> list[list[Write]]:
        """What a flush sends now, in rounds: the carried writes and ``writes``, whole calls
        only (all of them, ``everything``). A record one of ``writes`` touches again has its
        carried write sent first, in a round of its own."""
        run.to_remember.update(self.settling)
        run.unwritten |= self.unwritten
        self.settling, self.unwritten = {}, set()
        rounds: list[list[Write]] = []
        if _touched(self.writes) & _touched(writes):
            rounds.append(self.writes)
            self.writes = []
        send, self.writes = split([*self.writes, *writes], everything, self.never)
        rounds.append(send)
        self.arrived += [w.creates.source for group in rounds for w in group
                         if w.creates is not None and id(w) in self._before]
        return [group for group in rounds if group]

    def hold(self, run: Run) -> None:
        """After a flush: a pair with a write still carried is remembered later, with the
        sides of it that failed or were never sent; the carried creates keep their times."""
        waiting = {id(w.settles): w.settles for w in self.writes if w.settles is not None}
        for key, settling in list(run.to_remember.items()):
            if id(settling) in waiting:
                self.settling[key] = run.to_remember.pop(key)
        sides = ({("salesforce", s.sf_id) for s in waiting.values()}
                 | {("hubspot", s.hs_id) for s in waiting.values()})
        self.unwritten = run.unwritten & sides
        self.creates = {w.create_key: run.new_creates[w.create_key] for w in self.writes
                        if w.creates is not None and w.create_key in run.new_creates}

    def keep_stages(self, run: Run) -> None:
        """Before a slice records its stage observations: those of records a carried write
        goes to, or whose carried create the second pass answers with a write back, wait for
        it (a whole cycle observes such a record once, as written)."""
        records = ({(system, record_id) for system, _, record_id in _touched(self.writes)}
                   | {(w.creates.source.system, w.creates.source.id) for w in self.writes
                      if w.creates is not None})
        for key in [k for k in run.stages.seen if (k[0], k[1]) in records]:
            self.observed[key] = run.stages.seen.pop(key)

    @contextmanager
    def arrivals(self, run: Run) -> Iterator[None]:
        """The sources of creates carried from an earlier slice and sent in this one, in the
        slice's change set while its associations are synced (their earlier slice had no
        link for them yet)."""
        changed = run.changed
        extra: dict[tuple[str, str], list[Record]] = {}
        for record in self.arrived:
            extra.setdefault((record.system, record.object), []).append(record)
        run.changed = {**changed, **{key: [*changed.get(key, []), *records]
                                     for key, records in extra.items()}}
        try:
            yield
        finally:
            run.changed = changed
