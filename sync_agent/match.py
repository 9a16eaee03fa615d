"""The match stage for one pair: which changed records are linked, which are not, and the
records each linked pair is planned on.

Links come a page of ids per query. A converted Lead hands its link to its Contact. An
unlinked Salesforce record is matched by the id a HubSpot record carries, then by key, and
only then created. A linked pair whose read sides hold exactly what was remembered is the
agent's own writes coming back and costs nothing more; the others are planned on both
sides read by id (HubSpot search lags writes, so a stale copy never decides a field).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from connectors.records import Record
from mapping.model import ObjectPair
from sync_agent import creates, merges, plan
from sync_agent.claims import by_key, carrying, link_and_plan
from sync_agent.conflicts import decide_conflicts
from sync_agent.context import Run, close, fields_of, gap
from sync_agent.deletes import follow_read_merges
from sync_agent.identity import group_by_key, lookup_value
from sync_agent.planned_writes import plan_linked
from sync_agent.spool import KeySet
from sync_agent.stages import current_stages
from sync_agent.tables import Link
from sync_agent.write import Write


def match_pair(run: Run, session: Session, pair: ObjectPair, handled_hs: KeySet,
               writes: list[Write]) -> None:
    """Link, create or plan every changed record of ``pair``; ``handled_hs`` gets the
    HubSpot records this pair took care of."""
    mapping = run.setup.mapping
    sf_changed = {r.id: r for r in run.changed[("salesforce", pair.salesforce)]}
    if pair.conversion is not None:
        sf_changed = _converted(run, pair, sf_changed)
    hs_changed = {r.id: r for r in run.changed[("hubspot", pair.hubspot)]}
    session.flush()  # links made for an earlier pair get their ids (``linked`` is by id)
    run.links.load([pair.name], sf_ids=sf_changed)
    run.links.load([p.name for p in mapping.objects if p.hubspot == pair.hubspot],
                   hs_ids=hs_changed)
    linked: dict[int, tuple[str, str]] = {}
    unlinked_sf: list[Record] = []
    for record in sf_changed.values():
        link = run.links.find(pair.name, sf_id=record.id)
        if link is None:
            unlinked_sf.append(record)
        else:
            linked[link.id] = (link.sf_id, link.hs_id)
    for record in hs_changed.values():
        link = run.links.find(pair.name, hs_id=record.id)
        if link is not None:
            linked[link.id] = (link.sf_id, link.hs_id)
            handled_hs.add((pair.hubspot, record.id))
    _link_or_create(run, pair, unlinked_sf, handled_hs, writes)
    _sync_linked(run, session, pair, linked, sf_changed, hs_changed, writes)


def _converted(run: Run, pair: ObjectPair, records: dict[str, Record]) -> dict[str, Record]:
    """Converted Leads: the link moves to the new Contact (in the conversion's pair), and
    the Lead, now read-only in Salesforce, is no longer synced."""
    conversion = pair.conversion
    assert conversion is not None
    target = next((p for p in run.setup.mapping.objects if p.name == conversion.to_pair), None)
    if target is None:  # validation refuses this; a hand-built mapping might not
        return records
    kept: dict[str, Record] = {}
    run.links.load([target.name], sf_ids=[
        str(r.values[conversion.contact_field]) for r in records.values()
        if r.values.get(conversion.contact_field)])
    for record in records.values():
        contact_id = record.values.get(conversion.contact_field)
        if not record.values.get(conversion.converted_field) or not contact_id:
            kept[record.id] = record
            continue
        link = run.links.find(pair.name, sf_id=record.id)
        if link is not None and run.links.find(target.name, sf_id=str(contact_id)) is None:
            run.links.move(link, pair=target.name, sf_object=target.salesforce,
                           sf_id=str(contact_id))
            run.report.converted += 1
            run.conversions.append((pair, record, link, target))
        close(run, pair.name, record.id, ("missing_in_hubspot", "duplicate_match", "sync_error"))
    return kept


def _link_or_create(run: Run, pair: ObjectPair, records: list[Record],
                    handled_hs: KeySet, writes: list[Write]) -> None:
    """Unlinked Salesforce records: the HubSpot record carrying the Salesforce id, then the
    match key; only then a create."""
    carried = carrying(run, pair, [r.id for r in records])
    rest: list[Record] = []
    for record in records:
        found = carried.get(record.id, [])
        if len(found) > 1:
            gap(run, "duplicate_match", pair.name, record.id, {
                "hubspot_ids": sorted(r.id for r in found),
                "reason": f"several HubSpot {pair.hubspot} carry this Salesforce id"})
            handled_hs.update((pair.hubspot, r.id) for r in found)
        elif found:
            handled_hs.add((pair.hubspot, found[0].id))
            link_and_plan(run, pair, record, found[0], None)
        else:
            rest.append(record)
    match_key = run.setup.keys.get(pair.name)
    if match_key is not None:
        groups = group_by_key(rest, match_key.salesforce)
        lookups = {k: lookup_value(match_key, "salesforce", members[0].values)
                   for k, members in groups.items()}
        everyone = by_key(run, pair, "salesforce", lookups)
        counterparts = by_key(run, pair, "hubspot", lookups)
    else:
        groups, everyone, counterparts = {}, {}, {}
    keyed = {r.id for rs in groups.values() for r in rs}
    for key, members in groups.items():
        shown = match_key.shown(key) if match_key is not None else key
        sharing = {r.id for r in everyone.get(key, [])} | {r.id for r in members}
        if len(sharing) > 1:
            for record in members:
                gap(run, "duplicate_match", pair.name, record.id, {
                    "key": shown, "salesforce_ids": sorted(sharing)})
            continue
        found = [r for r in counterparts.get(key, []) if not _linked_elsewhere(run, pair, r)]
        if len(found) > 1:  # several HubSpot records share the key: a person decides
            gap(run, "duplicate_match", pair.name, members[0].id, {
                "key": shown, "hubspot_ids": sorted(r.id for r in found),
                "reason": f"several HubSpot {pair.hubspot} share its match key"})
            handled_hs.update((pair.hubspot, r.id) for r in found)
        elif found:
            handled_hs.add((pair.hubspot, found[0].id))
            link_and_plan(run, pair, members[0], found[0], key)
        else:
            creates.create(run, pair, members[0], "hubspot", writes)
    for record in rest:
        if record.id not in keyed:
            creates.create(run, pair, record, "hubspot", writes)


def _linked_elsewhere(run: Run, pair: ObjectPair, record: Record) -> bool:
    """A HubSpot record already linked to another Salesforce record shares a key with this
    one by chance (a second Account on one domain): it is not a candidate."""
    return any(run.links.find(p.name, hs_id=record.id) is not None
               for p in run.setup.mapping.objects if p.hubspot == pair.hubspot)


def plan_newly_linked(run: Run, writes: list[Write]) -> None:
    """Pairs linked this cycle are planned on a fresh HubSpot read: search (where their
    HubSpot side came from) serves an index that lags writes, and a stale copy would
    overwrite an edit made seconds ago. One batch read per 100 records. A read from the
    beginning needs none: it lists the records (as they are), it does not search."""
    by_object: dict[str, set[str]] = {}
    for pair, _, _, hs_record in run.newly_linked:
        if ("hubspot", pair.hubspot) not in run.full_read:  # a full read lists: current
            by_object.setdefault(pair.hubspot, set()).add(hs_record.id)
    fresh: dict[tuple[str, str], Record] = {}
    merged: set[tuple[str, str]] = set()
    for obj, ids in by_object.items():
        found = run.setup.hs.read_by_ids(obj, sorted(ids), fields_of(run.setup, "hubspot", obj))
        for record in found:
            fresh[(obj, record.id)] = record
        merged |= {(obj, old) for old in merges.survivors(found)}
    for pair, link, sf_record, hs_record in run.newly_linked:
        key = (pair.hubspot, hs_record.id)
        if pair.hubspot in by_object and key not in fresh and key not in merged:
            _unlink_stale(run, pair, link, sf_record, writes)
            continue
        current = fresh.get(key, hs_record)
        plan_linked(run, pair, link, sf_record, current, writes)
    run.newly_linked = []
    decide_conflicts(run, writes)  # every pair this pass planned is decided before intents


def _unlink_stale(run: Run, pair: ObjectPair, link: Link, sf_record: Record,
                  writes: list[Write]) -> None:
    """The HubSpot record search matched is gone (archived seconds ago; search still served
    it): the link is undone and the Salesforce record goes on as an unlinked one would (the
    gone record stays claimed: it is never linked again this cycle)."""
    run.links.delete(link)
    run.report.linked -= 1
    if isinstance(run.claimed_sf, dict):  # only a search copy gets here: never a sliced sync
        run.claimed_sf.pop((pair.name, sf_record.id), None)  # its new record may link it
    run.vanished.setdefault(("hubspot", pair.hubspot), set()).add(link.hs_id)
    creates.create(run, pair, sf_record, "hubspot", writes)


def _sync_linked(run: Run, session: Session, pair: ObjectPair,
                 linked: dict[int, tuple[str, str]], sf_changed: dict[str, Record],
                 hs_changed: dict[str, Record], writes: list[Write]) -> None:
    run.synced.load(link for sf_id, _ in linked.values()
                    if (link := run.links.find(pair.name, sf_id=sf_id)) is not None)
    for link_id, (sf_id, hs_id) in list(linked.items()):
        if _echo(run, pair, sf_id, hs_id, sf_changed.get(sf_id), hs_changed.get(hs_id)):
            del linked[link_id]  # only the agent's own writes came back: nothing to do
            run.report.in_sync += 1
    vouched, need_sf = _unchanged_in_salesforce(
        run, pair, [sf_id for sf_id, _ in linked.values() if sf_id not in sf_changed])
    # HubSpot search serves an index that lags writes: a record it returns may hold the
    # values of a few seconds ago. Linked records are read again by id (consistent).
    need_hs = [hs_id for _, hs_id in linked.values()
               if hs_id not in hs_changed or ("hubspot", pair.hubspot) not in run.full_read]
    sf_records, hs_records = {**vouched, **sf_changed}, dict(hs_changed)
    if need_sf:
        sf_records.update({r.id: r for r in run.setup.sf.read_by_ids(
            pair.salesforce, need_sf, fields_of(run.setup, "salesforce", pair.salesforce))})
    if need_hs:
        fresh = run.setup.hs.read_by_ids(pair.hubspot, need_hs,
                                         fields_of(run.setup, "hubspot", pair.hubspot))
        hs_records.update({r.id: r for r in fresh})
        follow_read_merges(run, session, pair, linked, fresh)
    _observe_moved(run, session, pair, linked)
    for link_id, (sf_id, hs_id) in linked.items():
        sf_record, hs_record = sf_records.get(sf_id), hs_records.get(hs_id)
        if sf_record is None or hs_record is None:
            missing = "missing_in_salesforce" if sf_record is None else "missing_in_hubspot"
            gap(run, missing, pair.name, sf_id if sf_record else hs_id,
                {"link": link_id, "reason": "the linked record is gone"})
            continue
        link = run.links.find(pair.name, sf_id=sf_id)
        assert link is not None
        plan_linked(run, pair, link, sf_record, hs_record, writes)


def _observe_moved(run: Run, session: Session, pair: ObjectPair,
                   linked: dict[int, tuple[str, str]]) -> None:
    """The stages the records of links moved this cycle stood at before (their own open
    visits): a recycle judges them by their own arrival, not by what the link remembers of
    the record it belonged to. Merges and conversions are few: a query per side."""
    moved = [(sf_id, hs_id) for sf_id, hs_id in linked.values()
             if (link := run.links.find(pair.name, sf_id=sf_id)) is not None
             and id(link) in run.links.moved]
    for system, ids in (("salesforce", [s for s, _ in moved]), ("hubspot", [h for _, h in moved])):
        wanted = [i for i in ids if (system, i) not in run.observed]
        if wanted:
            found = current_stages(session, system, wanted)
            run.observed.update({(system, i): found.get(i, {}) for i in wanted})


def _unchanged_in_salesforce(run: Run, pair: ObjectPair, ids: list[str]
                             ) -> tuple[dict[str, Record], list[str]]:
    """The linked Salesforce records this cycle's change read vouches for, rebuilt from what
    was last synced; and the ids that must still be read by id.

    Salesforce's change read (``queryAll`` on ``SystemModstamp``, deletes and merges with it)
    is consistent up to the cycle's start: a linked record missing from it has not changed
    since it was last read, and every read of a linked record either found it in sync or
    remembered what the plan left it holding (its own write's echo is read back and checked).
    So what was remembered is what it holds, and reading the counterparts of a burst of
    HubSpot changes again would cost a query per 200 for nothing. Read by id all the same:
    a record with anything pending (a crashed cycle's intent, a letter, an open gap), a link
    moved this cycle (a merge, a conversion), a mapped field never synced (a field added to
    the mapping), a mapped formula field, a pair routed by record type, or an object not read
    by change (a backfill page, a letter retried). HubSpot counterparts are always read:
    search serves an index that lags writes."""
    obj = pair.salesforce
    mark = run.marks.get(("salesforce", obj))
    planner = run.setup.planners[pair.name]
    if mark is None or ("salesforce", obj) in run.full_read or planner.route_by is not None:
        return {}, ids
    described = run.setup.sf.describe(obj).fields
    if any(described[f.sf].calculated for f in planner.fields if f.sf in described):
        return {}, ids  # a formula changes without bumping SystemModstamp: read what it is
    vouched: dict[str, Record] = {}
    rest: list[str] = []
    for sf_id in ids:
        link = run.links.find(pair.name, sf_id=sf_id)
        stored = run.synced.get(link) if link is not None and link.id is not None else {}
        if (link is None or id(link) in run.links.moved or _pending(run, pair, sf_id, link.hs_id)
                or any(f.key not in stored for f in planner.fields)):
            rest.append(sf_id)
            continue
        vouched[sf_id] = Record(system="salesforce", object=obj, id=sf_id, cursor=mark.cursor,
                                values={f.sf: stored[f.key][0] for f in planner.fields})
    return vouched, rest


def _pending(run: Run, pair: ObjectPair, sf_id: str, hs_id: str) -> bool:
    """Whether anything is pending for this pair: a crashed cycle's intent, a letter to
    retry, an open gap."""
    return ((pair.name, sf_id, hs_id) in run.prior_intents
            or (pair.name, sf_id) in run.retrying or (pair.name, hs_id) in run.retrying
            or (pair.name, sf_id) in run.gaps.keys or (pair.name, hs_id) in run.gaps.keys)


def _echo(run: Run, pair: ObjectPair, sf_id: str, hs_id: str, sf_record: Record | None,
          hs_record: Record | None) -> bool:
    """Whether what was read of a linked pair is only the agent's own writes coming back,
    and nothing else is pending for it (a crashed cycle's intent, a letter to retry, an
    open gap). Then its other side is not read again: a cycle after a burst costs what the
    changes cost, not a read of every counterpart they touched."""
    link = run.links.find(pair.name, sf_id=sf_id)
    if link is None or link.hs_id != hs_id or link.id is None:
        return False
    if _pending(run, pair, sf_id, hs_id):
        return False
    return plan.echoes(run.setup.planners[pair.name], run.synced.get(link), sf_record,
                       hs_record)
