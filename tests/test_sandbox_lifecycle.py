"""The emulators' record lifecycle, as the vendors run it: HubSpot's own changes (a default
lifecycle stage, calculated properties that move the last-modified date), HubSpot merges
(a new id, no archive entry), archives purged after 90 days, Salesforce rows purged from the
recycle bin. Sources are in sandbox/README.md's fidelity table."""

from __future__ import annotations

import datetime as dt
import functools
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchReadInputSimplePublicObjectId,
    PublicMergeInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException
from simple_salesforce import Salesforce
from simple_salesforce.format import format_soql

from sandbox.admin import SandboxClient
from sandbox.hubspot.portal import CALCULATED_AFTER_SECONDS
from tests.conftest import hubspot_client, salesforce_client


@pytest.fixture
def make_sandbox(make_sandbox: Any) -> Any:
    # lenience: these tests read create answers through hubspot-api-client v12's basic_api,
    # which deserializes only the 201 HubSpot's spec names (the live API answers 200)
    return functools.partial(make_sandbox, hubspot_creates_201=True)


def create_contact(hs: Any, **props: str) -> Any:
    return hs.crm.contacts.basic_api.create(
        simple_public_object_input_for_create=SimplePublicObjectInputForCreate(properties=props))


def archived_ids(hs: Any, object_api: Any) -> set[str]:
    out: set[str] = set()
    after = None
    while True:
        page = object_api.get_page(limit=100, after=after, archived=True)
        out |= {str(r.id) for r in page.results}
        if page.paging is None or page.paging.next is None:
            return out
        after = page.paging.next.after


def live_ids(object_api: Any) -> set[str]:
    out: set[str] = set()
    after = None
    while True:
        page = object_api.get_page(limit=100, after=after)
        out |= {str(r.id) for r in page.results}
        if page.paging is None or page.paging.next is None:
            return out
        after = page.paging.next.after


# -- HubSpot changes records on its own --------------------------------------------------------
def test_recordings_show_a_create_without_a_stage_comes_back_lead(reference: Path) -> None:
    """The recorded creates sent no lifecyclestage and got ``lead`` back (contacts, companies)."""
    recorded = json.loads((reference / "hubspot" / "nango-create-contact.test.json").read_text())
    call = recorded["api"]["post"]["/crm/v3/objects/contacts"]
    assert "lifecyclestage" not in call["request"]["data"]["properties"]
    assert call["response"]["properties"]["lifecyclestage"] == "lead"
    companies = json.loads((reference / "hubspot" / "nango-batch-create-companies.test.json")
                           .read_text())["api"]["post"]["/crm/v3/objects/companies/batch/create"]
    assert all("lifecyclestage" not in i["properties"]
               for i in companies["request"]["data"]["inputs"])
    assert {r["properties"]["lifecyclestage"] for r in companies["response"]["results"]} == {
        "lead"}


def test_a_create_without_a_lifecycle_stage_comes_back_lead(make_sandbox: Any) -> None:
    hs = hubspot_client(make_sandbox())
    made = create_contact(hs, email="nostage@example.com", firstname="No")
    assert made.properties["lifecyclestage"] == "lead"
    staged = create_contact(hs, email="staged@example.com", lifecyclestage="subscriber")
    assert staged.properties["lifecyclestage"] == "subscriber"
    from hubspot.crm.companies import SimplePublicObjectInputForCreate as CompanyInput
    company = hs.crm.companies.basic_api.create(
        simple_public_object_input_for_create=CompanyInput(properties={"name": "Acme"}))
    assert company.properties["lifecyclestage"] == "lead"
    from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealInput
    deal = hs.crm.deals.basic_api.create(
        simple_public_object_input_for_create=DealInput(properties={
            "dealname": "D", "pipeline": "default", "dealstage": "appointmentscheduled"}))
    assert "lifecyclestage" not in (deal.properties or {})


def test_hubspot_updates_a_calculated_property_after_a_create(make_sandbox: Any) -> None:
    """A second after a create HubSpot fills in a calculated property: the last-modified date
    moves, every value a user can write stays as it was."""
    hs = hubspot_client(make_sandbox())
    made = create_contact(hs, email="calc@example.com", firstname="Calc")
    wanted = ["firstname", "email", "lifecyclestage", "lastmodifieddate", "createdate",
              "hs_analytics_source_data_1"]
    first = hs.crm.contacts.basic_api.get_by_id(made.id, properties=wanted)
    assert first.properties["lastmodifieddate"] == first.properties["createdate"]
    time.sleep(CALCULATED_AFTER_SECONDS + 0.2)
    later = hs.crm.contacts.basic_api.get_by_id(made.id, properties=wanted)
    assert later.properties["lastmodifieddate"] > first.properties["lastmodifieddate"]
    assert later.properties["hs_analytics_source_data_1"] == "INTEGRATION"
    assert {k: later.properties[k] for k in ("firstname", "email", "lifecyclestage")} == {
        k: first.properties[k] for k in ("firstname", "email", "lifecyclestage")}


def test_lifecycle_knobs_turn_hubspots_own_changes_off(make_sandbox: Any) -> None:
    # lenience: this test checks the two knobs themselves
    hs = hubspot_client(make_sandbox(default_lifecycle=False, calculated_touch=False))
    made = create_contact(hs, email="plain@example.com")
    assert made.properties.get("lifecyclestage") in (None, "")
    time.sleep(CALCULATED_AFTER_SECONDS + 0.2)
    again = hs.crm.contacts.basic_api.get_by_id(made.id, properties=["lastmodifieddate",
                                                                     "createdate"])
    assert again.properties["lastmodifieddate"] == again.properties["createdate"]


# -- HubSpot merges -----------------------------------------------------------------------------
def test_a_merge_makes_a_new_record_and_the_old_ids_vanish_without_an_archive_entry(
        make_sandbox: Any) -> None:
    box = make_sandbox()
    hs = hubspot_client(box)
    api = hs.crm.contacts.basic_api
    primary = create_contact(hs, email="keep@example.com", firstname="Keep")
    other = create_contact(hs, email="dupe@example.com", firstname="Dupe", jobtitle="CTO")
    before = box.calls("hubspot", "hubspot.objects.merge")
    merged = api.merge(public_merge_input=PublicMergeInput(
        primary_object_id=primary.id, object_id_to_merge=other.id))
    assert box.calls("hubspot", "hubspot.objects.merge") == before + 1  # a vendor route
    assert merged.id not in (primary.id, other.id)
    assert set(merged.properties["hs_merged_object_ids"].split(";")) == {primary.id, other.id}
    assert merged.properties["firstname"] == "Keep"  # the primary's values win
    assert merged.properties["jobtitle"] == "CTO"  # the other's fill the gaps
    listed = live_ids(api)
    assert merged.id in listed
    assert primary.id not in listed
    assert other.id not in listed
    assert not {primary.id, other.id} & archived_ids(hs, api)
    # Reads by id answer for an old id with the new record, under its new id.
    assert api.get_by_id(other.id).id == merged.id
    read = hs.crm.contacts.batch_api.read(
        batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
            inputs=[{"id": primary.id}], properties=["hs_merged_object_ids"],
            properties_with_history=[]))
    assert [r.id for r in read.results] == [merged.id]
    # Writes to an old id do not follow it.
    answer = hs.crm.contacts.batch_api.update(
        batch_input_simple_public_object_batch_input=BatchInputSimplePublicObjectBatchInput(
            inputs=[{"id": other.id, "properties": {"firstname": "Late"}}]))
    assert answer.errors
    assert answer.errors[0].category == "OBJECT_NOT_FOUND"
    with pytest.raises(ApiException) as exc:
        api.merge(public_merge_input=PublicMergeInput(primary_object_id=merged.id,
                                                      object_id_to_merge=other.id))
    assert exc.value.status == 404


# -- deletes that vanish --------------------------------------------------------------------
def test_hubspot_purges_archives_after_ninety_days(make_sandbox: Any) -> None:
    box = make_sandbox()
    hs = hubspot_client(box)
    api = hs.crm.contacts.basic_api
    old, recent = (create_contact(hs, email=f"arch{n}@example.com").id for n in range(2))
    api.archive(old)
    api.archive(recent)
    assert {old, recent} <= archived_ids(hs, api)
    box.admin("hubspot", "POST", "/hubspot/ageArchive",
              {"object": "contacts", "ids": [old], "days": 91})
    left = archived_ids(hs, api)
    assert recent in left
    assert old not in left
    with pytest.raises(ApiException):
        api.get_by_id(old, archived=True)
    assert box.admin("hubspot", "POST", "/hubspot/purge", {"ids": [recent]}) == {"purged": 1}
    assert recent not in archived_ids(hs, api)


def test_salesforce_rows_purged_from_the_recycle_bin_leave_query_all(make_sandbox: Any) -> None:
    box = make_sandbox()
    sf: Salesforce = salesforce_client(box)
    gone = str(sf.Lead.create({"LastName": "Purged", "Company": "P"})["id"])
    hard = str(sf.Lead.create({"LastName": "Hard", "Company": "P"})["id"])
    sf.Lead.delete(gone)
    soql = format_soql("SELECT Id, IsDeleted FROM Lead WHERE Id IN {}", [gone, hard])
    assert {r["Id"] for r in sf.query_all(soql, include_deleted=True)["records"]} == {gone, hard}
    assert box.admin("salesforce", "POST", "/salesforce/purge", {}) == {"purged": 1}
    assert box.admin("salesforce", "POST", "/salesforce/purge", {"ids": [hard]}) == {"purged": 1}
    assert sf.query_all(soql, include_deleted=True)["records"] == []
    now = dt.datetime.now(dt.UTC)
    deleted = sf.Lead.deleted(now - dt.timedelta(days=1), now + dt.timedelta(minutes=2))
    assert gone not in [d["id"] for d in deleted["deletedRecords"]]


def test_the_lifecycle_admin_routes_are_listed(sandbox: SandboxClient) -> None:
    config = sandbox.admin("hubspot", "POST", "/hubspot/config", {})
    assert config["defaultLifecycle"] is True
    assert config["calculatedTouch"] is True
