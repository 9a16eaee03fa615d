"""HubSpot calls, meetings and logged emails written to Salesforce as completed Tasks on the
linked Lead or Contact, once each (the mapping's ``activities``): against the sandbox through
the real clients, SQLite state."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from simple_salesforce.format import format_soql
from sqlalchemy import select
from typer.testing import CliRunner

from connectors.records import WriteRecord
from mapping.diff import diff
from mapping.live import check_live
from mapping.loader import load_text
from mapping.model import ActivityTasks, MappingFile
from mapping.validate import check_text
from sandbox.admin import SandboxClient
from sync_agent import state
from sync_agent.cli import app
from sync_agent.cycle import run_cycle
from sync_agent.tables import ActivityTask, DeadLetter, LedgerEntry
from tests.conftest import salesforce_client
from tests.test_cycle import MAPPING, fresh
from tests.test_cycle_stages import hs_of, new_lead

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
WEEK_AGO = (dt.datetime.now(dt.UTC) - dt.timedelta(days=7)).date()
ON = MAPPING.model_copy(update={"activities": ActivityTasks(enabled=True, since=WEEK_AGO)})
ASSOCIATION = {"calls": 194, "emails": 198, "meetings": 200}  # engagement -> contact
LAG = 3.5  # past the sandbox's search index lag


def log(hs: Any, kind: str, contact: str, **properties: Any) -> str:
    """A rep logs an engagement on a contact in HubSpot."""
    api = getattr(hs.client.crm.objects, kind).basic_api
    made = api.create(_preload_content=False, simple_public_object_input_for_create={
        "properties": {"hs_timestamp": _ms(dt.datetime.now(dt.UTC) - dt.timedelta(days=1)),
                       **properties},
        "associations": [{"to": {"id": contact}, "types": [
            {"associationCategory": "HUBSPOT_DEFINED",
             "associationTypeId": ASSOCIATION[kind]}]}]})
    return str(json.loads(made.data)["id"])  # HubSpot answers 200, which the client drops


def _ms(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def tasks_of(box: SandboxClient, who: str) -> list[dict[str, Any]]:
    rows = salesforce_client(box).query_all(format_soql(
        "SELECT Id, WhoId, Subject, Status, ActivityDate, OwnerId, TaskSubtype, Description, "
        "HubSpot_Activity_Id__c FROM Task WHERE WhoId = {}", who))["records"]
    return sorted(rows, key=lambda r: str(r["HubSpot_Activity_Id__c"]))


def linked_lead(box: SandboxClient, sf: Any, hs: Any, store: Any, email: str,
                mapping: MappingFile = ON) -> tuple[str, str]:
    """A Salesforce Lead and the HubSpot contact the first cycle links it to."""
    lead = new_lead(sf, email, "Working")
    run_cycle(store, mapping, sf, hs)
    return lead, hs_of(store, lead)


def shared_owner(sf: Any, hs: Any) -> tuple[str, str]:
    """(HubSpot owner id, Salesforce user id) of one person both systems know."""
    users = {u.email.lower(): u.id for u in sf.people() if u.active and u.email}
    owner = next(o for o in hs.people() if o.active and o.email
                 and o.email.lower() in users)
    return owner.id, users[owner.email.lower()]


# -- once each ---------------------------------------------------------------------------------
def test_a_call_a_meeting_and_a_logged_email_become_three_completed_tasks(
        make_sandbox: Any, tmp_path: Path) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    lead, contact = linked_lead(box, sf, hs, store, "rep.history@example.com")
    owner, user = shared_owner(sf, hs)
    call = log(hs, "calls", contact, hs_call_title="Intro call", hs_call_body="<p>Booked a "
               "demo</p>", hs_call_duration="90000", hs_call_direction="OUTBOUND",
               hs_call_status="COMPLETED", hubspot_owner_id=owner)
    meeting = log(hs, "meetings", contact, hs_meeting_title="Demo", hubspot_owner_id=owner,
                  hs_meeting_start_time=_ms(dt.datetime.now(dt.UTC) - dt.timedelta(days=1)),
                  hs_meeting_outcome="COMPLETED")
    email = log(hs, "emails", contact, hs_email_subject="Your quote",
                hs_email_text="Attached.", hs_email_direction="EMAIL",
                hs_email_status="SENT", hubspot_owner_id=owner)
    time.sleep(LAG)
    report = run_cycle(store, ON, sf, hs)
    assert report.written["salesforce.Task"] == 3
    tasks = tasks_of(box, lead)
    assert [t["HubSpot_Activity_Id__c"] for t in tasks] == sorted(
        [f"calls:{call}", f"emails:{email}", f"meetings:{meeting}"])
    by_kind = {t["HubSpot_Activity_Id__c"].split(":")[0]: t for t in tasks}
    assert by_kind["calls"]["Subject"] == "Call: Intro call"
    assert by_kind["calls"]["Description"] == "Booked a demo"
    assert by_kind["calls"]["TaskSubtype"] == "Call"
    assert by_kind["emails"]["Subject"] == "Email: Your quote"
    assert by_kind["emails"]["TaskSubtype"] == "Email"
    assert by_kind["meetings"]["Subject"] == "Meeting: Demo"
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    for task in tasks:
        assert task["Status"] == "Completed"
        assert task["WhoId"] == lead
        assert task["OwnerId"] == user
        assert task["ActivityDate"] == yesterday
    with store.session() as session:
        rules = set(session.scalars(select(LedgerEntry.rule).where(
            LedgerEntry.object == "Task", LedgerEntry.record_id.in_([t["Id"] for t in tasks]))))
    assert rules == {"activity:calls", "activity:meetings", "activity:emails"}

    again = run_cycle(store, ON, sf, hs)  # nothing changed: nothing written
    assert again.written["salesforce.Task"] == 0
    assert len(tasks_of(box, lead)) == 3

    hs.client.crm.objects.calls.basic_api.update(call, simple_public_object_input={
        "properties": {"hs_call_title": "Intro call (rescheduled)"}})
    time.sleep(LAG)
    edited = run_cycle(store, ON, sf, hs)
    assert edited.written["salesforce.Task"] == 1
    assert edited.created["salesforce.Task"] == 0  # its Task updated, none added
    tasks = tasks_of(box, lead)
    assert len(tasks) == 3
    assert {t["Subject"] for t in tasks} >= {"Call: Intro call (rescheduled)"}


def test_a_crash_after_the_task_write_leaves_one_task_per_engagement(
        make_sandbox: Any, tmp_path: Path) -> None:
    """Killed (``kill -9`` at a failpoint) after the Tasks are written and before anything
    is committed: the next cycle reads the same engagements again and finds their Tasks by
    the external id (the create-only TaskSubtype is then left out)."""
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    mapping_file = tmp_path / "stagesync.yaml"
    mapping_file.write_text(DEFAULT.read_text().replace(
        "# activities:\n#   enabled: true", f"activities:\n  enabled: true\n  since: {WEEK_AGO}"))
    lead, contact = linked_lead(box, sf, hs, store, "crash.history@example.com")
    made = [log(hs, "calls", contact, hs_call_title="Call before the crash"),
            log(hs, "emails", contact, hs_email_subject="Mail before the crash",
                hs_email_direction="EMAIL")]
    time.sleep(LAG)
    env = {**os.environ, "STAGESYNC_FAILPOINT": "cycle.write.activities",
           "STAGESYNC_HUBSPOT__REQUESTS_PER_TEN_SECONDS": "0",
           "STAGESYNC_HUBSPOT__SEARCHES_PER_SECOND": "0"}
    killed = subprocess.run(
        [sys.executable, "-c", "from sync_agent.cli import main; main()", "sync", "once",
         "--mapping", str(mapping_file), "--env-file", str(box.info.settings_file),
         "--db", f"sqlite:///{tmp_path / 'state.db'}"],
        env=env, capture_output=True, text=True, timeout=300, check=False)
    assert killed.returncode == 137, killed.stdout + killed.stderr
    assert len(tasks_of(box, lead)) == 2  # written, never recorded
    with store.session() as session:
        assert session.scalars(select(ActivityTask)).first() is None
    report = run_cycle(store, ON, sf, hs)
    assert report.written["salesforce.Task"] == 2  # the same two, found again
    assert report.created["salesforce.Task"] == 0
    tasks = tasks_of(box, lead)
    assert sorted(t["HubSpot_Activity_Id__c"] for t in tasks) == sorted(
        [f"calls:{made[0]}", f"emails:{made[1]}"])
    assert {t["TaskSubtype"] for t in tasks} == {"Call", "Email"}  # kept from the create
    assert run_cycle(store, ON, sf, hs).written["salesforce.Task"] == 0


# -- what is written, and when --------------------------------------------------------------
def test_an_incoming_email_is_not_written_when_the_setting_says_logged_only(
        make_sandbox: Any, tmp_path: Path) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    lead, contact = linked_lead(box, sf, hs, store, "logged.only@example.com")
    logged = log(hs, "emails", contact, hs_email_subject="Proposal",
                 hs_email_direction="EMAIL", hs_email_status="SENT")
    log(hs, "emails", contact, hs_email_subject="Re: Proposal",
        hs_email_direction="INCOMING_EMAIL")
    log(hs, "emails", contact, hs_email_subject="Bounced", hs_email_direction="EMAIL",
        hs_email_status="BOUNCED")
    time.sleep(LAG)
    run_cycle(store, ON, sf, hs)
    assert [t["HubSpot_Activity_Id__c"] for t in tasks_of(box, lead)] == [f"emails:{logged}"]


def test_an_engagement_on_an_unlinked_contact_is_written_once_the_contact_links(
        make_sandbox: Any, tmp_path: Path) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    run_cycle(store, ON, sf, hs)
    contact = hs.upsert("contacts", [WriteRecord(values={
        "email": "links.later@example.com", "lastname": "Later",
        "lifecyclestage": "lead"})])[0].id  # not an MQL: no Lead is created for it
    call = log(hs, "calls", contact, hs_call_title="Cold call")
    time.sleep(LAG)
    waiting = run_cycle(store, ON, sf, hs)
    assert waiting.written["salesforce.Task"] == 0
    with store.session() as session:
        row = session.get(ActivityTask, f"calls:{call}")
        assert row is not None
        assert row.waiting_since is not None
        assert row.contacts == [contact]
    assert run_cycle(store, ON, sf, hs).written["salesforce.Task"] == 0  # still waiting
    lead = new_lead(sf, "links.later@example.com", "Working")  # the rep adds the Lead
    linked = run_cycle(store, ON, sf, hs)
    assert hs_of(store, lead) == contact
    assert linked.written["salesforce.Task"] == 1
    assert [t["HubSpot_Activity_Id__c"] for t in tasks_of(box, lead)] == [f"calls:{call}"]
    with store.session() as session:
        row = session.get(ActivityTask, f"calls:{call}")
        assert row is not None
        assert row.waiting_since is None
        assert row.task_id == tasks_of(box, lead)[0]["Id"]


def test_a_refused_task_is_a_dead_letter_and_the_others_are_written(
        make_sandbox: Any, tmp_path: Path) -> None:
    """A Lead purged in Salesforce (past the recycle bin, so no delete is ever read) keeps
    its link: its Task is refused, with Salesforce's message kept, and the rest go on."""
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    gone, gone_contact = linked_lead(box, sf, hs, store, "purged.lead@example.com")
    kept, kept_contact = linked_lead(box, sf, hs, store, "kept.lead@example.com")
    salesforce_client(box).Lead.delete(gone)
    box.admin("salesforce", "POST", "/salesforce/purge", {"ids": [gone]})
    refused = log(hs, "calls", gone_contact, hs_call_title="To a purged lead")
    written = log(hs, "calls", kept_contact, hs_call_title="To a kept lead")
    time.sleep(LAG)
    report = run_cycle(store, ON, sf, hs)
    assert report.written["salesforce.Task"] == 1
    assert [t["HubSpot_Activity_Id__c"] for t in tasks_of(box, kept)] == [f"calls:{written}"]
    with store.session() as session:
        letters = list(session.scalars(select(DeadLetter).where(DeadLetter.object == "Task")))
        assert len(letters) == 1
        assert letters[0].payload["match"] == ["HubSpot_Activity_Id__c", f"calls:{refused}"]
        assert letters[0].error_message
        gaps = {(g.kind, g.key) for g in state.open_gaps(session)}
    assert ("sync_error", f"calls:{refused}") in gaps


# -- cost follows changes ------------------------------------------------------------------------
def _quiet(box: SandboxClient, store: Any, mapping: MappingFile, sf: Any, hs: Any
           ) -> tuple[dict[str, int], dict[str, int]]:
    """One quiet cycle's HubSpot requests, as the sandbox counted them, and the connector's
    calls per endpoint."""
    box.reset_requests()
    report = run_cycle(store, mapping, sf, hs)
    assert report.written["salesforce.Task"] == 0
    return dict(box.requests("hubspot")["endpoints"]), report.calls


def test_the_setting_off_costs_nothing_and_a_quiet_cycle_one_search_a_type(
        make_sandbox: Any, tmp_path: Path) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    lead, contact = linked_lead(box, sf, hs, store, "quiet.cost@example.com")
    for n in range(5):
        log(hs, "calls", contact, hs_call_title=f"Call {n}")
        log(hs, "emails", contact, hs_email_subject=f"Mail {n}", hs_email_direction="EMAIL")
    time.sleep(LAG)
    assert run_cycle(store, ON, sf, hs).written["salesforce.Task"] == 10
    for _ in range(2):  # the contacts the engagements moved, and the Leads, settle
        time.sleep(1.1)
        run_cycle(store, ON, sf, hs)
    off_counts, off_calls = _quiet(box, store, MAPPING, sf, hs)
    assert not [k for k in off_calls if k.split(".")[0] in ("calls", "meetings", "emails")]
    on_counts, on_calls = _quiet(box, store, ON, sf, hs)
    assert {k: v for k, v in on_calls.items() if k.split(".")[0] in (
        "calls", "meetings", "emails")} == {"calls.search": 1, "meetings.search": 1,
                                             "emails.search": 1}
    searches = "hubspot.objects.search"
    assert on_counts.get(searches, 0) == off_counts.get(searches, 0) + 3
    assert {k: v for k, v in on_counts.items() if k != searches} == {
        k: v for k, v in off_counts.items() if k != searches}
    assert len(tasks_of(box, lead)) == 10


# -- the setting: validation, live validation, diff ------------------------------------------
def _with_activities(block: str) -> str:
    return DEFAULT.read_text().replace("# activities:\n#   enabled: true", block)


def test_offline_validation_names_bad_pairs_and_subjects() -> None:
    text = _with_activities("activities:\n  enabled: true\n  pairs: [lead, accounts]")
    mapping, problems = check_text(text.replace("version: 1", "version: 2"), "stagesync.yaml")
    assert mapping is None
    found = {p.key: p for p in problems}
    assert "did you mean 'leads'" in found["activities.pairs.0"].fix
    assert "syncs Account with companies" in found["activities.pairs.1"].message
    assert found["activities.pairs.1"].column > found["activities.pairs.0"].column > 0
    text = _with_activities("activities:\n  enabled: true\n  subject: \"{type} - {titel}\"\n"
                            "  types: [calls, notes]\n  wait_days: 0")
    mapping, problems = check_text(text, "stagesync.yaml")
    assert mapping is None
    found = {p.key: p for p in problems}
    assert "{titel}" in found["activities.subject"].message
    assert "activities.types.1" in found
    assert "activities.wait_days" in found
    assert all(p.line > 0 for p in found.values())
    off = _with_activities("activities:\n  enabled: false\n  pairs: [nothing_like_it]")
    assert check_text(off)[1] == []  # off: its pairs are not looked at


def test_live_validation_checks_the_task_fields_it_writes(make_sandbox: Any,
                                                          tmp_path: Path) -> None:
    _, sf, hs, _ = fresh(make_sandbox, tmp_path)
    good = _with_activities("activities:\n  enabled: true")
    mapping, problems = check_text(good)
    assert mapping is not None, problems
    assert check_live(mapping, load_text(good, "m.yaml"), sf.describe, hs.describe) == []
    bad = _with_activities("activities:\n  enabled: true\n  external_id_field: "
                           "HubSpot_Actvity_Id__c\n  status: Done")
    mapping, _ = check_text(bad)
    assert mapping is not None
    live = {p.key: p for p in check_live(mapping, load_text(bad, "m.yaml"), sf.describe,
                                         hs.describe)}
    assert "HubSpot_Activity_Id__c" in live["activities.external_id_field"].fix
    assert "no value 'Done'" in live["activities.status"].message
    plain = _with_activities("activities:\n  enabled: true\n  external_id_field: Subject")
    mapping, _ = check_text(plain)
    assert mapping is not None
    live = {p.key: p for p in check_live(mapping, load_text(plain, "m.yaml"), sf.describe,
                                         hs.describe)}
    assert "not a unique external id" in live["activities.external_id_field"].message


def test_mapping_diff_describes_the_activities_setting(tmp_path: Path) -> None:
    on = ON.model_copy(update={"activities": ON.activities.model_copy(
        update={"since": None})})
    assert diff(MAPPING, on) == [
        "+ activities: HubSpot calls, meetings, emails on the contacts of leads, contacts "
        "written to Salesforce as completed Tasks (upsert on Task.HubSpot_Activity_Id__c), "
        "from the first cycle after the change"]
    fewer = on.model_copy(update={"activities": on.activities.model_copy(
        update={"types": ["calls"]})})
    assert diff(on, fewer) == ["~ activities.types: [calls, meetings, emails] → [calls]"]
    assert diff(on, MAPPING) == [
        "- activities: no longer written to Salesforce (the Tasks written stay)"]
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(DEFAULT.read_text())
    new.write_text(_with_activities("activities:\n  enabled: true"))
    result = CliRunner().invoke(app, ["mapping", "diff", str(old), str(new)],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "+ activities: HubSpot calls, meetings, emails" in result.output
