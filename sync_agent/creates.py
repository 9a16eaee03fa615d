"""Creates: whether a record's counterpart may be made, and the write that makes it.

Every create must be findable again if the agent dies before recording it: a HubSpot create
carries the Salesforce id (or upserts on the email), a Salesforce create needs the email. A
create an earlier cycle planned and never settled is held while search may still be missing
the record it made. Before any write, a pair that would create counterparts for more old
records than the mapping's ``safety`` allows creates none of them this cycle.
"""

from __future__ import annotations

import datetime as dt

from connectors.records import Record, WriteRecord
from mapping.model import ObjectPair
from mapping.rules import Side
from sync_agent import plan, read
from sync_agent.context import (
    CREATED,
    CreateKey,
    PlannedWrite,
    Run,
    carried_field,
    close,
    connector,
    gap,
    object_of,
)
from sync_agent.identity import passes
from sync_agent.planned_writes import refused_before
from sync_agent.write import Creation, Write


def create(run: Run, pair: ObjectPair, record: Record, into: Side, writes: list[Write]) -> None:
    """Create ``record``'s counterpart in ``into`` if the mapping allows it (linked once the
    write succeeds); otherwise report it missing there."""
    source: Side = "hubspot" if into == "salesforce" else "salesforce"
    missing = f"missing_in_{into}"
    known = run.gaps.detail(missing, pair.name, record.id)
    if known and known.get("deleted_counterpart"):
        return  # someone deleted its counterpart: a person decides, not the agent
    match = run.setup.keys.get(pair.name)
    key = match.of(source, record.values) if match is not None else None
    rule = pair.create_in_hubspot if into == "hubspot" else pair.create_in_salesforce
    if not passes(rule, record.values):
        gap(run, missing, pair.name, record.id, {"key": match.shown(key) if match else None})
        return
    if into == "salesforce" and key is None:
        what = (f"no {pair.match.hubspot}" if pair.match is not None
                else "no match key in the mapping")
        gap(run, missing, pair.name, record.id, {
            "key": None, "reason": f"it has {what}: a Salesforce record made from it "
            "could not be found again after an interruption, so it is not created "
            "(HubSpot's own connector also needs an email)"})
        return
    if into == "hubspot" and key is None and carried_field(run.setup, pair) is None:
        gap(run, missing, pair.name, record.id, {
            "key": None, "reason": f"the mapping carries no Salesforce id into HubSpot "
            f"{pair.hubspot} (a field with salesforce: Id), so a created record could "
            "not be found again after an interruption"})
        return
    create_key: CreateKey = (pair.name, into, record.id)
    planned = run.prior_creates.get(create_key)
    upsert_on_key = (into == "hubspot" and key is not None and pair.match is not None
                     and pair.match.upserts_on())
    if (planned is not None and into == "hubspot" and not upsert_on_key
            and run.now - planned < run.setup.hs.lookback):
        run.held.add(create_key)  # its record may exist, unseen by search for now
        run.report.held += 1
        return
    if into == "hubspot" and key is not None and not _claim_key(run, pair, key, record.id):
        gap(run, "duplicate_match", pair.name, record.id, {
            "key": match.shown(key) if match else key, "reason": "another record creates a "
            "HubSpot record with this match key in the same cycle"})
        return
    planner = run.setup.planners[pair.name]
    made = plan.plan_create(planner, pair, record.values, into, key)
    if into == "salesforce" and refused_before(run, pair, record.id, made.values):
        return
    obj = object_of(pair, into)
    run.report.plan.append(PlannedWrite(pair.name, into, obj, None, made.plan.changes,
                                        create=True, source_id=record.id))
    # The time of this attempt: a create sent again after its hold is held again if this
    # cycle dies too, since HubSpot may have taken this attempt.
    run.new_creates[create_key] = dt.datetime.now(dt.UTC)
    run.create_sources.setdefault((pair.name, into), []).append(
        (record.id, is_new(run, record, source, pair)))
    writes.append(Write(
        pair, into, obj, WriteRecord(values=made.values, match=made.match), record.id,
        [c for c in made.plan.changes if c.side == into],
        creates=Creation(into, key, planner, made.plan, made.values, record)))


def _claim_key(run: Run, pair: ObjectPair, key: str, sf_id: str) -> bool:
    """One HubSpot upsert per email per cycle, whichever pair asks."""
    claimant = run.claimed_hs.setdefault((pair.hubspot, f"email:{key}"), f"{pair.name}:{sf_id}")
    return claimant == f"{pair.name}:{sf_id}"


def is_new(run: Run, record: Record, system: Side, pair: ObjectPair) -> bool:
    """Created since this object was last read (or never read): the change set explains
    its create. A record whose creation time cannot be read counts as new."""
    mark = run.marks.get((system, object_of(pair, system)))
    if mark is None or mark.cursor == read.EPOCH:
        return True
    raw = record.values.get(CREATED[system])
    try:
        created = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return True
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    lookback = connector(run.setup, system).lookback
    return created >= mark.cursor - lookback - dt.timedelta(seconds=1)


def guard_creates(run: Run, writes: list[Write]) -> None:
    """Drop from ``writes`` the creates of any pair over the mapping's ``safety`` limit for
    records that existed at the last sync (a gap says why)."""
    safety = run.setup.mapping.safety
    pairs = {p.name: p for p in run.setup.mapping.objects}
    for (name, into), sources in run.create_sources.items():
        old = [source for source, new in sources if not new]
        links = run.links.count(name) if old else 0
        limit = safety.max_create_share * links + safety.create_floor
        if len(old) <= limit:
            close(run, name, f"creates:{into}", ("create_guard",))
            continue
        pair = pairs[name]
        obj = object_of(pair, into)
        blocked = {source for source, _ in sources}
        writes[:] = [w for w in writes if not (
            w.creates is not None and w.system == into and w.pair.name == name
            and w.source_id in blocked)]
        for source in blocked:
            run.new_creates.pop((name, into, source), None)
        run.report.plan = [w for w in run.report.plan if not (
            w.create and w.pair == name and w.system == into)]
        gap(run, "create_guard", name, f"creates:{into}", {
            "planned": len(sources), "old_records": len(old), "links": links,
            "limit": int(limit), "reason": f"this cycle would create {len(old)} {into} "
            f"{obj} records for records that existed at the last sync (limit "
            f"{int(limit)}: safety.max_create_share x {links} links + "
            "safety.create_floor); none were created. If this is meant (a mapping change "
            "admitted them), raise the limit in the mapping's safety section or run a "
            "backfill"})
