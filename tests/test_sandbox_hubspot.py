"""The HubSpot emulator, driven through hubspot-api-client, as the product uses it."""

from __future__ import annotations

import functools
import inspect
import itertools
import time
from typing import Any

import pytest
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchInputSimplePublicObjectId,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException

from sandbox.admin import SandboxClient
from sandbox.seed import SeedSizes
from tests.conftest import hubspot_client


@pytest.fixture(scope="module")
def sandbox_options() -> dict[str, Any]:
    # lenience: these tests read create answers through hubspot-api-client v12, which
    # deserializes only the 201 HubSpot's spec names (the live API was recorded answering 200)
    return {"hubspot_creates_201": True}


@pytest.fixture
def make_sandbox(make_sandbox: Any) -> Any:
    # lenience: as for sandbox_options above (these tests create through basic_api/batch_api)
    return functools.partial(make_sandbox, hubspot_creates_201=True)


def create_contact(hs: Any, **props: str) -> str:
    made = hs.crm.contacts.basic_api.create(
        simple_public_object_input_for_create=SimplePublicObjectInputForCreate(properties=props))
    return str(made.id)


def search(hs: Any, filters: list[dict[str, Any]], **extra: Any) -> Any:
    request = PublicObjectSearchRequest(filter_groups=[{"filters": filters}] if filters else [],
                                        **extra)
    return hs.crm.contacts.search_api.do_search(public_object_search_request=request)


def test_list_pages_with_paging_next_after(hs: Any) -> None:
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = hs.crm.contacts.basic_api.get_page(limit=20, after=after,
                                                  properties=["email", "lifecyclestage"])
        seen += [r.id for r in page.results]
        pages += 1
        if page.paging is None:
            break
        after = page.paging.next.after
    assert len(seen) == len(set(seen)) > 40
    assert pages == (len(seen) + 19) // 20
    assert all(int(a) < int(b) for a, b in itertools.pairwise(seen))


def test_a_listing_sees_records_made_and_archived_between_its_pages(hs: Any) -> None:
    """The list endpoint keeps its id order between pages: a contact made mid-listing comes
    last, one archived mid-listing is gone, and no page repeats or skips another record."""
    api = hs.crm.contacts.basic_api
    first = api.get_page(limit=10)
    later = api.get_page(limit=10, after=first.paging.next.after)
    doomed = later.results[3].id
    hs.crm.contacts.batch_api.archive(batch_input_simple_public_object_id=(
        BatchInputSimplePublicObjectId(inputs=[{"id": doomed}])))
    made = create_contact(hs, email="made.mid.listing@example.com")
    seen = [r.id for r in first.results]
    after = first.paging.next.after
    while after is not None:
        page = api.get_page(limit=10, after=after)
        seen += [r.id for r in page.results]
        after = page.paging.next.after if page.paging else None
    assert doomed not in seen
    assert seen[-1] == made
    assert len(seen) == len(set(seen))
    assert all(int(a) < int(b) for a, b in itertools.pairwise(seen))


def test_get_returns_strings_and_idproperty_lookup(hs: Any) -> None:
    cid = create_contact(hs, email="Typed@Example.com ", firstname="Num")
    got = hs.crm.contacts.basic_api.get_by_id(cid, properties=["email", "hubspotscore",
                                                               "hs_object_id"])
    assert got.properties["email"] == "typed@example.com"  # HubSpot lower-cases emails
    assert got.properties["hs_object_id"] == cid  # numbers travel as strings
    by_email = hs.crm.contacts.basic_api.get_by_id("typed@example.com", id_property="email")
    assert by_email.id == cid


def test_creating_an_existing_email_is_409(hs: Any) -> None:
    create_contact(hs, email="dupe@example.com")
    with pytest.raises(ApiException) as exc:
        create_contact(hs, email="DUPE@example.com")
    assert exc.value.status == 409
    assert "Contact already exists. Existing ID:" in exc.value.body


def test_search_filters_sorts_and_after(hs: Any) -> None:
    result = search(hs, [{"propertyName": "lifecyclestage", "operator": "IN",
                          "values": ["lead", "subscriber"]}],
                    sorts=[{"propertyName": "lastmodifieddate", "direction": "DESCENDING"}],
                    properties=["lifecyclestage", "lastmodifieddate"], limit=5)
    assert result.total > 5
    assert {r.properties["lifecyclestage"] for r in result.results} <= {"lead", "subscriber"}
    stamps = [r.properties["lastmodifieddate"] for r in result.results]
    assert stamps == sorted(stamps, reverse=True)
    nxt = search(hs, [{"propertyName": "lifecyclestage", "operator": "IN",
                       "values": ["lead", "subscriber"]}],
                 sorts=[{"propertyName": "lastmodifieddate", "direction": "DESCENDING"}],
                 limit=5, after=result.paging.next.after)
    assert not {r.id for r in nxt.results} & {r.id for r in result.results}
    has = search(hs, [{"propertyName": "hubspot_owner_id", "operator": "HAS_PROPERTY"}])
    lacks = search(hs, [{"propertyName": "hubspot_owner_id", "operator": "NOT_HAS_PROPERTY"}])
    everyone = search(hs, [])
    assert has.total + lacks.total == everyone.total


def test_search_datetime_ranges_in_epoch_ms(make_sandbox: Any) -> None:
    # lenience: this test is about epoch-ms ranges, not search lag
    hs = hubspot_client(make_sandbox(search_lag_seconds=0, hubspot_per_ten_seconds=0,
                                     hubspot_search_per_second=0))
    before = int(time.time() * 1000) - 1
    cid = create_contact(hs, email="window@example.com")
    found = search(hs, [{"propertyName": "lastmodifieddate", "operator": "GTE",
                         "value": str(before)}])
    assert cid in [r.id for r in found.results]
    between = search(hs, [{"propertyName": "lastmodifieddate", "operator": "BETWEEN",
                           "value": "0", "highValue": str(before)}])
    assert cid not in [r.id for r in between.results]


def test_search_caps_at_10000_results(make_sandbox: Any) -> None:
    box = make_sandbox(sizes=SeedSizes(leads=0, contacts=0, accounts=1, opportunities=0,
                                       hubspot_only_contacts=10_050),
                       hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    hs = hubspot_client(box)
    last_ok = search(hs, [], limit=200, after="9800")
    assert last_ok.total == 10_050
    assert last_ok.paging.next.after == "10000"
    with pytest.raises(ApiException) as exc:
        search(hs, [], limit=200, after=last_ok.paging.next.after)
    assert exc.value.status == 400
    with pytest.raises(ApiException):
        search(hs, [], limit=201)


def test_search_lags_writes(make_sandbox: Any) -> None:
    box = make_sandbox(search_lag_seconds=1.5, hubspot_per_ten_seconds=0,
                       hubspot_search_per_second=0)
    hs = hubspot_client(box)
    cid = create_contact(hs, email="lagging@example.com")
    query = [{"propertyName": "email", "operator": "EQ", "value": "lagging@example.com"}]
    assert search(hs, query).total == 0
    assert hs.crm.contacts.basic_api.get_by_id(cid).id == cid  # reads by id are immediate
    time.sleep(1.6)
    assert [r.id for r in search(hs, query).results] == [cid]


def test_batch_create_partial_conflict_is_207(hs: Any) -> None:
    existing = create_contact(hs, email="already@example.com")
    inputs = [{"properties": {"email": "already@example.com"}},
              {"properties": {"email": "fresh.batch@example.com"}}]
    response = hs.crm.contacts.batch_api.create(
        batch_input_simple_public_object_batch_input_for_create=(
            BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs)))
    assert response.num_errors == 1
    assert response.errors[0].category == "CONFLICT"
    assert response.errors[0].context["existingId"] == [existing]
    assert [r.properties["email"] for r in response.results] == ["fresh.batch@example.com"]


def test_batch_update_unknown_id_is_207_and_one_timestamp(hs: Any) -> None:
    ids = [create_contact(hs, email=f"bu{i}@example.com") for i in range(3)]
    inputs = [{"id": i, "properties": {"jobtitle": "CTO"}} for i in ids] + [
        {"id": "999999999", "properties": {"jobtitle": "x"}}]
    response = hs.crm.contacts.batch_api.update(
        batch_input_simple_public_object_batch_input=BatchInputSimplePublicObjectBatchInput(
            inputs=inputs))
    assert response.errors[0].category == "OBJECT_NOT_FOUND"
    assert response.errors[0].context["ids"] == ["999999999"]
    assert len({r.properties["lastmodifieddate"] for r in response.results}) == 1


def test_batch_upsert_by_email_and_batch_read(hs: Any) -> None:
    cid = create_contact(hs, email="upsert.me@example.com")
    response = hs.crm.contacts.batch_api.upsert(
        batch_input_simple_public_object_batch_input_upsert=(
            BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
                {"id": "upsert.me@example.com", "idProperty": "email",
                 "properties": {"firstname": "Again"}},
                {"id": "brand.new@example.com", "idProperty": "email",
                 "properties": {"firstname": "New"}}])))
    by_email = {r.properties["email"]: r for r in response.results}
    assert by_email["upsert.me@example.com"].id == cid
    assert by_email["upsert.me@example.com"].new is False
    assert by_email["brand.new@example.com"].new is True
    read = hs.crm.contacts.batch_api.read(
        batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
            inputs=[{"id": cid}, {"id": "424242424"}], properties=["firstname"]))
    assert [r.properties["firstname"] for r in read.results] == ["Again"]
    assert read.errors[0].context["ids"] == ["424242424"]


def test_batch_over_100_and_bad_property_are_400(hs: Any) -> None:
    too_many = [{"properties": {"firstname": str(i)}} for i in range(101)]
    with pytest.raises(ApiException) as exc:
        hs.crm.contacts.batch_api.create(
            batch_input_simple_public_object_batch_input_for_create=(
                BatchInputSimplePublicObjectBatchInputForCreate(inputs=too_many)))
    assert exc.value.status == 400
    with pytest.raises(ApiException) as bad:
        create_contact(hs, no_such_property="x")
    assert bad.value.status == 400
    assert "PROPERTY_DOESNT_EXIST" in bad.value.body
    with pytest.raises(ApiException) as option:
        create_contact(hs, lifecyclestage="hot")
    assert "INVALID_OPTION" in option.value.body


def test_lifecycle_stage_only_moves_forward_unless_cleared(hs: Any) -> None:
    api = hs.crm.contacts.basic_api
    cid = create_contact(hs, email="funnel@example.com", lifecyclestage="salesqualifiedlead")

    def set_stage(stage: str) -> str:
        api.update(cid, simple_public_object_input={"properties": {"lifecyclestage": stage}})
        return str(api.get_by_id(cid, properties=["lifecyclestage"]).properties["lifecyclestage"])

    assert set_stage("lead") == "salesqualifiedlead"  # silently ignored, as HubSpot does
    assert set_stage("opportunity") == "opportunity"
    api.update(cid, simple_public_object_input={"properties": {"lifecyclestage": ""}})
    assert set_stage("lead") == "lead"


def test_archive_keeps_last_modified_and_shows_in_archived_list(hs: Any) -> None:
    api = hs.crm.contacts.basic_api
    cid = create_contact(hs, email="archive.me@example.com")
    stamp = api.get_by_id(cid, properties=["lastmodifieddate"]).properties["lastmodifieddate"]
    hs.crm.contacts.batch_api.archive(
        batch_input_simple_public_object_id=BatchInputSimplePublicObjectId(inputs=[{"id": cid}]))
    with pytest.raises(ApiException) as exc:
        api.get_by_id(cid)
    assert exc.value.status == 404
    archived = []
    after = None
    while True:
        page = api.get_page(limit=100, archived=True, after=after,
                            properties=["lastmodifieddate"])
        archived += page.results
        if page.paging is None:
            break
        after = page.paging.next.after
    mine = [r for r in archived if r.id == cid]
    assert mine
    assert mine[0].archived is True
    assert mine[0].properties["lastmodifieddate"] == stamp
    found = search(hs, [{"propertyName": "email", "operator": "EQ",
                         "value": "archive.me@example.com"}])
    assert found.total == 0


def test_properties_pipelines_owners(hs: Any) -> None:
    props = {p.name: p for p in hs.crm.properties.core_api.get_all(object_type="contacts").results}
    assert [o.value for o in props["lifecyclestage"].options][:3] == [
        "subscriber", "lead", "marketingqualifiedlead"]
    assert "UNQUALIFIED" in [o.value for o in props["hs_lead_status"].options]
    assert props["hubspotscore"].modification_metadata.read_only_value is True
    pipelines = hs.crm.pipelines.pipelines_api.get_all(object_type="deals").results
    stages = pipelines[0].stages
    assert stages[0].metadata["probability"] == "0.2"
    assert [s.id for s in stages][-2:] == ["closedwon", "closedlost"]
    owners = hs.crm.owners.owners_api.get_page(limit=100).results
    assert any(o.email == "marketing.only@example.com" for o in owners)
    one = hs.crm.owners.owners_api.get_by_id(owners[0].id)
    assert one.email == owners[0].email


def test_associations_v4_round_trip(hs: Any) -> None:
    from hubspot.crm.associations.v4 import (
        BatchInputPublicAssociationMultiPost,
        BatchInputPublicFetchAssociationsBatchRequest,
    )

    cid = create_contact(hs, email="assoc@example.com")
    company = hs.crm.companies.basic_api.create(
        simple_public_object_input_for_create={"properties": {"name": "Assoc Co"}}).id
    deal = hs.crm.deals.basic_api.create(
        simple_public_object_input_for_create={"properties": {
            "dealname": "D", "dealstage": "qualifiedtobuy", "pipeline": "default",
            "amount": "100"}}).id
    v4 = hs.crm.associations.v4
    v4.basic_api.create_default("contacts", cid, "companies", company)
    v4.batch_api.create("deals", "contacts", batch_input_public_association_multi_post=(
        BatchInputPublicAssociationMultiPost(inputs=[{
            "from": {"id": deal}, "to": {"id": cid},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}])))
    linked = v4.basic_api.get_page("contacts", cid, "companies")
    assert [str(r.to_object_id) for r in linked.results] == [company]
    read = v4.batch_api.get_page("contacts", "deals",
                                 batch_input_public_fetch_associations_batch_request=(
                                     BatchInputPublicFetchAssociationsBatchRequest(
                                         inputs=[{"id": cid}])))
    assert str(read.results[0].to[0].to_object_id) == deal
    assert read.results[0].to[0].association_types[0].type_id == 4


def test_unknown_object_type_and_wrong_method(sandbox: SandboxClient) -> None:
    headers = {"Authorization": f"Bearer {sandbox.info.hubspot_token}"}
    response = sandbox.http.post(sandbox.url("hubspot", "/crm/v3/objects/butterflies/search"),
                                 json={}, headers=headers)
    assert response.status_code == 400
    assert response.json()["message"] == "Unable to infer object type from: butterflies"
    wrong = sandbox.http.put(sandbox.url("hubspot", "/crm/v3/objects/contacts/search"),
                             headers=headers)
    assert wrong.status_code == 405
    broken = sandbox.http.post(sandbox.url("hubspot", "/crm/v3/objects/contacts/batch/read"),
                               data="{oops", headers=headers)
    assert broken.status_code == 400
    assert broken.json()["category"] == "VALIDATION_ERROR"
    unauthenticated = sandbox.http.get(sandbox.url("hubspot", "/crm/v3/objects/contacts"))
    assert unauthenticated.status_code == 401


def test_rolling_window_429_with_rate_limit_headers(make_sandbox: Any) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=5, hubspot_search_per_second=2)
    headers = {"Authorization": f"Bearer {box.info.hubspot_token}"}
    url = box.url("hubspot", "/crm/v3/objects/contacts?limit=1")
    answers = [box.http.get(url, headers=headers) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[0].headers["X-HubSpot-RateLimit-Max"] == "5"
    assert answers[0].headers["X-HubSpot-RateLimit-Remaining"] == "4"
    assert answers[0].headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    refusal = answers[-1].json()
    assert refusal["errorType"] == "RATE_LIMIT"
    assert refusal["policyName"] == "TEN_SECONDLY_ROLLING"
    search_url = box.url("hubspot", "/crm/v3/objects/contacts/search")
    searches = [box.http.post(search_url, json={"limit": 1}, headers=headers) for _ in range(3)]
    assert [s.status_code for s in searches] == [200, 200, 429]
    assert searches[2].json()["policyName"] == "SECONDLY"
    assert not any(h.lower().startswith("x-hubspot-ratelimit") for h in searches[0].headers)


# -- fidelity defaults (issue 9, point 5): the live API's answers, each lenience a named knob --
def hs_post(box: SandboxClient, path: str, body: Any) -> Any:
    return box.http.post(box.url("hubspot", path), json=body,
                         headers={"Authorization": f"Bearer {box.info.hubspot_token}"})


def test_batch_results_carry_no_object_write_trace_id(sandbox: SandboxClient) -> None:
    """Live batch results never echo ``objectWriteTraceId``; only errors[].context names it
    (amp-batch-create-contacts-207-conflict.json)."""
    c = "/crm/v3/objects/contacts"
    taken = hs_post(sandbox, c, {"properties": {"email": "trace.taken@example.com"}}).json()["id"]
    created = hs_post(sandbox, f"{c}/batch/create", {"inputs": [
        {"properties": {"email": "trace.taken@example.com"}, "objectWriteTraceId": "t0"},
        {"properties": {"email": "trace.one@example.com"}, "objectWriteTraceId": "t1"},
        {"properties": {"email": "trace.two@example.com"}, "objectWriteTraceId": "t2"}]})
    assert created.status_code == 207
    body = created.json()
    assert len(body["results"]) == 2
    assert all("objectWriteTraceId" not in r for r in body["results"])
    assert body["errors"][0]["context"] == {"objectWriteTraceId": ["t0"], "existingId": [taken]}
    ids = [r["id"] for r in body["results"]]
    updated = hs_post(sandbox, f"{c}/batch/update", {"inputs": [
        {"id": rid, "properties": {"jobtitle": "CTO"}, "objectWriteTraceId": f"u{n}"}
        for n, rid in enumerate(ids)]}).json()
    assert len(updated["results"]) == 2
    assert all("objectWriteTraceId" not in r for r in updated["results"])
    upserted = hs_post(sandbox, f"{c}/batch/upsert", {"inputs": [
        {"id": "trace.one@example.com", "idProperty": "email", "properties": {},
         "objectWriteTraceId": "p0"},
        {"id": "trace.three@example.com", "idProperty": "email", "properties": {},
         "objectWriteTraceId": "p1"}]}).json()
    assert len(upserted["results"]) == 2
    assert all("objectWriteTraceId" not in r for r in upserted["results"])


def test_batch_results_come_in_no_promised_order(sandbox: SandboxClient) -> None:
    """HubSpot returns batch results in no promised order (HubSpot/hubspot-api-nodejs#190):
    create, update, upsert and read all answer in an order that is not the input's."""
    c = "/crm/v3/objects/contacts"
    emails = [f"order{n}@example.com" for n in range(6)]
    created = hs_post(sandbox, f"{c}/batch/create", {"inputs": [
        {"properties": {"email": e}} for e in emails]}).json()["results"]
    assert [r["properties"]["email"] for r in created] != emails
    assert sorted(r["properties"]["email"] for r in created) == sorted(emails)
    ids = sorted((r["id"] for r in created), key=int)
    updated = hs_post(sandbox, f"{c}/batch/update", {"inputs": [
        {"id": rid, "properties": {"jobtitle": "VP"}} for rid in ids]}).json()["results"]
    assert [r["id"] for r in updated] != ids
    assert sorted(r["id"] for r in updated) == sorted(ids)
    read = hs_post(sandbox, f"{c}/batch/read", {"inputs": [{"id": rid} for rid in ids],
                                                 "properties": ["email"]}).json()["results"]
    assert [r["id"] for r in read] != ids
    upsert_emails = [*emails[:3], "order.new@example.com"]
    upserted = hs_post(sandbox, f"{c}/batch/upsert", {"inputs": [
        {"id": e, "idProperty": "email", "properties": {}} for e in upsert_emails]}
        ).json()["results"]
    assert [r["properties"]["email"] for r in upserted] != upsert_emails
    pair = hs_post(sandbox, f"{c}/batch/read", {"inputs": [{"id": rid} for rid in ids[:2]],
                                                 "properties": []}).json()["results"]
    assert [r["id"] for r in pair] == ids[1::-1]  # two results: never in input order


def test_search_in_matches_string_values_only_in_lower_case(hs: Any) -> None:
    """HubSpot's search docs: IN on a string property needs lower-case values; it compares them
    as given with the stored value lower-cased, so a mixed-case value never matches. EQ folds
    case. Uses seeded contacts, which the search index already holds."""
    seeded = hs.crm.contacts.basic_api.get_page(limit=50, properties=["firstname"]).results
    person = next(r for r in seeded
                  if (r.properties.get("firstname") or "").lower() != r.properties["firstname"])
    name = person.properties["firstname"]
    assert person.id not in ids_of(search(hs, [
        {"propertyName": "firstname", "operator": "IN", "values": [name]}], limit=200))
    assert person.id in ids_of(search(hs, [
        {"propertyName": "firstname", "operator": "IN", "values": [name.lower()]}], limit=200))
    assert person.id in ids_of(search(hs, [
        {"propertyName": "firstname", "operator": "EQ", "value": name.upper()}], limit=200))
    assert person.id in ids_of(search(hs, [
        {"propertyName": "firstname", "operator": "NOT_IN", "values": [name]}], limit=200))
    assert person.id not in ids_of(search(hs, [
        {"propertyName": "firstname", "operator": "NOT_IN", "values": [name.lower()]}],
        limit=200))
    statuses = search(hs, [  # enumeration values are options, matched as HubSpot lists them
        {"propertyName": "hs_lead_status", "operator": "IN", "values": ["NEW"]}],
        properties=["hs_lead_status"], limit=200)
    assert statuses.total > 0
    assert {r.properties["hs_lead_status"] for r in statuses.results} == {"NEW"}


def ids_of(result: Any) -> list[str]:
    return [r.id for r in result.results]


def test_search_lags_writes_by_default(make_sandbox: Any) -> None:
    """Search reads an index that lags writes by a few seconds (HubSpot/hubspot-api-php#59);
    reads by id, lists and batch reads do not lag."""
    from sandbox.server import SandboxConfig
    from sync_agent.cli import sandbox_start

    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    hs = hubspot_client(box)
    written = time.monotonic()
    cid = create_contact(hs, email="fresh.lag@example.com")
    query = [{"propertyName": "email", "operator": "EQ", "value": "fresh.lag@example.com"}]
    assert search(hs, query).total == 0
    assert hs.crm.contacts.basic_api.get_by_id(cid).id == cid
    read = hs.crm.contacts.batch_api.read(
        batch_read_input_simple_public_object_id=BatchReadInputSimplePublicObjectId(
            inputs=[{"id": cid}], properties=[]))
    assert [r.id for r in read.results] == [cid]
    listed = hs.crm.contacts.basic_api.get_page(limit=100, after=str(int(cid) - 1))
    assert cid in [r.id for r in listed.results]
    assert search(hs, []).total == box.info.seeded["hubspot.contacts"]
    while not search(hs, query).total:
        assert time.monotonic() - written < 6, "the write never reached the search index"
        time.sleep(0.25)
    assert time.monotonic() - written >= 2.5
    assert box.admin("hubspot", "POST", "/hubspot/config", {})["searchLagSeconds"] == 3.0
    assert SandboxConfig().search_lag_seconds == 3.0
    assert inspect.signature(sandbox_start).parameters["search_lag"].default == 3.0


def test_leniences_are_named_knobs(make_sandbox: Any) -> None:
    """Each departure from the live API is asked for by name: here all four at once."""
    box = make_sandbox(search_lag_seconds=0, batch_trace_ids=True,
                       batch_results_in_input_order=True, case_insensitive_in=True,
                       hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    c = "/crm/v3/objects/contacts"
    emails = [f"lenient{n}@example.com" for n in range(5)]
    created = hs_post(box, f"{c}/batch/create", {"inputs": [
        {"properties": {"email": e, "firstname": "MacLeod"}, "objectWriteTraceId": str(n)}
        for n, e in enumerate(emails)]}).json()["results"]
    assert [r["properties"]["email"] for r in created] == emails
    assert [r["objectWriteTraceId"] for r in created] == ["0", "1", "2", "3", "4"]
    found = hs_post(box, f"{c}/search", {"filterGroups": [{"filters": [
        {"propertyName": "firstname", "operator": "IN", "values": ["MacLeod"]}]}]}).json()
    assert found["total"] == 5
    assert box.admin("hubspot", "POST", "/hubspot/config", {"caseInsensitiveIn": False,
                                                          "batchTraceIds": False}) == {
        "searchLagSeconds": 0.0, "perTenSeconds": 0, "searchPerSecond": 0,
        "batchTraceIds": False, "batchResultsInInputOrder": True, "caseInsensitiveIn": False,
        "defaultLifecycle": True, "calculatedTouch": True}
    again = hs_post(box, f"{c}/search", {"filterGroups": [{"filters": [
        {"propertyName": "firstname", "operator": "IN", "values": ["MacLeod"]}]}]}).json()
    assert again["total"] == 0
