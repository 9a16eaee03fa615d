"""Associations and stages across objects, end to end against the sandbox through the real
clients: a conversion ends with the contact, company and deal associated in HubSpot and the
contact at ``opportunity``; changes on either side follow; a reference waits for its link."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import hubspot.crm.associations.v4 as v4
import pytest
from sqlalchemy import select

from connectors.build import build_connectors
from connectors.config import load_settings
from connectors.records import WriteRecord
from mapping.validate import check_file
from sandbox.admin import SandboxClient
from sync_agent import state
from sync_agent.cycle import run_cycle
from sync_agent.store import Store, open_store
from sync_agent.tables import LedgerEntry, Link, SyncedValues

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
MAPPING, _ = check_file(DEFAULT)
assert MAPPING is not None
PRIMARY_CONTACT_COMPANY = 1  # HubSpot-defined type ids (association type reference)
PRIMARY_DEAL_COMPANY = 5


def fresh(make_sandbox: Any, tmp_path: Path) -> tuple[SandboxClient, Any, Any, Store]:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    settings = load_settings(box.info.settings_file)
    hs_settings = settings.hubspot.model_copy(update={"requests_per_ten_seconds": 0,
                                                      "searches_per_second": 0})
    sf, hs = build_connectors(settings.model_copy(update={"hubspot": hs_settings}))
    return box, sf, hs, open_store(f"sqlite:///{tmp_path / 'state.db'}")


def next_second() -> None:
    time.sleep(1.05)  # Salesforce stamps to the second


def link_of(store: Store, pair: str, sf_id: str) -> str:
    with store.session() as session:
        link = state.find_link(session, pair, sf_id=sf_id)
        assert link is not None, f"{pair} {sf_id} is not linked"
        return link.hs_id


def test_a_conversion_ends_associated_and_at_opportunity(make_sandbox: Any,
                                                         tmp_path: Path) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    lead = sf.upsert("Lead", [WriteRecord(values={
        "LastName": "Convert", "Company": "Assoc Conv Co", "Email": "assoc.conv@example.com",
        "Website": "https://www.assoc-conv.example.com", "Status": "Working"})])[0].id
    run_cycle(store, MAPPING, sf, hs)
    contact_hs = link_of(store, "leads", lead)
    before = hs.read_by_ids("contacts", [contact_hs], ["lifecyclestage", "hs_lead_status"])[0]
    assert before.values["lifecyclestage"] == "marketingqualifiedlead"
    next_second()
    converted = box.admin("salesforce", "POST", "/salesforce/convertLead",
                          {"leadId": lead, "opportunityName": "Assoc Conv Co - New"})
    next_second()
    report = run_cycle(store, MAPPING, sf, hs)
    assert report.converted == 1
    company = link_of(store, "accounts", converted["accountId"])
    deal = link_of(store, "opportunities", converted["opportunityId"])
    assert link_of(store, "contacts", converted["contactId"]) == contact_hs
    # in the same cycle: contact -> company (Primary), deal -> company (Primary), deal -> contact
    to_company = hs.associations_of("contacts", "companies", [contact_hs])[contact_hs]
    assert PRIMARY_CONTACT_COMPANY in to_company[company]
    deal_company = hs.associations_of("deals", "companies", [deal])[deal]
    assert PRIMARY_DEAL_COMPANY in deal_company[company]
    assert contact_hs in hs.associations_of("deals", "contacts", [deal])[deal]
    after = hs.read_by_ids("contacts", [contact_hs], ["lifecyclestage", "hs_lead_status"])[0]
    assert after.values["lifecyclestage"] == "opportunity"
    assert after.values["hs_lead_status"] == "OPEN_DEAL"
    with store.session() as session:
        rows = session.scalars(select(LedgerEntry).where(
            LedgerEntry.record_id == contact_hs)).all()
        fields = {r.field: r for r in rows}
        assert "associations.companies (Primary)" in fields
        assert fields["lifecyclestage"].rule == "follow:contact_lifecycle"
        assert [g.detail for g in state.open_gaps(session)
                if g.kind == "association_waiting"] == []
    # the deal closes won: the contact follows to customer
    next_second()
    sf.upsert("Opportunity", [WriteRecord(id=converted["opportunityId"],
                                          values={"StageName": "Closed Won"})])
    next_second()
    run_cycle(store, MAPPING, sf, hs)
    assert hs.read_by_ids("contacts", [contact_hs], ["lifecyclestage"])[0].values[
        "lifecyclestage"] == "customer"
    # then quiet: what came back is the agent's own
    next_second()
    run_cycle(store, MAPPING, sf, hs)
    next_second()
    box.reset_requests()
    quiet = run_cycle(store, MAPPING, sf, hs)
    assert quiet.written == {}, quiet.written
    assert quiet.calls.get("associations.batch.create", 0) == 0


def _accounts_and_contact(sf: Any, tag: str) -> tuple[str, str, str]:
    accounts = sf.upsert("Account", [WriteRecord(values={
        "Name": f"{tag} {n}", "Website": f"https://{tag.lower()}-{n.lower()}.example.com"})
        for n in ("Alpha", "Beta")])
    contact = sf.upsert("Contact", [WriteRecord(values={
        "LastName": tag, "Email": f"{tag.lower()}@example.com",
        "AccountId": accounts[0].id})])[0].id
    return accounts[0].id, accounts[1].id, contact


def remembered_references(store: Store, pair: str, sf_id: str) -> list[Any]:
    """The association references the store remembers as last synced for a link (what the
    next cycle compares both sides with to tell which one changed)."""
    with store.session() as session:
        fields = session.scalar(select(SyncedValues.fields).join(
            Link, Link.id == SyncedValues.link_id).where(Link.pair == pair,
                                                         Link.sf_id == sf_id))
    return [value for key, value in (fields or {}).items() if key.startswith("@")]


def test_a_primary_company_changed_on_either_side_follows(make_sandbox: Any,
                                                          tmp_path: Path) -> None:
    _, sf, hs, store = fresh(make_sandbox, tmp_path)
    alpha, beta, contact = _accounts_and_contact(sf, "Follow")
    run_cycle(store, MAPPING, sf, hs)
    contact_hs = link_of(store, "contacts", contact)
    alpha_hs, beta_hs = link_of(store, "accounts", alpha), link_of(store, "accounts", beta)
    assert PRIMARY_CONTACT_COMPANY in hs.associations_of(
        "contacts", "companies", [contact_hs])[contact_hs][alpha_hs]
    # a HubSpot user makes Beta the primary company: HubSpot demotes Alpha; the rep's
    # Contact follows
    next_second()
    assert all(r.ok for r in hs.associate_labeled("contacts", "companies",
                                                  [(contact_hs, beta_hs)],
                                                  PRIMARY_CONTACT_COMPANY))
    time.sleep(2.5)  # past the search index's lag
    report = run_cycle(store, MAPPING, sf, hs)
    assert report.read["hubspot.contacts"] >= 1  # the association moved its rollup
    assert sf.read_by_ids("Contact", [contact], ["AccountId"])[0].values["AccountId"] == beta
    with store.session() as session:
        entry = session.scalars(select(LedgerEntry).where(
            LedgerEntry.record_id == contact, LedgerEntry.field == "AccountId")).one()
        assert (entry.old, entry.new) == (alpha, beta)
        assert "associated with" in entry.reason
        assert entry.rule == "two_way"
    assert [beta, [beta_hs]] in remembered_references(store, "contacts", contact)
    # the rep moves the Contact back to Alpha: HubSpot's primary follows
    next_second()
    sf.upsert("Contact", [WriteRecord(id=contact, values={"AccountId": alpha})])
    next_second()
    run_cycle(store, MAPPING, sf, hs)
    now = hs.associations_of("contacts", "companies", [contact_hs])[contact_hs]
    assert PRIMARY_CONTACT_COMPANY in now[alpha_hs]
    assert PRIMARY_CONTACT_COMPANY not in now[beta_hs]  # still associated, not primary
    assert sf.read_by_ids("Contact", [contact], ["AccountId"])[0].values["AccountId"] == alpha
    assert [alpha, [alpha_hs]] in remembered_references(store, "contacts", contact)


def test_a_reference_to_an_unlinked_record_waits_for_its_link(make_sandbox: Any,
                                                              tmp_path: Path) -> None:
    _, sf, hs, store = fresh(make_sandbox, tmp_path)
    no_company_creates = MAPPING.model_copy(update={"objects": [
        p.model_copy(update={"create_in_hubspot": p.create_in_hubspot.model_copy(
            update={"enabled": False})}) if p.name == "accounts" else p
        for p in MAPPING.objects]})
    alpha, _, contact = _accounts_and_contact(sf, "Waits")
    run_cycle(store, no_company_creates, sf, hs)
    contact_hs = link_of(store, "contacts", contact)
    assert hs.associations_of("contacts", "companies", [contact_hs]) == {}  # nothing dangles
    with store.session() as session:
        waiting = {g.key: g for g in state.open_gaps(session)
                   if g.kind == "association_waiting"}  # the seeded contacts wait too
        assert alpha in waiting[f"{contact}#contact_company"].detail["reason"]
    # the company appears in HubSpot and the Account links to it by domain: the waiting
    # association is written, though the Contact itself did not change
    company = hs.upsert("companies", [WriteRecord(values={
        "name": "Waits Alpha", "domain": "waits-alpha.example.com"})])[0].id
    next_second()
    sf.upsert("Account", [WriteRecord(id=alpha, values={"Phone": "+1 555 0100"})])
    time.sleep(2.5)  # past the search index's lag, so the match key finds the company
    run_cycle(store, no_company_creates, sf, hs)
    assert link_of(store, "accounts", alpha) == company
    assert PRIMARY_CONTACT_COMPANY in hs.associations_of(
        "contacts", "companies", [contact_hs])[contact_hs][company]
    with store.session() as session:
        assert f"{contact}#contact_company" not in {
            g.key for g in state.open_gaps(session) if g.kind == "association_waiting"}


def test_the_sandbox_keeps_associations_as_hubspot_does(make_sandbox: Any,
                                                       tmp_path: Path) -> None:
    _, _, hs, _ = fresh(make_sandbox, tmp_path)
    contact, other = (r.id for r in hs.upsert("contacts", [WriteRecord(values={
        "email": f"sandbox.assoc{n}@example.com"}) for n in (1, 2)]))
    a, b = (r.id for r in hs.upsert("companies", [WriteRecord(values={"name": n})
                                                  for n in ("A", "B")]))
    before = hs.read_by_ids("contacts", [contact], ["lastmodifieddate"])[0].cursor
    time.sleep(0.05)
    hs.associate_labeled("contacts", "companies", [(contact, a)], PRIMARY_CONTACT_COMPANY)
    # a label comes with the unlabeled type, as the recorded batch read lists both
    assert hs.associations_of("contacts", "companies", [contact]) == {
        contact: {a: {PRIMARY_CONTACT_COMPANY, 279}}}
    after = hs.read_by_ids("contacts", [contact], ["associatedcompanyid"])[0]
    assert after.values["associatedcompanyid"] == a  # the rollup, and the record moved
    assert after.cursor > before
    hs.associate_labeled("contacts", "companies", [(contact, b)], PRIMARY_CONTACT_COMPANY)
    assert hs.associations_of("contacts", "companies", [contact])[contact] == {
        a: {279}, b: {PRIMARY_CONTACT_COMPANY, 279}}  # one primary: the old one demoted
    assert hs.associations_of("companies", "contacts", [a])[a] == {contact: {280}}
    hs.remove_association_label("contacts", "companies", [(contact, b)],
                                PRIMARY_CONTACT_COMPANY)
    assert hs.associations_of("contacts", "companies", [contact])[contact] == {
        a: {279}, b: {279}}
    assert hs.read_by_ids("contacts", [contact], ["associatedcompanyid"])[0].values.get(
        "associatedcompanyid") is None
    assert hs.associations_of("contacts", "companies", [other]) == {}  # none: not listed
    # HubSpot's limit: 1,000 inputs a batch read
    with pytest.raises(v4.ApiException) as refused:  # the raw call, past the chunking
        hs.associations_batch.get_page(
            "contacts", "companies", batch_input_public_fetch_associations_batch_request={
                "inputs": [{"id": str(n)} for n in range(1001)]})
    assert refused.value.status == 400
    assert "maximum is 1000" in str(refused.value.body)
