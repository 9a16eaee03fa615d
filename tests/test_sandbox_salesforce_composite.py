"""The Composite resource of the Salesforce emulator, over HTTPS through simple-salesforce and
plain requests: subrequests answer as the same requests sent alone, the whole request is one API
call, and the documented caps and allOrNone rules hold."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceGeneralError, SalesforceMalformedRequest
from simple_salesforce.format import format_soql

from sandbox.admin import SandboxClient
from tests.conftest import salesforce_client

V = "/services/data/v59.0"
HALTED = ("The transaction was rolled back since another operation in the same transaction "
          "failed.")


def query(soql: str, resource: str = "query") -> str:
    return f"{V}/{resource}?q={quote(soql, safe='')}"


def get(ref: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"method": "GET", "url": url, "referenceId": ref, **extra}


def composite(sf: Salesforce, *subrequests: dict[str, Any], all_or_none: bool = False
              ) -> dict[str, dict[str, Any]]:
    """The answers by referenceId, after checking they come back in request order."""
    answer = sf.restful("composite", method="POST", json={
        "allOrNone": all_or_none, "compositeRequest": list(subrequests)})
    assert answer is not None
    items = answer["compositeResponse"]
    assert [i["referenceId"] for i in items] == [s["referenceId"] for s in subrequests]
    assert all(set(i) == {"body", "httpHeaders", "httpStatusCode", "referenceId"} for i in items)
    return {i["referenceId"]: i for i in items}


def refusal(sf: Salesforce, body: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(SalesforceMalformedRequest) as raised:
        sf.restful("composite", method="POST", json=body)
    content = raised.value.content[0]
    return str(content["errorCode"]), str(content["message"])


def new_lead(sf: Salesforce, name: str) -> str:
    return str(sf.Lead.create({"LastName": name, "Company": "Composite Co"})["id"])


def used(box: SandboxClient) -> int:
    """DailyApiRequests used, read from the admin side (a /limits call would count too)."""
    return int(box.admin("salesforce", "POST", "/salesforce/config", {})["apiUsed"])


def test_subrequests_answer_as_the_same_requests_sent_alone(sf: Salesforce) -> None:
    gone = new_lead(sf, "Composite Gone")
    sf.Lead.delete(gone)
    soql = format_soql("SELECT Id, LastName, IsDeleted FROM Lead WHERE Id = {}", gone)
    live = "SELECT Id, Name FROM Account ORDER BY Id LIMIT 3"
    answers = composite(sf, get("deleted", query(soql, "queryAll")), get("live", query(live)),
                        get("gone", query(soql)), get("Lead", f"{V}/sobjects/Lead/describe"))
    assert answers["deleted"]["body"] == sf.query(soql, include_deleted=True)
    assert answers["deleted"]["body"]["records"][0]["IsDeleted"] is True
    assert answers["live"]["body"] == sf.query(live)
    assert answers["gone"]["body"]["totalSize"] == 0  # query (not queryAll) skips deletes
    assert answers["Lead"]["body"] == sf.Lead.describe()
    assert set(answers["Lead"]["httpHeaders"]) == {"ETag", "Last-Modified"}  # as recorded
    assert answers["live"]["httpHeaders"] == {}
    assert {a["httpStatusCode"] for a in answers.values()} == {200}


def test_the_whole_request_is_one_api_call_and_one_logged_request(
        sandbox: SandboxClient, sf: Salesforce) -> None:
    soqls = [format_soql("SELECT Id FROM {:literal}", name)
             for name in ("Lead", "Contact", "Account", "Opportunity")]
    sandbox.reset_requests()
    before = used(sandbox)
    composite(sf, *(get(f"q{n}", query(s, "queryAll")) for n, s in enumerate(soqls)),
              get("q4", query("SELECT Id FROM Task")))
    assert used(sandbox) == before + 1
    assert sandbox.requests("salesforce")["endpoints"] == {"salesforce.composite": 1}
    daily = sf.limits()["DailyApiRequests"]
    assert daily["Max"] - daily["Remaining"] == before + 2  # the composite and /limits itself


def test_at_most_25_subrequests_and_5_queries(sf: Salesforce) -> None:
    describe = [get(f"d{n}", f"{V}/sobjects/Lead/describe") for n in range(26)]
    code, message = refusal(sf, {"compositeRequest": describe})
    assert (code, "at most 25" in message) == ("LIMIT_EXCEEDED", True)
    queries = [get(f"q{n}", query("SELECT Id FROM Lead LIMIT 1")) for n in range(6)]
    code, message = refusal(sf, {"compositeRequest": queries})
    assert (code, "at most 5" in message) == ("LIMIT_EXCEEDED", True)
    nothing = [get(f"c{n}", f"{V}/composite/sobjects/Lead?ids=00Q000000000001AAA&fields=Id")
               for n in range(6)]
    assert refusal(sf, {"compositeRequest": nothing})[0] == "LIMIT_EXCEEDED"  # Collections count
    answers = composite(sf, *queries[:5], *describe[:20])
    assert len(answers) == 25


def test_a_failed_subrequest_answers_with_its_error_and_the_others_run(sf: Salesforce) -> None:
    bad = "SELECT Nope__c FROM Lead"
    answers = composite(sf, get("bad", query(bad)), get("good", query("SELECT Id FROM User")),
                        get("missing", f"{V}/sobjects/Lead/00Q000000000zzzAAA"),
                        get("unsupported", f"{V}/limits"))
    with pytest.raises(SalesforceMalformedRequest) as direct:
        sf.query(bad)
    assert answers["bad"]["httpStatusCode"] == 400
    assert answers["bad"]["body"] == direct.value.content
    assert answers["good"]["httpStatusCode"] == 200
    assert answers["missing"]["httpStatusCode"] == 404
    assert answers["unsupported"]["body"][0]["errorCode"] == "NOT_FOUND"


def test_query_more_pages_ride_in_a_composite_too(sf: Salesforce) -> None:
    soql = "SELECT Id FROM Lead ORDER BY Id"
    batch = {"httpHeaders": {"Sforce-Query-Options": "batchSize=200"}}
    sf.restful("composite/sobjects", method="POST", json={"records": [
        {"attributes": {"type": "Lead"}, "LastName": f"Paged {n}", "Company": f"Paged Co {n}"}
        for n in range(200)]})
    first = composite(sf, get("first", query(soql, "queryAll"), **batch))["first"]["body"]
    assert first["done"] is False
    assert len(first["records"]) == 200
    assert "/queryAll/" in first["nextRecordsUrl"]
    rest = composite(sf, get("rest", first["nextRecordsUrl"]))["rest"]["body"]
    ids = [r["Id"] for r in first["records"] + rest["records"]]
    assert rest["done"] is True
    assert ids == [r["Id"] for r in sf.query_all(soql, include_deleted=True)["records"]]


def test_all_or_none_rolls_every_write_back_and_halts_the_others(sf: Salesforce) -> None:
    count = "SELECT COUNT() FROM Account WHERE Name = 'Rolled Back Co'"
    answers = composite(sf, {
        "method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "made",
        "body": {"Name": "Rolled Back Co"}}, {
        "method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "refused",
        "body": {"Name": "x", "Nope__c": 1}}, get("after", query("SELECT Id FROM User")),
        all_or_none=True)
    assert answers["refused"]["body"][0]["errorCode"] == "INVALID_FIELD"
    for ref in ("made", "after"):
        assert answers[ref]["httpStatusCode"] == 400
        assert answers[ref]["body"] == [{"errorCode": "PROCESSING_HALTED", "message": HALTED}]
    assert sf.query(count)["totalSize"] == 0
    kept = composite(sf, {"method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "made",
                          "body": {"Name": "Rolled Back Co"}}, all_or_none=True)["made"]
    assert kept["httpStatusCode"] == 201
    assert kept["httpHeaders"]["Location"].endswith(kept["body"]["id"])
    assert sf.query(count)["totalSize"] == 1


def test_references_feed_later_subrequests_and_a_failed_one_halts_its_dependents(
        sf: Salesforce) -> None:
    answers = composite(sf, {
        "method": "POST", "url": f"{V}/sobjects/Account", "referenceId": "account",
        "body": {"Name": "Referenced Co"}},
        get("read", f"{V}/sobjects/Account/@{{account.id}}?fields=Name"), {
        "method": "POST", "url": f"{V}/sobjects/Contact", "referenceId": "contact",
        "body": {"LastName": "Ref", "AccountId": "@{account.id}"}},
        get("bad", query("SELECT Nope__c FROM Lead")),
        get("dependent", f"{V}/sobjects/Account/@{{bad.records[0].Id}}"))
    assert answers["read"]["body"]["Name"] == "Referenced Co"
    contact = sf.Contact.get(answers["contact"]["body"]["id"])
    assert contact["AccountId"] == answers["account"]["body"]["id"]
    assert answers["dependent"]["httpStatusCode"] == 400
    assert answers["dependent"]["body"][0]["errorCode"] == "PROCESSING_HALTED"


@pytest.mark.parametrize(("subrequest", "expected"), [
    (get("ok", query("SELECT Id FROM User"), httpHeaders={"Authorization": "Bearer x"}),
     "Authorization"),
    (get("bad[1]", query("SELECT Id FROM User")), "referenceId"),
    (get("ok", "/limits"), "/services/data/vXX.X/"),
    ({"method": "get", "url": query("SELECT Id FROM User"), "referenceId": "ok"}, "method"),
])
def test_malformed_subrequests_fail_the_whole_request(sf: Salesforce, subrequest: dict[str, Any],
                                                      expected: str) -> None:
    code, message = refusal(sf, {"compositeRequest": [subrequest]})
    assert code == "INVALID_API_INPUT"
    assert expected in message


def test_a_reference_id_used_twice_fails_the_whole_request(sf: Salesforce) -> None:
    twice = [get("a", query("SELECT Id FROM User"))] * 2
    assert refusal(sf, {"compositeRequest": twice}) == (
        "INVALID_API_INPUT", "Duplicate referenceId 'a'")


def test_faults_hit_the_composite_request_not_its_subrequests(make_sandbox: Any) -> None:
    box = make_sandbox()
    sf = salesforce_client(box)
    box.faults("salesforce", "salesforce.query=500#1")
    assert composite(sf, get("q", query("SELECT Id FROM User")))["q"]["httpStatusCode"] == 200
    with pytest.raises(SalesforceGeneralError):  # the subrequest left the query fault pending
        sf.query("SELECT Id FROM User")
    box.faults("salesforce", "salesforce.composite=503#1")
    response = box.http.post(box.info.salesforce_url + V + "/composite", json={
        "compositeRequest": [get("q", query("SELECT Id FROM User"))]},
        headers={"Authorization": f"Bearer {sf.session_id}"})
    assert response.status_code == 503
    statuses = box.requests("salesforce")["endpointStatuses"]
    assert {k: n for k, n in statuses.items() if "composite" in k} == {
        "salesforce.composite 200": 1, "salesforce.composite 503": 1}
