"""Dead letters follow the data: a refused record fixed at its source is written by the next
cycle (or ``stagesync retry``) whatever its backoff; ``stagesync retry`` lists what waits,
when each is due and why. Real clients against the sandbox, a real SQLite store."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import select
from typer.testing import CliRunner

from connectors.records import WriteRecord
from sandbox.admin import SandboxClient
from sync_agent import state
from sync_agent.cli import app
from sync_agent.cycle import run_cycle
from sync_agent.store import Store
from sync_agent.tables import DeadLetter
from tests.test_cycle import DEFAULT, MAPPING, fresh, next_second

runner = CliRunner()
# Salesforce refuses an underscore in an email's domain (INVALID_EMAIL_ADDRESS); HubSpot takes it
BAD, WORSE, GOOD = "fix.me@exa_mple.com", "fix.me@still_bad.com", "fix.me@example.com"


def cli(box: SandboxClient, db: Path, *args: str) -> Any:
    return runner.invoke(app, [*args, "--mapping", str(DEFAULT), "--env-file",
                               str(box.info.settings_file), "--db", f"sqlite:///{db}"])


def letters(store: Store) -> list[DeadLetter]:
    with store.session() as session:
        return list(session.scalars(select(DeadLetter).order_by(DeadLetter.id)))


def leads_with(sf: Any, email: str) -> list[str]:
    return [r.id for r in sf.read_by_ids("Lead", list(sf.list_ids("Lead")), ["Email"])
            if r.values.get("Email") == email]


def refused_contact(sf: Any, hs: Any, store: Store) -> str:
    """A HubSpot contact whose lead Salesforce refuses: one open letter, backing off."""
    contact = hs.upsert("contacts", [WriteRecord(values={
        "email": BAD, "lastname": "Fixme", "lifecyclestage": "marketingqualifiedlead"})])[0]
    assert contact.id is not None
    assert run_cycle(store, MAPPING, sf, hs).failed == 1
    [letter] = letters(store)
    assert (letter.error_code, letter.attempts) == ("INVALID_EMAIL_ADDRESS", 1)
    assert state._aware(letter.next_retry_at) > state.now() + dt.timedelta(minutes=4)
    return contact.id


def test_a_refused_record_fixed_at_its_source_is_written_by_the_next_cycle(
        make_sandbox: Any, tmp_path: Path) -> None:
    # lenience: this test is about dead letters, not search lag
    _, sf, hs, store = fresh(lambda **kw: make_sandbox(search_lag_seconds=0, **kw), tmp_path)
    contact = refused_contact(sf, hs, store)
    next_second()
    hs.upsert("contacts", [WriteRecord(id=contact, values={"email": WORSE})])
    next_second()
    again = run_cycle(store, MAPPING, sf, hs)  # changed, still refused: the same letter
    assert again.failed == 1
    [letter] = letters(store)
    assert letter.attempts == 2
    assert letter.resolved_at is None
    assert WORSE in letter.error_message
    assert state._aware(letter.next_retry_at) > state.now() + dt.timedelta(minutes=29)
    next_second()
    hs.upsert("contacts", [WriteRecord(id=contact, values={"email": GOOD})])
    next_second()
    fixed = run_cycle(store, MAPPING, sf, hs)  # 30 min of backoff left: no --all needed
    assert fixed.failed == 0
    [letter] = letters(store)
    assert letter.resolved_at is not None
    with store.session() as session:
        link = state.find_link(session, "leads", hs_id=contact)
        gaps = {(g.kind, g.key) for g in state.open_gaps(session)}
    assert link is not None
    assert ("sync_error", contact) not in gaps
    assert leads_with(sf, GOOD) == [link.sf_id]  # written once


def test_an_update_refused_then_fixed_on_the_counterpart_closes_its_letter(
        make_sandbox: Any, tmp_path: Path) -> None:
    # lenience: this test is about dead letters, not search lag
    _, sf, hs, store = fresh(lambda **kw: make_sandbox(search_lag_seconds=0, **kw), tmp_path)
    contact = hs.upsert("contacts", [WriteRecord(values={
        "email": GOOD, "lastname": "Fixme", "lifecyclestage": "marketingqualifiedlead"})])[0]
    assert contact.id is not None
    for _ in range(2):  # linked, and its new lead's id has flowed back
        run_cycle(store, MAPPING, sf, hs)
        next_second()
    with store.session() as session:
        link = state.find_link(session, "leads", hs_id=contact.id)
    assert link is not None
    # Lead.Website holds 255 characters, HubSpot's website more: the lead's update is refused
    too_long = "https://example.com/" + "x" * 300
    hs.upsert("contacts", [WriteRecord(id=contact.id, values={"website": too_long})])
    next_second()
    assert run_cycle(store, MAPPING, sf, hs).failed == 1
    [letter] = letters(store)
    assert (letter.system, letter.record_id, letter.operation, letter.error_code) == (
        "salesforce", link.sf_id, "update", "STRING_TOO_LONG")
    next_second()
    hs.upsert("contacts", [WriteRecord(id=contact.id, values={
        "website": "https://example.com/fixed"})])  # fixed on the HubSpot side
    next_second()
    assert run_cycle(store, MAPPING, sf, hs).failed == 0
    [letter] = letters(store)
    assert letter.resolved_at is not None
    lead = sf.read_by_ids("Lead", [link.sf_id], ["Website"])[0].values
    assert lead["Website"] == "https://example.com/fixed"


def test_retry_lists_what_waits_and_retries_a_record_changed_since_its_refusal(
        make_sandbox: Any, tmp_path: Path) -> None:
    # lenience: this test is about dead letters, not search lag
    box, sf, hs, store = fresh(lambda **kw: make_sandbox(search_lag_seconds=0, **kw), tmp_path)
    contact = refused_contact(sf, hs, store)
    db = tmp_path / "state.db"
    waiting = cli(box, db, "retry")
    assert waiting.exit_code == 0, waiting.output
    assert "backoff 1: 5 min after the refusal" in waiting.output
    assert "INVALID_EMAIL_ADDRESS" in waiting.output
    assert "in 5 min" in waiting.output or "in 4 min" in waiting.output
    assert "retried 0 dead letter(s)" in waiting.output
    next_second()
    hs.upsert("contacts", [WriteRecord(id=contact, values={"email": GOOD})])
    fixed = cli(box, db, "retry")  # no cycle in between, no --all
    assert fixed.exit_code == 0, fixed.output
    assert "retried (source changed): resolved" in fixed.output
    assert "retried 1 dead letter(s): 1 resolved" in fixed.output
    [letter] = letters(store)
    assert letter.resolved_at is not None
    assert len(leads_with(sf, GOOD)) == 1
    assert "no dead letters waiting" in cli(box, db, "retry").output


def test_a_letter_whose_record_did_not_change_keeps_its_backoff(
        make_sandbox: Any, tmp_path: Path) -> None:
    # lenience: this test is about dead letters, not search lag
    box, sf, hs, store = fresh(lambda **kw: make_sandbox(search_lag_seconds=0, **kw), tmp_path)
    refused_contact(sf, hs, store)
    [before] = letters(store)
    next_second()
    quiet = run_cycle(store, MAPPING, sf, hs)
    assert quiet.failed == 0  # not sent again
    again = cli(box, tmp_path / "state.db", "retry")
    assert "retried 0 dead letter(s)" in again.output
    [after] = letters(store)
    assert (after.attempts, after.next_retry_at, after.source_changed_at) == (
        1, before.next_retry_at, None)
