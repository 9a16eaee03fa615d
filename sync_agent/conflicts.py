"""Two-way conflicts decided by each field's own change time, not the record's.

A record's modification time moves for reasons that have nothing to do with the field in
conflict (on a real portal ``lastmodifieddate`` moves all the time, with every calculated
property), so deciding by it lets HubSpot win nearly every conflict and loses reps' edits.
Pairs whose fields both sides changed since the last sync are planned once on record times,
put aside, and planned again here with the fields' own times: HubSpot's property history
(read only for these records, 50 a call) and Salesforce's field history where the org tracks
the field, else that record's modification time. The ledger's reason says which times
decided. This runs before the cycle writes any intent, so a crash cannot leave a half-decided
pair.
"""

from __future__ import annotations

import datetime as dt
import logging

from connectors.errors import ConnectorError
from mapping.rules import FieldTimes
from sync_agent.context import Run, connector
from sync_agent.planned_writes import plan_linked
from sync_agent.write import Write

log = logging.getLogger(__name__)
RECORD = "record modified"
HISTORY = {"salesforce": "field history", "hubspot": "property history"}


def decide_conflicts(run: Run, writes: list[Write]) -> None:
    """Plan the put-aside pairs again, each conflict decided by its fields' change times."""
    conflicted, run.conflicted = run.conflicted, []
    if not conflicted:
        return
    wanted: dict[tuple[str, str], tuple[set[str], set[str]]] = {}
    for pair, _, sf_record, hs_record, keys in conflicted:
        for system, obj, record_id, side in (("salesforce", pair.salesforce, sf_record.id, 0),
                                             ("hubspot", pair.hubspot, hs_record.id, 1)):
            ids, names = wanted.setdefault((system, obj), (set(), set()))
            ids.add(record_id)
            names.update(key.split(">", 1)[side] for key in keys)
    known: dict[tuple[str, str], dict[str, dict[str, dt.datetime]]] = {}
    for (system, obj), (ids, names) in sorted(wanted.items()):
        try:
            known[(system, obj)] = connector(run.setup, system).field_times(
                obj, sorted(ids), sorted(names))
        except ConnectorError as exc:  # decided on record times, as before; the reason says
            log.warning("%s %s field history could not be read (%s): conflicts are decided "
                        "on the records' modification times", system, obj, exc)
            known[(system, obj)] = {}
    for pair, link, sf_record, hs_record, keys in conflicted:
        sf_times = known[("salesforce", pair.salesforce)].get(sf_record.id, {})
        hs_times = known[("hubspot", pair.hubspot)].get(hs_record.id, {})
        times: dict[str, FieldTimes] = {}
        for key in keys:
            sf_name, hs_name = key.split(">", 1)
            sf_at, hs_at = sf_times.get(sf_name), hs_times.get(hs_name)
            times[key] = FieldTimes(
                sf=(sf_at or sf_record.cursor).timestamp(),
                hs=(hs_at or hs_record.cursor).timestamp(),
                sf_from=HISTORY["salesforce"] if sf_at else RECORD,
                hs_from=HISTORY["hubspot"] if hs_at else RECORD)
        plan_linked(run, pair, link, sf_record, hs_record, writes, times)
