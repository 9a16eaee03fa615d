"""The Salesforce emulator, driven through simple-salesforce over HTTPS, as the product uses it."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)
from simple_salesforce.format import format_soql

from sandbox.admin import SandboxClient
from sandbox.seed import SeedSizes
from tests.conftest import salesforce_client
from tests.test_sandbox_fidelity import same_shape, shape


def new_lead(sf: Salesforce, **values: Any) -> str:
    body = {"LastName": "Tester", "Company": "Testing Ltd", **values}
    return str(sf.Lead.create(body)["id"])


def error_code(exc: pytest.ExceptionInfo[Any]) -> str:
    return str(exc.value.content[0]["errorCode"])


# -- OAuth -----------------------------------------------------------------------------------
def token_post(box: SandboxClient, **form: str) -> requests.Response:
    return box.http.post(box.info.salesforce_url + "/services/oauth2/token", data=form, timeout=10)


def test_password_grant_returns_the_real_token_shape(sandbox: SandboxClient) -> None:
    c = sandbox.info.credentials
    body = token_post(sandbox, grant_type="password", client_id=c.client_id,
                      client_secret=c.client_secret, username=c.username,
                      password=c.password).json()
    assert set(body) >= {"access_token", "instance_url", "id", "token_type", "issued_at",
                         "signature"}
    assert body["instance_url"] == sandbox.info.salesforce_url
    assert body["token_type"] == "Bearer"


def test_bad_password_gets_invalid_grant(sandbox: SandboxClient) -> None:
    c = sandbox.info.credentials
    response = token_post(sandbox, grant_type="password", client_id=c.client_id,
                          client_secret=c.client_secret, username=c.username, password="nope")
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant",
                               "error_description": "authentication failure"}


def test_client_credentials_and_unknown_grant(sandbox: SandboxClient) -> None:
    c = sandbox.info.credentials
    ok = token_post(sandbox, grant_type="client_credentials", client_id=c.client_id,
                    client_secret=c.client_secret)
    assert ok.status_code == 200
    assert "access_token" in ok.json()
    wrong = token_post(sandbox, grant_type="client_credentials", client_id=c.client_id,
                       client_secret="wrong")
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_client"
    odd = token_post(sandbox, grant_type="authorization_code")
    assert odd.json()["error"] == "unsupported_grant_type"


def test_jwt_bearer_grant_checks_the_signature(sandbox: SandboxClient, tmp_path: Any) -> None:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    c = sandbox.info.credentials
    claims = {"iss": c.client_id, "sub": c.username, "aud": "https://login.salesforce.com",
              "exp": int((dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3)).timestamp())}
    good = jwt.encode(claims, sandbox.info.jwt_key_file.read_bytes(), algorithm="RS256")
    response = token_post(sandbox, grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer",
                          assertion=good)
    assert response.status_code == 200
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = stranger.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    forged = jwt.encode(claims, pem, algorithm="RS256")
    refused = token_post(sandbox, grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer",
                         assertion=forged)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"


def test_client_credentials_only_on_a_my_domain_host(sandbox: SandboxClient) -> None:
    c = sandbox.info.credentials
    form = {"grant_type": "client_credentials", "client_id": c.client_id,
            "client_secret": c.client_secret}
    for login_host in ("login.salesforce.com", "test.salesforce.com:443"):
        refused = sandbox.http.post(sandbox.info.salesforce_url + "/services/oauth2/token",
                                    data=form, headers={"Host": login_host}, timeout=10)
        assert refused.status_code == 400
        assert refused.json() == {"error": "invalid_grant",
                                  "error_description": "request not supported on this domain"}
    assert token_post(sandbox, **form).status_code == 200  # the org's own (My Domain) host


def test_jwt_audience_is_checked(sandbox: SandboxClient) -> None:
    import jwt

    c = sandbox.info.credentials
    key = sandbox.info.jwt_key_file.read_bytes()
    exp = int((dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3)).timestamp())
    for aud, status in (("https://test.salesforce.com", 200), (sandbox.info.salesforce_url, 400),
                        ("https://login.salesforce.com/", 400), (None, 400)):
        claims = {"iss": c.client_id, "sub": c.username, "exp": exp,
                  **({"aud": aud} if aud else {})}
        response = token_post(sandbox, grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer",
                              assertion=jwt.encode(claims, key, algorithm="RS256"))
        assert response.status_code == status, aud
        if status == 400:
            assert response.json() == {"error": "invalid_grant",
                                       "error_description": "audience is invalid"}


def test_expired_session_gets_401_invalid_session_id(make_sandbox: Any) -> None:
    box = make_sandbox()
    sf = salesforce_client(box)
    sf.query("SELECT Id FROM Lead LIMIT 1")
    box.admin("salesforce", "POST", "/salesforce/expireSessions")
    with pytest.raises(SalesforceExpiredSession) as exc:
        sf.query("SELECT Id FROM Lead LIMIT 1")
    assert error_code(exc) == "INVALID_SESSION_ID"


# -- query -----------------------------------------------------------------------------------
def test_query_pages_of_2000_with_next_records_url(make_sandbox: Any) -> None:
    box = make_sandbox(sizes=SeedSizes(leads=4500, contacts=0, accounts=1, opportunities=0,
                                       hubspot_only_contacts=0))
    sf = salesforce_client(box)
    first = sf.query("SELECT Id FROM Lead")
    assert first["totalSize"] == 4500
    assert len(first["records"]) == 2000
    assert first["done"] is False
    assert first["nextRecordsUrl"].startswith("/services/data/v59.0/query/")
    ids = [r["Id"] for r in sf.query_all_iter("SELECT Id FROM Lead ORDER BY Id")]
    assert len(ids) == len(set(ids)) == 4500
    endpoints = box.requests("salesforce")["endpoints"]
    assert endpoints["salesforce.query"] == 2
    assert endpoints["salesforce.query.more"] == 2


def test_where_in_and_or_parentheses_order_limit(sf: Salesforce) -> None:
    rows = sf.query("SELECT Id, Status, LastName FROM Lead WHERE (Status = 'New' OR "
                    "Status = 'Working') AND IsConverted = false ORDER BY LastName DESC, Id "
                    "LIMIT 7")["records"]
    assert 0 < len(rows) <= 7
    assert {r["Status"] for r in rows} <= {"New", "Working"}
    names = [r["LastName"].casefold() for r in rows]
    assert names == sorted(names, reverse=True)
    in_rows = sf.query("SELECT Status FROM Lead WHERE Status IN ('Nurturing', 'Unqualified')")
    assert {r["Status"] for r in in_rows["records"]} <= {"Nurturing", "Unqualified"}
    assert in_rows["totalSize"] > 0


def test_datetime_literals_compare_with_system_modstamp(sf: Salesforce) -> None:
    lead_id = new_lead(sf)
    stamp = sf.Lead.get(lead_id)["SystemModstamp"]
    since = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z")
    rows = sf.query(format_soql("SELECT Id, SystemModstamp FROM Lead WHERE SystemModstamp >= {} "
                                "ORDER BY SystemModstamp, Id", since))["records"]
    assert lead_id in [r["Id"] for r in rows]
    later = sf.query(format_soql("SELECT Id FROM Lead WHERE SystemModstamp > {}", since))
    assert lead_id not in [r["Id"] for r in later["records"]]


def test_soql_escaping_keeps_hostile_values_as_data(sf: Salesforce) -> None:
    tricky = ["O'Brien \\ \"quoted\"", "Zoë ünïcødé ✓", "x' OR Id != '"]
    ids = {value: new_lead(sf, LastName=value) for value in tricky}
    for value, lead_id in ids.items():
        rows = sf.query(format_soql("SELECT Id, LastName FROM Lead WHERE LastName = {}",
                                    value))["records"]
        assert [r["Id"] for r in rows] == [lead_id]
        assert rows[0]["LastName"] == value


@pytest.mark.parametrize(("query", "code"), [
    ("SELECT Id FROM Lead WHERE", "MALFORMED_QUERY"),
    ("SELECT Id FROM Lead WHERE Status = 'New' AND Status = 'x' OR Id = null", "MALFORMED_QUERY"),
    ("SELEKT Id FROM Lead", "MALFORMED_QUERY"),
    ("SELECT Bogus__c FROM Lead", "INVALID_FIELD"),
    ("SELECT Id FROM Lead WHERE SystemModstamp > '2024-01-01T00:00:00Z'", "INVALID_FIELD"),
    ("SELECT Id FROM Leed", "INVALID_TYPE"),
])
def test_bad_soql_gets_the_real_error_code(sf: Salesforce, query: str, code: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.query(query)
    assert error_code(exc) == code
    assert "ERROR at Row:1:Column:" in exc.value.content[0]["message"]


def test_query_all_sees_deleted_rows(sf: Salesforce) -> None:
    lead_id = new_lead(sf)
    sf.Lead.delete(lead_id)
    live = sf.query(format_soql("SELECT Id FROM Lead WHERE Id = {}", lead_id))
    assert live["totalSize"] == 0
    everything = sf.query_all(format_soql("SELECT Id, IsDeleted FROM Lead WHERE Id = {}",
                                          lead_id), include_deleted=True)
    assert everything["records"][0]["IsDeleted"] is True
    with pytest.raises(SalesforceResourceNotFound) as exc:
        sf.Lead.get(lead_id)
    assert error_code(exc) == "ENTITY_IS_DELETED"


def test_count_and_relationship_fields(sf: Salesforce) -> None:
    count = sf.query("SELECT COUNT() FROM Lead WHERE IsDeleted = false")
    assert count["totalSize"] > 0
    assert count["records"] == []
    row = sf.query("SELECT Id, Owner.Email FROM Lead LIMIT 1")["records"][0]
    assert row["Owner"]["attributes"]["type"] == "User"
    assert "@" in row["Owner"]["Email"]


# -- records ---------------------------------------------------------------------------------
def test_create_get_update_delete_and_server_stamps(sf: Salesforce) -> None:
    lead_id = new_lead(sf, Email="crud@example.com", Status="Working")
    record = sf.Lead.get(lead_id)
    assert record["Status"] == "Working"
    assert record["SystemModstamp"].endswith(".000+0000")
    assert record["IsConverted"] is False
    assert sf.Lead.update(lead_id, {"Title": "CEO"}) == 204
    assert sf.Lead.get(lead_id)["Title"] == "CEO"
    assert sf.Lead.delete(lead_id) == 204


def test_upsert_by_external_id_creates_then_updates(sf: Salesforce) -> None:
    created = sf.Contact.upsert("HubSpot_Contact_Id__c/hs-123", {"LastName": "Ext"})
    assert created == 201
    updated = sf.Contact.upsert("HubSpot_Contact_Id__c/hs-123", {"LastName": "Ext2"})
    assert updated == 204 or updated == 200
    rows = sf.query("SELECT LastName FROM Contact WHERE HubSpot_Contact_Id__c = 'hs-123'")
    assert [r["LastName"] for r in rows["records"]] == ["Ext2"]


@pytest.mark.parametrize(("values", "code", "field"), [
    ({"Email": "not an email"}, "INVALID_EMAIL_ADDRESS", "Email"),
    ({"FirstName": "x" * 41}, "STRING_TOO_LONG", "FirstName"),
    ({"Status": "Hot lead"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "Status"),
    ({"Company": None}, "REQUIRED_FIELD_MISSING", "Company"),
    ({"IsConverted": True}, "INVALID_FIELD_FOR_INSERT_UPDATE", "IsConverted"),
])
def test_validation_like_a_real_org(sf: Salesforce, values: dict[str, Any], code: str,
                                    field: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as exc:
        new_lead(sf, **values)
    assert error_code(exc) == code
    assert field in exc.value.content[0]["fields"]


def matched_ids(content: Any) -> list[str]:
    result = content[0]["duplicateResult"]
    return [m["record"]["Id"] for r in result["matchResults"] for m in r["matchRecords"]]


def test_standard_duplicate_rules_are_on_by_default(sandbox: SandboxClient,
                                                    sf: Salesforce) -> None:
    twin = new_lead(sf, FirstName="Ada", LastName="Twin", Email="twin@example.com")
    with pytest.raises(SalesforceMalformedRequest) as exc:  # the same email alone matches
        new_lead(sf, Email="  TWIN@example.com ")
    assert error_code(exc) == "DUPLICATES_DETECTED"
    assert exc.value.content[0]["message"] == "Use one of these records?"
    result = exc.value.content[0]["duplicateResult"]
    assert result["duplicateRule"] == "Standard_Lead_Duplicate_Rule"
    assert result["allowSave"] is True  # the standard rules alert; they do not block
    assert matched_ids(exc.value.content) == [twin]
    # Name and company, across Lead and Contact (a Contact's company is its Account's Name):
    account = str(sf.Account.create({"Name": "Twin Works"})["id"])
    contact = str(sf.Contact.create({"FirstName": "Grace", "LastName": "Hopper",
                                     "AccountId": account})["id"])
    with pytest.raises(SalesforceMalformedRequest) as cross:
        new_lead(sf, FirstName=" grace", LastName="HOPPER", Company="twin works")
    assert matched_ids(cross.value.content) == [contact]
    assert cross.value.content[0]["duplicateResult"]["matchResults"][0]["entityType"] == (
        "Contact")
    with pytest.raises(SalesforceMalformedRequest) as back:  # and a Contact against a Lead
        sf.Contact.create({"FirstName": "Ada", "LastName": "Twin", "Email": "TWIN@example.com"})
    assert matched_ids(back.value.content) == [twin]
    # Blank fields never match; a different first name with the same company is no twin:
    new_lead(sf, LastName="Hopper", Company="Twin Works")
    new_lead(sf, FirstName="Alan", LastName="Hopper", Company="Twin Works")
    # The rules run on edit too:
    other = new_lead(sf, FirstName="Edit", LastName="Later", Email="edit@example.com")
    with pytest.raises(SalesforceMalformedRequest) as edit:
        sf.Lead.update(other, {"Email": "twin@example.com"})
    assert error_code(edit) == "DUPLICATES_DETECTED"


def test_duplicate_rule_header_allows_the_save(sandbox: SandboxClient, sf: Salesforce) -> None:
    twin = new_lead(sf, FirstName="Allow", LastName="Save", Email="allow@example.com")
    details = {"Sforce-Duplicate-Rule-Header": "includeRecordDetails=true"}
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Lead.create({"LastName": "X", "Company": "Y", "Email": "allow@example.com"},
                       headers=details)
    record = exc.value.content[0]["duplicateResult"]["matchResults"][0]["matchRecords"][0][
        "record"]
    assert record["Id"] == twin
    assert record["Email"] == "allow@example.com"
    saved = sf.Lead.create({"LastName": "X", "Company": "Y", "Email": "allow@example.com"},
                           headers={"Sforce-Duplicate-Rule-Header":
                                    "allowSave=true; runAsCurrentUser=true"})
    assert saved["success"] is True
    answer = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Lead"}, "LastName": "Z", "Company": "Y",
         "Email": "allow@example.com"}]}, headers={"Sforce-Duplicate-Rule-Header":
                                                   "allowSave=true"})
    assert answer[0]["success"] is True


def test_collections_duplicates_match_the_documented_bodies(sandbox: SandboxClient,
                                                            sf: Salesforce,
                                                            reference: Path) -> None:
    new_lead(sf, FirstName="Doc", LastName="Twin", Email="doc.twin@example.com")
    for all_or_none in (False, True):
        records = [{"attributes": {"type": "Lead"}, "LastName": "Dup", "Company": "C",
                    "Email": "doc.twin@example.com"},
                   {"attributes": {"type": "Lead"}, "LastName": "Fresh", "Company": "C",
                    "Email": f"fresh{all_or_none}@example.com"}]
        ours = sf.restful("composite/sobjects", method="POST",
                          json={"allOrNone": all_or_none, "records": records})
        name = ("doc-collections-create-duplicates-detected-allornone-"
                f"{str(all_or_none).lower()}.json")
        recorded = json.loads((reference / "salesforce" / name).read_text())
        # The documented Collections bodies name no matching records (no duplicateResult);
        # the connector looks them up (tests/test_connector_salesforce.py).
        assert "duplicateResult" not in ours[0]["errors"][0]
        assert same_shape(shape(ours), shape(recorded)) == []
        assert [[e["statusCode"] for e in r["errors"]] for r in ours] == [
            [e["statusCode"] for e in r["errors"]] for r in recorded]


def test_duplicate_rules_knob_off(make_sandbox: Any) -> None:
    box = make_sandbox(duplicate_rule=False)  # lenience: the knob under test
    sf = salesforce_client(box)
    new_lead(sf, Email="twin@example.com")
    assert new_lead(sf, Email="TWIN@example.com")


def collection(sf: Salesforce, method: str, body: Any = None, params: Any = None) -> Any:
    return sf.restful("composite/sobjects", method=method, json=body, params=params)


def test_collections_create_partial_failure_per_record(sf: Salesforce) -> None:
    records = [{"attributes": {"type": "Lead"}, "LastName": f"Batch{i}", "Company": "B"}
               for i in range(199)]
    records.insert(5, {"attributes": {"type": "Lead"}, "LastName": "NoCompany"})
    results = collection(sf, "POST", {"allOrNone": False, "records": records})
    assert len(results) == 200
    assert results[5] == {"success": False, "errors": [{
        "statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [Company]",
        "fields": ["Company"]}]}
    assert all(r["success"] and r["id"].startswith("00Q") for i, r in enumerate(results) if i != 5)
    stamps = {sf.Lead.get(results[0]["id"])["SystemModstamp"],
              sf.Lead.get(results[150]["id"])["SystemModstamp"]}
    assert len(stamps) == 1  # one transaction, one timestamp


def test_collections_all_or_none_rolls_back(sf: Salesforce) -> None:
    before = sf.query("SELECT COUNT() FROM Lead")["totalSize"]
    results = collection(sf, "POST", {"allOrNone": True, "records": [
        {"attributes": {"type": "Lead"}, "LastName": "Fine", "Company": "C"},
        {"attributes": {"type": "Lead"}, "LastName": "Bad", "Company": "C", "Email": "bad"}]})
    assert [e["statusCode"] for r in results for e in r["errors"]] == [
        "ALL_OR_NONE_OPERATION_ROLLED_BACK", "INVALID_EMAIL_ADDRESS"]
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == before


def test_collections_update_delete_and_limits(sf: Salesforce) -> None:
    ids = [new_lead(sf) for _ in range(3)]
    updated = collection(sf, "PATCH", {"allOrNone": False, "records": [
        {"attributes": {"type": "Lead"}, "Id": ids[0], "Title": "VP"},
        {"attributes": {"type": "Lead"}, "Title": "no id"}]})
    assert updated[0]["success"] is True
    assert updated[1]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    deleted = collection(sf, "DELETE", params={"ids": ",".join(ids), "allOrNone": "false"})
    assert [d["success"] for d in deleted] == [True, True, True]
    again = collection(sf, "DELETE", params={"ids": ids[0]})
    assert again[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        collection(sf, "POST", {"records": [{"attributes": {"type": "Lead"}}] * 201})
    assert error_code(exc) == "EXCEEDED_ID_LIMIT"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        collection(sf, "POST", {"records": []})
    assert error_code(exc) == "REQUIRED_FIELD_MISSING"


# -- describe, limits, replication -----------------------------------------------------------
def test_describe_marks_restricted_picklists_and_formulas(sf: Salesforce) -> None:
    fields = {f["name"]: f for f in sf.Lead.describe()["fields"]}
    status = fields["Status"]
    assert status["restrictedPicklist"] is True
    assert [v["value"] for v in status["picklistValues"]][:2] == ["New", "Working"]
    assert fields["Days_Since_Created__c"]["calculated"] is True
    assert fields["LastName"]["nillable"] is False
    assert fields["Email"]["length"] == 80
    assert fields["IsConverted"]["updateable"] is False
    stage = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}["StageName"]
    assert stage["restrictedPicklist"] is True


def test_limits_and_usage_header(sf: Salesforce) -> None:
    limits = sf.limits()
    assert limits["DailyApiRequests"]["Max"] >= limits["DailyApiRequests"]["Remaining"]
    usage = sf.api_usage["api-usage"]
    assert 0 < usage.used <= usage.total


def test_request_limit_exceeded_is_403(make_sandbox: Any) -> None:
    box = make_sandbox(salesforce_daily_api_max=3)
    sf = salesforce_client(box)
    sf.query("SELECT Id FROM Lead LIMIT 1")
    sf.query("SELECT Id FROM Lead LIMIT 1")
    sf.query("SELECT Id FROM Lead LIMIT 1")
    with pytest.raises(SalesforceRefusedRequest) as exc:
        sf.query("SELECT Id FROM Lead LIMIT 1")
    assert exc.value.status == 403
    assert error_code(exc) == "REQUEST_LIMIT_EXCEEDED"


def test_get_updated_and_get_deleted(sandbox: SandboxClient, sf: Salesforce) -> None:
    now = dt.datetime.now(dt.UTC)
    kept, gone = new_lead(sf), new_lead(sf)
    sf.Lead.delete(gone)
    for record_id in (kept, gone):  # Salesforce covers only whole minutes already past
        sandbox.admin("salesforce", "POST", "/salesforce/age", {"id": record_id, "minutes": 5})
    start, end = now - dt.timedelta(minutes=10), now + dt.timedelta(minutes=2)
    updated = sf.Lead.updated(start, end)
    assert kept in updated["ids"]
    assert gone not in updated["ids"]
    covered = dt.datetime.strptime(updated["latestDateCovered"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert covered <= now
    deleted = sf.Lead.deleted(start, end)
    deleted_ids = [d["id"] for d in deleted["deletedRecords"]]
    assert gone in deleted_ids
    assert kept not in deleted_ids
    assert set(deleted) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Lead.deleted(now - dt.timedelta(days=40), end)
    assert error_code(exc) == "INVALID_REPLICATION_DATE"


def test_get_deleted_forgets_after_fifteen_days(sandbox: SandboxClient, sf: Salesforce) -> None:
    lead_id = new_lead(sf)
    sf.Lead.delete(lead_id)
    sandbox.admin("salesforce", "POST", "/salesforce/age", {"id": lead_id, "minutes": 16 * 1440})
    now = dt.datetime.now(dt.UTC)
    deleted = sf.Lead.deleted(now - dt.timedelta(days=20), now)
    assert lead_id not in [d["id"] for d in deleted["deletedRecords"]]
    earliest = dt.datetime.strptime(deleted["earliestDateAvailable"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert earliest > now - dt.timedelta(days=15, minutes=1)


# -- conversion and merge ---------------------------------------------------------------------
def test_lead_conversion_is_visible_and_read_only(sandbox: SandboxClient, sf: Salesforce) -> None:
    lead_id = new_lead(sf, Email="convert.me@example.com", FirstName="Con")
    result = sandbox.admin("salesforce", "POST", "/salesforce/convertLead",
                           {"leadId": lead_id, "createOpportunity": True})
    lead = sf.Lead.get(lead_id)
    assert lead["IsConverted"] is True
    assert lead["Status"] == "Qualified"
    assert lead["ConvertedContactId"] == result["contactId"]
    assert lead["ConvertedAccountId"] == result["accountId"]
    assert lead["ConvertedOpportunityId"] == result["opportunityId"]
    assert sf.Contact.get(result["contactId"])["Email"] == "convert.me@example.com"
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.Lead.update(lead_id, {"Title": "x"})
    assert error_code(exc) == "CANNOT_UPDATE_CONVERTED_LEAD"


def test_merge_deletes_with_master_record_id(sandbox: SandboxClient, sf: Salesforce) -> None:
    keep, gone = new_lead(sf), new_lead(sf)
    sandbox.admin("salesforce", "POST", "/salesforce/merge",
                  {"object": "Lead", "masterId": keep, "mergedIds": [gone]})
    row = sf.query_all(format_soql("SELECT Id, IsDeleted, MasterRecordId FROM Lead WHERE Id = {}",
                                   gone), include_deleted=True)["records"][0]
    assert row["IsDeleted"] is True
    assert row["MasterRecordId"] == keep


# -- Bulk API 2.0 ----------------------------------------------------------------------------
def test_bulk2_query_pages_csv_with_sforce_locator(make_sandbox: Any) -> None:
    box = make_sandbox(sizes=SeedSizes(leads=2500, contacts=0, accounts=1, opportunities=0,
                                       hubspot_only_contacts=0))
    sf = salesforce_client(box)
    pages = list(sf.bulk2.Lead.query("SELECT Id, Email, IsConverted, SystemModstamp FROM Lead",
                                     max_records=1000))
    assert len(pages) == 3
    rows = [row for page in pages for row in csv.DictReader(io.StringIO(page))]
    assert len(rows) == len({r["Id"] for r in rows}) == 2500
    assert rows[0]["IsConverted"] == "false"
    assert rows[0]["SystemModstamp"].endswith(".000Z")
    endpoints = box.requests("salesforce")["endpoints"]
    assert endpoints["salesforce.bulk2.results"] == 3
    assert endpoints["salesforce.bulk2.create"] == 1


@pytest.mark.parametrize("query", [
    "SELECT Id, SystemModstamp FROM Lead ORDER BY SystemModstamp, Id",
    "SELECT Id, SystemModstamp FROM Lead LIMIT 10",
    "SELECT Id, SystemModstamp FROM Lead WHERE IsDeleted = false OFFSET 2"])
def test_bulk2_query_refuses_order_by_and_limit(sandbox: SandboxClient, sf: Salesforce,
                                                query: str) -> None:
    # Bulk API 2.0 guide, "SOQL considerations": ORDER BY and LIMIT disable PK chunking.
    with pytest.raises(SalesforceMalformedRequest) as exc:
        sf.restful("jobs/query", method="POST", json={
            "operation": "query", "query": query})
    assert error_code(exc) == "INVALIDJOB"
    clause = next(c for c in ("ORDER BY", "LIMIT", "OFFSET") if c in query)
    assert f"{clause} is not supported" in exc.value.content[0]["message"]
    job = sf.restful("jobs/query", method="POST", json={
        "operation": "query", "query": "SELECT Id, SystemModstamp FROM Lead"})
    assert job["state"] == "UploadComplete"


# -- bad input -------------------------------------------------------------------------------
def test_bad_input_gets_salesforce_error_bodies(sandbox: SandboxClient, sf: Salesforce) -> None:
    headers = {"Authorization": f"Bearer {sf.session_id}", "Content-Type": "application/json"}
    base = sandbox.info.salesforce_url + "/services/data/v59.0"
    malformed = sandbox.http.post(base + "/sobjects/Lead", data="{not json", headers=headers)
    assert malformed.status_code == 400
    assert malformed.json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    unknown = sandbox.http.get(base + "/sobjects/Nope__c/describe", headers=headers)
    assert unknown.status_code == 404
    assert unknown.json()[0]["errorCode"] == "NOT_FOUND"
    wrong = sandbox.http.put(base + "/sobjects/Lead/describe", headers=headers)
    assert wrong.status_code == 405
    assert wrong.json()[0]["errorCode"] == "METHOD_NOT_ALLOWED"
    field = sandbox.http.post(base + "/sobjects/Lead", json={"LastName": "a", "Company": "b",
                                                             "Nope__c": 1}, headers=headers)
    assert field.json()[0]["errorCode"] == "INVALID_FIELD"


def test_a_deleted_custom_field_is_gone_from_describe_soql_and_writes(make_sandbox: Any
                                                                      ) -> None:
    box = make_sandbox()
    sf = salesforce_client(box)
    lead = new_lead(sf, Lead_Score__c=7)
    deleted = box.admin("salesforce", "POST", "/salesforce/deleteField",
                        {"object": "Lead", "field": "lead_score__c"})
    assert deleted == {"success": True, "deleted": "Lead.Lead_Score__c"}
    assert "Lead_Score__c" not in {f["name"] for f in sf.Lead.describe()["fields"]}
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.query("SELECT Id, Lead_Score__c FROM Lead")
    assert error_code(refused) == "INVALID_FIELD"
    assert "No such column 'Lead_Score__c' on entity 'Lead'" in (
        refused.value.content[0]["message"])
    with pytest.raises(SalesforceMalformedRequest):
        sf.query("SELECT Id FROM Lead WHERE Lead_Score__c > 1")
    [result] = sf.restful("composite/sobjects", method="PATCH", json={"records": [
        {"attributes": {"type": "Lead"}, "Id": lead, "Lead_Score__c": 9}]})
    assert result["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert result["errors"][0]["message"] == (
        "No such column 'Lead_Score__c' on sobject of type Lead")
    assert sf.query("SELECT Id, Email FROM Lead LIMIT 1")["totalSize"] == 1  # the rest works
    standard = box.http.post(box.url("salesforce", "/__sandbox/salesforce/deleteField"),
                             json={"object": "Lead", "field": "Email"}, timeout=10)
    assert standard.status_code == 400  # standard fields cannot be deleted


def test_events_keep_start_and_end_twice_and_need_a_time(sf: Salesforce) -> None:
    lead = new_lead(sf, Email="event.guest@example.com")
    made = sf.Event.create({"Subject": "Demo", "WhoId": lead,
                            "StartDateTime": "2026-11-03T14:00:00.000+0000",
                            "DurationInMinutes": 45})
    event = sf.Event.get(made["id"])
    assert made["id"].startswith("00U")
    assert event["ActivityDateTime"] == event["StartDateTime"] == "2026-11-03T14:00:00.000+0000"
    assert (event["EndDateTime"], event["ActivityDate"]) == ("2026-11-03T14:45:00.000+0000",
                                                             "2026-11-03")
    assert event["IsAllDayEvent"] is False
    sf.Event.update(made["id"], {"EndDateTime": "2026-11-03T15:30:00.000+0000"})
    assert sf.Event.get(made["id"])["DurationInMinutes"] == 90
    rows = sf.query(format_soql("SELECT Id, WhoId, StartDateTime FROM Event WHERE WhoId = {} "
                                "AND SystemModstamp >= {}", lead,
                                dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))["records"]
    assert [(r["Id"], r["WhoId"]) for r in rows] == [(made["id"], lead)]
    with pytest.raises(SalesforceMalformedRequest) as refused:
        sf.Event.create({"Subject": "When?", "WhoId": lead})
    assert error_code(refused) == "REQUIRED_FIELD_MISSING"
    assert refused.value.content[0]["fields"] == ["ActivityDateTime", "DurationInMinutes"]
    all_day = sf.Event.create({"Subject": "Offsite", "IsAllDayEvent": True,
                               "ActivityDate": "2026-11-04"})
    assert sf.Event.get(all_day["id"])["DurationInMinutes"] == 24 * 60
