"""The record stage: what the vendors answered, into the state store's books.

A success links a created record, notes the stage its write moved, closes the gaps it
settles and goes in the ledger with the rule and reason of every field; a failure is a dead
letter (or, for a Salesforce duplicate rule, a ``duplicate_match`` gap a person decides) and
a ``sync_error`` gap. Remembered values are written once the whole flush is known, so a side
whose write failed keeps what it held (else the next cycle would write the old value back).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from connectors.records import WriteError, WriteResult
from mapping.rules import apply, synced
from sync_agent import state
from sync_agent.claims import link_records
from sync_agent.context import CreatedLink, Run, close, gap, owner_field, pairs_on, remember
from sync_agent.plan import json_safe
from sync_agent.planned_writes import DUPLICATES_DETECTED
from sync_agent.sla import ActionWrite
from sync_agent.write import Write


def record_batch(run: Run, session: Session, system: str, obj: str, batch: list[Write],
                 results: list[WriteResult], run_id: int | None,
                 landed: list[tuple[ActionWrite, str | None]]) -> None:
    """One batch's answers. SLA actions that succeeded go on ``landed``."""
    ids = [r.id for r in results if r.ok and r.id]
    names = [p.name for p in pairs_on(run.setup.mapping, system, obj)]
    if system == "salesforce":  # linking a created record checks nothing links it already
        run.links.load(names, sf_ids=ids)
    else:
        run.links.load(names, hs_ids=ids)
    ledger: list[dict[str, object]] = []
    for write, result in zip(batch, results, strict=True):
        if result.ok:
            _succeeded(run, write, result, landed)
            letter = run.retrying.get((write.pair.name, write.source_id))
            if letter is not None and write.action is None:  # a retried letter landed
                state.retried(letter, True)
            run.report.written[f"{system}.{obj}"] += 1
            close(run, write.pair.name, write.source_id, write.closes)
            ledger += ({"system": system, "object": obj, "record_id": result.id or "",
                        "field": c.field, "old": json_safe(c.old), "new": json_safe(c.new),
                        "rule": c.rule, "reason": c.reason} for c in write.changes)
            if len(ledger) >= state.ROWS:  # never every field of a first sync at once
                state.record_writes(session, run_id, ledger)
                ledger = []
        else:
            _failed(run, session, write, result)
    state.record_writes(session, run_id, ledger)


def _succeeded(run: Run, write: Write, result: WriteResult,
               landed: list[tuple[ActionWrite, str | None]]) -> None:
    mapping = run.setup.mapping
    if write.action is not None:
        landed.append((write.action, result.id))
    elif write.creates is not None:
        _link_created(run, write, result)
    elif write.settles is not None:
        run.to_remember[id(write.settles.link)] = write.settles
        assert write.record.id is not None
        assert write.values_after is not None
        run.stages.observe(mapping, write.system, write.object, write.record.id,
                           write.values_after, owner_field(mapping, write.system), run.now)


def _link_created(run: Run, write: Write, result: WriteResult) -> None:
    """Link a created record to its source and remember what both now hold."""
    creation = write.creates
    assert creation is not None
    assert result.id is not None
    pair, into = write.pair, creation.into
    created = dict(creation.values)
    if into == "hubspot":  # what HubSpot set on its own (a lifecycle stage) was synced
        for name, value in (result.values or {}).items():
            created.setdefault(name, value)
    known = dict(creation.source.values)
    sf_values, hs_values = (created, known) if into == "salesforce" else (known, created)
    sf_id, hs_id = ((result.id, creation.source.id) if into == "salesforce"
                    else (creation.source.id, result.id))
    link = link_records(run, pair, sf_id, hs_id, creation.key)
    if link is None:
        return  # the upsert found a record already claimed: a gap says so
    apply(creation.plan, sf_values, hs_values)
    remember(run, link, synced(creation.planner, sf_values, hs_values), {})
    mapping = run.setup.mapping
    run.stages.observe(mapping, into, write.object, result.id, created,
                       owner_field(mapping, into), run.now)
    if result.created is not False:  # False: an upsert found the record (a re-run)
        run.report.created[f"{into}.{write.object}"] += 1
    run.created_links.append(CreatedLink(pair, link, into, creation.source, result.values))


def _failed(run: Run, session: Session, write: Write, result: WriteResult) -> None:
    error = result.error
    assert error is not None
    pair, system, obj = write.pair, write.system, write.object
    run.failed_sources.add((pair.name, write.source_id))
    if write.record.id is not None:
        run.unwritten.add((system, write.record.id))
    if system == "salesforce" and error.code == DUPLICATES_DETECTED:
        _duplicate_refused(run, write, error)  # a duplicate_match gap, not a dead letter
        return
    run.report.failed += 1
    letter = run.retrying.get((pair.name, write.source_id))
    if letter is not None:  # a retry failed again: the same letter, backed off
        state.retried(letter, False, f"{error.code}: {error.message}")
    else:
        other = pair.hubspot if system == "salesforce" else pair.salesforce
        source = ({"system": system, "object": obj} if write.record.id else {
            "system": "hubspot" if system == "salesforce" else "salesforce", "object": other})
        state.add_dead_letter(
            session, system=system, obj=obj, record_id=write.record.id,
            operation="update" if write.record.id else "create",
            payload={"values": json_safe(write.record.values),
                     "match": list(write.record.match) if write.record.match else None,
                     "source": {**source, "id": write.source_id, "pair": pair.name},
                     "replay": any(c.rule.startswith("sla:") for c in write.changes)},
            code=error.code, message=error.message,
            field=error.fields[0] if error.fields else None)
    gap(run, "sync_error", pair.name, write.source_id, {
        "system": system, "object": obj, "code": error.code,
        "message": error.message, "fields": list(error.fields)})


def _duplicate_refused(run: Run, write: Write, error: WriteError) -> None:
    """The org's duplicate rules refused this write: which record is the real one is a
    person's call (merge, link, or ``salesforce.duplicate_rules: allow_save``), so it is a
    ``duplicate_match`` gap naming the records Salesforce matched, never a dead letter
    retried forever. A retried letter that meets the rule is settled the same way."""
    letter = run.retrying.get((write.pair.name, write.source_id))
    if letter is not None:
        state.retried(letter, True)
        letter.error_message = f"{error.code}: handed to a duplicate_match gap"
    record_id = write.record.id
    gap(run, "duplicate_match", write.pair.name, write.source_id, {
        "system": "salesforce", "object": write.object, "record_id": record_id,
        "operation": "update" if record_id else "create", "code": error.code,
        "salesforce_ids": list(error.matches), "values": json_safe(write.record.values),
        "reason": f"Salesforce's duplicate rules refused this {write.object} "
        f"{'update' if record_id else 'create'}: {error.message}"
        + ("" if error.matches else " (no matching records found)")})


def remember_settled(run: Run) -> None:
    """Remember what each written pair now holds (a side whose write failed: as it was)."""
    for pair in run.to_remember.values():
        sf_side = (pair.sf_before if ("salesforce", pair.sf_id) in run.unwritten
                   else pair.sf_after)
        hs_side = (pair.hs_before if ("hubspot", pair.hs_id) in run.unwritten
                   else pair.hs_after)
        remember(run, pair.link, synced(pair.planner, sf_side, hs_side), pair.stored)
    run.to_remember = {}
    run.synced.flush()
