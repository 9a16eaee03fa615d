"""One sync cycle against the sandbox, through the real connectors and a real SQLite store."""

from __future__ import annotations

import datetime as dt
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from connectors.build import build_connectors
from connectors.config import load_settings
from connectors.records import WriteRecord
from mapping.validate import check_file
from sandbox.admin import SandboxClient
from sandbox.seed import SeedSizes
from sync_agent import state
from sync_agent.cli import app
from sync_agent.cycle import run_cycle
from sync_agent.store import Store, open_store
from sync_agent.tables import DeadLetter, LedgerEntry, Link, Run

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
MAPPING, _ = check_file(DEFAULT)
assert MAPPING is not None
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def connectors(box: SandboxClient, **hubspot: Any) -> tuple[Any, Any]:
    settings = load_settings(box.info.settings_file)
    hs = settings.hubspot.model_copy(update={"requests_per_ten_seconds": 0,
                                             "searches_per_second": 0, **hubspot})
    return build_connectors(settings.model_copy(update={"hubspot": hs}))


def fresh(make_sandbox: Any, tmp_path: Path) -> tuple[SandboxClient, Any, Any, Store]:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    sf, hs = connectors(box)
    return box, sf, hs, open_store(f"sqlite:///{tmp_path / 'state.db'}")


def next_second() -> None:
    time.sleep(1.05)  # Salesforce stamps to the second


def writes(box: SandboxClient) -> int:
    sf = box.requests("salesforce")["endpoints"]
    hs = box.requests("hubspot")["endpoints"]
    return (sum(n for k, n in sf.items() if k.startswith("salesforce.collections.")
                and not k.endswith("retrieve"))
            + sum(n for k, n in hs.items() if k.startswith("hubspot.batch.")
                  and not k.endswith("read")))


def test_cycles_link_create_and_then_go_quiet(make_sandbox: Any, tmp_path: Path) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    twins = sf.upsert("Lead", [WriteRecord(values={
        "LastName": f"Twin{i}", "Company": "T", "Email": "same.person@example.com"})
        for i in range(2)])
    first = run_cycle(store, MAPPING, sf, hs)
    assert first.linked > 0
    assert first.created["hubspot.contacts"] > 0
    assert first.gaps["duplicate_match"] > 0  # seeded leads sharing an email: never guessed
    with store.session() as session:
        links = session.scalar(select(func.count()).select_from(Link))
        dupes = {g.key: g.detail for g in state.open_gaps(session)
                 if g.kind == "duplicate_match"}
        assert state.find_link(session, "leads", sf_id=twins[0].id) is None
    assert links == first.linked
    assert dupes[twins[0].id]["salesforce_ids"] == sorted(t.id for t in twins)
    for _ in range(2):  # new records' ids flow back once; then nothing is left to do
        next_second()
        run_cycle(store, MAPPING, sf, hs)
    next_second()
    box.reset_requests()
    quiet = run_cycle(store, MAPPING, sf, hs)
    assert sum(quiet.written.values()) == 0  # our own writes are recognised, not echoed
    assert writes(box) == 0


def test_a_change_on_each_side_crosses_over(make_sandbox: Any, tmp_path: Path) -> None:
    # lenience: this test is about changes crossing over, not search lag
    _box, sf, hs, store = fresh(lambda **kw: make_sandbox(search_lag_seconds=0, **kw), tmp_path)
    for _ in range(3):
        run_cycle(store, MAPPING, sf, hs)
        next_second()
    with store.session() as session:
        link = session.scalars(select(Link).where(Link.pair == "leads")).first()
    assert link is not None
    sf.upsert("Lead", [WriteRecord(id=link.sf_id, values={"Title": "Head of Sync"})])
    hs.upsert("contacts", [WriteRecord(id=link.hs_id, values={"city": "Trondheim"})])
    next_second()
    report = run_cycle(store, MAPPING, sf, hs)
    assert report.written["hubspot.contacts"] >= 1
    assert report.written["salesforce.Lead"] >= 1
    assert hs.read_by_ids("contacts", [link.hs_id], ["jobtitle"])[0].values["jobtitle"] == (
        "Head of Sync")
    assert sf.read_by_ids("Lead", [link.sf_id], ["City"])[0].values["City"] == "Trondheim"
    with store.session() as session:
        fields = {(e.system, e.field, e.new, e.rule) for e in session.scalars(
            select(LedgerEntry).where(LedgerEntry.record_id.in_([link.sf_id, link.hs_id])))}
    assert ("hubspot", "jobtitle", "Head of Sync", "two_way") in fields
    assert ("salesforce", "City", "Trondheim", "two_way") in fields


def test_a_refused_record_is_a_dead_letter_and_the_rest_goes_on(make_sandbox: Any,
                                                                 tmp_path: Path) -> None:
    # lenience: this test is about dead letters, not search lag
    _, sf, hs, store = fresh(lambda **kw: make_sandbox(search_lag_seconds=0, **kw), tmp_path)
    # HubSpot takes this address; Salesforce refuses it (no underscore in a domain).
    bad, good = hs.upsert("contacts", [
        WriteRecord(values={"email": "odd@exa_mple.com", "lastname": "Odd",
                            "lifecyclestage": "marketingqualifiedlead"}),
        WriteRecord(values={"email": "fine.new@example.com", "lastname": "Fine",
                            "lifecyclestage": "marketingqualifiedlead"})])
    report = run_cycle(store, MAPPING, sf, hs)
    assert report.failed == 1
    with store.session() as session:
        letters = list(session.scalars(select(DeadLetter)))
        gaps = {(g.kind, g.key): g.detail for g in state.open_gaps(session)}
        assert state.find_link(session, "leads", hs_id=good.id) is not None
        assert state.find_link(session, "leads", hs_id=bad.id) is None
    assert [(d.system, d.object, d.error_code, d.field) for d in letters] == [
        ("salesforce", "Lead", "INVALID_EMAIL_ADDRESS", "Email")]
    assert "odd@exa_mple.com" in letters[0].error_message
    assert gaps[("sync_error", bad.id)]["code"] == "INVALID_EMAIL_ADDRESS"


def test_a_create_the_duplicate_rules_refuse_is_a_duplicate_match_gap(make_sandbox: Any,
                                                                       tmp_path: Path) -> None:
    # lenience: this test is about Salesforce's duplicate rules, not search lag
    box, sf, hs, store = fresh(lambda **kw: make_sandbox(search_lag_seconds=0, **kw), tmp_path)
    # The same person twice: a Salesforce Lead, and a HubSpot MQL with a new address but the
    # same name and phone, which the standard Lead matching rule takes for the Lead.
    lead = sf.upsert("Lead", [WriteRecord(values={
        "FirstName": "Dana", "LastName": "Scully", "Company": "FBI", "Phone": "+1 202-555-0147",
        "Email": "dana.scully@old.example.com"})])[0]
    contact = hs.upsert("contacts", [WriteRecord(values={
        "email": "dana.scully@new.example.com", "firstname": "Dana", "lastname": "Scully",
        "phone": "+1 202-555-0147", "lifecyclestage": "marketingqualifiedlead"})])[0]
    report = run_cycle(store, MAPPING, sf, hs)
    with store.session() as session:
        letters = list(session.scalars(select(DeadLetter)))
        gaps = {(g.kind, g.key): g.detail for g in state.open_gaps(session)}
        assert state.find_link(session, "leads", hs_id=contact.id) is None
    assert letters == []  # not a dead letter retried forever
    gap = gaps[("duplicate_match", contact.id)]
    assert gap["salesforce_ids"] == [lead.id]
    assert gap["code"] == "DUPLICATES_DETECTED"
    assert report.gaps["duplicate_match"] >= 1
    next_second()
    box.reset_requests()
    run_cycle(store, MAPPING, sf, hs)  # nothing changed: the refused create is not resent
    assert box.requests("salesforce")["endpoints"].get("salesforce.collections.create", 0) == 0
    # The mapping decides to save past the (alerting) standard rules:
    allow = MAPPING.model_copy(update={"salesforce": MAPPING.salesforce.model_copy(
        update={"duplicate_rules": "allow_save"})})
    hs.upsert("contacts", [WriteRecord(id=contact.id, values={"jobtitle": "Agent"})])
    next_second()
    run_cycle(store, allow, sf, hs)
    with store.session() as session:
        link = state.find_link(session, "leads", hs_id=contact.id)
        assert link is not None
        assert ("duplicate_match", contact.id) not in {
            (g.kind, g.key) for g in state.open_gaps(session)}
    assert link.sf_id != lead.id


def test_dry_run_prints_the_plan_and_writes_nothing(make_sandbox: Any, tmp_path: Path) -> None:
    box, _, _, _ = fresh(make_sandbox, tmp_path)
    db = f"sqlite:///{tmp_path / 'dry.db'}"
    box.reset_requests()
    result = CliRunner().invoke(app, ["sync", "once", "--dry-run", "--mapping", str(DEFAULT),
                                      "--env-file", str(box.info.settings_file), "--db", db],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith(("leads:",
                                                                           "contacts:"))]
    assert lines
    assert any("[two_way:" in line or "[always_salesforce:" in line for line in lines)
    assert "nothing written" in result.output
    assert writes(box) == 0
    store = open_store(db)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Link)) == 0
        assert session.scalar(select(func.count()).select_from(Run)) == 0
        assert state.get_watermark(session, "salesforce", "Lead") is None


def test_lead_conversion_moves_the_link_to_the_contact(make_sandbox: Any,
                                                       tmp_path: Path) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    lead = sf.upsert("Lead", [WriteRecord(values={
        "LastName": "Convert", "Company": "Conv Co", "Email": "convert.me@example.com",
        "Status": "Working"})])[0].id
    run_cycle(store, MAPPING, sf, hs)
    with store.session() as session:
        link = state.find_link(session, "leads", sf_id=lead)
        assert link is not None
        hs_id = link.hs_id
    next_second()
    converted = box.admin("salesforce", "POST", "/salesforce/convertLead", {"leadId": lead})
    next_second()
    report = run_cycle(store, MAPPING, sf, hs)
    assert report.converted == 1
    with store.session() as session:
        assert state.find_link(session, "leads", sf_id=lead) is None
        moved = state.find_link(session, "contacts", sf_id=converted["contactId"])
        assert moved is not None
        assert moved.hs_id == hs_id  # the same HubSpot contact: no duplicate was created
    contacts = hs.find_by_emails("contacts", ["convert.me@example.com"], ["email"])
    assert [c.id for c in contacts] == [hs_id]
    next_second()
    sf.upsert("Contact", [WriteRecord(id=converted["contactId"], values={"Title": "Customer"})])
    next_second()
    run_cycle(store, MAPPING, sf, hs)
    assert hs.read_by_ids("contacts", [hs_id], ["jobtitle"])[0].values["jobtitle"] == "Customer"


def test_gaps_and_status_show_what_the_cycles_found(make_sandbox: Any, tmp_path: Path) -> None:
    box, _, _, _ = fresh(make_sandbox, tmp_path)
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    common = ["--mapping", str(DEFAULT), "--env-file", str(box.info.settings_file), "--db", db]
    assert runner.invoke(app, ["sync", "once", *common]).exit_code == 0
    gaps = runner.invoke(app, ["gaps", "--db", db], terminal_width=200)
    assert gaps.exit_code == 0
    store = open_store(db)
    with store.session() as session:
        open_now = state.open_gaps(session)
    kinds = {g.kind for g in open_now}
    assert kinds
    for kind in kinds:
        assert kind in gaps.output
    status = runner.invoke(app, ["status", "--db", db], terminal_width=200)
    assert status.exit_code == 0
    assert "recent runs" in status.output
    assert "salesforce │ Lead" in status.output
    assert "dead letters waiting for retry: 0" in status.output
    used = box.admin("salesforce", "GET", "/salesforce/counts")
    assert "Salesforce API requests today:" in status.output
    assert "of 1,000,000" in status.output, used


def test_merges_move_links_and_deletes_leave_gaps(make_sandbox: Any, tmp_path: Path) -> None:
    # lenience: this test is about merges and deletes, not search lag
    box, sf, hs, store = fresh(lambda **kw: make_sandbox(search_lag_seconds=0, **kw), tmp_path)
    sf, hs = connectors(box, archive_poll_minutes=0)  # the archive read on every cycle
    a, b, c = (r.id for r in sf.upsert("Lead", [WriteRecord(values={
        "LastName": f"M{i}", "Company": "M", "Email": f"merge.{i}@example.com"})
        for i in range(3)]))
    run_cycle(store, MAPPING, sf, hs)
    with store.session() as session:
        link_b = state.find_link(session, "leads", sf_id=b)
        link_c = state.find_link(session, "leads", sf_id=c)
        assert link_b is not None
        assert link_c is not None
        hs_b, hs_c = link_b.hs_id, link_c.hs_id
        # a's link goes away first, so that b can hand its link to the survivor a
        link_a = state.find_link(session, "leads", sf_id=a)
        assert link_a is not None
        state.delete_link(session, link_a)
        session.commit()
    next_second()
    box.admin("salesforce", "POST", "/salesforce/merge",
              {"object": "Lead", "masterId": a, "mergedIds": [b]})
    sf.delete("Lead", [c])
    hs_archived = hs.upsert("contacts", [WriteRecord(values={
        "email": "archived.one@example.com", "lastname": "Arch",
        "lifecyclestage": "marketingqualifiedlead"})])[0].id
    next_second()
    run_cycle(store, MAPPING, sf, hs)
    with store.session() as session:
        archived_link = state.find_link(session, "leads", hs_id=hs_archived)
        assert archived_link is not None
        archived_sf = archived_link.sf_id
    hs.delete("contacts", [hs_archived])
    next_second()
    report = run_cycle(store, MAPPING, sf, hs)
    with store.session() as session:
        survivor = state.find_link(session, "leads", sf_id=a)
        assert survivor is not None
        assert survivor.hs_id == hs_b  # b's HubSpot contact now follows the survivor
        assert state.find_link(session, "leads", sf_id=c) is None
        assert state.find_link(session, "leads", hs_id=hs_archived) is None
        gaps = {(g.kind, g.key): g.detail for g in state.open_gaps(session)}
    assert report.merged + report.unlinked >= 1
    assert "deleted" in gaps[("missing_in_salesforce", hs_c)]["reason"]
    assert ("missing_in_hubspot", archived_sf) in gaps


def test_sync_once_waits_for_a_running_agent(make_sandbox: Any, tmp_path: Path) -> None:
    box, _, _, _ = fresh(make_sandbox, tmp_path)
    db = f"sqlite:///{tmp_path / 'locked.db'}"
    store = open_store(db)
    assert state.acquire_lock(store, "cycle", "the-service", dt.timedelta(minutes=5))
    common = ["--mapping", str(DEFAULT), "--env-file", str(box.info.settings_file), "--db", db]
    busy = CliRunner().invoke(app, ["sync", "once", *common])
    assert busy.exit_code == 3
    assert "another agent is running a cycle" in busy.output
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 0  # nothing ran
    state.release_lock(store, "cycle", "the-service")
    assert CliRunner().invoke(app, ["sync", "once", *common]).exit_code == 0


def test_a_killed_agents_lock_is_taken_over(make_sandbox: Any, tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    box, _, _, _ = fresh(make_sandbox, tmp_path)
    db = f"sqlite:///{tmp_path / 'stale.db'}"
    store = open_store(db)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = f"{socket.gethostname()}:{gone.stdout.strip()}"  # a process that has exited
    assert state.acquire_lock(store, "cycle", dead, dt.timedelta(minutes=30))
    common = ["--mapping", str(DEFAULT), "--env-file", str(box.info.settings_file), "--db", db]
    result = CliRunner().invoke(app, ["sync", "once", *common])
    assert result.exit_code == 0, result.output


def test_a_cycle_that_fails_mid_write_is_recorded_and_the_next_one_recovers(
        make_sandbox: Any, tmp_path: Path) -> None:
    import pytest

    from connectors.errors import ConnectorError

    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    box.faults("hubspot", "hubspot.batch.*=500@1.0")  # HubSpot writes fail, retries exhausted
    with pytest.raises(ConnectorError):
        run_cycle(store, MAPPING, sf, hs)
    with store.session() as session:
        failed = session.scalars(select(Run)).one()
        assert failed.status == "failed"
        assert failed.error
        assert state.get_watermark(session, "salesforce", "Lead") is None  # will read again
    box.faults("hubspot", "")
    recovered = run_cycle(store, MAPPING, sf, hs)
    assert recovered.created["hubspot.contacts"] > 0
    assert recovered.failed == 0


def test_a_first_sync_reads_both_systems_side_by_side(make_sandbox: Any,
                                                      tmp_path: Path) -> None:
    """A first sync's HubSpot listing (minutes of rate-limited pages in a large portal) runs
    beside the Salesforce reads, not after them: while Salesforce's first Composite read is
    held for seconds, HubSpot's pages are already being listed. The cycle then ends as one
    read in turn would: every record read and linked, nothing left behind."""
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    box.faults("salesforce", "salesforce.composite=slow:4#1")
    done: list[Any] = []
    cycle = threading.Thread(target=lambda: done.append(run_cycle(store, MAPPING, sf, hs)))
    cycle.start()
    listed_while_held = False
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline and not listed_while_held:
        time.sleep(0.1)
        composite = box.requests("salesforce")["endpoints"].get("salesforce.composite", 0)
        listed = box.requests("hubspot")["endpoints"].get("hubspot.objects.list", 0)
        listed_while_held = composite == 0 and listed > 0
    cycle.join(timeout=120)
    assert listed_while_held
    assert done
    report = done[0]
    assert report.read["hubspot.contacts"] > 0
    assert report.read["salesforce.Lead"] > 0
    assert report.linked > 0


def test_a_first_sync_whose_hubspot_read_fails_beside_salesforce_fails_whole(
        make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The HubSpot listing runs in its own thread during a first sync: its failure is the
    cycle's failure, raised once the Salesforce reads beside it are done, recorded on the
    run, with nothing written, no watermark moved and no spool left behind."""
    box, _, _, store = fresh(make_sandbox, tmp_path)
    sf, hs = connectors(box, retry_attempts=1)
    box.faults("hubspot", "hubspot.objects.list=503#1000")
    (tmp_path / "temp").mkdir()  # where spools go: this test's own (others run beside it)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    with pytest.raises(Exception, match=r"503"):
        run_cycle(store, MAPPING, sf, hs)
    assert not list((tmp_path / "temp").glob("stagesync-spool-*"))
    assert writes(box) == 0
    with store.session() as session:
        runs = list(session.scalars(select(Run)))
        assert [r.status for r in runs] == ["failed"]
        assert state.get_watermark(session, "salesforce", "Lead") is None
        assert state.get_watermark(session, "hubspot", "contacts") is None


def test_a_first_sync_whose_salesforce_read_fails_stops_the_hubspot_listing_beside_it(
        make_sandbox: Any, tmp_path: Path) -> None:
    """Salesforce refuses the first sync's read at once; the HubSpot listing beside it (half
    a second a page here, minutes in a large portal) stops after the page in hand instead of
    listing every page before the cycle may fail."""
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       sizes=SeedSizes(hubspot_only_contacts=1500))  # 20 pages and more
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    _, hs = connectors(box)
    sf = build_connectors(load_settings(box.info.settings_file).model_copy(update={
        "salesforce": load_settings(box.info.settings_file).salesforce.model_copy(
            update={"retry_attempts": 1})}))[0]
    box.faults("salesforce", "salesforce.composite=503#1000")
    box.faults("hubspot", "hubspot.objects.list=slow:0.5@1.0")
    started = time.monotonic()
    with pytest.raises(Exception, match=r"503"):
        run_cycle(store, MAPPING, sf, hs)
    listed = box.requests("hubspot")["endpoints"].get("hubspot.objects.list", 0)
    assert listed <= 2  # the page in hand, not the twenty the portal has
    assert time.monotonic() - started < 5
