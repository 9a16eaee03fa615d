"""Gaps as a person works through them: the data behind ``stagesync gaps`` and the console's
Gaps page, from the state store alone (no API calls).

- Cold leads come first, the longest waiting first, each with when it reached its stage, how
  long it has sat there and its owner's name and email (``people``; the id where the lists
  do not know it).
- A duplicate match is one row per group: the gaps that share a match key or a record (two
  leads with one email each have a gap naming both) are listed once, with every id.
- Details are whole: nothing is cut here; a screen wraps them.

``set_gap_outcome`` closes a gap by a person's decision, kept in its history
(``gap_notes``): resolved, or ignored (a cycle leaves it closed while nothing in it changes).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mapping.model import MappingFile
from sync_agent import gap_notes
from sync_agent.people import People
from sync_agent.tables import Gap, StageVisit

COLD = "cold_lead"
DUPLICATE = "duplicate_match"
# Detail fields that name records (ids of either system) besides the gap's own key.
ID_FIELDS = ("salesforce_id", "hubspot_id", "record_id", "carried_salesforce_id", "deleted_id")
ID_LISTS = ("salesforce_ids", "hubspot_ids")


class GapDecisionError(ValueError):
    """A decision that cannot be recorded: one line naming the gap and what to do."""


@dataclass
class GapView:
    """One row of the gap list: a gap, or a group of duplicate-match gaps."""

    id: int  # the row's gap (a group's first); what ``gaps resolve ID`` takes
    ids: list[int]  # every gap in the row
    kind: str
    pair: str
    key: str  # the record the gap is about (a group: its match key, else its first record)
    records: list[str]  # every record id the row names
    detail: dict[str, Any]  # whole (a group: its gaps' details merged)
    opened_at: dt.datetime
    last_seen_at: dt.datetime
    closed_at: dt.datetime | None
    age: dt.timedelta  # a cold lead: time at its stage; any other gap: time open
    record_object: str | None = None  # the object of ``key``'s record, from the mapping
    stage: str | None = None
    arrived_at: dt.datetime | None = None  # when a cold lead reached its stage
    due_at: dt.datetime | None = None  # when its SLA ran out
    owner_id: str | None = None
    owner_name: str | None = None
    owner_email: str | None = None
    outcome: str | None = None  # None: open; closed (its cause went); resolved | ignored
    note: str | None = None
    decided_by: str | None = None
    decided_at: dt.datetime | None = None

    @property
    def text(self) -> str:
        return detail_text(self.detail)

    @property
    def owner(self) -> str:
        """"Name <email>", else the owner id, else ``(no owner)``."""
        if self.owner_name and self.owner_email:
            return f"{self.owner_name} <{self.owner_email}>"
        return self.owner_name or self.owner_email or self.owner_id or "(no owner)"


def system_of(record_id: str) -> str:
    """HubSpot ids are numbers; Salesforce ids are 15 or 18 letters and digits."""
    return "hubspot" if record_id.isdigit() else "salesforce"


def aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands datetimes back naive; everything here is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _when(text: Any) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return aware(dt.datetime.fromisoformat(text))
    except ValueError:
        return None


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def detail_text(detail: dict[str, Any]) -> str:
    """A gap's detail on one line, whole: ``name=value, ...`` (empty values left out)."""
    return ", ".join(f"{name}={_shown(value)}" for name, value in detail.items()
                     if value not in (None, [], "", {}))


def named_ids(gap: Gap) -> list[str]:
    """Every record id a gap names: its key (when a record's) and its detail's ids."""
    ids: list[str] = []
    if "#" not in gap.key and ":" not in gap.key:
        ids.append(gap.key)
    for name in ID_FIELDS:
        value = gap.detail.get(name)
        if value:
            ids.append(str(value))
    for name in ID_LISTS:
        ids += [str(v) for v in gap.detail.get(name) or []]
    return list(dict.fromkeys(ids))


def _groups(gaps: list[Gap]) -> list[list[Gap]]:
    """Duplicate-match gaps grouped: those sharing a match key or a record are one group."""
    parent: dict[str, str] = {}

    def find(item: str) -> str:
        while parent.setdefault(item, item) != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    for gap in gaps:
        own = f"gap:{gap.id}"
        find(own)
        if gap.detail.get("key"):
            union(own, f"key:{gap.pair}:{gap.detail['key']}")
        for record in named_ids(gap):
            union(own, f"id:{gap.pair}:{record}")
    grouped: dict[str, list[Gap]] = {}
    for gap in gaps:
        grouped.setdefault(find(f"gap:{gap.id}"), []).append(gap)
    return [sorted(members, key=lambda g: g.id) for members in grouped.values()]


def _merged(details: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Details of a group as one: lists joined (each value once), a field whose gaps say
    different things listed with each thing once."""
    out: dict[str, Any] = {}
    many: set[str] = set()  # fields the gaps disagree on: a list of what each said
    for detail in details:
        for name, value in detail.items():
            if name not in out:
                out[name] = list(value) if isinstance(value, list) else value
            elif name in many:
                if value not in out[name]:
                    out[name].append(value)
            elif isinstance(out[name], list) and isinstance(value, list):
                out[name] += [v for v in value if v not in out[name]]
            elif out[name] != value:
                out[name] = [out[name], value]
                many.add(name)
    return out


def _owners(session: Session, keys: list[str]) -> dict[str, tuple[str, str | None]]:
    """Record id -> (system, owner id) from the records' current stage visits."""
    found: dict[str, tuple[str, str | None]] = {}
    for system in ("salesforce", "hubspot"):  # visits are indexed by (system, record id)
        mine = [k for k in keys if system_of(k) == system]
        for start in range(0, len(mine), 500):
            for record_id, owner in session.execute(select(
                    StageVisit.record_id, StageVisit.owner).where(
                    StageVisit.system == system, StageVisit.record_id.in_(mine[start:start + 500]),
                    StageVisit.left_at.is_(None))):
                if owner or record_id not in found:
                    found[record_id] = (system, owner)
    return found


def _object(mapping: MappingFile | None, gap: Gap) -> str | None:
    pair = next((p for p in mapping.objects if p.name == gap.pair), None) if mapping else None
    if pair is None or "#" in gap.key or ":" in gap.key:
        return None
    if gap.kind == "missing_in_salesforce" or gap.key.isdigit():
        return pair.hubspot
    return pair.salesforce


def views_of(session: Session, gaps: list[Gap], *, mapping: MappingFile | None = None,
             now: dt.datetime | None = None, group: bool = True,
             people: People | None = None) -> list[GapView]:
    """``gaps`` as rows (duplicate matches grouped unless ``group`` is False), with owners,
    ages and any person's decision; in the order given, a group where its first gap was."""
    moment = now or dt.datetime.now(dt.UTC)
    people = people if people is not None else People.load(session)
    notes = gap_notes.notes_of(session, [g.id for g in gaps if g.closed_at is not None])
    owners = _owners(session, sorted({k for g in gaps for k in named_ids(g)[:1]}))
    rows: list[list[Gap]] = []
    if group:
        groups = _groups([g for g in gaps if g.kind == DUPLICATE])
        first = {members[0].id: members for members in groups}
        for gap in gaps:
            if gap.kind != DUPLICATE:
                rows.append([gap])
            elif gap.id in first:
                rows.append(first[gap.id])
    else:
        rows = [[g] for g in gaps]
    return [_view(members, moment, people, notes, owners, mapping) for members in rows]


def _view(members: list[Gap], now: dt.datetime, people: People,
          notes: dict[int, Any], owners: dict[str, tuple[str, str | None]],
          mapping: MappingFile | None) -> GapView:
    head = members[0]
    detail = _merged(g.detail for g in members) if len(members) > 1 else dict(head.detail)
    records = list(dict.fromkeys(r for g in members for r in named_ids(g)))
    key = str(detail["key"]) if len(members) > 1 and detail.get("key") else head.key
    opened = min(aware(g.opened_at) for g in members)
    closed = head.closed_at
    view = GapView(
        id=head.id, ids=[g.id for g in members], kind=head.kind, pair=head.pair, key=key,
        records=records, detail=detail, opened_at=opened,
        last_seen_at=max(aware(g.last_seen_at) for g in members),
        closed_at=aware(closed) if closed is not None else None, age=now - opened,
        record_object=_object(mapping, head))
    system: str | None = None
    if head.kind == COLD:
        view.stage = head.detail.get("stage")
        view.arrived_at = _when(head.detail.get("entered_at"))
        view.due_at = _when(head.detail.get("due_at"))
        if view.arrived_at is not None:
            view.age = now - view.arrived_at
        view.owner_id = head.detail.get("owner")
        system = "salesforce"
    elif records and records[0] in owners:
        system, view.owner_id = owners[records[0]]
    person = people.person(view.owner_id, system)
    if person is not None:
        view.owner_name, view.owner_email = person.name, person.email
    elif head.kind == COLD and head.detail.get("owner_name"):
        view.owner_email = str(head.detail["owner_name"])  # what the cycle knew: an email
    note = notes.get(head.id)
    if closed is not None:
        view.outcome = note.outcome if note is not None else "closed"
    if note is not None:
        view.note, view.decided_by, view.decided_at = note.note, note.by, aware(note.at)
    return view


def _order(view: GapView) -> tuple[Any, ...]:
    """Cold leads first, the longest at their stage first; then by kind, oldest first."""
    if view.kind == COLD:
        arrived = view.arrived_at or view.opened_at
        return (0, "", arrived.timestamp(), view.id)
    return (1, view.kind, view.pair, view.opened_at.timestamp(), view.id)


def list_gaps(session: Session, mapping: MappingFile | None, *, kind: str | None = None,
              owner: str | None = None, older_than: dt.timedelta | None = None,
              now: dt.datetime | None = None) -> list[GapView]:
    """The open gaps as rows: cold leads first (the longest waiting first), duplicates
    grouped; only ``kind``, only those whose record ``owner`` (a name, email or id of either
    side) owns, only those older than ``older_than`` (a cold lead's time at its stage, any
    other gap's time open)."""
    query = select(Gap).where(Gap.closed_at.is_(None)).order_by(Gap.id)
    if kind is not None:
        query = query.where(Gap.kind == kind)
    people = People.load(session)
    views = views_of(session, list(session.scalars(query)), mapping=mapping, now=now,
                     people=people)
    if owner is not None:
        wanted = people.matching(owner)
        text = owner.strip().lower()
        views = [v for v in views if (v.owner_id or "").lower() in wanted
                 or text in ((v.owner_email or "").lower(), (v.owner_name or "").lower())]
    if older_than is not None:
        views = [v for v in views if v.age >= older_than]
    return sorted(views, key=_order)


def _group_of(session: Session, gap: Gap) -> list[Gap]:
    """The open duplicate-match gaps one decision settles with ``gap``: its group."""
    if gap.kind != DUPLICATE:
        return [gap]
    open_dupes = list(session.scalars(select(Gap).where(
        Gap.kind == DUPLICATE, Gap.pair == gap.pair, Gap.closed_at.is_(None))))
    for members in _groups(open_dupes):
        if any(m.id == gap.id for m in members):
            return members
    return [gap]


def set_gap_outcome(session: Session, gap_id: int, outcome: str, note: str, by: str,
                    mapping: MappingFile | None = None) -> GapView:
    """Close an open gap by a person's decision (``resolved`` or ``ignored``), with their note;
    a duplicate match closes with the rest of its group (one decision about one set of
    records). The caller commits. Raises ``GapDecisionError`` (one line) for an unknown or
    closed gap, an unknown outcome or an empty note."""
    if outcome not in gap_notes.OUTCOMES:
        raise GapDecisionError(f"outcome {outcome!r}: use resolved or ignored")
    if not note.strip():
        raise GapDecisionError(f"gap {gap_id}: a note saying why is needed (--note)")
    gap = session.get(Gap, gap_id)
    if gap is None:
        raise GapDecisionError(f"gap {gap_id} does not exist (stagesync gaps lists the open "
                               "gaps with their ids)")
    if gap.closed_at is not None:
        decided = gap_notes.notes_of(session, [gap.id]).get(gap.id)
        how = (f"{decided.outcome} by {decided.by}: {decided.note}" if decided is not None
               else "by a cycle: its cause went away")
        raise GapDecisionError(f"gap {gap_id} is closed already ({how}, "
                               f"{aware(gap.closed_at):%Y-%m-%d %H:%M} UTC)")
    members = _group_of(session, gap)
    # An ignore governs its record until its data changes; a cold lead's decision until the
    # SLA engine has undone what the lead's actions set (``sla``).
    for member in members:
        gap_notes.decide(session, member, outcome, note.strip(), by.strip() or "unknown",
                         active=outcome == "ignored" or member.kind == COLD)
    session.flush()
    return views_of(session, members, mapping=mapping)[0]


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def gap_json(view: GapView) -> dict[str, Any]:
    return {
        "id": view.id, "ids": view.ids, "kind": view.kind, "pair": view.pair, "key": view.key,
        "record_object": view.record_object, "records": view.records,
        "detail": json.loads(json.dumps(view.detail, default=str)), "text": view.text,
        "opened_at": _iso(view.opened_at), "last_seen_at": _iso(view.last_seen_at),
        "closed_at": _iso(view.closed_at), "age_seconds": round(view.age.total_seconds()),
        "stage": view.stage, "arrived_at": _iso(view.arrived_at), "due_at": _iso(view.due_at),
        "owner": {"id": view.owner_id, "name": view.owner_name, "email": view.owner_email},
        "outcome": view.outcome, "note": view.note, "decided_by": view.decided_by,
        "decided_at": _iso(view.decided_at)}


def gaps_json(views: list[GapView]) -> list[dict[str, Any]]:
    """The rows as JSON-able dicts (times ISO 8601 UTC, ages in seconds)."""
    return [gap_json(v) for v in views]
