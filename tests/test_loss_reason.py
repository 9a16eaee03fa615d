"""Why a deal was lost, on the default mapping: the sandbox has HubSpot's own
``closed_lost_reason`` as recorded and the custom ``Opportunity.Loss_Reason__c`` an org adds,
and real cycles carry the reason across (Salesforce's wins; HubSpot's fills a blank)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors.records import WriteRecord
from sandbox.admin import SandboxClient
from sync_agent.store import Store, open_store
from sync_agent.tables import DeadLetter, LedgerEntry
from tests.conftest import salesforce_client
from tests.test_cycle_lifecycle import connectors, linked_hs, settle
from tests.test_delete_rules import new_opportunity
from tests.test_mapping_fields import here, invoke, listed, remove  # noqa: F401 (here: a fixture)

REASON = "Lost to a competitor on price"
RULE = "prefer_salesforce_unless_blank"


@pytest.mark.reference
@pytest.mark.parametrize("name", ["closed_lost_reason", "closed_won_reason"])
def test_the_reason_properties_are_defined_as_hubspot_records_them(
        sandbox: SandboxClient, reference: Path, name: str) -> None:
    recorded = next(p for p in json.loads(
        (reference / "hubspot" / "nango-properties-deals.response.json").read_text())["results"]
        if p["name"] == name)
    served = sandbox.http.get(sandbox.url("hubspot", f"/crm/v3/properties/deals/{name}"),
                              headers={"Authorization": f"Bearer {sandbox.info.hubspot_token}"})
    assert served.status_code == 200
    assert served.json() == recorded


@pytest.mark.reference
def test_loss_reason_is_described_as_a_custom_text_field(sandbox: SandboxClient,
                                                         reference: Path) -> None:
    """The shape of a custom Text field in a recorded describe (``SLASerialNumber__c``)."""
    api = json.loads((reference / "salesforce" / "nango-describe-account.test.json")
                     .read_text())["api"]
    recorded = next(f for f in next(iter(api["get"].values()))["response"]["fields"]
                    if f["name"] == "SLASerialNumber__c")
    described = next(f for f in salesforce_client(sandbox).Opportunity.describe()["fields"]
                     if f["name"] == "Loss_Reason__c")
    differs = {k for k in recorded if recorded[k] != described.get(k)}
    assert set(described) == set(recorded)
    assert differs == {"name", "label", "length", "byteLength"}
    assert (described["type"], described["length"], described["custom"]) == ("string", 255, True)


def deal(hs: Any, deal_id: str) -> dict[str, Any]:
    [found] = hs.read_by_ids("deals", [deal_id], ["dealstage", "closed_lost_reason"])
    return dict(found.values)


def opportunity(sf: Any, sf_id: str) -> dict[str, Any]:
    [found] = sf.read_by_ids("Opportunity", [sf_id], ["StageName", "Loss_Reason__c"])
    return dict(found.values)


def ledger(store: Store, record_id: str, field: str) -> list[tuple[str, str, Any, str]]:
    with store.session() as session:
        return [(e.system, e.field, e.new, e.rule) for e in session.scalars(
            select(LedgerEntry).where(LedgerEntry.record_id == record_id,
                                      LedgerEntry.field == field).order_by(LedgerEntry.id))]


def test_a_lost_opportunitys_reason_reaches_its_deal_and_hubspots_fills_a_blank(
        make_sandbox: Any, tmp_path: Path) -> None:
    # lenience: this test is about the reason crossing over, not HubSpot's search lag
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       search_lag_seconds=0)
    sf, hs = connectors(box)
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    settle(store, sf, hs, cycles=1)
    lost, other = new_opportunity(sf, "Reasoned Deal"), new_opportunity(sf, "Quiet Deal")
    settle(store, sf, hs)
    lost_deal = linked_hs(store, "opportunities", lost)
    other_deal = linked_hs(store, "opportunities", other)
    assert lost_deal is not None
    assert other_deal is not None

    # Closed Lost in Salesforce with a reason: the deal is lost, with the reason.
    sf.upsert("Opportunity", [WriteRecord(id=lost, values={
        "StageName": "Closed Lost", "Loss_Reason__c": REASON})])
    settle(store, sf, hs, cycles=1)
    found = deal(hs, lost_deal)
    assert (found["dealstage"], found["closed_lost_reason"]) == ("closedlost", REASON)
    assert ("hubspot", "closed_lost_reason", REASON, RULE) in ledger(
        store, lost_deal, "closed_lost_reason")

    # Lost in HubSpot, the reason typed only there (longer than Salesforce's Text(255)):
    # it fills the blank field, cut to 255 characters, and nothing is refused.
    typed = "No budget: " + "the board froze every new tool until next year. " * 6
    assert len(typed) > 255
    hs.upsert("deals", [WriteRecord(id=other_deal, values={
        "dealstage": "closedlost", "closed_lost_reason": typed})])
    settle(store, sf, hs, cycles=1)
    found = opportunity(sf, other)
    assert (found["StageName"], found["Loss_Reason__c"]) == ("Closed Lost", typed[:255])
    with store.session() as session:
        assert list(session.scalars(select(DeadLetter.error_code).where(
            DeadLetter.record_id.in_([other, other_deal])))) == []
    assert deal(hs, other_deal)["closed_lost_reason"] == typed  # HubSpot keeps its whole text

    # Salesforce's reason wins: one typed over it in HubSpot is put back.
    hs.upsert("deals", [WriteRecord(id=lost_deal, values={"closed_lost_reason": "Pricing"})])
    settle(store, sf, hs, cycles=1)
    assert opportunity(sf, lost)["Loss_Reason__c"] == REASON
    assert deal(hs, lost_deal)["closed_lost_reason"] == REASON
    # ...and once settled, neither side is written again
    before = len(ledger(store, lost_deal, "closed_lost_reason")) + len(
        ledger(store, other, "Loss_Reason__c"))
    settle(store, sf, hs)
    assert len(ledger(store, lost_deal, "closed_lost_reason")) + len(
        ledger(store, other, "Loss_Reason__c")) == before


def test_check_lists_loss_reason_when_the_org_lacks_it(make_sandbox: Any) -> None:
    """An org without the custom field (every new one): `check` names it with the type to
    create and `init --create-fields` prints its Setup steps."""
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    remove(box, salesforce=("Opportunity.Loss_Reason__c",))
    code, out = invoke("check", "--env-file", str(box.info.settings_file))
    assert code == 1, out
    assert listed(out) == [("salesforce", "Opportunity", "Loss_Reason__c", "Text(255)")]
    assert "needed by: opportunities: Loss_Reason__c <-> closed_lost_reason" in out
    code, out = invoke("init", "--create-fields", "--env-file", str(box.info.settings_file))
    assert code == 1, out
    assert ("  Opportunity.Loss_Reason__c (Text(255); needed by: opportunities: Loss_Reason__c "
            "<-> closed_lost_reason): Setup > Object Manager > Opportunity > Fields & "
            "Relationships > New > Text; Field Label: Loss Reason; Field Name: Loss_Reason; "
            "Length: 255; Next > Field-Level Security") in out
