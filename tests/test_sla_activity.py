"""The SLA clock reads sales activity by change (Tasks and Events changed since the last read)
into the state store and decides from the store: against the sandbox, real connectors, SQLite.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from connectors.build import build_connectors
from connectors.config import load_settings
from connectors.records import WriteRecord
from mapping.model import CreateTask, MappingFile, SlaRule
from sandbox.admin import SandboxClient
from sandbox.seed import SeedSizes
from sync_agent import sla, sla_activity
from sync_agent.cycle import run_cycle
from sync_agent.store import open_store
from tests.test_cycle import MAPPING, fresh, next_second
from tests.test_cycle_stages import WEEK, gap, hs_of, new_lead, tasks_on

DAY = 24 * 60  # minutes
NO_LEADS = SeedSizes(leads=0, contacts=10, accounts=4, opportunities=0, hubspot_only_contacts=0)


def age(box: SandboxClient, record_id: str, minutes: float) -> None:
    box.admin("salesforce", "POST", "/salesforce/age", {"id": record_id, "minutes": minutes})


def log_activity(sf: Any, kind: str, who: str, start: dt.datetime | None = None) -> str:
    """A rep logs a call (a Task) or a meeting (an Event, taking place at ``start``)."""
    if kind == "Task":
        values: dict[str, Any] = {"Subject": "Called", "WhoId": who, "Status": "Completed"}
    else:
        values = {"Subject": "Intro meeting", "WhoId": who, "DurationInMinutes": 30,
                  "StartDateTime": start or dt.datetime.now(dt.UTC)}
    result = sf.upsert(kind, [WriteRecord(values=values)])[0]
    assert result.ok, result.error
    return str(result.id)


def is_open(store: Any, lead: str) -> bool | None:
    """Whether the lead's latest cold-lead gap is open (None: it never went cold)."""
    found = gap(store, "cold_lead", lead)
    return None if found is None else found.closed_at is None


# -- a quiet cycle's cost does not grow with the leads at the stage ------------------------------
def _tasks_only(mapping: MappingFile) -> MappingFile:
    """The default mapping, with leads kept in Salesforce (no HubSpot contacts to create: the
    measurement is about Salesforce) and the follow-up Task as the SLA's one action."""
    leads = next(p for p in mapping.objects if p.name == "leads")
    rule = mapping.sla[0]
    return mapping.model_copy(update={
        "objects": [p.model_copy(update={"create_in_hubspot": p.create_in_hubspot.model_copy(
            update={"enabled": False})}) if p is leads else p for p in mapping.objects],
        "sla": [rule.model_copy(update={"actions": [a for a in rule.actions
                                                    if isinstance(a, CreateTask)]})]})


def _quiet_cycle_cost(make_sandbox: Any, tmp_path: Path, waiting: int
                      ) -> tuple[int, dict[str, int], dict[str, sla.ColdLead], list[str]]:
    """(Salesforce calls of a quiet cycle's SLA work, the whole quiet cycle's queries per
    endpoint, the cold leads then, the ids of the leads made) with ``waiting`` leads a week
    past their SLA."""
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    settings = load_settings(box.info.settings_file)
    # a short lookback, so that a cycle a second after the last change is a quiet one; the
    # activity polled every cycle (activity_poll_minutes 0): what a poll costs is measured
    sf, hs = build_connectors(settings.model_copy(update={
        "salesforce": settings.salesforce.model_copy(update={"lookback_seconds": 0.5,
                                                             "activity_poll_minutes": 0}),
        "hubspot": settings.hubspot.model_copy(update={"requests_per_ten_seconds": 0,
                                                       "searches_per_second": 0})}))
    store = open_store(f"sqlite:///{tmp_path / f'state{waiting}.db'}")
    mapping = _tasks_only(MAPPING)
    made = sf.upsert("Lead", [WriteRecord(values={
        "LastName": f"Waiting{n}", "Company": f"Queue {n} GmbH", "Status": "Working",
        "Email": f"waiting.{n}@example.com"}) for n in range(waiting)])
    ids = [str(r.id) for r in made if r.ok]
    assert len(ids) == waiting
    for lead in ids:
        age(box, lead, WEEK)
    run_cycle(store, mapping, sf, hs)  # every waiting lead goes cold and gets its Task
    next_second()
    run_cycle(store, mapping, sf, hs)  # those Tasks are read into the activity log
    next_second()
    before = Counter(sf.calls)
    run_cycle(store, mapping, sf, hs)
    # Queries only: HubSpot changing its records on its own a second after a write (see
    # sandbox/README.md) makes some cycles read a few linked records by id, whatever N is.
    whole = {k: n for k, n in (Counter(sf.calls) - before).items() if k.startswith("GET query")}
    next_second()
    with store.session() as session:
        before = sum(sf.calls.values())
        now = dt.datetime.now(dt.UTC)
        sla_activity.read_activity(session, mapping, sf, now)
        cold = sla.find_cold(session, mapping, now)
        work = sum(sf.calls.values()) - before
    store.engine.dispose()
    return work, whole, cold, ids


def test_a_quiet_cycle_costs_the_same_with_50_or_2000_leads_waiting(make_sandbox: Any,
                                                                      tmp_path: Path) -> None:
    few, few_whole, few_cold, few_ids = _quiet_cycle_cost(make_sandbox, tmp_path, 50)
    many, many_whole, many_cold, many_ids = _quiet_cycle_cost(make_sandbox, tmp_path, 2000)
    assert few == many <= 2  # one query for Tasks, one for Events
    assert few_whole == many_whole  # and no query of a quiet cycle grows with them
    for cold, ids in ((few_cold, few_ids), (many_cold, many_ids)):
        assert set(ids) <= set(cold)  # every waiting lead was decided, and is cold...
        assert all(len(cold[i].tasks) == 1 for i in ids)  # ...its own follow-up known


# -- what counts as activity --------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["Task", "Event"])
def test_a_reps_activity_after_the_lead_went_cold_closes_its_gap(make_sandbox: Any,
                                                                 tmp_path: Path,
                                                                 kind: str) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    lead = new_lead(sf, "gone.cold@example.com", "Working")
    age(box, lead, WEEK)
    run_cycle(store, MAPPING, sf, hs)
    assert is_open(store, lead)
    contact = hs_of(store, lead)
    log_activity(sf, kind, lead)
    next_second()
    quiet = sum(sf.calls.values())
    run_cycle(store, MAPPING, sf, hs)
    assert is_open(store, lead)  # activity is read every activity_poll_minutes (5)...
    assert sum(sf.calls.values()) - quiet == 1  # ...so a cycle between polls is one call
    run_cycle(store, MAPPING, sf, hs, until=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6))
    assert is_open(store, lead) is False  # closed at the next poll, its history kept
    flag = hs.read_by_ids("contacts", [contact], ["stagesync_cold_lead"])[0]
    assert flag.values.get("stagesync_cold_lead") in (None, "")


def test_an_event_counts_as_activity(make_sandbox: Any, tmp_path: Path) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    met = new_lead(sf, "met.already@example.com", "Working")
    ignored = new_lead(sf, "not.met@example.com", "Working")
    for lead in (met, ignored):
        age(box, lead, WEEK)
    log_activity(sf, "Event", met, start=dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    run_cycle(store, MAPPING, sf, hs)
    assert is_open(store, met) is None  # a meeting since it arrived: never cold
    assert is_open(store, ignored)
    assert tasks_on(sf, met) == []


def test_the_agents_own_follow_up_task_is_not_activity(make_sandbox: Any,
                                                       tmp_path: Path) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    lead = new_lead(sf, "only.us@example.com", "Working")
    age(box, lead, WEEK)
    run_cycle(store, MAPPING, sf, hs)
    ours = [t.id for t in tasks_on(sf, lead)]
    assert len(ours) == 1
    for _ in range(2):  # read back into the log, and again on a quiet cycle
        next_second()
        run_cycle(store, MAPPING, sf, hs)
    found = gap(store, "cold_lead", lead)
    assert found is not None
    assert found.closed_at is None  # still cold
    assert found.detail["tasks"] == ours  # its follow-up is known as ours...
    assert [t.id for t in tasks_on(sf, lead)] == ours  # ...so none is made again


@pytest.mark.parametrize("kind", ["Task", "Event"])
def test_activity_before_the_lead_reached_the_stage_does_not_count(make_sandbox: Any,
                                                                   tmp_path: Path,
                                                                   kind: str) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    lately = new_lead(sf, "arrived.lately@example.com", "Working")  # at the stage a week
    long_ago = new_lead(sf, "arrived.long.ago@example.com", "Working")  # three weeks
    two_weeks_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=14)
    for lead in (lately, long_ago):  # a call or meeting two weeks ago on each
        done = log_activity(sf, kind, lead, start=two_weeks_ago)
        if kind == "Task":
            age(box, done, 14 * DAY)  # logged then (an Event is placed by its start)
    age(box, lately, WEEK)
    age(box, long_ago, 3 * WEEK)
    run_cycle(store, MAPPING, sf, hs)
    assert is_open(store, lately)  # the activity came before it reached the stage
    assert is_open(store, long_ago) is None  # the same activity, after it arrived


def test_a_new_sla_stage_reads_activity_from_its_longest_waiting_lead(make_sandbox: Any,
                                                                      tmp_path: Path) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0, sizes=NO_LEADS)
    _, sf, hs, store = fresh(lambda **_: box, tmp_path)
    working = new_lead(sf, "working.week@example.com", "Working")
    nurtured = new_lead(sf, "nurtured.called@example.com", "Nurturing")
    forgotten = new_lead(sf, "nurtured.forgotten@example.com", "Nurturing")
    age(box, log_activity(sf, "Task", nurtured), 2 * WEEK)  # a call two weeks ago
    age(box, working, WEEK)
    for lead in (nurtured, forgotten):
        age(box, lead, 3 * WEEK)
    run_cycle(store, MAPPING, sf, hs)  # the SLA reads activity from a week ago
    assert is_open(store, working)
    # the mapping gains a rule for the nurture stage, where leads have waited three weeks
    nurture = SlaRule(name="nurture_follow_up", pair="leads", stage_map="lead_lifecycle",
                      stage="lead", within_business_hours=4)
    wider = MAPPING.model_copy(update={"sla": [*MAPPING.sla, nurture]})
    next_second()
    run_cycle(store, wider, sf, hs)
    assert is_open(store, forgotten)  # the new rule works...
    assert is_open(store, nurtured) is None  # ...and knows of the call two weeks ago


# -- when activity is read -----------------------------------------------------------------------
def test_a_lead_is_declared_cold_only_after_a_fresh_read_of_its_activity(
        make_sandbox: Any, tmp_path: Path) -> None:
    """Between polls (``activity_poll_minutes``, set here far beyond the test so only the
    decision reads), a lead whose SLA runs out has its activity read before it is called
    cold: a call logged since the last poll keeps it warm, and no follow-up Task is made."""
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    settings = load_settings(box.info.settings_file)
    sf, hs = build_connectors(settings.model_copy(update={
        "salesforce": settings.salesforce.model_copy(update={"activity_poll_minutes": 10**6}),
        "hubspot": settings.hubspot.model_copy(update={"requests_per_ten_seconds": 0,
                                                       "searches_per_second": 0})}))
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    called = new_lead(sf, "called.in.time@example.com", "Working")
    ignored = new_lead(sf, "never.called@example.com", "Working")
    run_cycle(store, MAPPING, sf, hs)  # both within their SLA; activity read (the first poll)
    assert is_open(store, called) is None
    assert is_open(store, ignored) is None
    log_activity(sf, "Task", called)
    next_second()
    quiet = Counter(sf.calls)
    run_cycle(store, MAPPING, sf, hs)  # nobody's SLA ran out: no activity read
    assert sum((Counter(sf.calls) - quiet).values()) == 1  # the cycle's one Composite read
    a_week_on = dt.datetime.now(dt.UTC) + dt.timedelta(days=8)
    run_cycle(store, MAPPING, sf, hs, until=a_week_on)  # both SLAs have run out
    assert is_open(store, called) is None  # the call was read first: never cold
    assert is_open(store, ignored)
    assert len(tasks_on(sf, called)) == 1  # the rep's call, and no follow-up of ours


def test_a_call_logged_in_hubspot_keeps_the_sla_quiet(make_sandbox: Any, tmp_path: Path) -> None:
    """A rep who calls from HubSpot is following up: the call moves the contact's last
    activity date, which the cycle reads with the contact and logs under the lead."""
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    called = new_lead(sf, "called.from.hubspot@example.com", "Working")
    ignored = new_lead(sf, "never.called@example.com", "Working")
    for lead in (called, ignored):
        age(box, lead, WEEK)
    contact = hs.upsert("contacts", [WriteRecord(values={
        "email": "called.from.hubspot@example.com", "lastname": "Cold",
        "lifecyclestage": "marketingqualifiedlead"})])[0].id
    two_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    hs.client.crm.objects.calls.basic_api.create(simple_public_object_input_for_create={
        "properties": {"hs_timestamp": two_days_ago.isoformat(timespec="milliseconds"),
                       "hs_call_title": "Intro call", "hs_call_body": "Booked a demo"},
        "associations": [{"to": {"id": contact}, "types": [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}]}]})
    logged = hs.read_by_ids("contacts", [contact], ["notes_last_updated"])[0]
    assert logged.values["notes_last_updated"]  # HubSpot's "Last activity date" moved
    time.sleep(3.5)  # past the search index's lag
    run_cycle(store, MAPPING, sf, hs)
    assert hs_of(store, called) == contact  # linked by email to the contact called
    assert is_open(store, called) is None  # called two days ago: never cold
    assert tasks_on(sf, called) == []
    assert is_open(store, ignored)  # the control: no call, cold
