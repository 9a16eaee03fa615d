"""Identity for unlinked records: the id a record carries, then its match key, then a create.

A HubSpot record carrying a Salesforce id is that record's counterpart, whoever created it
and whatever crashed before it was linked. Every link is checked against the links and the
claims this cycle already made, so one record is never claimed by two; a conflict is a
``duplicate_match`` gap for a person, and nothing is written for it.
"""

from __future__ import annotations

from collections.abc import Iterable

from connectors.records import Record
from mapping.model import ObjectPair
from sync_agent import creates
from sync_agent.context import (
    PlannedLink,
    Run,
    carried_field,
    close,
    connector,
    fields_of,
    gap,
    whole,
)
from sync_agent.identity import KeyOf, group_by_key, lookup_value, passes
from sync_agent.spool import KeySet, Spooled
from sync_agent.tables import Link
from sync_agent.write import Write


def link_records(run: Run, pair: ObjectPair, sf_id: str, hs_id: str,
                 key: str | None) -> Link | None:
    """Link two records, unless either is linked or claimed already."""
    conflict = _conflict(run, pair, sf_id, hs_id)
    if conflict is not None:
        gap(run, "duplicate_match", pair.name, sf_id, {"hubspot_id": hs_id, "reason": conflict})
        return None
    run.claimed_hs[(pair.hubspot, hs_id)] = f"{pair.name}:{sf_id}"
    run.claimed_sf[(pair.name, sf_id)] = hs_id
    link = run.links.add(pair.name, pair.salesforce, sf_id, pair.hubspot, hs_id, key)
    run.synced.new(link)
    run.report.linked += 1
    if run.setup.dry_run:  # listed, so an admin sees what a first sync would pair up
        shown = run.setup.keys[pair.name].shown(key) if pair.name in run.setup.keys else key
        run.report.links.append(PlannedLink(pair.name, pair.salesforce, sf_id, pair.hubspot,
                                            hs_id, shown))
    close(run, pair.name, sf_id, ("missing_in_hubspot", "duplicate_match"))
    close(run, pair.name, hs_id, ("missing_in_salesforce", "duplicate_match"))
    return link


def _conflict(run: Run, pair: ObjectPair, sf_id: str, hs_id: str) -> str | None:
    """Why ``sf_id`` and ``hs_id`` cannot be linked in ``pair``, if they cannot."""
    claimant = run.claimed_hs.get((pair.hubspot, hs_id))
    if claimant is not None and claimant != f"{pair.name}:{sf_id}":
        return f"HubSpot {pair.hubspot} {hs_id} is claimed by {claimant} in this cycle"
    other = run.claimed_sf.get((pair.name, sf_id))
    if other is not None and other != hs_id:
        return f"Salesforce {pair.salesforce} {sf_id} is linked to HubSpot {other}"
    for p in run.setup.mapping.objects:
        if p.hubspot == pair.hubspot:
            link = run.links.find(p.name, hs_id=hs_id)
            if link is not None and (p.name, link.sf_id) != (pair.name, sf_id):
                return (f"HubSpot {pair.hubspot} {hs_id} is already linked to "
                        f"{p.salesforce} {link.sf_id}")
    link = run.links.find(pair.name, sf_id=sf_id)
    if link is not None and link.hs_id != hs_id:
        return f"Salesforce {pair.salesforce} {sf_id} is already linked to {link.hs_id}"
    return None


def link_and_plan(run: Run, pair: ObjectPair, sf_record: Record, hs_record: Record,
                  key: str | None) -> None:
    """Link a found counterpart; the pair is planned once every link is made (on a fresh
    read of its HubSpot side)."""
    link = link_records(run, pair, sf_record.id, hs_record.id, key)
    if link is not None:
        run.newly_linked.append((pair, link, sf_record, hs_record))


def by_key(run: Run, pair: ObjectPair, system: str, keys: dict[str, str]
           ) -> dict[str, list[Record]]:
    """``pair``'s records on ``system`` by match key (``keys``: key -> the value its first
    field is looked up by). After a read from the beginning every record is already in
    hand, so no lookup is spent; otherwise the few keys are looked up: contacts by email,
    others by their key's first field (a website by its domain), then kept where the whole
    key is equal."""
    if not keys:
        return {}
    obj = pair.salesforce if system == "salesforce" else pair.hubspot
    key = run.setup.keys[pair.name]
    if (system, obj) in run.full_read:
        groups = _key_index(run, system, obj, pair.name, key)
        wanted = {k: groups[k] for k in keys if k in groups}
        found = records_of(run, system, obj, [i for ids in wanted.values() for i in ids])
        return {k: [found[i] for i in ids if i in found] for k, ids in wanted.items()}
    fields = fields_of(run.setup, system, obj)
    source = connector(run.setup, system)
    if key.lookup_by_email:
        got = source.find_by_emails(obj, list(keys), fields)
    else:
        got = source.find_by_values(obj, key.field(system), sorted(set(keys.values())),
                                    fields, domain=key.key.normalize == "domain")
    grouped: dict[str, list[Record]] = group_by_key(got, lambda values: key.of(system, values))
    return {k: grouped[k] for k in keys if k in grouped}


def _key_index(run: Run, system: str, obj: str, pair: str, key: KeyOf
               ) -> dict[str, list[str]]:
    """The ids of this cycle's records of ``obj`` by ``pair``'s match key, grouped once (not
    once per lookup: that made a first sync quadratic). Keyed by the change set too, so a
    set replaced or grown since (merges dropped, pending sources added) is grouped again."""
    records = whole(run, system, obj)
    index_key = (system, obj, pair, id(records), len(records))
    if index_key not in run.key_groups:
        groups: dict[str, list[str]] = {}
        for record in records:
            value = key.of(system, record.values)
            if value is not None:
                groups.setdefault(value, []).append(record.id)
        run.key_groups[index_key] = groups
    return run.key_groups[index_key]


def records_of(run: Run, system: str, obj: str, ids: Iterable[str]) -> dict[str, Record]:
    """This cycle's records of ``obj`` with these ids, from the change set (a spooled one is
    read back a page of ids at a time)."""
    records = whole(run, system, obj)
    if isinstance(records, Spooled):
        return records.get(ids)
    key = (system, obj, "#id", id(records), len(records))
    if key not in run.by_id:
        run.by_id[key] = {r.id: r for r in records}
    index = run.by_id[key]
    return {i: index[i] for i in ids if i in index}


def carrying(run: Run, pair: ObjectPair, sf_ids: list[str]) -> dict[str, list[Record]]:
    """HubSpot records carrying each of these Salesforce ids and not linked to another
    record: from this cycle's read first, then (unless it read everything) one search."""
    prop = carried_field(run.setup, pair)
    if prop is None or not sf_ids:
        return {}
    index = _carried_index(run, pair.hubspot, prop)
    held = records_of(run, "hubspot", pair.hubspot,
                      [hs_id for i in sf_ids for hs_id in index.get(i, ())])
    found: dict[str, list[Record]] = {i: [held[h] for h in index[i] if h in held]
                                      for i in sf_ids if i in index}
    rest = [i for i in sf_ids if i not in found]
    finder = getattr(run.setup.hs, "find_by", None)
    if rest and ("hubspot", pair.hubspot) not in run.full_read and finder is not None:
        for record in finder(pair.hubspot, prop, rest,
                             fields_of(run.setup, "hubspot", pair.hubspot)):
            found.setdefault(str(record.values.get(prop)), []).append(record)
    pairs = [p.name for p in run.setup.mapping.objects if p.hubspot == pair.hubspot]
    run.links.load(pairs, hs_ids=[r.id for records in found.values() for r in records])
    return {sf_id: kept for sf_id, records in found.items() if (kept := [
        r for r in records if not any(run.links.find(name, hs_id=r.id) for name in pairs)])}


def _carried_index(run: Run, hs_object: str, prop: str) -> dict[str, list[str]]:
    """The ids of this cycle's HubSpot records by the Salesforce id they carry."""
    key = (hs_object, prop)
    if key not in run.carried:
        index: dict[str, list[str]] = {}
        for r in whole(run, "hubspot", hs_object):
            if r.values.get(prop):
                index.setdefault(str(r.values[prop]), []).append(r.id)
        run.carried[key] = index
    return run.carried[key]


def claim_unlinked_hubspot(run: Run, handled_hs: KeySet,
                           writes: list[Write]) -> None:
    """HubSpot records no pair has claimed: the Salesforce record whose id they carry,
    else link by key, create where a pair allows it, or report them missing."""
    mapping = run.setup.mapping
    for hs_object in sorted({p.hubspot for p in mapping.objects}):
        pairs = [p for p in mapping.objects if p.hubspot == hs_object]
        unclaimed = [r for r in run.changed[("hubspot", hs_object)]
                     if (hs_object, r.id) not in handled_hs
                     and (hs_object, r.id) not in run.claimed_hs
                     and not any(run.links.find(p.name, hs_id=r.id) for p in pairs)]
        carriers = _carried_records(run, pairs, unclaimed)
        for record in unclaimed:
            _claim(run, pairs, record, carriers, writes)


def _carried_records(run: Run, pairs: list[ObjectPair], records: list[Record]
                     ) -> dict[tuple[str, str], Record]:
    """The Salesforce records these HubSpot records carry the ids of, by (pair, id): from
    this cycle's read, the rest read by id in one call per object."""
    out: dict[tuple[str, str], Record] = {}
    for pair in pairs:
        prop = carried_field(run.setup, pair)
        if prop is None:
            continue
        ids = {str(r.values[prop]) for r in records if r.values.get(prop)}
        have = records_of(run, "salesforce", pair.salesforce, ids)
        rest = sorted(ids - set(have))
        if rest:
            have.update({r.id: r for r in run.setup.sf.read_by_ids(
                pair.salesforce, rest, fields_of(run.setup, "salesforce", pair.salesforce))})
        out.update({(pair.name, sf_id): r for sf_id, r in have.items()})
    return out


def _claim(run: Run, pairs: list[ObjectPair], record: Record,
           carriers: dict[tuple[str, str], Record], writes: list[Write]) -> None:
    for pair in pairs:  # a record that carries a Salesforce id is that record's counterpart
        prop = carried_field(run.setup, pair)
        sf_id = str(record.values.get(prop) or "") if prop else ""
        if not sf_id:
            continue
        sf_record = carriers.get((pair.name, sf_id))
        if sf_record is None:
            known = run.gaps.detail("missing_in_salesforce", pair.name, record.id)
            if known and known.get("deleted_counterpart"):
                return  # its Lead was deleted: the gap says so, a person decides
            gap(run, "missing_in_salesforce", pair.name, record.id, {
                "carried_salesforce_id": sf_id,
                "reason": f"it carries the id of Salesforce {pair.salesforce} {sf_id}, "
                "which was not found; it is never used to create another"})
            return
        conversion = pair.conversion
        if conversion is not None and sf_record.values.get(conversion.converted_field):
            continue  # a converted Lead: the Contact's pair may claim it
        link_and_plan(run, pair, sf_record, record, None)
        return
    for pair in pairs:
        match = run.setup.keys.get(pair.name)
        key = match.hubspot(record.values) if match is not None else None
        if match is None or key is None:
            continue
        found = by_key(run, pair, "salesforce", {key: lookup_value(
            match, "hubspot", record.values)}).get(key, [])
        if len(found) > 1:
            gap(run, "duplicate_match", pair.name, record.id, {
                "key": match.shown(key), "salesforce_ids": sorted(r.id for r in found)})
            return
        if found:
            if run.links.find(pair.name, sf_id=found[0].id) or (
                    pair.name, found[0].id) in run.claimed_sf:
                return
            link_and_plan(run, pair, found[0], record, key)
            return
    if any(prop and record.values.get(prop)
           for prop in (carried_field(run.setup, p) for p in pairs)):
        gap(run, "missing_in_salesforce", pairs[0].name, record.id, {
            "reason": "it carries the id of a converted Salesforce Lead whose Contact "
            "is not linked; it is never used to create another"})
        return
    for pair in pairs:
        if passes(pair.create_in_salesforce, record.values):
            creates.create(run, pair, record, "salesforce", writes)
            return
    first = pairs[0]
    first_key = run.setup.keys.get(first.name)
    gap(run, "missing_in_salesforce", first.name, record.id, {
        "key": first_key.shown(first_key.hubspot(record.values)) if first_key else None})
