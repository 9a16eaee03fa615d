"""Stages, cold leads and owners in the cycle: against the sandbox, real connectors, SQLite."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import select

from connectors.records import WriteRecord
from mapping.model import RecycleToNurture, Reroute
from sync_agent import state
from sync_agent.cycle import run_cycle
from sync_agent.tables import Gap, LedgerEntry, StageVisit
from tests.test_cycle import MAPPING, fresh, next_second

WEEK = 7 * 24 * 60  # minutes: always more than 4 business hours


def new_lead(sf: Any, email: str, status: str, **values: Any) -> str:
    result = sf.upsert("Lead", [WriteRecord(values={
        "LastName": "Cold", "Company": "Frost AG", "Email": email, "Status": status,
        **values})])[0]
    assert result.ok, result.error
    return str(result.id)


def gap(store: Any, kind: str, key: str) -> Gap | None:
    with store.session() as session:
        return session.scalars(select(Gap).where(Gap.kind == kind, Gap.key == key)
                               .order_by(Gap.id.desc())).first()


def set_status_and_sync(sf: Any, hs: Any, store: Any, lead: str, status: str) -> None:
    """A rep changes the lead's status in Salesforce; the next cycle runs."""
    sf.upsert("Lead", [WriteRecord(id=lead, values={"Status": status})])
    next_second()
    run_cycle(store, MAPPING, sf, hs)


def tasks_on(sf: Any, lead_id: str) -> list[Any]:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    return sf.activity("Lead", [lead_id], since)


def hs_of(store: Any, lead_id: str) -> str:
    with store.session() as session:
        link = state.find_link(session, "leads", sf_id=lead_id)
        assert link is not None
        return link.hs_id


def test_a_cold_mql_gets_a_task_and_a_flag_until_someone_acts(make_sandbox: Any,
                                                              tmp_path: Path) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    lead = new_lead(sf, "ice.cold@example.com", "Working")
    warm = new_lead(sf, "still.warm@example.com", "Working")
    box.admin("salesforce", "POST", "/salesforce/age", {"id": lead, "minutes": WEEK})
    report = run_cycle(store, MAPPING, sf, hs)
    assert report.gaps["cold_lead"] >= 1
    cold = gap(store, "cold_lead", lead)
    assert cold is not None
    assert cold.closed_at is None
    assert cold.detail["rule"] == "mql_follow_up"
    assert gap(store, "cold_lead", warm) is None  # MQL for a second: within its SLA
    created = tasks_on(sf, lead)
    assert [t.id for t in created] == cold.detail["tasks"]
    task = sf.read_by_ids("Task", [created[0].id], ["Subject", "Priority", "WhoId"])[0]
    assert task.values["WhoId"] == lead
    assert task.values["Priority"] == "High"
    assert "4 business hours" in task.values["Subject"]
    contact = hs_of(store, lead)
    flag = hs.read_by_ids("contacts", [contact], ["stagesync_cold_lead"])[0]
    assert flag.values["stagesync_cold_lead"] == "true"
    with store.session() as session:
        rules = {e.rule for e in session.scalars(select(LedgerEntry).where(
            LedgerEntry.record_id.in_([contact, created[0].id])))}
    assert "sla:mql_follow_up" in rules

    next_second()
    run_cycle(store, MAPPING, sf, hs)  # still cold: its own task is not the rep's activity
    assert len(tasks_on(sf, lead)) == 1  # and no second task
    still = gap(store, "cold_lead", lead)
    assert still is not None
    assert still.closed_at is None

    sf.upsert("Task", [WriteRecord(values={"Subject": "Called", "WhoId": lead,
                                           "Status": "Completed"})])
    next_second()
    # activity is read every activity_poll_minutes (5), not every cycle: the next poll
    poll = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6)
    run_cycle(store, MAPPING, sf, hs, until=poll)
    closed = gap(store, "cold_lead", lead)
    assert closed is not None
    assert closed.closed_at is not None  # closed, history kept
    flag = hs.read_by_ids("contacts", [contact], ["stagesync_cold_lead"])[0]
    assert flag.values.get("stagesync_cold_lead") in (None, "")


def test_a_cold_lead_gap_closes_when_the_lead_moves_on(make_sandbox: Any,
                                                       tmp_path: Path) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    lead = new_lead(sf, "moving.on@example.com", "Working")
    box.admin("salesforce", "POST", "/salesforce/age", {"id": lead, "minutes": WEEK})
    run_cycle(store, MAPPING, sf, hs)
    assert gap(store, "cold_lead", lead) is not None
    set_status_and_sync(sf, hs, store, lead, "Qualified")
    found = gap(store, "cold_lead", lead)
    assert found is not None
    assert found.closed_at is not None
    with store.session() as session:
        visits = list(session.scalars(select(StageVisit).where(
            StageVisit.record_id == lead, StageVisit.stage_map == "lead_lifecycle")
            .order_by(StageVisit.id)))
    assert [(v.stage, v.left_at is None) for v in visits] == [("Working", False),
                                                              ("Qualified", True)]


def test_reroute_and_recycle_actions(make_sandbox: Any, tmp_path: Path) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    users = [u for u in sf.people() if u.active and u.email]
    owners = {o.email.lower(): o.id for o in hs.people() if o.email}
    queue = next(u for u in users if u.email.lower() in owners)
    rule = MAPPING.sla[0]
    mapping = MAPPING.model_copy(update={"sla": [rule.model_copy(update={"actions": [
        Reroute(kind="reroute", owner_email=queue.email.upper()),
        RecycleToNurture(kind="recycle", salesforce_stage="Nurturing")]})]})
    lead = new_lead(sf, "reroute.me@example.com", "Working")
    box.admin("salesforce", "POST", "/salesforce/age", {"id": lead, "minutes": WEEK})
    run_cycle(store, mapping, sf, hs)
    after = sf.read_by_ids("Lead", [lead], ["OwnerId", "Status"])[0].values
    assert after == {**after, "OwnerId": queue.id, "Status": "Nurturing"}
    contact = hs.read_by_ids("contacts", [hs_of(store, lead)],
                             ["hubspot_owner_id", "lifecyclestage"])[0].values
    assert contact["hubspot_owner_id"] == owners[queue.email.lower()]
    assert contact["lifecyclestage"] == "lead"  # moved back on purpose: a recycle
    next_second()
    run_cycle(store, mapping, sf, hs)
    found = gap(store, "cold_lead", lead)
    assert found is not None
    assert found.closed_at is not None  # Nurturing: no longer an MQL


def test_a_backward_lifecycle_move_is_held_as_stage_drift(make_sandbox: Any,
                                                          tmp_path: Path) -> None:
    _, sf, hs, store = fresh(make_sandbox, tmp_path)
    lead = new_lead(sf, "no.going.back@example.com", "Working")
    run_cycle(store, MAPPING, sf, hs)
    contact = hs_of(store, lead)
    set_status_and_sync(sf, hs, store, lead, "Qualified")
    assert hs.read_by_ids("contacts", [contact], ["lifecyclestage"])[0].values[
        "lifecyclestage"] == "salesqualifiedlead"
    set_status_and_sync(sf, hs, store, lead, "Working")
    values = hs.read_by_ids("contacts", [contact], ["lifecyclestage", "hs_lead_status"])[0].values
    assert values["lifecyclestage"] == "salesqualifiedlead"  # held, not silently ignored
    assert values["hs_lead_status"] == "IN_PROGRESS"  # the other stage map still follows
    drifted = gap(store, "stage_drift", lead)
    assert drifted is not None
    assert drifted.closed_at is None
    detail = drifted.detail["stage_maps"]["lead_lifecycle"]
    assert detail["salesforce"] == "Working"
    assert detail["hubspot"] == "salesqualifiedlead"
    assert "only forward" in detail["reason"]
    set_status_and_sync(sf, hs, store, lead, "Qualified")
    closed = gap(store, "stage_drift", lead)
    assert closed is not None
    assert closed.closed_at is not None


def test_the_stage_map_recycles_an_unqualified_lead(make_sandbox: Any, tmp_path: Path) -> None:
    _, sf, hs, store = fresh(make_sandbox, tmp_path)
    lead = new_lead(sf, "try.again@example.com", "Working")
    run_cycle(store, MAPPING, sf, hs)
    contact = hs_of(store, lead)
    set_status_and_sync(sf, hs, store, lead, "Unqualified")
    assert sf.read_by_ids("Lead", [lead], ["Status"])[0].values["Status"] == "Nurturing"
    values = hs.read_by_ids("contacts", [contact], ["lifecyclestage", "hs_lead_status"])[0].values
    assert (values["lifecyclestage"], values["hs_lead_status"]) == ("lead", "OPEN")
    with store.session() as session:
        rules = {(e.field, e.rule) for e in session.scalars(select(LedgerEntry).where(
            LedgerEntry.record_id == lead))}
    assert ("Status", "recycle") in rules
    assert gap(store, "stage_drift", lead) is None


def test_owners_cross_over_by_email(make_sandbox: Any, tmp_path: Path) -> None:
    # lenience: this test is about owner mapping, not search lag
    _, sf, hs, store = fresh(lambda **kw: make_sandbox(search_lag_seconds=0, **kw), tmp_path)
    owners = {o.email.lower(): o.id for o in hs.people() if o.email}
    users = [u for u in sf.people() if u.email and u.email.lower() in owners]
    shouting = next(u for u in users if any(
        o.email == u.email.upper() for o in hs.people() if o.email))  # case differs
    lead = new_lead(sf, "owned.lead@example.com", "New", OwnerId=shouting.id)
    made = hs.upsert("contacts", [WriteRecord(values={
        "email": "owned.contact@example.com", "lastname": "Owned",
        "lifecyclestage": "marketingqualifiedlead",
        "hubspot_owner_id": owners[users[0].email.lower()]})])[0]
    report = run_cycle(store, MAPPING, sf, hs)
    assert report.failed == 0
    contact = hs.read_by_ids("contacts", [hs_of(store, lead)], ["hubspot_owner_id"])[0]
    assert contact.values["hubspot_owner_id"] == owners[shouting.email.lower()]
    with store.session() as session:
        link = state.find_link(session, "leads", hs_id=made.id)
        assert link is not None
    created = sf.read_by_ids("Lead", [link.sf_id], ["OwnerId"])[0]
    assert created.values["OwnerId"] == users[0].id
