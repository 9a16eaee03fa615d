"""Two-way conflicts go to the field that changed later, not to the record modified later.

On a real portal a contact's ``lastmodifieddate`` moves with every calculated property and
every unrelated edit, so deciding a conflict by record times lets HubSpot win nearly every
one. Through the real clients against the sandbox: HubSpot's property history
(``propertiesWithHistory``) and Salesforce's field history (where the org tracks the field)
decide, and the ledger says which times did.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hubspot.crm.contacts.exceptions import ApiException
from sqlalchemy import select

from connectors.records import WriteRecord
from sync_agent.cycle import run_cycle
from sync_agent.store import Store, open_store
from sync_agent.tables import LedgerEntry
from tests.conftest import hubspot_client
from tests.test_cycle import MAPPING, next_second
from tests.test_cycle_lifecycle import connectors, linked_hs, settle


def _world(make_sandbox: Any, tmp_path: Path, **knobs: Any) -> tuple[Any, Any, Any, Store]:
    # lenience: search_lag_seconds=0, so each cycle sees the edits just made (this is about
    # who wins a conflict, not about search lag)
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       search_lag_seconds=0, **knobs)
    sf, hs = connectors(box)
    return box, sf, hs, open_store(f"sqlite:///{tmp_path / 'state.db'}")


def _linked_lead(store: Store, sf: Any, hs: Any) -> tuple[str, str]:
    """A new Lead synced to a HubSpot contact, both sides settled."""
    run_cycle(store, MAPPING, sf, hs)
    lead = sf.upsert("Lead", [WriteRecord(values={
        "LastName": "Recency", "FirstName": "Rita", "Company": "Clockwork", "Status": "Working",
        "Email": f"rita.{time.time_ns()}@clockwork.example.com", "Title": "Analyst"})])[0]
    settle(store, sf, hs)
    contact = linked_hs(store, "leads", str(lead.id))
    assert contact is not None
    return str(lead.id), contact


def _titles(sf: Any, hs: Any, lead: str, contact: str) -> tuple[str, str]:
    sf_title = sf.read_by_ids("Lead", [lead], ["Title"])[0].values["Title"]
    hs_title = hs.read_by_ids("contacts", [contact], ["jobtitle"])[0].values["jobtitle"]
    return sf_title, hs_title


def _reason(store: Store, system: str, record: str, fld: str) -> str:
    with store.session() as session:
        entry = session.scalars(select(LedgerEntry).where(
            LedgerEntry.system == system, LedgerEntry.record_id == record,
            LedgerEntry.field == fld).order_by(LedgerEntry.id.desc())).first()
    assert entry is not None, f"no ledger entry for {system} {record} {fld}"
    return entry.reason


def _two_seconds_apart(store: Store, sf: Any, hs: Any,
                       edits: list[tuple[Any, str, str, dict[str, Any]]]) -> Any:
    """Each edit two seconds after the one before, then one cycle."""
    for index, (connector, obj, record_id, values) in enumerate(edits):
        if index:
            time.sleep(2)
        connector.upsert(obj, [WriteRecord(id=record_id, values=values)])
    next_second()
    return run_cycle(store, MAPPING, sf, hs)


def test_a_reps_later_title_wins_over_an_earlier_hubspot_edit_and_a_later_unrelated_one(
        make_sandbox: Any, tmp_path: Path) -> None:
    """The issue's E6: HubSpot's jobtitle edited at t, the rep's Title at t+2 s, an unrelated
    HubSpot property at t+4 s. The contact was modified last, but its jobtitle was not: the
    rep's Title ends up on both sides."""
    _, sf, hs, store = _world(make_sandbox, tmp_path)
    lead, contact = _linked_lead(store, sf, hs)
    report = _two_seconds_apart(store, sf, hs, [
        (hs, "contacts", contact, {"jobtitle": "Marketing's guess"}),
        (sf, "Lead", lead, {"Title": "VP Sales"}),
        (hs, "contacts", contact, {"mobilephone": "+1 555 0100"})])
    assert report.written["hubspot.contacts"] == 1
    assert hs.calls["contacts.batch.history"] == 1  # only the pair in conflict, once
    assert _titles(sf, hs, lead, contact) == ("VP Sales", "VP Sales")
    reason = _reason(store, "hubspot", contact, "jobtitle")
    assert "Salesforce's is later" in reason
    assert "property history" in reason  # HubSpot's time came from the property's history
    assert "record modified" in reason  # Title is not tracked: the Lead's own time


def test_salesforce_field_history_decides_where_the_org_tracks_the_field(
        make_sandbox: Any, tmp_path: Path) -> None:
    """The mirror case: the rep's Title at t, HubSpot's jobtitle at t+2 s, an unrelated Lead
    field at t+4 s. The org tracks Title's history, so the later HubSpot edit wins although
    the Lead was modified last."""
    _, sf, hs, store = _world(make_sandbox, tmp_path, salesforce_field_history=("Lead.Title",))
    lead, contact = _linked_lead(store, sf, hs)
    _two_seconds_apart(store, sf, hs, [
        (sf, "Lead", lead, {"Title": "Rep's title"}),
        (hs, "contacts", contact, {"jobtitle": "Head of Growth"}),
        (sf, "Lead", lead, {"Description": "called twice"})])
    assert _titles(sf, hs, lead, contact) == ("Head of Growth", "Head of Growth")
    reason = _reason(store, "salesforce", lead, "Title")
    assert "HubSpot's is later" in reason
    assert "field history" in reason
    assert "property history" in reason


def test_a_field_changed_on_one_side_only_reads_no_history(
        make_sandbox: Any, tmp_path: Path) -> None:
    """Cost follows conflicts: a change on one side is no conflict, however the records'
    times fall, and asks for no history."""
    _, sf, hs, store = _world(make_sandbox, tmp_path)
    lead, contact = _linked_lead(store, sf, hs)
    sf.upsert("Lead", [WriteRecord(id=lead, values={"Title": "Director"})])
    time.sleep(1.1)
    hs.upsert("contacts", [WriteRecord(id=contact, values={"mobilephone": "+1 555 0101"})])
    next_second()
    run_cycle(store, MAPPING, sf, hs)
    assert _titles(sf, hs, lead, contact) == ("Director", "Director")
    assert "changed in Salesforce" in _reason(store, "hubspot", contact, "jobtitle")
    assert hs.calls["contacts.batch.history"] == 0


def _history_read(box: Any, ids: list[str], with_history: list[str]) -> Any:
    """A batch read through hubspot-api-client, answered raw."""
    client = hubspot_client(box)
    return client.crm.contacts.batch_api.read(batch_read_input_simple_public_object_id={
        "inputs": [{"id": i} for i in ids], "properties": ["jobtitle"],
        "propertiesWithHistory": with_history}, _preload_content=False)


def test_hubspot_answers_property_history_for_at_most_fifty_records(make_sandbox: Any) -> None:
    """HubSpot's batch read takes 100 ids, but only 50 when it is asked for histories."""
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    ids = [str(i) for i in range(1001, 1052)]
    assert _history_read(box, ids, []).status in (200, 207)  # 51 without history: fine
    assert _history_read(box, ids[:50], ["jobtitle"]).status in (200, 207)
    with pytest.raises(ApiException) as refused:
        _history_read(box, ids, ["jobtitle"])
    assert refused.value.status == 400
    assert "property histories is 50" in json.loads(refused.value.body)["message"]


def test_property_history_lists_each_value_newest_first(make_sandbox: Any) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    _, hs = connectors(box)
    made = hs.upsert("contacts", [WriteRecord(values={
        "email": "hist@example.com", "lastname": "History", "jobtitle": "One"})])[0]
    time.sleep(1.1)
    hs.upsert("contacts", [WriteRecord(id=made.id, values={"jobtitle": "Two"})])
    answer = json.loads(_history_read(box, [str(made.id)], ["jobtitle", "lastname"]).data)
    history = answer["results"][0]["propertiesWithHistory"]
    assert [v["value"] for v in history["jobtitle"]] == ["Two", "One"]
    stamps = [dt.datetime.fromisoformat(v["timestamp"].replace("Z", "+00:00"))
              for v in history["jobtitle"]]
    assert stamps[0] - stamps[1] >= dt.timedelta(seconds=1)
    assert [v["value"] for v in history["lastname"]] == ["History"]
    times = hs.field_times("contacts", [str(made.id)], ["jobtitle"])
    assert times[str(made.id)]["jobtitle"] == stamps[0]
