"""Why a record holds what it holds: the data behind ``stagesync explain`` and the console's
Record page, from the state store alone (no API calls).

A reference is a Salesforce id (15 or 18 characters), a HubSpot id (digits) or an email (any
case). It names the records it reaches through the links (both sides of each), and then
everything the store knows of them:

- the links (pair, Salesforce object and id, HubSpot object and id, the match key);
- where each record sits now and every stage it was seen at (``stage_visits``);
- every write the agent made to them or because of them, oldest first: when, the run, the
  system, object and record written, field, old and new value, and the rule and reason that
  decided it (``ledger``, as ``sync once --dry-run`` prints a plan); a follow-up Task an SLA
  rule created, or a Task written for a HubSpot call or meeting, counts as written because
  of the lead or contact it is on;
- their open gaps and those closed in the last ``RECENT`` (with a person's decision, if any);
- their dead letters, with the vendor's whole message.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, cast, func, or_, select
from sqlalchemy.orm import Session

from mapping.model import MappingFile
from sync_agent.gap_list import COLD, GapView, aware, gap_json, system_of, views_of
from sync_agent.people import People
from sync_agent.tables import (
    ActivityLog,
    ActivityTask,
    DeadLetter,
    Gap,
    LedgerEntry,
    Link,
    StageVisit,
)

RECENT = dt.timedelta(days=30)  # closed gaps shown beside the open ones
CHUNK = 500
SYSTEMS = ("salesforce", "hubspot")


@dataclass
class RecordRef:
    system: str
    object: str | None
    id: str


@dataclass
class LinkView:
    id: int
    pair: str
    sf_object: str
    sf_id: str
    hs_object: str
    hs_id: str
    match_key: str | None
    linked_at: dt.datetime


@dataclass
class StageStay:
    system: str
    object: str
    record_id: str
    stage_map: str
    stage: str | None
    position: int | None
    owner_id: str | None
    owner: str  # "Name <email>", else the id, else (no owner)
    entered_at: dt.datetime
    left_at: dt.datetime | None


@dataclass
class WriteView:
    id: int
    at: dt.datetime
    run_id: int | None
    system: str
    object: str
    record_id: str
    field: str
    old: Any
    new: Any
    rule: str
    reason: str
    because: str | None = None  # set when the record written is not one of the records


@dataclass
class LetterView:
    id: int
    system: str
    object: str
    record_id: str | None
    operation: str
    code: str
    message: str  # the vendor's, whole
    field: str | None
    attempts: int
    created_at: dt.datetime
    next_retry_at: dt.datetime
    resolved_at: dt.datetime | None
    values: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclass
class Explanation:
    ref: str
    records: list[RecordRef]
    links: list[LinkView]
    current: list[StageStay]  # where each record sits now, per stage map
    history: list[StageStay]  # every stay, oldest first
    writes: list[WriteView]  # oldest first
    gaps: list[GapView]  # open first, then closed in the last RECENT
    dead_letters: list[LetterView]


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]


def _full_ids(session: Session, short: str) -> set[str]:
    """The 18-character ids a 15-character Salesforce id stands for (case-sensitive, as
    Salesforce's 15-character ids are; SQLite's LIKE is not): a record the store knows is
    linked or was seen at a stage."""
    found: set[str] = set()
    for column in (Link.sf_id, StageVisit.record_id):
        found |= {v for v in session.scalars(select(column).where(
            column.startswith(short, autoescape=True)).distinct()) if v[:15] == short}
    return found


def _by_system(ids: list[str]) -> list[tuple[str, list[str]]]:
    """The ids in chunks per system: the ledger and the stage visits are indexed by
    (system, record id)."""
    return [(system, chunk) for system in SYSTEMS
            for chunk in _chunks([i for i in ids if system_of(i) == system])]


def _start(session: Session, ref: str, system: str | None) -> tuple[set[str], list[Link]]:
    """The ids a reference names and the links it reaches directly."""
    text = ref.strip()
    if "@" in text:
        email = text.lower()
        links = list(session.scalars(select(Link).where(func.lower(Link.match_key) == email)))
        ids = {i for link in links for i in (link.sf_id, link.hs_id)}
        for gap in session.scalars(select(Gap).where(
                cast(Gap.detail, Text).icontains(email, autoescape=True))):
            if any(isinstance(v, str) and v.lower() == email for v in gap.detail.values()):
                ids.add(gap.key)
        for letter in session.scalars(select(DeadLetter).where(  # a create a vendor refused
                cast(DeadLetter.payload, Text).icontains(email, autoescape=True))):
            values = (letter.payload or {}).get("values") or {}
            source = (letter.payload or {}).get("source") or {}
            if source.get("id") and any(isinstance(v, str) and v.lower() == email
                                        for v in values.values()):
                ids.add(str(source["id"]))
        return ids, links
    ids = {text}
    if system != "hubspot" and len(text) == 15 and not text.isdigit():
        ids |= _full_ids(session, text)
    if system is not None:
        ids = {i for i in ids if system_of(i) == system}
    sides = [column.in_(ids) for column, side in ((Link.sf_id, "salesforce"),
                                                  (Link.hs_id, "hubspot"))
             if system in (None, side)]
    return ids, list(session.scalars(select(Link).where(or_(*sides))))


def explain(session: Session, mapping: MappingFile | None, ref: str,
            system: str | None = None, now: dt.datetime | None = None
            ) -> Explanation | None:
    """Everything the store knows about the records ``ref`` names, or None when it names
    none. ``system`` (salesforce, hubspot) says which side an id is from."""
    moment = now or dt.datetime.now(dt.UTC)
    ids, links = _start(session, ref, system)
    for link in links:
        ids |= {link.sf_id, link.hs_id}
    ordered = sorted(ids)
    people = People.load(session)
    history = _history(session, ordered, people)
    writes = _writes(session, ordered)
    gaps = _gaps(session, mapping, ordered, moment, people)
    letters = _letters(session, ordered)
    if not (links or history or writes or gaps or letters):
        return None
    writes += _because(session, ordered, gaps, {w.id for w in writes})
    writes.sort(key=lambda w: (w.at, w.id))
    objects = {(s.system, s.record_id): s.object for s in history}
    objects |= {(w.system, w.record_id): w.object for w in writes}
    for link in links:
        objects[("salesforce", link.sf_id)] = link.sf_object
        objects[("hubspot", link.hs_id)] = link.hs_object
    seen = {(w.system, w.record_id) for w in writes if w.because is None}
    seen |= {(s.system, s.record_id) for s in history} | set(objects)
    named = {i for i in ordered if (system_of(i), i) in seen or i == ref.strip()}
    records = [RecordRef(system_of(i), objects.get((system_of(i), i)), i)
               for i in sorted(named, key=lambda i: (system_of(i) != "salesforce", i))]
    return Explanation(
        ref=ref, records=records,
        links=[LinkView(link.id, link.pair, link.sf_object, link.sf_id, link.hs_object,
                        link.hs_id, link.match_key, aware(link.created_at))
               for link in sorted(links, key=lambda x: x.id)],
        current=[s for s in history if s.left_at is None], history=history, writes=writes,
        gaps=gaps, dead_letters=letters)


def _history(session: Session, ids: list[str], people: People) -> list[StageStay]:
    stays: list[StageStay] = []
    for system, chunk in _by_system(ids):
        for visit in session.scalars(select(StageVisit).where(
                StageVisit.system == system, StageVisit.record_id.in_(chunk))):
            stays.append(StageStay(
                visit.system, visit.object, visit.record_id, visit.stage_map, visit.stage,
                visit.position, visit.owner, people.label(visit.owner, visit.system),
                aware(visit.entered_at), aware(visit.left_at) if visit.left_at else None))
    return sorted(stays, key=lambda s: (s.entered_at, s.system, s.stage_map))


def _write(entry: LedgerEntry, because: str | None = None) -> WriteView:
    return WriteView(entry.id, aware(entry.at), entry.run_id, entry.system, entry.object,
                     entry.record_id, entry.field, entry.old, entry.new, entry.rule,
                     entry.reason, because)


def _writes(session: Session, ids: list[str]) -> list[WriteView]:
    return [_write(entry) for system, chunk in _by_system(ids)
            for entry in session.scalars(select(LedgerEntry).where(
                LedgerEntry.system == system, LedgerEntry.record_id.in_(chunk)))]


def _because(session: Session, ids: list[str], gaps: list[GapView],
             known: set[int]) -> list[WriteView]:
    """Writes to Tasks made because of these records: an SLA rule's follow-up Tasks (named
    on its cold-lead gaps and in the activity log as the agent's own) and the Tasks written
    for HubSpot calls, meetings and emails logged on them."""
    tasks: dict[str, str] = {}
    for gap in gaps:
        if gap.kind == COLD:
            for task in gap.detail.get("tasks") or []:
                tasks[str(task)] = f"a follow-up Task of SLA rule {gap.detail.get('rule')}"
    sf_ids = [i for i in ids if system_of(i) == "salesforce"]
    for chunk in _chunks(sf_ids):
        for row in session.scalars(select(ActivityLog).where(ActivityLog.record_id.in_(chunk))):
            for task, _ in row.ours:
                tasks.setdefault(str(task), f"a follow-up Task on {row.record_id}")
        for activity in session.scalars(select(ActivityTask).where(
                ActivityTask.who_id.in_(chunk), ActivityTask.task_id.is_not(None))):
            tasks.setdefault(str(activity.task_id),
                             f"the Task for HubSpot {activity.kind} {activity.hs_id}")
    out: list[WriteView] = []
    for chunk in _chunks(sorted(tasks)):
        for entry in session.scalars(select(LedgerEntry).where(
                LedgerEntry.system == "salesforce", LedgerEntry.record_id.in_(chunk))):
            if entry.id not in known:
                out.append(_write(entry, tasks[entry.record_id]))
    return out


def _gaps(session: Session, mapping: MappingFile | None, ids: list[str], now: dt.datetime,
          people: People) -> list[GapView]:
    """Open gaps about these records, then those closed since ``now - RECENT``: keyed by one
    of them (an association's gap by ``<id>#<association>``), or naming one in its detail
    (a duplicate match names every record sharing the key)."""
    if not ids:
        return []
    recent = or_(Gap.closed_at.is_(None), Gap.closed_at >= now - RECENT)
    found: dict[int, Gap] = {}
    for chunk in _chunks(ids):
        about = or_(Gap.key.in_(chunk), *(Gap.key.startswith(f"{i}#", autoescape=True)
                                          for i in chunk),
                    *(cast(Gap.detail, Text).contains(f'"{i}"', autoescape=True)
                      for i in chunk))
        for gap in session.scalars(select(Gap).where(recent, about)):
            found[gap.id] = gap
    ordered = sorted(found.values(), key=lambda g: (g.closed_at is not None, g.id))
    return views_of(session, ordered, mapping=mapping, now=now, group=False, people=people)


def _letters(session: Session, ids: list[str]) -> list[LetterView]:
    """Dead letters of writes to these records, and of creates made from them."""
    wanted = set(ids)
    letters: dict[int, DeadLetter] = {}
    for chunk in _chunks(ids):
        for letter in session.scalars(select(DeadLetter).where(DeadLetter.record_id.in_(chunk))):
            letters[letter.id] = letter
    for letter in session.scalars(select(DeadLetter).where(DeadLetter.record_id.is_(None))):
        source = (letter.payload or {}).get("source") or {}
        if str(source.get("id")) in wanted:
            letters[letter.id] = letter
    return [LetterView(
        letter.id, letter.system, letter.object, letter.record_id, letter.operation,
        letter.error_code, letter.error_message, letter.field, letter.attempts,
        aware(letter.created_at), aware(letter.next_retry_at),
        aware(letter.resolved_at) if letter.resolved_at else None,
        dict((letter.payload or {}).get("values") or {}))
        for letter in sorted(letters.values(), key=lambda x: x.id)]


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def explanation_json(e: Explanation) -> dict[str, Any]:
    """The explanation as JSON-able data (times ISO 8601 UTC; values as the ledger holds)."""
    return {
        "ref": e.ref,
        "records": [{"system": r.system, "object": r.object, "id": r.id} for r in e.records],
        "links": [{"id": x.id, "pair": x.pair, "salesforce": {"object": x.sf_object,
                                                               "id": x.sf_id},
                   "hubspot": {"object": x.hs_object, "id": x.hs_id},
                   "match_key": x.match_key, "linked_at": _iso(x.linked_at)} for x in e.links],
        "current": [_stay(s) for s in e.current],
        "history": [_stay(s) for s in e.history],
        "writes": [{"id": w.id, "at": _iso(w.at), "run_id": w.run_id, "system": w.system,
                    "object": w.object, "record_id": w.record_id, "field": w.field,
                    "old": w.old, "new": w.new, "rule": w.rule, "reason": w.reason,
                    "because": w.because} for w in e.writes],
        "gaps": [gap_json(g) for g in e.gaps],
        "dead_letters": [{"id": d.id, "system": d.system, "object": d.object,
                          "record_id": d.record_id, "operation": d.operation, "code": d.code,
                          "message": d.message, "field": d.field, "attempts": d.attempts,
                          "created_at": _iso(d.created_at),
                          "next_retry_at": _iso(d.next_retry_at),
                          "resolved_at": _iso(d.resolved_at), "values": d.values}
                         for d in e.dead_letters]}


def _stay(s: StageStay) -> dict[str, Any]:
    return {"system": s.system, "object": s.object, "record_id": s.record_id,
            "stage_map": s.stage_map, "stage": s.stage, "position": s.position,
            "owner": {"id": s.owner_id, "label": s.owner}, "entered_at": _iso(s.entered_at),
            "left_at": _iso(s.left_at)}
