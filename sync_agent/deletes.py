"""Identity upkeep before matching: deletes and merges on either side move or drop links.

A Salesforce merge survivor takes its loser's link; a HubSpot record that lists merged ids
takes theirs; a record deleted (or archived) on one side drops its link, and the pair's
delete rule says what the other side's record gets (``delete_rules``: a gap by default).
Past Salesforce's 15 days of deletes, the full id lists are compared instead. Only the
links of records found gone are looked up, never every link.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from sqlalchemy.orm import Session

from connectors.contract import Connector
from connectors.records import DeletedRecord, DeletedRecords, Record
from mapping.model import ObjectPair
from sync_agent import merges, read, state
from sync_agent.context import (
    Run,
    carried_field,
    close,
    connector,
    fields_of,
    gap,
    object_of,
    whole,
)
from sync_agent.delete_rules import end_link
from sync_agent.spool import Spooled
from sync_agent.tables import Link

# The gaps of a record that is gone (deleted, merged away, purged): a merged-away duplicate's
# ``duplicate_match`` must not wait for a person. Its counterpart's gaps stay.
MOOT_WHEN_GONE = {
    "salesforce": ("duplicate_match", "missing_in_hubspot", "stage_drift", "sync_error"),
    "hubspot": ("duplicate_match", "missing_in_salesforce", "sync_error")}


@runtime_checkable
class ReadsArchive(Protocol):
    """A connector whose deletes are an archive listed only in id order (HubSpot)."""

    archive_pages: int

    def read_archived(self, object_type: str, after: str | None, pages: int
                      ) -> tuple[list[DeletedRecord], str | None]: ...


def unlink_deleted(run: Run, session: Session) -> None:
    """Every object's deletes since its watermark, and the links they end or move."""
    mapping = run.setup.mapping
    for (system, obj), mark in run.marks.items():
        pairs = [p.name for p in mapping.objects if object_of(p, system) == obj]
        if mark.cursor == read.EPOCH:
            # never read before, so nothing known can have gone: this full read counts as
            # the full id comparison
            merges.done(session, system, obj, merges.ID_CHECK, run.now)
            continue
        source = connector(run.setup, system)
        answer = _read_deleted(run, session, system, obj, mark.cursor - source.lookback)
        gone: dict[str, str | None] = {d.id: d.merged_into for d in answer.records}
        state.end_visits(session, system, list(gone), run.now)
        interval = getattr(source, "full_id_interval", None)
        scheduled = interval is not None and merges.is_due(
            session, system, obj, merges.ID_CHECK, interval, run.now)
        if not answer.complete or scheduled:
            # Deletes that leave no trace (a purge, an emptied recycle bin, a HubSpot merge)
            # show only here.
            links = [link for name in pairs for link in run.links.all_of(name)]
            live = set(source.list_ids(obj)) if links else set()
            vanished = [rid for link in links if (rid := (
                link.sf_id if system == "salesforce" else link.hs_id)) not in live
                and rid not in gone]
            if system == "hubspot" and vanished:
                vanished = _vanished_merges(run, session, obj, vanished)
            for record_id in vanished:
                gone.setdefault(record_id, None)
        if scheduled:
            merges.done(session, system, obj, merges.ID_CHECK, run.now)
        run.vanished.setdefault((system, obj), set()).update(gone)
        if not gone:
            continue
        for name in pairs:  # what a person was asked about a record that is gone is moot
            for record_id in gone:
                close(run, name, record_id, MOOT_WHEN_GONE[system])
        side = "sf_ids" if system == "salesforce" else "hs_ids"
        run.links.load(pairs, **{side: list(gone)})
        for name in pairs:
            for record_id in sorted(gone):
                link = (run.links.find(name, sf_id=record_id) if system == "salesforce"
                        else run.links.find(name, hs_id=record_id))
                if link is not None:
                    _unlink_gone(run, session, link, system, record_id, gone[record_id])


def _unlink_gone(run: Run, session: Session, link: Link, system: str, record_id: str,
                 survivor: str | None) -> None:
    """A linked record was deleted or merged away: a Salesforce merge survivor takes the
    link over; otherwise the link goes, and the pair's delete rule says what its counterpart
    gets (``delete_rules``; merged away into a linked record: a gap)."""
    if survivor and system == "salesforce" and run.links.find(
            link.pair, sf_id=survivor) is None:
        run.links.move(link, sf_id=survivor)
        run.report.merged += 1
        return
    if survivor:  # merged into a record linked already: never a delete rule's business
        other = link.hs_id if system == "salesforce" else link.sf_id
        gap(run, f"missing_in_{system}", link.pair, other, {
            "reason": f"its {system} counterpart {record_id} was merged into {survivor}",
            "deleted_counterpart": True})
    else:
        pair = next(p for p in run.setup.mapping.objects if p.name == link.pair)
        end_link(run, session, pair, link, system, record_id)
    run.links.delete(link)
    run.report.unlinked += 1


def _read_deleted(run: Run, session: Session, system: str, obj: str, since: dt.datetime
                  ) -> DeletedRecords:
    """Deletes since ``since``; HubSpot's archive, listed only in id order, a slice every
    ``archive_interval`` from where the last slice stopped (every archived record in the
    slice counts: only linked ones matter, and those are unlinked the first time seen)."""
    source: Connector = connector(run.setup, system)
    if not isinstance(source, ReadsArchive):
        came = run.read_deletes.get((system, obj))  # read with the changes: no call
        return came if came is not None else source.read_deleted(obj, since)
    archive = source
    found = merges.archive_slice(
        session, obj, lambda after: archive.read_archived(obj, after, archive.archive_pages),
        getattr(source, "archive_interval", dt.timedelta(0)), run.now)
    return DeletedRecords(records=found)


def follow_hubspot_merges(run: Run, session: Session) -> None:
    """A HubSpot record this cycle read that lists merged ids takes over their links.
    Records found gone this cycle are dropped from the change set first (search serves
    copies of records deleted, purged or merged away seconds ago)."""
    changed = run.changed
    for key, ids in run.vanished.items():
        if key in changed and ids:
            _drop(run, key, ids)
    for hs_object in sorted({p.hubspot for p in run.setup.mapping.objects}):
        key = ("hubspot", hs_object)
        if key not in changed:
            continue
        index = merges.survivors(whole(run, *key))
        if index:
            move_to_survivors(run, session, hs_object, index)
            # search may still serve a stale copy of a merged-away record: never use it
            _drop(run, key, set(index))


def _drop(run: Run, key: tuple[str, str], ids: set[str]) -> None:
    """Leave these records out of the change set (spooled or in hand)."""
    records = whole(run, *key)
    if isinstance(records, Spooled):
        records.drop(ids)
    else:
        run.changed[key] = [r for r in records if r.id not in ids]


def _vanished_merges(run: Run, session: Session, obj: str, vanished: list[str]) -> list[str]:
    """Linked HubSpot ids gone from the full list: those a read by id answers for with
    another record were merged into it (their links follow); the rest are returned."""
    wanted = set(vanished)
    found = run.setup.hs.read_by_ids(obj, vanished, fields_of(run.setup, "hubspot", obj))
    index = {old: r for old, r in merges.survivors(found).items() if old in wanted}
    move_to_survivors(run, session, obj, index)
    return [v for v in vanished if v not in index]


def follow_read_merges(run: Run, session: Session, pair: ObjectPair,
                       linked: dict[int, tuple[str, str]], fresh: list[Record]) -> None:
    """Linked HubSpot ids that a read by id answered for with another record (a merge the
    change read has not shown yet): the links follow; ``linked`` is updated."""
    returned = {r.id for r in fresh}
    missing = {hs_id for _, hs_id in linked.values() if hs_id not in returned}
    if not missing:
        return
    index = {old: r for old, r in merges.survivors(fresh).items() if old in missing}
    if not index:
        return
    move_to_survivors(run, session, pair.hubspot, index)
    for link_id, (sf_id, hs_id) in list(linked.items()):
        if hs_id in index:
            link = run.links.find(pair.name, sf_id=sf_id)
            if link is None:
                del linked[link_id]  # a gap says why
            else:
                linked[link_id] = (sf_id, link.hs_id)


def move_to_survivors(run: Run, session: Session, hs_object: str,
                      index: dict[str, Record]) -> None:
    """Links of merged-away HubSpot ids move to the record they were merged into. When that
    record is linked already, or several linked records were merged into it and the
    Salesforce id it carries does not say which link it keeps, the others become gaps for a
    person (and their Salesforce records are never used to create another)."""
    pairs = [p for p in run.setup.mapping.objects if p.hubspot == hs_object]
    merged_away: list[str] = []
    for pair in pairs:
        claims: dict[str, list[Link]] = {}
        for old_id in sorted(index):
            link = run.links.find(pair.name, hs_id=old_id)
            if link is not None:
                claims.setdefault(index[old_id].id, []).append(link)
        for survivor_id, links in claims.items():
            merged_away += [held.hs_id for held in links]
            _settle_claims(run, pair, pairs, survivor_id, links, index.values())
    state.end_visits(session, "hubspot", merged_away, run.now)


def _settle_claims(run: Run, pair: ObjectPair, pairs: list[ObjectPair], survivor_id: str,
                   links: list[Link], survivors: Iterable[Record]) -> None:
    """The links whose records were merged into ``survivor_id``: one keeps it, if one can."""
    record = next(r for r in survivors if r.id == survivor_id)
    taken = any(run.links.find(p.name, hs_id=survivor_id) for p in pairs)
    keep: Link | None = None
    if not taken and len(links) == 1:
        keep = links[0]
    elif not taken:
        prop = carried_field(run.setup, pair)
        carried = str(record.values.get(prop) or "") if prop else ""
        keep = next((held for held in links if held.sf_id == carried), None)
    for held in links:
        if held is keep:
            run.links.move(held, hs_id=survivor_id)
            run.report.merged += 1
            continue
        why = ("which is linked to another record" if taken else
               "together with other linked records")
        gap(run, "missing_in_hubspot", pair.name, held.sf_id, {
            "reason": f"its HubSpot counterpart {held.hs_id} was merged into "
            f"{survivor_id}, {why}; a person decides which record it belongs with",
            "hubspot_id": survivor_id, "deleted_counterpart": True})
        run.links.delete(held)
        run.report.unlinked += 1
