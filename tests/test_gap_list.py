"""The gap list a person works through, and their decisions on it, against gaps real cycles
opened: the sandbox, the real connectors, a SQLite store."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.records import WriteRecord
from sync_agent import gap_notes
from sync_agent.cycle import run_cycle
from sync_agent.gap_list import GapDecisionError, gaps_json, list_gaps, set_gap_outcome
from sync_agent.store import open_store
from sync_agent.tables import Gap, LedgerEntry
from tests.test_cycle import MAPPING, connectors, fresh, next_second
from tests.test_cycle_stages import WEEK, gap, hs_of, new_lead, tasks_on


def age(box: Any, record_id: str, minutes: float) -> None:
    box.admin("salesforce", "POST", "/salesforce/age", {"id": record_id, "minutes": minutes})


def person(box: Any, email: str) -> Any:
    """A seeded Salesforce user, looked up through connectors of its own (the cycle's lists
    its people itself, as a fresh agent does)."""
    sf, _ = connectors(box)
    return next(p for p in sf.people() if p.email == email)


def twins(sf: Any, email: str, n: int = 2) -> list[str]:
    """Leads sharing one email: the cycle cannot tell which is the HubSpot contact's."""
    made = sf.upsert("Lead", [WriteRecord(values={
        "LastName": f"Twin{i}", "Company": "T", "Email": email}) for i in range(n)])
    assert all(r.ok for r in made), [r.error for r in made]
    return [str(r.id) for r in made]


def rows_naming(store: Any, record_id: str, **filters: Any) -> list[Any]:
    with store.session() as session:
        return [v for v in list_gaps(session, MAPPING, **filters) if record_id in v.records]


def open_keys(store: Any, kind: str) -> set[str]:
    with store.session() as session:
        return set(session.scalars(select(Gap.key).where(Gap.kind == kind,
                                                         Gap.closed_at.is_(None))))


def decide(store: Any, gap_id: int, outcome: str, note: str = "checked by hand") -> Any:
    with store.session() as session:
        view = set_gap_outcome(session, gap_id, outcome, note, "ops@example.com", MAPPING)
        session.commit()
    return view


def test_cold_leads_come_first_longest_waiting_with_owner_and_arrival(
        make_sandbox: Any, tmp_path: Path) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    kofi, mateo = person(box, "kofi.0@sales.example.com"), person(box, "mateo.1@sales.example.com")
    older = new_lead(sf, "older.cold@example.com", "Working", OwnerId=kofi.id)
    newer = new_lead(sf, "newer.cold@example.com", "Working", OwnerId=mateo.id)
    age(box, older, 3 * WEEK)
    age(box, newer, WEEK)
    run_cycle(store, MAPPING, sf, hs)
    now = dt.datetime.now(dt.UTC)
    with store.session() as session:
        views = list_gaps(session, MAPPING)
    kinds = [v.kind for v in views]
    assert kinds[:kinds.count("cold_lead")] == ["cold_lead"] * kinds.count("cold_lead")
    assert len(set(kinds)) > 1  # other gaps are there, after the cold leads
    cold = [v for v in views if v.kind == "cold_lead"]
    assert [v.arrived_at for v in cold] == sorted(v.arrived_at for v in cold)  # type: ignore
    ids = [v.key for v in cold]
    assert ids.index(older) < ids.index(newer)
    first = cold[ids.index(older)]
    assert (first.owner_id, first.owner_name, first.owner_email) == (
        kofi.id, kofi.name, kofi.email)
    assert first.owner == f"{kofi.name} <{kofi.email}>"
    assert first.arrived_at is not None
    assert abs((now - first.arrived_at) - dt.timedelta(minutes=3 * WEEK)) < dt.timedelta(
        minutes=5)
    assert first.age >= dt.timedelta(days=20)
    assert first.stage == "Working"
    assert first.record_object == "Lead"

    # filters: the owner by name, by email (any case), by either side's id
    hubspot_kofi = next(o for o in connectors(box)[1].people()
                        if (o.email or "").lower() == kofi.email)
    for who in (kofi.name, kofi.email.upper(), kofi.id, hubspot_kofi.id):
        assert [v.key for v in rows_naming(store, older, owner=who)] == [older], who
        assert rows_naming(store, newer, owner=who) == [], who
    assert [v.key for v in rows_naming(store, older, older_than=dt.timedelta(days=14))] == [
        older]
    assert rows_naming(store, newer, older_than=dt.timedelta(days=14)) == []
    with store.session() as session:
        only = list_gaps(session, MAPPING, kind="cold_lead")
    assert {v.kind for v in only} == {"cold_lead"}
    row = json.loads(json.dumps(gaps_json(only)))[ids.index(older)]
    assert row["owner"] == {"id": kofi.id, "name": kofi.name, "email": kofi.email}
    assert row["age_seconds"] >= 20 * 24 * 3600
    assert row["arrived_at"].startswith(first.arrived_at.date().isoformat())


def test_a_duplicate_pair_is_one_row_naming_both(make_sandbox: Any, tmp_path: Path) -> None:
    _, sf, hs, store = fresh(make_sandbox, tmp_path)
    pair = twins(sf, "same.person@example.com")
    run_cycle(store, MAPPING, sf, hs)
    rows = rows_naming(store, pair[0], kind="duplicate_match")
    assert len(rows) == 1
    row = rows[0]
    assert sorted(row.records) == sorted(pair)
    assert len(row.ids) == 2  # each twin's gap, listed once
    assert row.key == "same.person@example.com"
    assert row.id == min(row.ids)
    for record_id in pair:  # the whole id, never cut
        assert record_id in row.text


def test_an_ignored_duplicate_stays_closed_until_its_data_changes(make_sandbox: Any,
                                                                  tmp_path: Path,
                                                                  db_url: str) -> None:
    """On both backends: the decisions are read with the open gaps every cycle."""
    # lenience: a third lead with the twins' email is made here (the org's duplicate rules
    # would refuse it); this test is about the gap it adds to, not those rules
    _, sf, hs, _ = fresh(lambda **kw: make_sandbox(duplicate_rule=False, **kw), tmp_path)
    store = open_store(db_url)
    pair = twins(sf, "twice@example.com")
    run_cycle(store, MAPPING, sf, hs)
    row = rows_naming(store, pair[0], kind="duplicate_match")[0]
    decided = decide(store, row.id, "ignored", "one person, two leads on purpose")
    assert decided.outcome == "ignored"
    assert decided.ids == row.ids  # the group is one decision
    assert decided.note == "one person, two leads on purpose"
    assert decided.decided_by == "ops@example.com"
    assert rows_naming(store, pair[0]) == []  # off the open list

    # the twins change (not their email) and are read again: still ignored
    sf.upsert("Lead", [WriteRecord(id=i, values={"Title": "Buyer"}) for i in pair])
    next_second()
    run_cycle(store, MAPPING, sf, hs)
    assert not open_keys(store, "duplicate_match") & set(pair)
    with store.session() as session:  # the history keeps the decision
        notes = gap_notes.notes_of(session, row.ids)
    assert {n.outcome for n in notes.values()} == {"ignored"}

    # a third lead joins them: the gap says something new, and opens again
    third = twins(sf, "twice@example.com", 1)[0]
    next_second()
    run_cycle(store, MAPPING, sf, hs)
    again = rows_naming(store, pair[0], kind="duplicate_match")
    assert len(again) == 1
    assert sorted(again[0].records) == sorted([*pair, third])
    assert not set(again[0].ids) & set(row.ids)  # new gaps; the ignored ones stay closed


def test_a_resolved_duplicate_opens_again_while_its_cause_remains(make_sandbox: Any,
                                                                  tmp_path: Path) -> None:
    _, sf, hs, store = fresh(make_sandbox, tmp_path)
    pair = twins(sf, "fixed.maybe@example.com")
    run_cycle(store, MAPPING, sf, hs)
    row = rows_naming(store, pair[0], kind="duplicate_match")[0]
    assert decide(store, row.id, "resolved", "merged them").outcome == "resolved"
    assert rows_naming(store, pair[0]) == []
    sf.upsert("Lead", [WriteRecord(id=i, values={"Title": "Buyer"}) for i in pair])
    next_second()
    run_cycle(store, MAPPING, sf, hs)  # they were not merged after all
    assert rows_naming(store, pair[0], kind="duplicate_match") != []


def sla_writes(store: Any, record_ids: list[str]) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.rule.startswith("sla:"), LedgerEntry.record_id.in_(record_ids))) or 0


def test_an_ignored_cold_lead_is_left_alone_and_its_flag_undone_when_it_moves_on(
        make_sandbox: Any, tmp_path: Path) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    lead = new_lead(sf, "leave.me@example.com", "Working")
    age(box, lead, WEEK)
    run_cycle(store, MAPPING, sf, hs)
    cold = gap(store, "cold_lead", lead)
    assert cold is not None
    contact = hs_of(store, lead)
    written = sla_writes(store, [contact, *cold.detail["tasks"]])
    assert written >= 2  # its follow-up Task and its HubSpot flag
    decide(store, cold.id, "ignored", "on holiday until Monday; leave it")
    for _ in range(2):
        next_second()
        run_cycle(store, MAPPING, sf, hs)
    assert lead not in open_keys(store, "cold_lead")  # not opened again
    assert len(tasks_on(sf, lead)) == 1  # nor its actions carried out again
    assert sla_writes(store, [contact, *cold.detail["tasks"]]) == written
    flag = hs.read_by_ids("contacts", [contact], ["stagesync_cold_lead"])[0]
    assert flag.values["stagesync_cold_lead"] == "true"

    sf.upsert("Lead", [WriteRecord(id=lead, values={"Status": "Qualified"})])
    next_second()
    run_cycle(store, MAPPING, sf, hs)  # no longer cold: what its actions set is undone
    flag = hs.read_by_ids("contacts", [contact], ["stagesync_cold_lead"])[0]
    assert flag.values.get("stagesync_cold_lead") in (None, "")
    assert lead not in open_keys(store, "cold_lead")
    with store.session() as session:
        assert gap_notes.active_decisions(session, "cold_lead") == {}


def test_a_resolved_cold_lead_still_cold_opens_again_without_a_second_task(
        make_sandbox: Any, tmp_path: Path) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    lead = new_lead(sf, "called.back@example.com", "Working")
    age(box, lead, WEEK)
    run_cycle(store, MAPPING, sf, hs)
    cold = gap(store, "cold_lead", lead)
    assert cold is not None
    decide(store, cold.id, "resolved", "called them")
    next_second()
    run_cycle(store, MAPPING, sf, hs)  # no activity was logged: it is cold again
    again = gap(store, "cold_lead", lead)
    assert again is not None
    assert again.id != cold.id
    assert again.closed_at is None
    assert len(tasks_on(sf, lead)) == 1


def test_a_decision_needs_an_open_gap_a_known_outcome_and_a_note(make_sandbox: Any,
                                                                 tmp_path: Path) -> None:
    _, sf, hs, store = fresh(make_sandbox, tmp_path)
    pair = twins(sf, "no.note@example.com")
    run_cycle(store, MAPPING, sf, hs)
    row = rows_naming(store, pair[0], kind="duplicate_match")[0]
    with store.session() as session:
        missing = session.scalar(select(func.max(Gap.id))) + 1000  # type: ignore[operator]
    cases = [(missing, "resolved", "x", f"gap {missing} does not exist"),
             (row.id, "resolved", "  ", "a note saying why is needed"),
             (row.id, "snoozed", "x", "use resolved or ignored")]
    for gap_id, outcome, note, message in cases:
        with store.session() as session, pytest.raises(GapDecisionError, match=message):
            set_gap_outcome(session, gap_id, outcome, note, "ops")
    decide(store, row.id, "resolved", "merged")
    with store.session() as session, pytest.raises(
            GapDecisionError, match=rf"gap {row.id} is closed already \(resolved by "
                                    r"ops@example.com: merged"):
        set_gap_outcome(session, row.id, "ignored", "x", "ops")
