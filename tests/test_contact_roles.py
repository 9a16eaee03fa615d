"""Contact roles end to end against the sandbox through the real clients: each
OpportunityContactRole puts its contact on the deal, its Role as the mapped association label
where the portal has it; changes and deletes take the label off and keep the contact; a role
on a contact not linked yet waits; the sandbox's OpportunityContactRole behaves as Salesforce's."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest
from simple_salesforce.format import format_soql
from sqlalchemy import select

from connectors.records import WriteRecord
from mapping.model import MappingFile
from sandbox.admin import SandboxClient
from sync_agent import state
from sync_agent.cycle import run_cycle
from sync_agent.tables import LedgerEntry
from tests.test_associations import MAPPING, fresh, link_of, next_second

UNLABELED_DEAL_CONTACT = 3  # HubSpot-defined type id (association type reference)


def _mapping(**contacts_create: Any) -> MappingFile:
    """The default mapping with Decision Maker mapped to the portal's "Decision maker" label
    (Influencer left unmapped), and the contacts pair's create rule as given."""
    roles = MAPPING.contact_roles[0].model_copy(update={"labels": {
        "Decision Maker": "Decision maker", "Economic Buyer": "Not in this portal"}})
    objects = [p.model_copy(update={"create_in_hubspot": p.create_in_hubspot.model_copy(
        update=contacts_create)}) if p.name == "contacts" and contacts_create else p
        for p in MAPPING.objects]
    return MAPPING.model_copy(update={"contact_roles": [roles], "objects": objects})


def _label(hs: Any, name: str) -> int:
    made = hs.association_definitions.create(
        "deals", "contacts", public_association_definition_create_request={
            "label": name, "name": name.lower().replace(" ", "_")})
    return int(next(r.type_id for r in made.results if r.label == name))


def test_contact_roles_become_labelled_deal_contacts(make_sandbox: Any,
                                                     tmp_path: Path) -> None:
    _, sf, hs, store = fresh(make_sandbox, tmp_path)
    decision = _label(hs, "Decision maker")
    mapping = _mapping(only_when={"Title": ["Buyer"]})  # an Intern is not created
    account = sf.upsert("Account", [WriteRecord(values={
        "Name": "Roles Co", "Website": "https://roles-co.example.com"})])[0].id
    dm, infl, later = (r.id for r in sf.upsert("Contact", [WriteRecord(values={
        "LastName": name, "Email": f"{name.lower()}@roles-co.example.com",
        "AccountId": account, "Title": title})
        for name, title in (("Dee", "Buyer"), ("Flu", "Buyer"), ("Late", "Intern"))]))
    opp = sf.upsert("Opportunity", [WriteRecord(values={
        "Name": "Roles deal", "AccountId": account, "StageName": "Prospecting",
        "CloseDate": "2030-01-31"})])[0].id
    role_dm, role_infl, role_late = (r.id for r in sf.upsert("OpportunityContactRole", [
        WriteRecord(values={"OpportunityId": opp, "ContactId": c, "Role": role})
        for c, role in ((dm, "Decision Maker"), (infl, "Influencer"),
                        (later, "Evaluator"))]))
    run_cycle(store, mapping, sf, hs)
    deal = link_of(store, "opportunities", opp)
    dm_hs, infl_hs = link_of(store, "contacts", dm), link_of(store, "contacts", infl)
    assert hs.associations_of("deals", "contacts", [deal])[deal] == {
        dm_hs: {UNLABELED_DEAL_CONTACT, decision}, infl_hs: {UNLABELED_DEAL_CONTACT}}
    with store.session() as session:
        waiting = {g.key: g for g in state.open_gaps(session)
                   if g.kind == "association_waiting"}
        assert later in waiting[f"{role_late}#deal_contact_roles"].detail["reason"]
        entry = session.scalars(select(LedgerEntry).where(
            LedgerEntry.record_id == deal,
            LedgerEntry.field == "associations.contacts (Decision maker)")).one()
        assert (entry.new, entry.rule) == (dm_hs, "always_salesforce")
        assert role_dm in entry.reason
    # quiet: the one role query rides in the Composite read, no HubSpot call
    next_second()
    run_cycle(store, mapping, sf, hs)
    next_second()
    quiet = run_cycle(store, mapping, sf, hs)
    assert quiet.written == {}, quiet.written
    assert not any(k.startswith("associations.") for k in quiet.calls), quiet.calls
    # the role becomes Influencer: its label comes off, the contact stays
    next_second()
    sf.upsert("OpportunityContactRole", [WriteRecord(id=role_dm, values={
        "Role": "Influencer"})])
    next_second()
    run_cycle(store, mapping, sf, hs)
    assert hs.associations_of("deals", "contacts", [deal])[deal][dm_hs] == {
        UNLABELED_DEAL_CONTACT}
    # back to Decision Maker, then deleted: the label comes off, the contact stays
    next_second()
    sf.upsert("OpportunityContactRole", [WriteRecord(id=role_dm, values={
        "Role": "Decision Maker"})])
    next_second()
    run_cycle(store, mapping, sf, hs)
    assert decision in hs.associations_of("deals", "contacts", [deal])[deal][dm_hs]
    next_second()
    assert all(r.ok for r in sf.delete("OpportunityContactRole", [role_dm]))
    next_second()
    run_cycle(store, mapping, sf, hs)
    assert hs.associations_of("deals", "contacts", [deal])[deal][dm_hs] == {
        UNLABELED_DEAL_CONTACT}
    assert role_infl  # its unlabeled association stayed throughout
    assert infl_hs in hs.associations_of("deals", "contacts", [deal])[deal]
    # the waiting contact becomes creatable: it links, and its role is written
    next_second()
    sf.upsert("Contact", [WriteRecord(id=later, values={"Title": "Buyer"})])
    next_second()
    run_cycle(store, mapping, sf, hs)
    late_hs = link_of(store, "contacts", later)
    assert late_hs in hs.associations_of("deals", "contacts", [deal])[deal]
    with store.session() as session:
        assert f"{role_late}#deal_contact_roles" not in {
            g.key for g in state.open_gaps(session) if g.kind == "association_waiting"}


# -- the sandbox's OpportunityContactRole ----------------------------------------------------
def _opportunity_and_contacts(sf: Salesforce, n: int) -> tuple[str, list[str]]:
    opp = str(sf.Opportunity.create({"Name": "OCR", "StageName": "Prospecting",
                                     "CloseDate": "2030-01-31"})["id"])
    contacts = [str(sf.Contact.create({"LastName": f"Role{i}"})["id"]) for i in range(n)]
    return opp, contacts


def test_one_primary_contact_role_per_opportunity(sf: Salesforce) -> None:
    opp, (a, b) = _opportunity_and_contacts(sf, 2)
    first = sf.OpportunityContactRole.create({"OpportunityId": opp, "ContactId": a,
                                              "Role": "Decision Maker", "IsPrimary": True})
    assert first["id"].startswith("00K")
    stamp = sf.OpportunityContactRole.get(first["id"])["SystemModstamp"]
    time.sleep(1.05)
    second = sf.OpportunityContactRole.create({"OpportunityId": opp, "ContactId": b,
                                               "Role": "Influencer", "IsPrimary": True})
    one, two = (sf.OpportunityContactRole.get(i) for i in (first["id"], second["id"]))
    assert (one["IsPrimary"], two["IsPrimary"]) == (False, True)  # the old one demoted
    assert one["SystemModstamp"] > stamp  # and a change read sees it
    described = {f["name"]: f for f in sf.OpportunityContactRole.describe()["fields"]}
    assert [v["value"] for v in described["Role"]["picklistValues"]] == [
        "Business User", "Decision Maker", "Economic Buyer", "Economic Decision Maker",
        "Evaluator", "Executive Sponsor", "Influencer", "Technical Buyer", "Other"]
    assert described["OpportunityId"]["updateable"] is False


def test_contact_roles_are_read_by_modstamp_and_deleted(sandbox: SandboxClient,
                                                        sf: Salesforce) -> None:
    opp, (a, b) = _opportunity_and_contacts(sf, 2)
    old = sf.OpportunityContactRole.create({"OpportunityId": opp, "ContactId": b})["id"]
    time.sleep(1.05)  # stamps to the second
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    role = sf.OpportunityContactRole.create({"OpportunityId": opp, "ContactId": a,
                                             "Role": "Evaluator"})["id"]
    since = before.strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = sf.query(format_soql(
        "SELECT Id, OpportunityId, ContactId, Role, IsPrimary FROM OpportunityContactRole "
        "WHERE SystemModstamp >= {:literal} AND OpportunityId = {}", since, opp))["records"]
    assert old not in [r["Id"] for r in rows]  # changed before: not read again
    assert [(r["Id"], r["Role"], r["IsPrimary"]) for r in rows] == [(role, "Evaluator", False)]
    assert rows[0]["attributes"]["type"] == "OpportunityContactRole"
    sf.OpportunityContactRole.delete(role)
    # getDeleted covers only whole minutes already past
    sandbox.admin("salesforce", "POST", "/salesforce/age", {"id": role, "minutes": 5})
    gone = sf.OpportunityContactRole.deleted(before - dt.timedelta(minutes=10),
                                             before + dt.timedelta(minutes=2))
    assert role in [d["id"] for d in gone["deletedRecords"]]
    everything = sf.query_all(format_soql(
        "SELECT Id, IsDeleted FROM OpportunityContactRole WHERE Id = {}", role),
        include_deleted=True)["records"]
    assert everything[0]["IsDeleted"] is True


@pytest.mark.parametrize("values", [{"ContactId": None}, {"OpportunityId": None}])
def test_a_contact_role_needs_both_records(sf: Salesforce, values: dict[str, Any]) -> None:
    opp, (a,) = _opportunity_and_contacts(sf, 1)
    with pytest.raises(SalesforceMalformedRequest):
        sf.OpportunityContactRole.create({"OpportunityId": opp, "ContactId": a, **values})


# -- validation and diff -----------------------------------------------------------------------
DEFAULT_YAML = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
NO_LABELS = "    labels: {}\n"


def test_live_validation_names_an_unknown_role_and_a_missing_label(
        sandbox: SandboxClient, tmp_path: Path) -> None:
    from tests.test_mapping_cli import invoke
    text = DEFAULT_YAML.read_text()
    assert NO_LABELS in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(NO_LABELS, "    labels: {Decision Maker: Decision maker, "
                                "Decider: Decision maker}\n", 1))
    code, out = invoke("mapping", "validate", str(bad), "--live", "--env-file",
                       str(sandbox.info.settings_file))
    assert code == 1, out
    assert "OpportunityContactRole.Role has no value 'Decider'" in out
    assert "has no value 'Decision Maker'" not in out
    assert "HubSpot has no association label 'Decision maker' from deals to contacts" in out
    code, out = invoke("mapping", "validate", str(DEFAULT_YAML), "--live", "--env-file",
                       str(sandbox.info.settings_file))
    assert code == 0, out  # the default maps no label: nothing to miss


def test_diff_names_a_role_label(tmp_path: Path) -> None:
    from tests.test_mapping_cli import invoke
    new = tmp_path / "new.yaml"
    new.write_text(DEFAULT_YAML.read_text().replace(
        NO_LABELS, "    labels: {Decision Maker: Decision maker}\n", 1))
    code, out = invoke("mapping", "diff", str(DEFAULT_YAML), str(new))
    assert code == 0, out
    assert ("~ contact roles deal_contact_roles: role 'Decision Maker' unlabeled → "
            "Decision maker") in out
