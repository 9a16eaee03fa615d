"""Backfills (Bulk API 2.0, resumable), dead-letter retry and the report, through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import select
from typer.testing import CliRunner

from connectors.records import WriteRecord
from sync_agent import state
from sync_agent.backfill import run_backfill
from sync_agent.cli import app
from sync_agent.cycle import run_cycle
from sync_agent.store import open_store
from sync_agent.tables import Backfill, DeadLetter, Link, Run
from tests.test_cycle import DEFAULT, MAPPING, connectors, fresh, next_second

runner = CliRunner()


def cli(box: Any, db: Path, *args: str) -> Any:
    return runner.invoke(app, [*args, "--mapping", str(DEFAULT), "--env-file",
                               str(box.info.settings_file), "--db", f"sqlite:///{db}"])


def companies_by_account(hs: Any) -> Counter[str]:
    ids = list(hs.list_ids("companies"))
    return Counter(str(r.values.get("salesforceaccountid"))
                   for r in hs.read_by_ids("companies", ids, ["salesforceaccountid"])
                   if r.values.get("salesforceaccountid"))


def test_backfill_brings_every_account_across_once(make_sandbox: Any, tmp_path: Path) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    sf, hs = connectors(box)
    db = tmp_path / "state.db"
    result = cli(box, db, "backfill", "--object", "Account", "--page-size", "5")
    assert result.exit_code == 0, result.output
    accounts = set(sf.list_ids("Account"))
    assert "12/12" in result.output  # the progress bar's count
    assert set(companies_by_account(hs)) == accounts
    assert box.calls("salesforce", "salesforce.bulk2") > 0
    with open_store(f"sqlite:///{db}").session() as session:
        linked = {link.sf_id for link in session.scalars(select(Link).where(
            Link.pair == "accounts"))}
    assert linked == accounts
    # A second store (the state lost): the companies are found by the id they carry, by a
    # search, which shows a record only once HubSpot's index has caught up with it
    time.sleep(box.server.config.search_lag_seconds + 0.5 if box.server else 3.5)
    again = cli(box, tmp_path / "other.db", "backfill", "--object", "Account")
    assert again.exit_code == 0, again.output
    assert set(companies_by_account(hs).values()) == {1}
    assert "created 0" in again.output


def test_backfill_refuses_an_object_no_pair_syncs(make_sandbox: Any, tmp_path: Path) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    result = cli(box, tmp_path / "s.db", "backfill", "--object", "Campaign")
    assert result.exit_code == 1
    assert "no object pair syncs Salesforce 'Campaign'" in result.output
    bad = cli(box, tmp_path / "s.db", "backfill", "--object", "Lead", "--since", "last week")
    assert bad.exit_code == 2
    assert "is not a date" in bad.output


def test_a_killed_backfill_resumes_where_it_stopped(make_sandbox: Any, tmp_path: Path) -> None:
    # HubSpot answers slowly, so a real SIGKILL lands mid-run
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       faults="hubspot.batch.*=slow:0.3@1.0")
    sf, hs = connectors(box)
    db = tmp_path / "state.db"
    env = {**os.environ, "STAGESYNC_HUBSPOT__REQUESTS_PER_TEN_SECONDS": "0",
           "STAGESYNC_HUBSPOT__SEARCHES_PER_SECOND": "0"}
    process = subprocess.Popen(
        [sys.executable, "-c", "from sync_agent.cli import main; main()", "backfill",
         "--object", "Account", "--page-size", "2", "--mapping", str(DEFAULT),
         "--env-file", str(box.info.settings_file), "--db", f"sqlite:///{db}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = open_store(f"sqlite:///{db}")
    done = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and done < 4:
        time.sleep(0.1)
        with store.session() as session:
            row = session.scalars(select(Backfill)).first()
            done = row.done if row is not None else 0
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert 4 <= done < 12  # killed part-way
    with store.session() as session:
        row = session.scalars(select(Backfill)).one()
        assert row.status == "running"
        job, committed = row.job_id, row.done
    box.faults("hubspot", "")
    settings_sf, settings_hs = connectors(box)
    # The killed page's creates are held until search can show them: a short lookback
    # (still longer than the sandbox's search lag) keeps the wait short.
    settings_hs.settings = settings_hs.settings.model_copy(update={
        "search_lookback_seconds": 5.0})
    result = run_backfill(store, MAPPING, settings_sf, settings_hs, "Account", page_size=2)
    assert result.resumed
    assert result.job_id == job  # the same Bulk API job's results, not a new extract
    assert result.pages == (12 - committed + 1) // 2  # only the pages not yet applied
    assert result.done == 12
    counts = companies_by_account(hs)
    assert set(counts) == set(sf.list_ids("Account"))
    assert set(counts.values()) == {1}  # nothing duplicated by the page the kill cut short


def test_retry_resyncs_a_refused_record_once_it_is_fixed(make_sandbox: Any,
                                                         tmp_path: Path) -> None:
    # lenience: this test is about dead-letter retry, not search lag
    box, sf, hs, store = fresh(lambda **kw: make_sandbox(search_lag_seconds=0, **kw), tmp_path)
    bad = hs.upsert("contacts", [WriteRecord(values={
        "email": "retry.me@exa_mple.com", "lastname": "Retry",
        "lifecyclestage": "marketingqualifiedlead"})])[0]
    run_cycle(store, MAPPING, sf, hs)
    with store.session() as session:
        letter = session.scalars(select(DeadLetter)).one()
        assert letter.resolved_at is None
    still = cli(box, tmp_path / "state.db", "retry", "--all")
    assert still.exit_code == 1  # refused again: the address is still invalid
    assert "1 refused again" in still.output
    with store.session() as session:
        letter = session.scalars(select(DeadLetter)).one()  # the same letter, backed off
        assert letter.attempts == 2
    hs.upsert("contacts", [WriteRecord(id=bad.id, values={"email": "retry.me@example.com"})])
    fixed = cli(box, tmp_path / "state.db", "retry", "--all")
    assert fixed.exit_code == 0, fixed.output
    assert "1 resolved" in fixed.output
    with store.session() as session:
        letter = session.scalars(select(DeadLetter)).one()
        assert letter.resolved_at is not None
        link = state.find_link(session, "leads", hs_id=bad.id)
        assert link is not None
        gaps = {(g.kind, g.key) for g in state.open_gaps(session)}
    assert ("sync_error", bad.id) not in gaps
    lead = sf.read_by_ids("Lead", [link.sf_id], ["Email", "Status"])[0].values
    assert lead["Email"] == "retry.me@example.com"


def test_report_shows_the_funnel_sla_and_writes_html(make_sandbox: Any, tmp_path: Path) -> None:
    _, sf, hs, store = fresh(make_sandbox, tmp_path)
    lead = sf.upsert("Lead", [WriteRecord(values={
        "LastName": "Funnel", "Company": "F", "Email": "moves.on@example.com",
        "Status": "New"})])[0].id
    run_cycle(store, MAPPING, sf, hs)
    sf.upsert("Lead", [WriteRecord(id=lead, values={"Status": "Working"})])  # the next stage
    next_second()
    run_cycle(store, MAPPING, sf, hs)
    page = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--mapping", str(DEFAULT), "--db",
                                 f"sqlite:///{tmp_path / 'state.db'}", "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert "funnel: lead_lifecycle" in result.output
    assert "SLA mql_follow_up: compliance" in result.output
    text = page.read_text()
    assert text.count("<svg") >= 3
    with store.session() as session:
        from sync_agent.report import build_report

        found = build_report(session, MAPPING)
    lifecycle = next(f for f in found.funnels if f.stage_map == "lead_lifecycle")
    total_sf = sum(r.counts["salesforce"] for r in lifecycle.rows) + sum(
        lifecycle.unmapped["salesforce"].values())
    assert total_sf == len(set(sf.list_ids("Lead")))  # every lead counted once, at one stage
    moved = [r for r in lifecycle.rows if r.conversion["salesforce"]]
    assert moved  # the lead that moved on shows as conversion


def test_each_backfill_page_run_counts_its_own_writes(make_sandbox: Any, tmp_path: Path) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    db = tmp_path / "state.db"
    result = cli(box, db, "backfill", "--object", "Account", "--page-size", "5")
    assert result.exit_code == 0, result.output
    written = int(result.output.split("written ")[1].split(",")[0])
    assert written >= 12  # a company created for each of the 12 accounts
    with open_store(f"sqlite:///{db}").session() as session:
        pages = [r for r in session.scalars(select(Run).order_by(Run.id))
                 if r.kind == "backfill"]
    assert [p.counts["read"] for p in pages] == [5, 5, 2]
    per_page = [sum(p.counts["written"].values()) for p in pages]
    assert sum(per_page) == written  # not a running total (that summed to 5 + 10 + 12)
    assert all(0 < n <= 2 * p.counts["read"] for n, p in zip(per_page, pages, strict=True))
    status = runner.invoke(app, ["status", "--db", f"sqlite:///{db}", "--json"])
    assert status.exit_code == 0, status.output
    shown = sorted(r["written"] for r in json.loads(status.output)["runs"]
                   if r["kind"] == "backfill")
    assert shown == sorted(per_page)
