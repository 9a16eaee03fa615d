"""The operator's console in a real headless Chromium, against the sandbox after real cycles.

``stagesync console`` runs as a process of its own on the state store the cycles wrote; the
browser reads its pages and presses its buttons as a person would. One screenshot per page goes
to tests/screenshots/ (gitignored).
"""

from __future__ import annotations

import datetime as dt
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from simple_salesforce.format import format_soql
from sqlalchemy import select

from connectors.records import WriteRecord
from sandbox.admin import SandboxClient
from sync_agent.cycle import run_cycle
from sync_agent.store import Store, open_store
from sync_agent.tables import DeadLetter, Gap, Link, StageVisit
from tests.chromium import VIEWPORT, browser, screenshot
from tests.test_cycle import DEFAULT, MAPPING, connectors

BAD_EMAIL = "odd@exa_mple.com"  # HubSpot takes it; Salesforce refuses it (INVALID_EMAIL_ADDRESS)
FIXED_EMAIL = "odd.fixed@example.com"
LOSS_REASON = "Went with a cheaper competitor"


@pytest.fixture(scope="module")
def sandbox_options() -> dict[str, Any]:
    # lenience: these tests are about the console, not HubSpot's search lag
    return {"search_lag_seconds": 0}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from sync_agent.cli import app; app()", *args]


def start_console(*args: str, env: dict[str, str] | None = None
                  ) -> tuple[subprocess.Popen[str], str]:
    """``stagesync console`` on a free port; its process and the URL it printed."""
    process = subprocess.Popen(cli("console", "--port", "0", *args), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, **(env or {})})
    assert process.stdout is not None
    watch = selectors.DefaultSelector()
    watch.register(process.stdout, selectors.EVENT_READ)
    deadline, seen = time.monotonic() + 30, []
    while time.monotonic() < deadline:
        if not watch.select(timeout=0.5):
            continue
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("console at "):
            return process, line.split()[2].rstrip("/")
    process.kill()
    raise AssertionError("the console did not start: " + "".join(seen))


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=20)
    if process.stdout is not None:
        process.stdout.close()


@dataclass
class World:
    box: SandboxClient
    store: Store
    db: str
    sf: Any
    hs: Any
    url: str
    bad_contact: str  # the HubSpot contact Salesforce refused
    sql_email: str  # an MQL of this week moved on to SQL
    lost_email: str  # an MQL of this week converted, whose opportunity was lost


@pytest.fixture(scope="module")
def world(sandbox: SandboxClient, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    db = f"sqlite:///{tmp_path_factory.mktemp('console') / 'state.db'}"
    store = open_store(db)
    sf, hs = connectors(sandbox)
    run_cycle(store, MAPPING, sf, hs)  # the first, full cycle: links, gaps, cold leads
    with store.session() as session:
        mqls = session.execute(select(Link.hs_id, Link.sf_id, Link.match_key).join(
            StageVisit, (StageVisit.record_id == Link.hs_id) & (StageVisit.system == "hubspot"))
            .where(StageVisit.stage == "marketingqualifiedlead", StageVisit.left_at.is_(None),
                   Link.pair == "leads", Link.match_key.is_not(None))
            .order_by(Link.hs_id).limit(2)).all()
    assert len(mqls) == 2, "the seeded data has too few linked MQLs"
    mql, lost = mqls
    hs.upsert("contacts", [WriteRecord(id=mql.hs_id, values={
        "lifecyclestage": "salesqualifiedlead"})])
    # the other is converted with an opportunity, which is lost, with its reason
    converted = sandbox.admin("salesforce", "POST", "/salesforce/convertLead",
                              {"leadId": lost.sf_id, "createOpportunity": True})
    sf.upsert("Opportunity", [WriteRecord(id=converted["opportunityId"], values={
        "StageName": "Closed Lost", "Loss_Reason__c": LOSS_REASON})])
    bad = hs.upsert("contacts", [WriteRecord(values={
        "email": BAD_EMAIL, "lastname": "Odd", "lifecyclestage": "marketingqualifiedlead"})])[0]
    time.sleep(1.05)  # Salesforce stamps to the second
    # the second, incremental cycle carries the move across and keeps the refusal
    run_cycle(store, MAPPING, sf, hs)
    process, url = start_console("--db", db, "--mapping", str(DEFAULT), "--env-file",
                                 str(sandbox.info.settings_file))
    try:
        yield World(sandbox, store, db, sf, hs, url, str(bad.id), str(mql.match_key),
                    str(lost.match_key))
    finally:
        stop(process)
        store.engine.dispose()


@pytest.fixture(scope="module")
def chrome() -> Iterator[Any]:
    with browser() as launched:
        yield launched


@pytest.fixture
def page(chrome: Any) -> Iterator[Any]:
    context = chrome.new_context(viewport=VIEWPORT)
    opened = context.new_page()
    yield opened
    context.close()


def waiting_letters(store: Store) -> list[DeadLetter]:
    with store.session() as session:
        return list(session.scalars(select(DeadLetter).where(DeadLetter.resolved_at.is_(None))))


def test_health_lists_runs_and_retry_clears_a_fixed_dead_letter(world: World, page: Any
                                                               ) -> None:
    page.goto(f"{world.url}/health")
    assert page.locator("#runs tr").count() >= 3  # a header and both cycles
    letters = waiting_letters(world.store)
    assert [d.error_code for d in letters] == ["INVALID_EMAIL_ADDRESS"]
    row = page.locator(f"#letter-{letters[0].id}")
    assert BAD_EMAIL in row.locator("pre.message").inner_text()  # the whole message
    screenshot(page, "health")
    # Retried before the fix, Salesforce refuses it again and it stays, backed off.
    row.get_by_role("button", name="Retry").click()
    assert "1 refused again" in page.locator(".notice").inner_text()
    assert page.locator(f"#letter-{letters[0].id}").count() == 1
    # Fixed in HubSpot, the Retry button clears it.
    world.hs.upsert("contacts", [WriteRecord(id=world.bad_contact, values={
        "email": FIXED_EMAIL})])
    page.locator(f"#letter-{letters[0].id}").get_by_role("button", name="Retry").click()
    assert "1 resolved" in page.locator(".notice").inner_text()
    assert page.locator(f"#letter-{letters[0].id}").count() == 0
    assert "No dead letter is waiting" in page.locator("main").inner_text()
    assert waiting_letters(world.store) == []
    found = world.sf.client().query(format_soql(
        "SELECT Id FROM Lead WHERE Email = {}", FIXED_EMAIL))["records"]
    assert len(found) == 1  # the retry created the lead


def test_a_post_without_the_forms_csrf_token_is_refused(world: World, page: Any) -> None:
    page.goto(f"{world.url}/health")
    answer = page.request.post(f"{world.url}/dead-letters/retry", form={"csrf": "forged"})
    assert answer.status == 403
    answer = page.request.post(f"{world.url}/dead-letters/retry", form={})
    assert answer.status == 403


def test_funnel_shows_the_report_with_its_charts(world: World, page: Any) -> None:
    page.goto(f"{world.url}/funnel")
    section = page.locator("#funnel-lead_lifecycle")
    assert section.locator("svg rect").count() >= 8  # two bars a stage
    assert "Working / marketingqualifiedlead" in section.locator("table").inner_text()
    assert "Compliance" in page.locator("main").inner_text()
    screenshot(page, "funnel")


def test_weekly_review_shows_where_this_weeks_mqls_went(world: World, page: Any) -> None:
    page.goto(f"{world.url}/weekly")
    row = page.locator("#mqls tr", has_text=world.sql_email)
    assert row.count() == 1
    assert row.locator(".tag").first.inner_text() == "SQL"
    outcomes = page.locator("#outcomes").inner_text()
    assert "SQL\n1" in outcomes
    # the default mapping syncs the loss reason: the lost MQL shows it beside its deal
    lost = page.locator("#mqls tr", has_text=world.lost_email)
    assert lost.count() == 1
    assert lost.locator(".tag").first.inner_text() == "lost"
    assert f"Closed Lost reason: {LOSS_REASON}" in lost.locator("td").last.inner_text()
    assert "lost\n1" in outcomes
    assert "Loss reasons show once" not in page.locator("main").inner_text()
    assert page.locator("#owners tr").count() >= 2  # compliance per owner
    screenshot(page, "weekly-review")
    page.get_by_role("link", name="← previous week").click()
    assert page.locator("#mqls tr", has_text=world.sql_email).count() == 0


def test_mapping_page_shows_the_file_its_problems_and_a_diff(world: World, page: Any,
                                                            tmp_path: Path) -> None:
    page.goto(f"{world.url}/mapping")
    assert "valid" in page.locator("h2").first.inner_text()
    assert page.locator("#L4").inner_text().endswith("version: 1")
    screenshot(page, "mapping")
    text = DEFAULT.read_text()
    page.locator("textarea[name=text]").fill(
        text.replace("within_business_hours: 4 ", "within_business_hours: 8 "))
    page.get_by_role("button", name="Compare").click()
    assert ("~ SLA mql_follow_up.within_business_hours: 4 → 8"
            in page.locator("#changes").inner_text())
    broken = tmp_path / "proposed.yaml"
    broken.write_text(text.replace("rule: always_salesforce}", "rule: sideways}", 1))
    page.locator("input[type=file]").set_input_files(str(broken))
    page.get_by_role("button", name="Compare").click()
    problems = page.locator("#proposal-problems").inner_text()
    line = 1 + text.splitlines().index(next(
        t for t in text.splitlines() if "rule: always_salesforce}" in t))
    assert f"{line}\terror" in problems
    assert "'sideways' is not allowed" in problems
    screenshot(page, "mapping-diff")
    assert DEFAULT.read_text() == text  # read-only


def test_every_value_is_escaped(world: World, page: Any) -> None:
    """A vendor's message is data, never markup: a script in it shows as text."""
    with world.store.session() as session:
        session.add(DeadLetter(
            system="salesforce", object="Lead", record_id="00Qxss", operation="update",
            payload={}, error_code="FIELD_CUSTOM_VALIDATION_EXCEPTION",
            error_message='<script>document.title="owned"</script><b>bold</b>', field=None,
            attempts=1, next_retry_at=time_now(), created_at=time_now()))
        session.commit()
    page.goto(f"{world.url}/health")
    assert page.title().startswith("Health")
    assert '<script>document.title="owned"</script>' in page.locator("main").inner_text()
    assert page.locator("main b", has_text="bold").count() == 0


def time_now() -> Any:
    from sync_agent.state import now

    return now()


def open_cold_leads(store: Store) -> list[Gap]:
    with store.session() as session:
        return list(session.scalars(select(Gap).where(
            Gap.kind == "cold_lead", Gap.closed_at.is_(None)).order_by(Gap.id)))


def test_the_gap_list_shows_the_cold_lead_with_its_age_first(world: World, page: Any) -> None:
    cold = open_cold_leads(world.store)
    assert cold, "the seeded data has no cold lead"
    oldest = min(cold, key=lambda g: (g.detail["entered_at"], g.id))
    page.goto(f"{world.url}/gaps")
    first = page.locator("#gaps tr.gap").first
    assert first.get_attribute("id") == f"gap-{oldest.id}"  # cold leads first, oldest first
    assert "cold_lead" in first.inner_text()
    arrived = dt.datetime.fromisoformat(oldest.detail["entered_at"])
    days = (dt.datetime.now(dt.UTC) - arrived).days
    age = first.locator("td.age").inner_text()
    assert age.startswith(f"{days} d "), age  # its time at the stage
    assert f"since {arrived.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC" in age
    screenshot(page, "gaps")
    other = next(k for k in page.locator("select[name=kind] option").all_inner_texts()
                 if k not in ("any", "cold_lead"))
    page.locator("select[name=kind]").select_option(other)
    page.get_by_role("button", name="Filter").click()
    kinds = page.locator("#gaps tr.gap td:nth-child(2) .tag").all_inner_texts()
    assert kinds
    assert set(kinds) == {other}


def test_a_resolved_gap_leaves_the_list_and_keeps_its_note(world: World, page: Any) -> None:
    gap = open_cold_leads(world.store)[-1]
    page.goto(f"{world.url}/gaps?kind=cold_lead")
    row = page.locator(f"#gap-{gap.id}")
    row.locator("select[name=outcome]").select_option("resolved")
    row.locator("input[name=note]").fill("Called: a demo is booked for Tuesday")
    row.locator("input[name=by]").fill("Dana from sales")
    row.get_by_role("button", name="Save").click()
    assert f"gap {gap.id} resolved by Dana from sales" in page.locator(".notice").inner_text()
    assert page.url.split("?")[1].startswith("kind=cold_lead")  # the list as it was filtered
    assert page.locator(f"#gap-{gap.id}").count() == 0
    page.goto(f"{world.url}/record?q={gap.key}")
    history = page.locator("#record-gaps").inner_text()
    assert "resolved: Called: a demo is booked for Tuesday" in history
    assert "Dana from sales" in history


def test_the_record_page_shows_the_rule_of_a_write(world: World, page: Any) -> None:
    page.goto(f"{world.url}/record")
    page.get_by_label("email or record id").fill(world.sql_email.upper())
    page.get_by_role("button", name="Explain").click()
    writes = page.locator("#writes tr", has_text="salesqualifiedlead")
    status = page.locator("#writes tr", has_text='"Qualified"')
    assert status.count() >= 1, page.locator("main").inner_text()
    assert status.first.locator("td.rule").inner_text() == "two_way"
    assert "Status" in status.first.inner_text()
    assert writes.count() + status.count() >= 1
    screenshot(page, "record")
    page.get_by_label("email or record id").fill("nobody@nowhere.example")
    page.get_by_role("button", name="Explain").click()
    assert "Nothing in the state store names nobody@nowhere.example" in page.locator(
        "#not-found").inner_text()
