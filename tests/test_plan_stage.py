"""The plan stage on plain data: no database, no HTTP, the default mapping's rules.

What a linked pair becomes (field rules, recycling, forward-only holds, drift), what a
created record holds, when a read is only the agent's own writes coming back, and how a
crashed cycle's intents count as history.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from connectors.records import Record
from mapping.model import MappingFile
from mapping.rules import PairPlanner, synced
from mapping.validate import check_file
from sync_agent import plan
from sync_agent.stages import own_arrivals, stage_fields

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def mapping() -> MappingFile:
    loaded, problems = check_file(DEFAULT)
    assert loaded is not None, problems
    return loaded


@pytest.fixture(scope="module")
def leads(mapping: MappingFile) -> PairPlanner:
    return PairPlanner(mapping, "leads")


def lead(at: dt.datetime = T0, **values: Any) -> Record:
    base = {"FirstName": "Ada", "LastName": "Lovelace", "Company": "Analytical",
            "Email": "ada@example.com", "Title": "Engineer", "Status": "Working"}
    return Record(system="salesforce", object="Lead", id="00Q000000000001AAA", cursor=at,
                  values={**base, **values})


def contact(at: dt.datetime = T0, **values: Any) -> Record:
    base = {"firstname": "Ada", "lastname": "Lovelace", "company": "Analytical",
            "email": "ada@example.com", "jobtitle": "Engineer",
            "lifecyclestage": "marketingqualifiedlead", "hs_lead_status": "IN_PROGRESS",
            "salesforceleadid": "00Q000000000001AAA"}
    return Record(system="hubspot", object="contacts", id="901", cursor=at,
                  values={**base, **values})


def pair_plan(mapping: MappingFile, planner: PairPlanner, sf: Record, hs: Record,
              last: dict[str, tuple[Any, Any]]) -> plan.PairPlan:
    pair = next(p for p in mapping.objects if p.name == "leads")
    return plan.plan_pair(planner, stage_fields(mapping, pair), {"lifecyclestage"}, sf, hs,
                          last)


def test_a_field_changed_on_one_side_is_written_to_the_other(
        mapping: MappingFile, leads: PairPlanner) -> None:
    before_sf, before_hs = lead(), contact()
    last = synced(leads, before_sf.values, before_hs.values)
    edited = lead(T0 + dt.timedelta(minutes=5), Title="CTO")
    planned = pair_plan(mapping, leads, edited, before_hs, last)
    assert [(c.side, c.field, c.old, c.new) for c in planned.changes] == [
        ("hubspot", "jobtitle", "Engineer", "CTO")]
    assert planned.changes_to("salesforce") == []
    assert planned.hs_after["jobtitle"] == "CTO"
    assert planned.after_sync["Title>jobtitle"] == ("CTO", "CTO")
    assert planned.drift == {}  # both stages sit at the same funnel position


def test_a_pair_in_sync_plans_nothing_and_remembers_what_both_hold(
        mapping: MappingFile, leads: PairPlanner) -> None:
    sf, hs = lead(), contact()
    last = synced(leads, sf.values, hs.values)
    planned = pair_plan(mapping, leads, sf, hs, last)
    assert planned.changes == []
    assert planned.after_sync == last


def test_a_lead_disqualified_since_the_last_sync_is_recycled_to_nurturing(
        mapping: MappingFile, leads: PairPlanner) -> None:
    sf, hs = lead(), contact()
    last = synced(leads, sf.values, hs.values)
    planned = pair_plan(mapping, leads, lead(T0 + dt.timedelta(hours=1), Status="Unqualified"),
                        hs, last)
    status = [c for c in planned.changes if c.side == "salesforce" and c.field == "Status"]
    assert [(c.new, c.rule) for c in status] == [("Nurturing", "recycle")]
    assert planned.sf_after["Status"] == "Nurturing"


def test_a_moved_link_recycles_by_its_records_own_arrival(
        mapping: MappingFile, leads: PairPlanner) -> None:
    """A merge survivor takes over a link whose remembered status (Working) is another
    lead's: judged by its own stage as last observed, an already Unqualified survivor stays;
    one observed Working that is Unqualified now did become Unqualified and is recycled."""
    pair = next(p for p in mapping.objects if p.name == "leads")
    fields = stage_fields(mapping, pair)
    last = synced(leads, lead().values, contact().values)  # the merged-away lead's pair
    survivor = lead(T0 + dt.timedelta(hours=1), Status="Unqualified")
    hs = contact()

    def status_after(observed: dict[str, str | None]) -> Any:
        arrivals = own_arrivals(fields, last, survivor.values, hs.values, observed, {})
        return plan.plan_pair(leads, fields, {"lifecyclestage"}, survivor, hs, last,
                              arrivals).sf_after["Status"]

    assert status_after({"lead_lifecycle": "Unqualified", "lead_status": "Unqualified"}) == (
        "Unqualified")
    assert status_after({}) == "Unqualified"  # never observed: no move to judge
    assert status_after({"lead_lifecycle": "Working", "lead_status": "Working"}) == "Nurturing"


def test_a_lifecycle_stage_never_moves_back_and_the_drift_is_reported(
        mapping: MappingFile, leads: PairPlanner) -> None:
    sf, hs = lead(), contact()
    last = synced(leads, sf.values, hs.values)
    back = lead(T0 + dt.timedelta(hours=1), Status="New")  # Working -> New in Salesforce
    planned = pair_plan(mapping, leads, back, hs, last)
    written = {(c.side, c.field): c.new for c in planned.changes}
    assert ("hubspot", "lifecyclestage") not in written  # HubSpot would ignore a move back
    assert written[("hubspot", "hs_lead_status")] == "NEW"  # always_salesforce, no funnel hold
    assert planned.drift is not None
    assert "lead_lifecycle" in planned.drift


def test_a_create_in_hubspot_carries_the_salesforce_id_and_upserts_on_the_email(
        mapping: MappingFile, leads: PairPlanner) -> None:
    pair = next(p for p in mapping.objects if p.name == "leads")
    made = plan.plan_create(leads, pair, lead(LastName=None).values | {"Id": "00Q1"},
                            "hubspot", "ada@example.com")
    assert made.match == ("email", "ada@example.com")
    assert made.values["salesforceleadid"] == "00Q1"
    assert made.values["lastname"] == "[not provided]"  # the mapping's default for a blank
    assert made.values["lifecyclestage"] == "marketingqualifiedlead"


def test_a_create_in_salesforce_is_findable_by_its_email(
        mapping: MappingFile, leads: PairPlanner) -> None:
    pair = next(p for p in mapping.objects if p.name == "leads")
    made = plan.plan_create(leads, pair, {"email": "grace@example.com", "firstname": "Grace",
                                          "lifecyclestage": "salesqualifiedlead"},
                            "salesforce", "grace@example.com")
    assert made.match is None
    assert made.values["Email"] == "grace@example.com"
    assert made.values["Company"] == "[not provided]"  # a Lead needs a Company
    assert made.values["Status"] == "Qualified"


def test_a_read_holding_what_was_remembered_is_an_echo(leads: PairPlanner) -> None:
    sf, hs = lead(), contact()
    stored = synced(leads, sf.values, hs.values)
    assert plan.echoes(leads, stored, sf, hs)
    assert plan.echoes(leads, stored, sf, None)  # only one side read
    assert not plan.echoes(leads, stored, lead(Title="CTO"), None)
    assert not plan.echoes(leads, {}, sf, hs)  # nothing remembered: plan it
    partial = {k: v for k, v in stored.items() if k != "Title>jobtitle"}
    assert not plan.echoes(leads, partial, sf, hs)  # a field mapped since: plan it


def test_a_crashed_cycles_intent_counts_as_history_only_where_it_landed(
        leads: PairPlanner) -> None:
    sf, hs = lead(Title="CTO"), contact(jobtitle="CTO", city="Paris")
    stored = synced(leads, lead().values, contact().values)
    intent = {"Title>jobtitle": ["CTO", "CTO"], "City>city": ["London", "London"]}
    last = plan.with_intent(leads, sf.values, hs.values, stored, intent)
    assert last["Title>jobtitle"] == ("CTO", "CTO")  # it landed on both sides
    assert last["City>city"] == stored["City>city"]  # it did not: history unchanged
    assert plan.with_intent(leads, sf.values, hs.values, stored, None) is stored
