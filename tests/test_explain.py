"""Why a record holds what it holds, asked of a store real cycles filled: the sandbox, the real
connectors, a SQLite store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from connectors.records import WriteRecord
from sync_agent.cycle import run_cycle
from sync_agent.explain import explain, explanation_json
from sync_agent.store import open_store
from sync_agent.tables import Link, Run
from tests.test_cycle import MAPPING, fresh, next_second
from tests.test_cycle_stages import WEEK, gap, new_lead, tasks_on


def explained(store: Any, ref: str, system: str | None = None) -> Any:
    with store.session() as session:
        return explain(session, MAPPING, ref, system)


def test_a_write_a_cycle_made_is_explained_with_its_rule_reason_and_run(
        make_sandbox: Any, tmp_path: Path) -> None:
    # lenience: this test is about the record's story, not search lag
    _, sf, hs, store = fresh(lambda **kw: make_sandbox(search_lag_seconds=0, **kw), tmp_path)
    for _ in range(2):
        run_cycle(store, MAPPING, sf, hs)
        next_second()
    with store.session() as session:
        link = session.scalars(select(Link).where(Link.pair == "leads")
                               .order_by(Link.id)).first()
        assert link is not None
        email = link.match_key
    assert email
    sf.upsert("Lead", [WriteRecord(id=link.sf_id, values={"Title": "Head of Explaining"})])
    next_second()
    run_cycle(store, MAPPING, sf, hs)
    with store.session() as session:
        last_run = session.scalar(select(func.max(Run.id)))

    found = explained(store, link.sf_id)
    assert found is not None
    assert [(x.pair, x.sf_id, x.hs_object, x.hs_id) for x in found.links] == [
        ("leads", link.sf_id, "contacts", link.hs_id)]
    assert {(r.system, r.object, r.id) for r in found.records} == {
        ("salesforce", "Lead", link.sf_id), ("hubspot", "contacts", link.hs_id)}
    write = next(w for w in found.writes if w.field == "jobtitle"
                 and w.new == "Head of Explaining")
    assert (write.system, write.object, write.record_id, write.rule, write.run_id) == (
        "hubspot", "contacts", link.hs_id, "two_way", last_run)
    assert write.reason == "changed in Salesforce"
    assert [w.at for w in found.writes] == sorted(w.at for w in found.writes)
    assert {s.system for s in found.current} == {"salesforce", "hubspot"}
    assert all(s.left_at is None for s in found.current)
    assert found.history
    assert found.history[0].entered_at <= found.history[-1].entered_at

    # the same story by the HubSpot id, by the email in any case, by the 15-character id
    for ref, system in ((link.hs_id, "hubspot"), (link.hs_id, None), (email.upper(), None),
                        (link.sf_id[:15], None), (link.sf_id, "salesforce")):
        again = explained(store, ref, system)
        assert again is not None, ref
        assert [x.id for x in again.links] == [link.id], ref
    assert explained(store, link.hs_id, "salesforce") is None  # a HubSpot id, not theirs
    assert explained(store, "nobody@nowhere.example.com") is None
    assert explained(store, "00Q000000000000AAA") is None

    data = json.loads(json.dumps(explanation_json(found)))
    row = next(w for w in data["writes"] if w["id"] == write.id)
    assert (row["old"], row["new"], row["rule"], row["reason"], row["run_id"]) == (
        write.old, "Head of Explaining", "two_way", "changed in Salesforce", last_run)
    assert data["links"][0]["salesforce"] == {"object": "Lead", "id": link.sf_id}


def test_a_refused_record_is_explained_with_the_vendors_whole_message(
        make_sandbox: Any, tmp_path: Path, db_url: str) -> None:
    """On both backends: the references are found through the JSON of gaps and letters."""
    # lenience: this test is about dead letters, not search lag
    _, sf, hs, _ = fresh(lambda **kw: make_sandbox(search_lag_seconds=0, **kw), tmp_path)
    store = open_store(db_url)
    # HubSpot takes this address; Salesforce refuses it (no underscore in a domain).
    bad = hs.upsert("contacts", [WriteRecord(values={
        "email": "odd@exa_mple.com", "lastname": "Odd",
        "lifecyclestage": "marketingqualifiedlead"})])[0]
    run_cycle(store, MAPPING, sf, hs)
    for ref in (str(bad.id), "ODD@exa_mple.com"):
        found = explained(store, ref)
        assert found is not None, ref
        assert found.links == []
        [letter] = found.dead_letters
        assert (letter.system, letter.object, letter.operation, letter.code, letter.field) == (
            "salesforce", "Lead", "create", "INVALID_EMAIL_ADDRESS", "Email")
        assert "odd@exa_mple.com" in letter.message
        assert len(letter.message) > 40  # whole, as the vendor wrote it
        sync_error = next(g for g in found.gaps if g.kind == "sync_error")
        assert sync_error.closed_at is None
        assert sync_error.detail["message"] == letter.message


def test_a_follow_up_task_is_a_write_made_because_of_the_cold_lead(make_sandbox: Any,
                                                                   tmp_path: Path) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    lead = new_lead(sf, "explain.cold@example.com", "Working")
    box.admin("salesforce", "POST", "/salesforce/age", {"id": lead, "minutes": WEEK})
    run_cycle(store, MAPPING, sf, hs)
    [task] = tasks_on(sf, lead)
    cold = gap(store, "cold_lead", lead)
    assert cold is not None
    found = explained(store, "Explain.Cold@Example.com")
    assert found is not None
    made = [w for w in found.writes if w.record_id == task.id]
    assert made, "the follow-up Task is not among the lead's writes"
    assert {(w.system, w.object, w.rule) for w in made} == {
        ("salesforce", "Task", "sla:mql_follow_up")}
    assert all(w.because and "follow-up Task" in w.because for w in made)
    assert any(w.rule == "sla:mql_follow_up" and w.system == "hubspot" and w.because is None
               for w in found.writes)  # the flag on its HubSpot contact
    [shown] = [g for g in found.gaps if g.kind == "cold_lead"]
    assert (shown.id, shown.stage, shown.closed_at) == (cold.id, "Working", None)
