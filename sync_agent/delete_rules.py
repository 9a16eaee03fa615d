"""What a delete on one side does to the other, per the pair's ``on_delete`` rule.

``deletes`` finds the records gone and ends their links; here each ended link's rule is
carried out: ``gap`` (the default) leaves a ``missing_in_*`` gap for a person;
``delete_counterpart`` deletes the linked record on the other side (a HubSpot delete is an
archive); ``recreate`` puts the counterpart in this cycle's change set, unlinked, so the pair's
create rule makes the deleted record again. Every ended link is kept (``EndedLink``) while the
deleted record can still be restored, so a restore re-links it (``restores``).

A counterpart delete is safe to repeat: a cycle that dies after it re-reads the same delete
(its watermark did not move), finds the link still there and deletes again, which the vendors
answer as already done (Salesforce ``ENTITY_IS_DELETED``; HubSpot archives nothing twice).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy.orm import Session

from connectors.errors import ConnectorError
from connectors.records import Record
from mapping.model import DeleteRule, ObjectPair
from mapping.rules import FieldChange
from sync_agent import state
from sync_agent.context import (
    Doomed,
    PlannedWrite,
    Run,
    close,
    connector,
    fields_of,
    gap,
    object_of,
)
from sync_agent.tables import EndedLink, Link

# How long each vendor keeps a deleted record restorable (Salesforce's Recycle Bin, HubSpot's
# recycling bin): an ended link is watched for a restore this long.
RESTORABLE = {"salesforce": dt.timedelta(days=15), "hubspot": dt.timedelta(days=90)}
# Refusals that mean the record is gone already: the delete is done.
ALREADY_GONE = {"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "NOT_FOUND"}
RECORD = "(record)"  # the ledger's field for a whole-record delete


def other_side(system: str) -> str:
    return "hubspot" if system == "salesforce" else "salesforce"


def end_link(run: Run, session: Session, pair: ObjectPair, link: Link, system: str,
             record_id: str) -> None:
    """``record_id`` (``system``'s side of ``link``) was deleted: the pair's rule for that
    side decides what its counterpart gets. The link itself is dropped by the caller."""
    rule = getattr(pair.on_delete, system)
    counterpart = link.hs_id if system == "salesforce" else link.sf_id
    session.add(EndedLink(pair=pair.name, deleted_in=system, deleted_id=record_id,
                          counterpart_id=counterpart, rule=str(rule), ended_at=run.now,
                          expires_at=run.now + RESTORABLE[system], restored_at=None))
    if rule is DeleteRule.DELETE_COUNTERPART:
        into = other_side(system)
        run.doomed.append(Doomed(pair.name, into, object_of(pair, into), counterpart,
                                 system, record_id))
    elif rule is DeleteRule.RECREATE:
        run.recreate.setdefault((other_side(system), object_of(pair, other_side(system))),
                                set()).add(counterpart)
    else:
        kind = f"missing_in_{system}"
        gap(run, kind, pair.name, counterpart, {
            "reason": f"its {system} counterpart {record_id} was deleted",
            "deleted_counterpart": True, "deleted_id": record_id})


def apply_delete_rules(run: Run, session: Session, run_id: int | None) -> None:
    """Carry out this cycle's ``delete_counterpart`` and ``recreate`` rules (a dry run lists
    the deletes and plans the creates, and sends nothing)."""
    _delete_counterparts(run, session, run_id)
    _bring_back(run)


def _delete_counterparts(run: Run, session: Session, run_id: int | None) -> None:
    by_object: dict[tuple[str, str], list[Doomed]] = defaultdict(list)
    for doomed in run.doomed:
        by_object[(doomed.system, doomed.obj)].append(doomed)
    run.doomed = []
    for (system, obj), batch in sorted(by_object.items()):
        if run.setup.dry_run:
            for d in batch:
                run.report.plan.append(PlannedWrite(d.pair, system, obj, d.record_id, [
                    _change(system, d)]))
            continue
        failed = _send(run, system, obj, batch)
        done = [d for d in batch if d.record_id not in failed]
        for d in batch:
            if d.record_id in failed:
                gap(run, f"missing_in_{d.deleted_in}", d.pair, d.record_id, {
                    "reason": f"its {d.deleted_in} counterpart {d.deleted_id} was deleted and "
                    f"the pair's rule deletes it too, but {system} refused: "
                    f"{failed[d.record_id]}", "deleted_counterpart": True,
                    "deleted_id": d.deleted_id})
        if not done:
            continue
        state.record_writes(session, run_id, [{
            "system": system, "object": obj, "record_id": d.record_id, "field": RECORD,
            "old": f"linked to {d.deleted_in} {d.deleted_id}", "new": "deleted",
            "rule": f"on_delete.{d.deleted_in}", "reason": _change(system, d).reason}
            for d in done])
        ids = {d.record_id for d in done}
        state.end_visits(session, system, sorted(ids), run.now)
        run.vanished.setdefault((system, obj), set()).update(ids)
        for d in done:  # what a person was asked about it is moot now
            close(run, d.pair, d.record_id, ("missing_in_salesforce", "missing_in_hubspot",
                                             "duplicate_match", "sync_error", "stage_drift"))
        key = (system, obj)
        if key in run.changed:  # a stale copy read this cycle is never synced
            run.changed[key] = [r for r in run.changed[key] if r.id not in ids]
        run.report.deleted += len(done)
        run.report.written[f"{system}.{obj}.deleted"] += len(done)


def _send(run: Run, system: str, obj: str, batch: list[Doomed]) -> dict[str, str]:
    """Delete the batch; the ids the vendor refused, with its message."""
    ids = [d.record_id for d in batch]
    try:
        results = connector(run.setup, system).delete(obj, ids)
    except ConnectorError as exc:
        return dict.fromkeys(ids, str(exc))
    failed: dict[str, str] = {}
    for result in results:
        if result.error is not None and result.error.code not in ALREADY_GONE:
            failed[ids[result.index]] = f"{result.error.code}: {result.error.message}"
    return failed


def _change(system: str, d: Doomed) -> FieldChange:
    return FieldChange(side="salesforce" if system == "salesforce" else "hubspot",
                       field=RECORD, old="exists", new="deleted",
                       rule=f"on_delete.{d.deleted_in}",
                       reason=f"its {d.deleted_in} counterpart {d.deleted_id} was deleted; "
                       f"the pair's rule deletes it too", key=RECORD)


def _bring_back(run: Run) -> None:
    """Counterparts of records a ``recreate`` rule brings back join the change set, unlinked:
    the match stage creates the deleted record again from them."""
    for (system, obj), ids in sorted(run.recreate.items()):
        key = (system, obj)
        if key not in run.changed or not isinstance(run.changed[key], list):
            continue
        present = {r.id for r in run.changed[key]}
        wanted = sorted(ids - present)
        if wanted:
            fresh: list[Record] = connector(run.setup, system).read_by_ids(
                obj, wanted, fields_of(run.setup, system, obj))
            run.changed[key] = [*run.changed[key], *fresh]
    run.recreate = {}
