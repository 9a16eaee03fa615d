"""From a linked pair's records to the cycle's writes: the plan stage's answer, with the
intent recorded ahead of the write, refusals held back, and the drift gap kept."""

from __future__ import annotations

from typing import Any

from connectors.records import Record, WriteRecord
from mapping.model import ObjectPair
from mapping.rules import FieldTimes
from sync_agent import plan
from sync_agent.context import PlannedWrite, Run, Settling, close, forward_only, gap, remember
from sync_agent.stages import own_arrivals
from sync_agent.tables import Link
from sync_agent.write import Write

DUPLICATES_DETECTED = "DUPLICATES_DETECTED"  # Salesforce: a duplicate rule refused the save


def plan_linked(run: Run, pair: ObjectPair, link: Link, sf_record: Record, hs_record: Record,
                writes: list[Write], times: dict[str, FieldTimes] | None = None) -> None:
    """Plan one linked pair; its writes go on ``writes``, a pair in sync is remembered. A
    pair whose fields both sides changed is put aside (``run.conflicted``) until their own
    change times are read (``conflicts.decide_conflicts``), then planned again with them."""
    setup = run.setup
    planner = setup.planners[pair.name]
    stored = run.synced.get(link)
    last = plan.with_intent(planner, sf_record.values, hs_record.values, stored,
                            run.prior_intents.get((pair.name, sf_record.id, hs_record.id)))
    fields = setup.stage_fields[pair.name]
    arrivals = None
    if id(link) in run.links.moved:  # the remembered stages are another record's
        arrivals = own_arrivals(fields, last, sf_record.values, hs_record.values,
                                run.observed.get(("salesforce", sf_record.id), {}),
                                run.observed.get(("hubspot", hs_record.id), {}))
    planned = plan.plan_pair(planner, fields, forward_only(setup, pair), sf_record, hs_record,
                             last, arrivals, times)
    if planned.conflicts and times is None:
        run.conflicted.append((pair, link, sf_record, hs_record, planned.conflicts))
        return
    if planned.drift:
        gap(run, "stage_drift", pair.name, sf_record.id,
            {"hubspot_id": hs_record.id, "stage_maps": planned.drift})
    elif planned.drift is not None:
        close(run, pair.name, sf_record.id, ("stage_drift",))
    if not planned.changes:
        run.report.in_sync += 1
        remember(run, link, planned.after_sync, stored)
        return
    run.new_intents[(pair.name, sf_record.id, hs_record.id)] = planned.after_sync
    settling = Settling(link, planner, sf_record.id, hs_record.id, sf_record.values,
                        hs_record.values, planned.sf_after, planned.hs_after, stored)
    for system, obj, record in (("salesforce", pair.salesforce, sf_record),
                                ("hubspot", pair.hubspot, hs_record)):
        changes = planned.changes_to(system)
        if not changes:
            continue
        if system == "salesforce" and refused_before(
                run, pair, record.id, {c.field: c.new for c in changes}):
            # The duplicate rules refused this very update: a person decides. Not sent, so
            # what is remembered keeps Salesforce's values as they are.
            run.unwritten.add((system, record.id))
            continue
        run.report.plan.append(PlannedWrite(pair.name, system, obj, record.id, changes))
        writes.append(Write(
            pair, system, obj, WriteRecord(id=record.id, values={c.field: c.new for c in changes},
                                           current=dict(record.values)),
            record.id, changes, settles=settling,
            values_after=planned.hs_after if system == "hubspot" else planned.sf_after))


def refused_before(run: Run, pair: ObjectPair, source_id: str, values: dict[str, Any]) -> bool:
    """The same create or update was refused by the duplicate rules and its gap is open:
    it is not sent again until its values change or the mapping says ``allow_save``."""
    if run.setup.mapping.salesforce.duplicate_rules != "respect":
        return False
    known = run.gaps.detail("duplicate_match", pair.name, source_id)
    if not known or known.get("code") != DUPLICATES_DETECTED:
        return False
    return bool(known.get("values") == plan.json_safe(values))
