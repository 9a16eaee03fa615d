"""HubSpot calls, meetings and logged emails, written to Salesforce as completed Tasks on the
linked Lead or Contact, once each (the mapping's ``activities`` setting; off by default).

Once each, whatever crashed before: every Task is an upsert on the engagement's id in a
unique external id field of Task (``activities.external_id_field``), so writing it again
finds the Task and updates it; the table ``activity_tasks`` only spares the writes (a digest
of what was sent) and holds what waits. The engagements are read by change (one search per
type and cycle, from the watermark of ``calls``, ``meetings`` or ``emails``, committed with
the cycle), their contacts with the v4 batch read (1,000 a call, only for engagements that
changed), so a quiet cycle costs one search per type and the setting off costs nothing.

An engagement whose contacts are none of them linked yet waits in the table (no call to
HubSpot while it waits: the links are in the store) and is read again by id once one links,
for at most ``wait_days``; then an ``activity_not_written`` gap says so. A meeting still to
come waits for its start. A Task Salesforce refuses is a dead letter with its message (its
payload replayed by ``stagesync retry``: the upsert is idempotent), the rest go on.

The Tasks are a rep's activity, not the agent's own: their Description never begins with the
SLA's mark, so the SLA clock counts them as a person acting on the lead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.records import ObjectSchema, Record, Watermark, WriteRecord, WriteResult, advance
from mapping.activities import (
    PROPERTIES,
    SUBTYPE,
    digest,
    key_of,
    task_values,
    verdict,
)
from mapping.model import ActivityTasks, ObjectPair
from mapping.rules import FieldChange
from sync_agent import failpoints, state
from sync_agent.associations import Associates
from sync_agent.context import PlannedWrite, Run, close, gap
from sync_agent.plan import json_safe
from sync_agent.sla import MARK
from sync_agent.tables import ActivityTask, DeadLetter

TASK = "Task"
NOT_WRITTEN = "activity_not_written"
PAIR = "activities"  # the gaps' pair: an engagement is not a record of an object pair
FAILPOINT = "cycle.write.activities"
# Task fields written only where the org has them (TaskSubtype on create only).
OPTIONAL = ("TaskSubtype", "Type", "CallType", "CallDurationInSeconds")
REFUSED_ON_UPDATE = "INVALID_FIELD_FOR_INSERT_UPDATE"


@dataclass
class Planned:
    """One Task to upsert for one engagement."""

    kind: str
    record: Record  # the engagement as read
    pair: ObjectPair  # the pair its contact is linked in
    contact: str
    contacts: list[str]
    values: dict[str, Any]  # without TaskSubtype, which only a create may name
    subtype: str | None
    row: ActivityTask | None

    @property
    def key(self) -> str:
        return key_of(self.kind, self.record.id)


def write_activities(run: Run, session: Session, run_id: int | None, end: dt.datetime) -> None:
    """The cycle's activities: engagements changed since each type's watermark, and those
    waiting that are ready, written as Tasks; the watermarks move with the cycle's commit."""
    settings = run.setup.mapping.activities
    if not settings.enabled:
        return
    changed: dict[str, list[Record]] = {}
    for kind in settings.types:
        mark = state.get_watermark(session, "hubspot", kind)
        if mark is None and settings.since is None:  # from now on: nothing to read yet
            state.put_watermark(session, "hubspot", kind, Watermark(cursor=end, read_until=end))
            continue
        if mark is None:
            assert settings.since is not None
            mark = Watermark(cursor=dt.datetime.combine(settings.since, dt.time(), dt.UTC))
        hubspot = run.setup.hs
        changed[kind] = list(hubspot.read_changed(kind, mark, end, PROPERTIES[kind]))
        run.report.read[f"hubspot.{kind}"] += len(changed[kind])
        state.put_watermark(session, "hubspot", kind,
                            advance(mark, changed[kind], hubspot.lookback, end))
    _settle(run, session, run_id, changed)


def write_waiting(run: Run, session: Session, run_id: int | None) -> None:
    """Only the waiting engagements that are ready (a backfill page or a retry linked their
    contacts): no engagement search."""
    if run.setup.mapping.activities.enabled:
        _settle(run, session, run_id, {})


def _settle(run: Run, session: Session, run_id: int | None,
            changed: dict[str, list[Record]]) -> None:
    settings = run.setup.mapping.activities
    keys = [key_of(kind, r.id) for kind, records in changed.items() for r in records]
    rows = _rows(session, keys)
    fresh: dict[str, list[Record]] = {kind: [r for r in records if _is_new(
        rows.get(key_of(kind, r.id)), r)] for kind, records in changed.items()}
    for kind, records in _ready(run, session, rows).items():
        seen = {r.id for r in fresh.get(kind, [])}
        fresh.setdefault(kind, []).extend(r for r in records if r.id not in seen)
    planned: list[Planned] = []
    for kind, records in fresh.items():
        planned += _plan(run, session, settings, kind, records, rows)
    _expire(run, session, settings)
    if run.setup.dry_run:
        for item in planned:
            run.report.plan.append(PlannedWrite(
                item.pair.name, "salesforce", TASK, item.row.task_id if item.row else None,
                _changes(item), create=item.row is None or item.row.task_id is None,
                source_id=item.record.id))
        return
    if planned:
        _write(run, session, run_id, settings, planned)


def _is_new(row: ActivityTask | None, record: Record) -> bool:
    """Whether the engagement changed since it was last written or set waiting."""
    return row is None or row.cursor is None or _aware(row.cursor) != record.cursor


def _rows(session: Session, keys: list[str]) -> dict[str, ActivityTask]:
    """The table's rows of these engagements and every waiting one."""
    found: dict[str, ActivityTask] = {}
    for start in range(0, len(keys), 500):
        for row in session.scalars(select(ActivityTask).where(
                ActivityTask.key.in_(keys[start:start + 500]))):
            found[row.key] = row
    for row in session.scalars(select(ActivityTask).where(
            ActivityTask.waiting_since.is_not(None))):
        found[row.key] = row
    return found


def _ready(run: Run, session: Session, rows: dict[str, ActivityTask]) -> dict[str, list[Record]]:
    """Waiting engagements now ready (a contact linked, a meeting begun), read again by id
    (100 a call): what they hold now decides. One gone from HubSpot waits no more."""
    settings = run.setup.mapping.activities
    waiting = [row for row in rows.values() if row.waiting_since is not None
               and row.kind in settings.types]
    names = _pair_names(run)
    run.links.load(names, hs_ids={c for row in waiting for c in row.contacts or []})
    ready: dict[str, list[str]] = {}
    for row in waiting:
        due = row.due_at is not None and _aware(row.due_at) <= run.now
        linked = row.due_at is None and any(run.links.find(name, hs_id=c) is not None
                                            for c in row.contacts or [] for name in names)
        if due or linked:
            ready.setdefault(row.kind, []).append(row.hs_id)
    out: dict[str, list[Record]] = {}
    for kind, ids in ready.items():
        out[kind] = run.setup.hs.read_by_ids(kind, ids, PROPERTIES[kind])
        for gone in set(ids) - {r.id for r in out[kind]}:
            session.delete(rows.pop(key_of(kind, gone)))
    return out


def _plan(run: Run, session: Session, settings: ActivityTasks, kind: str,
          records: list[Record], rows: dict[str, ActivityTask]) -> list[Planned]:
    """Which engagements become Tasks now, on whom; the others wait or are left out."""
    happened = []
    for record in records:
        judged = verdict(settings, kind, record.values, run.now)
        if judged.write:
            happened.append(record)
        elif judged.due is not None:  # a meeting still to come: read again at its start
            _wait(session, rows, kind, record, [], due=judged.due)
        else:
            run.report.read[f"hubspot.{kind}.left_out"] += 1
            if (row := rows.get(key_of(kind, record.id))) is not None and row.task_id is None:
                session.delete(rows.pop(row.key))
    if not happened:
        return []
    hubspot = run.setup.hs
    if not isinstance(hubspot, Associates):  # HubSpot's connector reads associations
        raise TypeError("activities need a HubSpot connector that reads associations")
    contacts = hubspot.associations_of(kind, "contacts", [r.id for r in happened])
    names = _pair_names(run)
    run.links.load(names, hs_ids={c for linked in contacts.values() for c in linked})
    pairs = {p.name: p for p in run.setup.mapping.objects}
    task_schema = run.setup.sf.describe(TASK)
    owners = _owners(run)
    planned = []
    for record in happened:
        on = sorted(contacts.get(record.id, {}), key=lambda c: (len(c), c))
        row = rows.get(key_of(kind, record.id))
        chosen = _choose(run, names, on, row)
        if not on:
            run.report.read[f"hubspot.{kind}.no_contact"] += 1
            continue
        if chosen is None:
            _wait(session, rows, kind, record, on)
            continue
        name, contact, who_id = chosen
        values = task_values(settings, kind, record.values, who_id,
                             owners.get(str(record.values.get("hubspot_owner_id") or "")),
                             run.setup.mapping.business_hours.timezone)
        if str(values.get("Description") or "").startswith(MARK):
            values["Description"] = f"HubSpot: {values['Description']}"  # a rep's, not ours
        values = _fits(task_schema, values)
        if row is not None and row.task_id and row.digest == digest(values):
            row.cursor = record.cursor  # the same Task: nothing to write
            continue
        subtype = SUBTYPE.get(kind) if _fits(task_schema, {"TaskSubtype": SUBTYPE.get(kind)},
                                             create=True) else None
        planned.append(Planned(kind, record, pairs[name], contact, on, values, subtype, row))
    return planned


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands datetimes back naive; everything here is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _pair_names(run: Run) -> list[str]:
    pairs = {p.name for p in run.setup.mapping.objects}
    return [name for name in run.setup.mapping.activities.pairs if name in pairs]


def _choose(run: Run, names: list[str], contacts: list[str], row: ActivityTask | None
            ) -> tuple[str, str, str] | None:
    """(pair, contact, Salesforce id) of the linked contact the Task goes on: the one it is
    on already while that link holds, else the first contact linked in the first pair."""
    found = [(name, c, link.sf_id) for c in contacts for name in names
             if (link := run.links.find(name, hs_id=c)) is not None]
    if row is not None and row.who_id:
        kept = [f for f in found if f[2] == row.who_id]
        if kept:
            return kept[0]
    return min(found, key=lambda f: names.index(f[0])) if found else None


def _owners(run: Run) -> dict[str, str]:
    """HubSpot owner id -> the active Salesforce user with the same email."""
    directory = run.setup.directory
    return {owner: user for owner, user in directory.value_map().reverse.items()
            if user in directory.users and directory.users[user].active}


def _fits(schema: ObjectSchema, values: dict[str, Any], create: bool = False
          ) -> dict[str, Any]:
    """The optional Task fields only where the org has them, may write them, and lists the
    value among a picklist's; every other field is kept (validate --live checks them)."""
    out = {}
    for name, value in values.items():
        field = schema.fields.get(name)
        if name in OPTIONAL and (value in (None, "") or field is None or not (
                field.createable if create else field.updateable) or (
                field.picklist_values and value not in field.picklist_values)):
            continue
        out[name] = value
    return out


def _wait(session: Session, rows: dict[str, ActivityTask], kind: str, record: Record,
          contacts: list[str], due: dt.datetime | None = None) -> None:
    """Keep the engagement waiting (since the first time it waited)."""
    row = rows.get(key_of(kind, record.id))
    if row is None:
        row = ActivityTask(key=key_of(kind, record.id), kind=kind, hs_id=record.id,
                           contacts=[], updated_at=state.now())
        session.add(row)
        rows[row.key] = row
    row.contacts, row.due_at, row.cursor = contacts, due, record.cursor
    row.waiting_since = row.waiting_since or state.now()
    row.updated_at = state.now()


def _expire(run: Run, session: Session, settings: ActivityTasks) -> None:
    """Engagements that waited ``wait_days`` for a link: a gap each, and they wait no more."""
    limit = run.now - dt.timedelta(days=settings.wait_days)
    for row in session.scalars(select(ActivityTask).where(
            ActivityTask.waiting_since < limit, ActivityTask.due_at.is_(None))):
        gap(run, NOT_WRITTEN, PAIR, row.key, {
            "kind": row.kind, "hubspot_id": row.hs_id, "contacts": row.contacts,
            "reason": f"none of its HubSpot contacts was linked to a Salesforce Lead or "
            f"Contact within {settings.wait_days} days (activities.wait_days)"})
        session.delete(row)


def _write(run: Run, session: Session, run_id: int | None, settings: ActivityTasks,
           planned: list[Planned]) -> None:
    """Upsert the Tasks (200 a call), then record each answer. A Task this agent wrote
    before it could record it (killed in between) is found by its external id: naming the
    create-only TaskSubtype is then refused, and that Task is sent again without it."""
    field = settings.external_id_field
    first = [p.row is None or p.row.task_id is None for p in planned]
    sent = [{**p.values, **({"TaskSubtype": p.subtype} if p.subtype and new else {})}
            for p, new in zip(planned, first, strict=True)]
    results = run.setup.sf.upsert(TASK, [WriteRecord(values=v, match=(field, p.key))
                                         for p, v in zip(planned, sent, strict=True)])
    failpoints.hit(FAILPOINT)
    again = [i for i, r in enumerate(results) if "TaskSubtype" in sent[i] and _subtype_refused(r)]
    if again:
        for i, result in zip(again, run.setup.sf.upsert(TASK, [WriteRecord(
                values=planned[i].values, match=(field, planned[i].key)) for i in again]),
                strict=True):
            results[i], sent[i] = result, planned[i].values
    letters = _letters(session) if results else {}
    ledger: list[dict[str, Any]] = []
    for item, values, result in zip(planned, sent, results, strict=True):
        if result.ok:
            ledger += _succeeded(run, session, item, values, result, letters.get(item.key))
        else:
            _refused(run, session, item, values, result, field, letters.get(item.key))
    state.record_writes(session, run_id, ledger)


def _subtype_refused(result: WriteResult) -> bool:
    error = result.error
    return error is not None and error.code == REFUSED_ON_UPDATE and (
        "TaskSubtype" in error.fields or "TaskSubtype" in error.message)


def _letters(session: Session) -> dict[str, DeadLetter]:
    """Unresolved letters of refused Tasks, by engagement (its external id value)."""
    out: dict[str, DeadLetter] = {}
    for letter in session.scalars(select(DeadLetter).where(
            DeadLetter.system == "salesforce", DeadLetter.object == TASK,
            DeadLetter.resolved_at.is_(None))):
        match = letter.payload.get("match")
        if match and letter.payload.get("source", {}).get("pair") == PAIR:
            out[str(match[1])] = letter
    return out


def _succeeded(run: Run, session: Session, item: Planned, values: dict[str, Any],
               result: WriteResult, letter: DeadLetter | None) -> list[dict[str, Any]]:
    row = item.row
    if row is None:
        row = ActivityTask(key=item.key, kind=item.kind, hs_id=item.record.id, contacts=[],
                           updated_at=state.now())
        session.add(row)
    row.task_id, row.who_id = result.id, item.values["WhoId"]
    row.digest, row.cursor, row.contacts = digest(item.values), item.record.cursor, item.contacts
    row.waiting_since = row.due_at = None
    row.updated_at = state.now()
    run.report.written[f"salesforce.{TASK}"] += 1
    if result.created:
        run.report.created[f"salesforce.{TASK}"] += 1
    close(run, PAIR, item.key, ("sync_error",))
    if letter is not None:  # a later write carried it: the stale payload is never replayed
        state.retried(letter, True)
    return [{"system": "salesforce", "object": TASK, "record_id": result.id or "",
             "field": change.field, "old": None, "new": json_safe(change.new),
             "rule": change.rule, "reason": change.reason}
            for change in _changes(item, values)]


def _refused(run: Run, session: Session, item: Planned, values: dict[str, Any],
             result: WriteResult, field: str, letter: DeadLetter | None) -> None:
    """A dead letter with the vendor's message (its payload replayable: the upsert is
    idempotent) and a ``sync_error`` gap; the engagement waits no more."""
    error = result.error
    assert error is not None
    run.report.failed += 1
    message = f"{error.code}: {error.message}"
    if letter is not None:
        letter.payload = {**letter.payload, "values": json_safe(item.values)}
        state.retried(letter, False, message)
    else:
        state.add_dead_letter(
            session, system="salesforce", obj=TASK, record_id=None, operation="upsert",
            payload={"values": json_safe(item.values), "match": [field, item.key],
                     "source": {"system": "hubspot", "object": item.kind,
                                "id": item.record.id, "pair": PAIR},
                     "replay": True},
            code=error.code, message=error.message,
            field=error.fields[0] if error.fields else None)
    gap(run, "sync_error", PAIR, item.key, {
        "system": "salesforce", "object": TASK, "code": error.code, "message": error.message,
        "fields": list(error.fields), "who_id": item.values.get("WhoId")})
    if item.row is not None and item.row.task_id is None:
        session.delete(item.row)


def _changes(item: Planned, values: dict[str, Any] | None = None) -> list[FieldChange]:
    """The Task's fields as the plan and the ledger show them, with the rule that wrote them."""
    rule = f"activity:{item.kind}"
    reason = (f"HubSpot {item.kind[:-1]} {item.record.id} on contact {item.contact}, linked "
              f"to Salesforce {item.pair.salesforce} {item.values['WhoId']} (pair "
              f"{item.pair.name})")
    return [FieldChange("salesforce", name, None, value, rule, reason, f"{name}>{item.kind}")
            for name, value in (values if values is not None else item.values).items()]
