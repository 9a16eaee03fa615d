"""Picklists, deal pipelines and queues as Salesforce and HubSpot really have them: the
sandbox against the recordings, and the mapping, validation and engine against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hubspot.crm.deals import SimplePublicObjectInputForCreate
from hubspot.crm.deals.exceptions import ApiException
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest
from typer.testing import CliRunner

from connectors.records import WriteRecord
from mapping.model import MappingFile
from mapping.rules import PairPlanner
from sandbox.admin import SandboxClient
from sync_agent import state
from sync_agent.cli import app
from sync_agent.cycle import run_cycle
from tests.conftest import hubspot_client, salesforce_client
from tests.test_cycle import MAPPING, fresh
from tests.test_cycle_stages import WEEK, gap, hs_of, new_lead, tasks_on

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
CUSTOM_STAGE = ("1234567", "Onboarding", "customer")
RENEWALS = "705209413"  # the seeded second deal pipeline, with numeric stage ids
RENEWAL_DUE = "1033186541"


@pytest.fixture(scope="module")
def sandbox_options() -> dict[str, Any]:
    # lenience: the deal tests read create answers through hubspot-api-client v12, which
    # deserializes only the 201 HubSpot's spec names (the live API was recorded answering 200)
    return {"hubspot_creates_201": True}


def _recorded_properties(reference: Path, name: str) -> list[dict[str, Any]]:
    data = json.loads((reference / "hubspot" / name).read_text())
    if "api" in data:
        data = next(iter(data["api"]["get"].values()))["response"]
    return list(data["results"])


def _recorded_sf_field(reference: Path, name: str, field: str) -> dict[str, Any]:
    data = json.loads((reference / "salesforce" / name).read_text())
    if "api" in data:
        data = next(iter(data["api"]["get"].values()))["response"]
    return next(f for f in data["fields"] if f["name"] == field)


def _prop(hs: Any, object_type: str, name: str) -> Any:
    return hs.crm.properties.core_api.get_by_name(object_type=object_type, property_name=name)


# -- the sandbox answers as recorded -------------------------------------------------------
@pytest.mark.reference
def test_industry_lists_are_the_recorded_ones(sandbox: SandboxClient, sf: Salesforce, hs: Any,
                                             reference: Path) -> None:
    recorded = next(p for p in _recorded_properties(
        reference, "nango-properties-companies.test.json") if p["name"] == "industry")
    served = _prop(hs, "companies", "industry")
    assert [(o.value, o.label) for o in served.options] == [
        (o["value"], o["label"]) for o in recorded["options"]]
    assert len(served.options) == 148
    assert "OTHER" not in {o.value for o in served.options}
    sf_recorded = _recorded_sf_field(reference, "nango-describe-account.test.json", "Industry")
    for sobject in ("Account", "Lead"):
        described = next(f for f in getattr(sf, sobject).describe()["fields"]
                         if f["name"] == "Industry")
        assert [v["value"] for v in described["picklistValues"]] == [
            v["value"] for v in sf_recorded["picklistValues"]]


@pytest.mark.reference
def test_stage_properties_have_external_options_as_recorded(sandbox: SandboxClient, hs: Any,
                                                            reference: Path) -> None:
    recorded = {p["name"]: p for p in _recorded_properties(
        reference, "nango-properties-deals.response.json")}
    recorded.update({p["name"]: p for p in _recorded_properties(
        reference, "amp-properties-deals-sampled.json")})
    for name in ("dealstage", "pipeline"):
        served = _prop(hs, "deals", name)
        assert served.external_options is recorded[name]["externalOptions"] is True
        assert [o.value for o in served.options] == [o["value"] for o in
                                                     recorded[name]["options"]] == []
    companies = {p["name"]: p for p in _recorded_properties(
        reference, "nango-properties-companies.test.json")}
    for object_type in ("contacts", "companies"):
        served = _prop(hs, object_type, "lifecyclestage")
        assert served.external_options is companies["lifecyclestage"]["externalOptions"] is True
        assert [o.value for o in served.options] == [
            o["value"] for o in companies["lifecyclestage"]["options"]]


@pytest.mark.reference
def test_pipelines_have_the_recorded_shapes(sandbox: SandboxClient, hs: Any,
                                           reference: Path) -> None:
    def stages(body: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
        return [(s["id"], s["label"], s["metadata"]) for s in body["stages"]]

    lifecycle = json.loads((reference / "hubspot" / "amp-pipelines-contacts-lifecycle.json")
                           .read_text())["results"][0]
    served = hs.crm.pipelines.pipelines_api.get_all(object_type="contacts").results[0].to_dict()
    assert served["id"] == lifecycle["id"]
    assert stages(served) == stages(lifecycle)
    deals = json.loads((reference / "hubspot" / "amp-pipelines-deals.json").read_text())
    served_deals = hs.crm.pipelines.pipelines_api.get_all(object_type="deals").results
    assert stages(served_deals[0].to_dict()) == stages(deals["results"][0])
    second = served_deals[1].to_dict()
    assert second["id"].isdigit()
    assert all(s["id"].isdigit() for s in second["stages"])


def test_a_deal_needs_a_name_a_pipeline_and_a_stage_of_that_pipeline(
        sandbox: SandboxClient, hs: Any) -> None:
    basic = hs.crm.deals.basic_api
    with pytest.raises(ApiException) as missing:
        basic.create(SimplePublicObjectInputForCreate(properties={"amount": "10"}))
    assert missing.value.status == 400
    body = json.loads(missing.value.body)
    assert body["category"] == "VALIDATION_ERROR"
    assert {e["context"]["propertyName"][0] for e in body["errors"]} == {
        "dealname", "dealstage", "pipeline"}
    with pytest.raises(ApiException) as elsewhere:
        basic.create(SimplePublicObjectInputForCreate(properties={
            "dealname": "D", "pipeline": RENEWALS, "dealstage": "closedwon"}))
    assert "not a valid stage of pipeline 705209413" in elsewhere.value.body
    deal = basic.create(SimplePublicObjectInputForCreate(properties={
        "dealname": "D", "pipeline": "default", "dealstage": "appointmentscheduled"}))
    with pytest.raises(ApiException):  # a renewal stage is not a stage of the default pipeline
        basic.update(deal.id, {"properties": {"dealstage": RENEWAL_DUE}})
    moved = basic.update(deal.id, {"properties": {"pipeline": RENEWALS,
                                                  "dealstage": RENEWAL_DUE}})
    assert moved.properties["dealstage"] == "1033186541"


def test_a_portal_may_define_its_own_lifecycle_stage(make_sandbox: Any) -> None:
    # lenience: as for sandbox_options above (a create read through basic_api)
    box = make_sandbox(custom_lifecycle_stages=(CUSTOM_STAGE,), hubspot_creates_201=True)
    hs = hubspot_client(box)
    stages = [s.id for s in hs.crm.pipelines.pipelines_api.get_all(
        object_type="contacts").results[0].stages]
    assert stages.index("1234567") == stages.index("customer") + 1
    # only the pipeline knows it: the property's options are HubSpot's defaults
    assert "1234567" not in {o.value for o in _prop(hs, "contacts", "lifecyclestage").options}
    contact = hs.crm.contacts.basic_api.create({"properties": {
        "email": "onboarding@example.com", "lifecyclestage": "1234567"}})
    assert contact.properties["lifecyclestage"] == "1234567"


@pytest.mark.reference
def test_queues_own_leads_but_not_tasks(sandbox: SandboxClient, sf: Salesforce,
                                        reference: Path) -> None:
    recorded = _recorded_sf_field(reference, "nango-describe-task.response.json", "OwnerId")
    for sobject in ("Task", "Lead"):
        owner = next(f for f in getattr(sf, sobject).describe()["fields"]
                     if f["name"] == "OwnerId")
        assert owner["referenceTo"] == recorded["referenceTo"] == ["Group", "User"]
        assert owner["polymorphicForeignKey"] is recorded["polymorphicForeignKey"] is True
    queues = sf.query("SELECT Id, Name FROM Group WHERE Type = 'Queue'")["records"]
    assert queues
    assert all(q["Id"].startswith("00G") for q in queues)
    queued = sf.query("SELECT Id, Owner.Name FROM Lead")["records"]
    assert {r["Owner"]["Name"] for r in queued} & {q["Name"] for q in queues}
    lead = sf.Lead.create({"LastName": "Q", "Company": "Q", "OwnerId": queues[0]["Id"]})
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.Task.create({"Subject": "Call", "WhoId": lead["id"], "OwnerId": queues[0]["Id"]})
    assert "INVALID_CROSS_REFERENCE_KEY" in str(refused.value)


def test_opportunities_have_record_types(sandbox: SandboxClient, sf: Salesforce) -> None:
    types = sf.query("SELECT Id, DeveloperName FROM RecordType "
                     "WHERE SobjectType = 'Opportunity'")["records"]
    assert {t["DeveloperName"] for t in types} == {"New_Business", "Renewal"}
    infos = sf.Opportunity.describe()["recordTypeInfos"]
    assert {i["developerName"] for i in infos if not i["master"]} == {"New_Business",
                                                                      "Renewal"}
    rows = sf.query("SELECT RecordTypeId FROM Opportunity")["records"]
    assert {r["RecordTypeId"] for r in rows} == {t["Id"] for t in types}


# -- the product holds up --------------------------------------------------------------------
@pytest.mark.reference
def test_default_industry_map_is_right_against_the_recorded_lists(reference: Path) -> None:
    sf_values = [v["value"] for v in _recorded_sf_field(
        reference, "nango-describe-account.test.json", "Industry")["picklistValues"]]
    hs_options = {o["value"] for o in next(p for p in _recorded_properties(
        reference, "nango-properties-companies.test.json") if p["name"] == "industry")["options"]}
    pair = next(p for p in MAPPING.objects if p.name == "accounts")
    vmap = next(t for f in pair.fields if f.salesforce == "Industry" for t in f.transforms
                if t.kind == "value_map")
    for value in sf_values:  # every Salesforce value goes to a real option, or is left out
        assert value in vmap.ignore_salesforce or vmap.values[value] in hs_options, value
        if value not in vmap.ignore_salesforce:
            back = vmap.reverse.get(vmap.values[value], value)
            assert back in sf_values
    assert set(vmap.values.values()) | set(vmap.reverse) <= hs_options
    assert set(vmap.reverse.values()) <= set(sf_values)


def _validate_live(box: SandboxClient, text: str, tmp_path: Path) -> tuple[int, str]:
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["mapping", "validate", str(path), "--live", "--env-file",
                                      str(box.info.settings_file)], terminal_width=200)
    return result.exit_code, result.output


def test_validate_live_knows_a_custom_lifecycle_stage(make_sandbox: Any, tmp_path: Path) -> None:
    box = make_sandbox(custom_lifecycle_stages=(CUSTOM_STAGE,))
    code, out = _validate_live(box, DEFAULT.read_text(), tmp_path)
    assert code == 1, out
    assert "hubspot stage '1234567' of contacts.lifecyclestage is not mapped" in out
    text = DEFAULT.read_text().replace(
        "      - {salesforce: Unqualified, hubspot: other}\n",
        "      - {salesforce: Unqualified, hubspot: other}\n    ignore_hubspot: ['1234567']\n", 1)
    code, out = _validate_live(box, text, tmp_path)
    assert code == 0, out


def test_validate_live_checks_each_stage_against_its_pipeline(sandbox: SandboxClient,
                                                              tmp_path: Path) -> None:
    code, out = _validate_live(sandbox, DEFAULT.read_text(), tmp_path)
    assert code == 0, out
    text = DEFAULT.read_text().replace(
        'Renewal: {pipeline: "705209413", stage_map: renewal_stages}',
        'Renewal: {pipeline: "705209413", stage_map: deal_stages}\n'
        '    Upsell: {pipeline: "999", stage_map: renewal_stages}')
    code, out = _validate_live(sandbox, text, tmp_path)
    assert code == 1, out
    assert ("deals.dealstage has no stage 'appointmentscheduled' in pipeline '705209413' "
            "(where deal_pipelines.record_types.Renewal sends deals)") in out
    assert "Opportunity has no record type 'Upsell'" in out
    assert "HubSpot has no deals pipeline '999'" in out
    assert "deal_pipelines.record_types.Upsell" in out


def test_deals_are_created_in_the_pipeline_of_their_record_type(make_sandbox: Any,
                                                                 tmp_path: Path) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    raw = salesforce_client(box)
    types = {t["DeveloperName"]: t["Id"] for t in raw.query(
        "SELECT Id, DeveloperName FROM RecordType WHERE SobjectType = 'Opportunity'")["records"]}
    made = sf.upsert("Opportunity", [
        WriteRecord(values={"Name": "Renew Globex", "StageName": "Closed Won",
                            "CloseDate": "2026-12-01", "RecordTypeId": types["Renewal"]}),
        WriteRecord(values={"Name": "New Globex", "StageName": "Needs Analysis",
                            "CloseDate": "2026-12-01", "RecordTypeId": types["New_Business"]}),
        WriteRecord(values={"Name": "Plain Globex", "StageName": "Prospecting",
                            "CloseDate": "2026-12-01"})])
    assert all(r.ok for r in made), [r.error for r in made]
    run_cycle(store, MAPPING, sf, hs)
    deals = {}
    with store.session() as session:
        for result in made:
            link = state.find_link(session, "opportunities", sf_id=str(result.id))
            assert link is not None, result.id
            deals[str(result.id)] = hs.read_by_ids("deals", [link.hs_id],
                                                   ["pipeline", "dealstage"])[0].values
    renew, new, plain = (deals[str(r.id)] for r in made)
    assert (renew["pipeline"], renew["dealstage"]) == ("705209413", "1033186543")
    assert (new["pipeline"], new["dealstage"]) == ("default", "qualifiedtobuy")
    assert (plain["pipeline"], plain["dealstage"]) == ("default", "appointmentscheduled")
    # read back with their own pipeline's stage map: in sync, no drift, nothing to write
    again = run_cycle(store, MAPPING, sf, hs)
    assert not [w for w in again.plan if w.pair == "opportunities"]
    for result in made:
        assert gap(store, "stage_drift", str(result.id)) is None


def _queue_mapping(task_owner: str | None) -> MappingFile:
    return MAPPING.model_copy(update={"owners": MAPPING.owners.model_copy(
        update={"queue_task_owner": task_owner})})


def test_a_queue_owned_cold_lead_gets_its_task_from_the_fallback_user(
        make_sandbox: Any, tmp_path: Path) -> None:
    box, sf, hs, store = fresh(make_sandbox, tmp_path)
    raw = salesforce_client(box)
    queue = raw.query("SELECT Id FROM Group WHERE Type = 'Queue' LIMIT 1")["records"][0]["Id"]
    fallback = next(u for u in sf.people() if u.active and u.email)
    lead = new_lead(sf, "queued.cold@example.com", "Working", OwnerId=queue)
    orphan = new_lead(sf, "queued.orphan@example.com", "Working", OwnerId=queue)
    for record in (lead, orphan):
        box.admin("salesforce", "POST", "/salesforce/age", {"id": record, "minutes": WEEK})
    run_cycle(store, _queue_mapping(fallback.email), sf, hs)
    task = sf.read_by_ids("Task", [t.id for t in tasks_on(sf, lead)], ["OwnerId"])[0]
    assert task.values["OwnerId"] == fallback.id
    after = sf.read_by_ids("Lead", [lead], ["OwnerId"])[0].values
    assert after["OwnerId"] == queue  # the queue is never replaced from HubSpot
    contact = hs.read_by_ids("contacts", [hs_of(store, lead)], ["hubspot_owner_id"])[0]
    assert contact.values["hubspot_owner_id"] is None  # a queue has no HubSpot owner
    # without a fallback user no task is made, and the cold lead's gap says why
    box2, sf2, hs2, store2 = fresh(make_sandbox, tmp_path / "second")
    queue2 = salesforce_client(box2).query(
        "SELECT Id FROM Group WHERE Type = 'Queue' LIMIT 1")["records"][0]["Id"]
    lonely = new_lead(sf2, "queued.alone@example.com", "Working", OwnerId=queue2)
    box2.admin("salesforce", "POST", "/salesforce/age", {"id": lonely, "minutes": WEEK})
    run_cycle(store2, _queue_mapping(None), sf2, hs2)
    assert tasks_on(sf2, lonely) == []
    cold = gap(store2, "cold_lead", lonely)
    assert cold is not None
    assert any("queue_task_owner" in why for why in cold.detail["not_done"])





def test_a_deal_moved_to_another_pipeline_goes_back_with_a_stage_of_that_pipeline() -> None:
    renewal, new_business = "0125g0000000002AAA", "0125g0000000001AAA"
    planner = PairPlanner(MAPPING, "opportunities",
                          record_types={renewal: "Renewal", new_business: "New_Business"})
    created = planner.plan({"RecordTypeId": renewal, "StageName": "Negotiation/Review",
                            "Name": "D"}, {})
    assert {(c.field, c.new) for c in created.changes} >= {("pipeline", RENEWALS),
                                                            ("dealstage", "1033186542")}
    # someone dragged the deal into the default pipeline in HubSpot: Salesforce's record
    # type decides the pipeline, and the stage must come along (HubSpot refuses a stage of
    # another pipeline)
    moved = planner.plan(
        {"RecordTypeId": renewal, "StageName": "Closed Won", "Name": "D"},
        {"pipeline": "default", "dealstage": "closedwon", "dealname": "D"},
        {"RecordTypeId>pipeline": (renewal, RENEWALS),
         "StageName>dealstage": ("Closed Won", "1033186543"), "Name>dealname": ("D", "D")},
        sf_modified=1.0, hs_modified=2.0)
    assert sorted((c.side, c.field, c.new) for c in moved.changes) == [
        ("hubspot", "dealstage", "1033186543"), ("hubspot", "pipeline", RENEWALS)]
