"""Contact roles: Salesforce's OpportunityContactRole rows as labelled deal-contact
associations in HubSpot (``contact_roles:`` in the mapping).

A role says "this Contact plays this part on this Opportunity"; HubSpot says the same with an
association label between the deal and the contact. Salesforce decides (``always_salesforce``):

- the roles changed since the object's watermark ride in the cycle's Composite read (one
  ``queryAll`` on ``SystemModstamp``, 2,000 a page), deletes with them; a quiet cycle costs that
  query and nothing else;
- a role whose Opportunity and Contact are both linked becomes an association with its label
  (``labels`` maps the role; a role with none, or a label the portal lacks, is unlabeled),
  2,000 a call; a role that changes or goes takes its old label off, and the contact stays on
  the deal (HubSpot's other associations are never touched);
- a role on records not linked yet waits: nothing dangling is written, an
  ``association_waiting`` gap (key ``<role id>#<setting>``) says so, and its row is looked at
  every cycle until both links exist.

What was written is remembered per role (``ContactRoleRow``): a delete read only says the id,
and the row says which label to take off.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.records import DeletedRecords, Record, Watermark
from mapping.model import ContactRoles, MappingFile, ObjectPair
from sync_agent import state
from sync_agent.associations import WAITING, Associates
from sync_agent.context import Run, close, gap
from sync_agent.read import ChangeSet
from sync_agent.tables import ContactRoleRow

CHUNK = 500  # keys an IN list: well under SQLite's bound parameters


def objects_read(mapping: MappingFile) -> set[str]:
    """The Salesforce objects the contact roles settings read beside the pairs' objects (a
    setting whose pairs a trimmed mapping lacks reads nothing)."""
    return {roles.salesforce_object for roles in _active(mapping)}


def _active(mapping: MappingFile) -> list[ContactRoles]:
    names = {p.name for p in mapping.objects}
    return [r for r in mapping.contact_roles if {r.from_pair, r.to_pair} <= names]


def take_read(reads: ChangeSet, obj: str) -> tuple[Watermark, list[Record], DeletedRecords]:
    """An object's part of the read stage, taken out of the change set so no pair's stage
    sees it (it is no pair's object): its watermark, changes and deletes."""
    key = ("salesforce", obj)
    mark = reads.marks.pop(key)
    reads.full_read.discard(key)
    spooled = reads.spooled.pop(key, None)
    records = reads.changed.pop(key, [])
    if spooled is not None:  # a first read went to the spool: roles are few, held here
        records = list(spooled)
    return mark, records, reads.deleted.pop(key, DeletedRecords(records=[]))


@dataclass
class _Write:
    row: ContactRoleRow
    deal: str
    contact: str
    label: str | None
    reason: str


def sync_contact_roles(run: Run, session: Session, run_id: int | None) -> None:
    """Every contact roles setting of the mapping, for the roles read this cycle and those
    that wait for their links."""
    mapping, hubspot = run.setup.mapping, run.setup.hs
    if not mapping.contact_roles or run.setup.dry_run or not isinstance(hubspot, Associates):
        return
    pairs = {p.name: p for p in mapping.objects}
    for roles in _active(mapping):
        _, records, deleted = run.side_reads.get(
            roles.salesforce_object, (Watermark(cursor=state.now()), [], DeletedRecords(
                records=[])))
        run.report.read[f"salesforce.{roles.salesforce_object}"] += len(records)
        _sync(run, session, run_id, roles, pairs[roles.from_pair], pairs[roles.to_pair],
              records, [d.id for d in deleted.records])


def _sync(run: Run, session: Session, run_id: int | None, roles: ContactRoles,
          source: ObjectPair, target: ObjectPair, records: list[Record],
          deleted: list[str]) -> None:
    hubspot = run.setup.hs
    assert isinstance(hubspot, Associates)
    now = state.now()
    rows = _rows(session, [_key(r.id, roles) for r in records] + [_key(i, roles)
                                                                  for i in deleted])
    live: dict[str, ContactRoleRow] = {}
    for record in records:  # what Salesforce says now
        key = _key(record.id, roles)
        row = rows.get(key)
        if row is None:
            row = ContactRoleRow(key=key, waiting=False, updated_at=now)
            session.add(row)
            rows[key] = row
        row.parent_id = str(record.values.get(roles.parent_field) or "")
        row.target_id = _text(record.values.get(roles.target_field))
        row.role = _text(record.values.get(roles.role_field))
        live[key] = row
    for row in session.scalars(select(ContactRoleRow).where(
            ContactRoleRow.waiting.is_(True), ContactRoleRow.key.like(f"%#{roles.name}"))):
        live.setdefault(row.key, row)
    gone = [rows[k] for k in (_key(i, roles) for i in deleted) if k in rows]
    gone = [row for row in gone if row.key not in live]
    if not live and not gone:
        return  # a quiet cycle: no HubSpot call
    run.links.load([source.name], sf_ids=[r.parent_id for r in live.values()])
    run.links.load([target.name], sf_ids=[r.target_id for r in live.values() if r.target_id])
    adds: list[_Write] = []
    removals: list[_Write] = []
    known: dict[str | None, int] | None = None
    for row in live.values():
        deal = _hs_of(run, source, row.parent_id)
        contact = _hs_of(run, target, row.target_id)
        if deal is None or contact is None:
            _wait(run, roles, source, target, row, deal is None)
            if row.written_label is not None:  # the role moved to a record not linked yet
                removals.append(_Write(row, row.written_from or "", row.written_to or "",
                                       row.written_label, _why(roles, row, "moved")))
            continue
        if known is None:
            known = hubspot.association_labels(source.hubspot, target.hubspot)
        wanted = roles.labels.get(row.role or "")
        label = wanted if wanted in known else None
        if (row.written_from, row.written_to, row.written_label) == (deal, contact, label):
            row.waiting = False
            close(run, source.name, row.key, (WAITING,))
            continue
        if row.written_label is not None:
            removals.append(_Write(row, row.written_from or "", row.written_to or "",
                                   row.written_label, _why(roles, row, "changed")))
        adds.append(_Write(row, deal, contact, label, _why(roles, row, "is")))
    for row in gone:
        if row.written_label is not None:
            removals.append(_Write(row, row.written_from or "", row.written_to or "",
                                   row.written_label, _why(roles, row, "deleted")))
        close(run, source.name, row.key, (WAITING,))
    if adds or removals:
        if known is None:
            known = hubspot.association_labels(source.hubspot, target.hubspot)
        _write(run, session, run_id, roles, source, target, known, adds, removals)
    for row in gone:
        session.delete(row)
    for row in live.values():
        row.updated_at = now
    session.flush()


def _write(run: Run, session: Session, run_id: int | None, roles: ContactRoles,
           source: ObjectPair, target: ObjectPair, known: dict[str | None, int],
           adds: list[_Write], removals: list[_Write]) -> None:
    """Labels off first (a role's old label, where no other role still holds it), then the
    associations made, one call per type and 2,000 pairs; each in the ledger. A refusal is a
    gap, and the role waits to be tried again."""
    hubspot = run.setup.hs
    assert isinstance(hubspot, Associates)
    held = {(w.deal, w.contact, w.label) for w in adds}
    ledger: list[dict[str, object]] = []
    for type_id, batch in _by_type(known, [w for w in removals
                                           if not _still_held(session, w, held)]).items():
        results = hubspot.remove_association_label(
            source.hubspot, target.hubspot, [(w.deal, w.contact) for w in batch], type_id)
        for w, result in zip(batch, results, strict=True):
            if result.ok:
                ledger.append(_entry(roles, source, target, w, w.contact, None))
    for w in removals:  # off, kept by another role, or gone from the portal with its label
        w.row.written_label = None
    for type_id, batch in _by_type(known, adds).items():
        results = hubspot.associate_labeled(
            source.hubspot, target.hubspot, [(w.deal, w.contact) for w in batch], type_id)
        for w, result in zip(batch, results, strict=True):
            if not result.ok:
                w.row.waiting = True
                error = result.error
                gap(run, WAITING, source.name, w.row.key, {
                    "contact_roles": roles.name, "salesforce_id": w.row.key.split("#")[0],
                    "reason": f"HubSpot refused: {error.code}: {error.message}"
                    if error is not None else "HubSpot refused"})
                continue
            w.row.written_from, w.row.written_to, w.row.written_label = (
                w.deal, w.contact, w.label)
            w.row.waiting = False
            close(run, source.name, w.row.key, (WAITING,))
            ledger.append(_entry(roles, source, target, w, None, w.contact))
    run.report.written[f"hubspot.{source.hubspot}.associations"] += len(ledger)
    state.record_writes(session, run_id, ledger)


def _by_type(known: dict[str | None, int], writes: Iterable[_Write]
             ) -> dict[int, list[_Write]]:
    out: dict[int, list[_Write]] = defaultdict(list)
    for w in writes:
        type_id = known.get(w.label)
        if type_id is not None:
            out[type_id].append(w)
    return out


def _still_held(session: Session, removal: _Write, held: set[tuple[str, str, str | None]]
                ) -> bool:
    """Another role of the same contact on the same deal keeps the label: it stays."""
    if (removal.deal, removal.contact, removal.label) in held:
        return True
    return session.scalar(select(ContactRoleRow.key).where(
        ContactRoleRow.key != removal.row.key, ContactRoleRow.written_from == removal.deal,
        ContactRoleRow.written_to == removal.contact,
        ContactRoleRow.written_label == removal.label).limit(1)) is not None


def _entry(roles: ContactRoles, source: ObjectPair, target: ObjectPair, w: _Write,
           old: str | None, new: str | None) -> dict[str, object]:
    return {"system": "hubspot", "object": source.hubspot, "record_id": w.deal,
            "field": f"associations.{target.hubspot} ({w.label or 'unlabeled'})",
            "old": old, "new": new, "rule": roles.rule, "reason": w.reason}


def _why(roles: ContactRoles, row: ContactRoleRow, what: str) -> str:
    role_id = row.key.split("#")[0]
    if what == "deleted":
        return f"contact roles {roles.name}: Salesforce {roles.salesforce_object} {role_id} " \
               "was deleted"
    return (f"contact roles {roles.name}: Salesforce {roles.salesforce_object} {role_id} "
            f"({row.parent_id} - {row.target_id}) {what} {row.role or 'without a role'}")


def _wait(run: Run, roles: ContactRoles, source: ObjectPair, target: ObjectPair,
          row: ContactRoleRow, parent_missing: bool) -> None:
    row.waiting = True
    pair, record = (source, row.parent_id) if parent_missing else (target, row.target_id)
    gap(run, WAITING, source.name, row.key, {
        "contact_roles": roles.name, "salesforce_id": row.key.split("#")[0],
        "reason": f"Salesforce {pair.salesforce} {record} is not linked to a HubSpot "
                  f"{pair.hubspot} record yet"})


def _rows(session: Session, keys: list[str]) -> dict[str, ContactRoleRow]:
    out: dict[str, ContactRoleRow] = {}
    wanted = sorted(set(keys))
    for start in range(0, len(wanted), CHUNK):
        for row in session.scalars(select(ContactRoleRow).where(
                ContactRoleRow.key.in_(wanted[start:start + CHUNK]))):
            out[row.key] = row
    return out


def _key(role_id: str, roles: ContactRoles) -> str:
    """A role's gap and row are the setting's own (two settings may read one role)."""
    return f"{role_id}#{roles.name}"


def _hs_of(run: Run, pair: ObjectPair, sf_id: str | None) -> str | None:
    link = run.links.find(pair.name, sf_id=sf_id) if sf_id else None
    return link.hs_id if link is not None else None


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None
