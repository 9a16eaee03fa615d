"""Restores: a deleted record brought back (a Salesforce undelete, a HubSpot restore) while
the vendor still keeps it is linked to its counterpart again, as before the delete.

No vendor page says a restore moves the record's modified stamp, so a restore may never show
in a change read. While links ended by deletes are open (``EndedLink``, kept as long as the
record is restorable), their deleted ids are read by id once every ``RESTORE_CHECK``: one
batch read per object and 100 or 200 ids. A restored record that a change read does return
(edited after its restore) is re-linked in that cycle. With no ended link open, nothing is
read: the cost follows the deletes, never the data.

What a restore gets depends on what happened since: a counterpart still there and unlinked
is linked again (its ``missing_in_*`` gap closes); one the ``delete_counterpart`` rule deleted
is made again by the pair's create rule, as for any new record; one linked to another record
meanwhile (a ``recreate`` made it a new partner) leaves the restored record to a person, in a
``missing_in_*`` gap that also keeps it from being used to create another.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.records import Record
from mapping.model import DeleteRule, ObjectPair
from sync_agent import merges
from sync_agent.claims import link_records
from sync_agent.context import Run, connector, fields_of, gap, object_of
from sync_agent.delete_rules import other_side
from sync_agent.tables import EndedLink

RESTORE_CHECK = dt.timedelta(hours=1)
SCHEDULE = ("stagesync", "ended-links", "restore-check")  # system, object, kind


def relink_restored(run: Run, session: Session) -> None:
    """Re-link the deleted records that came back (see the module's docstring)."""
    ended = list(session.scalars(select(EndedLink).where(
        EndedLink.restored_at.is_(None), EndedLink.expires_at > run.now)))
    pairs = {p.name: p for p in run.setup.mapping.objects}
    waiting: dict[tuple[str, str], dict[str, list[EndedLink]]] = defaultdict(
        lambda: defaultdict(list))
    for row in ended:
        if row.pair in pairs:
            obj = object_of(pairs[row.pair], row.deleted_in)
            waiting[(row.deleted_in, obj)][row.deleted_id].append(row)
    if not waiting:
        return
    found: dict[tuple[str, str], list[Record]] = {}
    for key, rows in waiting.items():
        found[key] = [r for r in run.changed.get(key, []) if r.id in rows]
    system, obj, kind = SCHEDULE
    if merges.is_due(session, system, obj, kind, RESTORE_CHECK, run.now):
        for key, rows in sorted(waiting.items()):
            seen = {r.id for r in found[key]}
            wanted = sorted(set(rows) - seen)
            if not wanted or not isinstance(run.changed.get(key), list):
                continue
            back = [r for r in connector(run.setup, key[0]).read_by_ids(
                key[1], wanted, fields_of(run.setup, *key)) if r.id in rows]
            found[key] += back
            run.changed[key] = [*run.changed[key], *back]  # synced as any changed record
        merges.done(session, system, obj, kind, run.now)
    for key, records in found.items():
        for record in records:
            for row in waiting[key][record.id]:
                _relink(run, pairs[row.pair], row, record)


def _relink(run: Run, pair: ObjectPair, row: EndedLink, record: Record) -> None:
    """``record`` (``row.deleted_id``) is back: link it to its counterpart again if it can."""
    row.restored_at = run.now
    system, other = row.deleted_in, other_side(row.deleted_in)
    if system == "salesforce":
        sf_id, hs_id = record.id, row.counterpart_id
        own = run.links.find(pair.name, sf_id=sf_id)
        held = run.links.find(pair.name, hs_id=hs_id)
    else:
        sf_id, hs_id = row.counterpart_id, record.id
        own = run.links.find(pair.name, hs_id=hs_id)
        held = run.links.find(pair.name, sf_id=sf_id)
    if own is not None:
        return  # linked again already (matched by a key, or by a person)
    if held is not None:
        partner = held.sf_id if system == "salesforce" else held.hs_id
        gap(run, f"missing_in_{other}", pair.name, record.id, {
            "reason": f"it was restored in {system} after its counterpart "
            f"{row.counterpart_id} had been linked to {partner}; a person decides which "
            "record to keep", "deleted_counterpart": True, "counterpart_id": row.counterpart_id})
        return
    if row.rule == DeleteRule.DELETE_COUNTERPART and not connector(run.setup, other).read_by_ids(
            object_of(pair, other), [row.counterpart_id], []):
        return  # its counterpart was deleted with it: the create rule makes one again
    if link_records(run, pair, sf_id, hs_id, None) is not None:
        run.report.relinked += 1
