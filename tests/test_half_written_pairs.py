"""A pair whose Salesforce write is refused while its HubSpot write lands: what the store
remembers keeps Salesforce's values as they are, so the next cycle does not take the refused
value for a Salesforce change and write the old one back over the HubSpot edit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.records import WriteRecord
from sync_agent import state
from sync_agent.cycle import run_cycle
from tests.test_cycle import MAPPING, fresh, next_second


def test_a_refused_salesforce_update_beside_a_hubspot_write_loses_no_hubspot_edit(
        make_sandbox: Any, tmp_path: Path) -> None:
    # lenience: this test is about what is remembered after a half-written pair, not search lag
    _, sf, hs, store = fresh(lambda **kw: make_sandbox(search_lag_seconds=0, **kw), tmp_path)
    person = {"FirstName": "Ann", "LastName": "Lee", "Company": "Acme Rockets"}
    sf.upsert("Lead", [WriteRecord(values={**person, "Email": "ann.a@acme.example"})])
    sf.duplicate_rules = "allow_save"  # a second Ann Lee of Acme, saved past the rules
    twin = sf.upsert("Lead", [WriteRecord(values={**person, "Email": "ann.b@acme.example"})])[0]
    run_cycle(store, MAPPING, sf, hs)
    with store.session() as session:
        link = state.find_link(session, "leads", sf_id=twin.id)
        assert link is not None
    next_second()
    hs.upsert("contacts", [WriteRecord(id=link.hs_id, values={"jobtitle": "VP Sales"})])
    sf.duplicate_rules = "allow_save"  # (a cycle sets the mapping's choice, respect)
    moved = sf.upsert("Lead", [WriteRecord(id=twin.id, values={"City": "Oslo"})])[0]
    assert moved.ok, moved.error
    next_second()
    run_cycle(store, MAPPING, sf, hs)  # Title is refused (the twin), city reaches HubSpot
    assert sf.read_by_ids("Lead", [twin.id], ["Title"])[0].values["Title"] is None
    assert hs.read_by_ids("contacts", [link.hs_id], ["city"])[0].values["city"] == "Oslo"
    for _ in range(2):
        next_second()
        run_cycle(store, MAPPING, sf, hs)
    assert hs.read_by_ids("contacts", [link.hs_id], ["jobtitle"])[0].values[
        "jobtitle"] == "VP Sales"
    with store.session() as session:
        gap = state.open_gap_detail(session, "duplicate_match", "leads", twin.id)
    assert gap is not None
    assert gap["code"] == "DUPLICATES_DETECTED"
    assert gap["record_id"] == twin.id  # an update refused by name: the gap names its record
