"""Connector operations recorded as vcrpy cassettes (one per operation) and replayed in tests.

``python -m tests.record_cassettes`` records them against the sandbox on fixed ports; the test
suite replays them with ``record_mode="none"`` and no server. Each step's checks run in both
modes, so a replay proves the connector still sends the same requests and still makes the
same sense of the recorded answers.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import vcr
from pydantic import SecretStr

from connectors.config import HubSpotSettings, PasswordAuth, SalesforceSettings
from connectors.hubspot import HubSpotConnector
from connectors.records import WriteRecord
from connectors.retry import RetryPolicy
from connectors.salesforce import SalesforceConnector

CASSETTES = Path(__file__).parent / "cassettes"
SALESFORCE_PORT = 18443
HUBSPOT_PORT = 18080
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
UNTIL = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)
REDACTED = "REDACTED"
SECRET_KEYS = ("access_token", "signature", "refresh_token", "id_token")


def replay_settings() -> tuple[SalesforceSettings, HubSpotSettings]:
    """Settings for replay: the recorded URLs, and credentials that exist nowhere."""
    base = f"https://127.0.0.1:{SALESFORCE_PORT}"
    return (SalesforceSettings(
        token_url=f"{base}/services/oauth2/token", instance_url=base,
        auth=PasswordAuth(kind="password", client_id="replay", client_secret=SecretStr("x"),
                          username="integration@stagesync.sandbox", password=SecretStr("x"))),
        HubSpotSettings(host=f"http://127.0.0.1:{HUBSPOT_PORT}",
                        access_token=SecretStr("pat-replay"), requests_per_ten_seconds=0,
                        searches_per_second=0))


def _is_token(request: Any) -> bool:
    return str(request.path).endswith("/oauth2/token")


def _scrub_request(request: Any) -> Any:
    if _is_token(request):
        request.body = b""  # the grant's form holds the password and client secret
    return request


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in ("set-cookie", "authorization"):
            del headers[name]
    body = response.get("body", {}).get("string")
    if body and body[:1] in (b"{", "{"):
        try:
            data = json.loads(body)
        except ValueError:
            return response
        if isinstance(data, dict) and any(k in data for k in SECRET_KEYS):
            for key in SECRET_KEYS:
                if key in data:
                    data[key] = REDACTED
            encoded = json.dumps(data)
            response["body"]["string"] = encoded.encode() if isinstance(body, bytes) else encoded
    return response


def _json_body(left: Any, right: Any) -> None:
    """Bodies must match as JSON (the token grant's is scrubbed, so it is not compared)."""
    if _is_token(left) or _is_token(right):
        return
    def load(request: Any) -> Any:
        raw = request.body or b""
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    assert load(left) == load(right), "request bodies differ"


def recorder(mode: str) -> vcr.VCR:
    recorder = vcr.VCR(
        cassette_library_dir=str(CASSETTES), record_mode=mode,
        match_on=["method", "scheme", "host", "port", "path", "query", "json_body"],
        filter_headers=["authorization", "cookie"], before_record_request=_scrub_request,
        before_record_response=_scrub_response, decode_compressed_response=True)
    recorder.register_matcher("json_body", _json_body)
    return recorder


Step = Callable[[Any, dict[str, Any]], None]


def salesforce_steps() -> Iterator[tuple[str, Step]]:
    def check(sf: SalesforceConnector, ctx: dict[str, Any]) -> None:
        report = sf.check()
        assert {o.name for o in report.objects} >= {"Lead", "Contact", "Opportunity"}
        assert report.quota is not None

    def describe(sf: SalesforceConnector, ctx: dict[str, Any]) -> None:
        sf.clear_cache()  # check() described everything; describe again, over HTTP
        schema = sf.describe("Lead")
        assert schema.fields["Status"].restricted_picklist
        assert schema.fields["Days_Since_Created__c"].calculated

    def read_changed(sf: SalesforceConnector, ctx: dict[str, Any]) -> None:
        records = list(sf.read_changed("Lead", EPOCH, UNTIL, ["Email", "Status"]))
        assert len(records) > 2000  # more than one page
        assert len({r.id for r in records}) == len(records)
        assert [r.cursor for r in records] == sorted(r.cursor for r in records)
        assert sf.calls["GET query/{id}"] >= 1
        ctx["lead"] = records[0]

    def upsert(sf: SalesforceConnector, ctx: dict[str, Any]) -> None:
        results = sf.upsert("Lead", [
            WriteRecord(values={"LastName": "Cassette", "Company": "VCR",
                                "Email": "cassette@example.com"}),
            WriteRecord(values={"LastName": "NoCompany"}),
            WriteRecord(id=ctx["lead"].id, values={"Status": "Working"}),
        ])
        assert [r.ok for r in results] == [True, False, True]
        assert results[1].error is not None
        assert results[1].error.code == "REQUIRED_FIELD_MISSING"
        assert results[1].error.fields == ("Company",)
        contact = sf.upsert("Contact", [WriteRecord(
            values={"LastName": "Ext"}, match=("HubSpot_Contact_Id__c", "hs-cassette"))])
        assert contact[0].created is True
        ctx["created"] = results[0].id

    def read_by_ids(sf: SalesforceConnector, ctx: dict[str, Any]) -> None:
        found = sf.read_by_ids("Lead", [ctx["created"], ctx["lead"].id], ["Email", "Status"])
        assert {r.id for r in found} == {ctx["created"], ctx["lead"].id}

    def find_by_emails(sf: SalesforceConnector, ctx: dict[str, Any]) -> None:
        found = sf.find_by_emails("Lead", ["CASSETTE@example.com", "x' OR Id != '"], ["Email"])
        assert [r.id for r in found] == [ctx["created"]]

    def delete(sf: SalesforceConnector, ctx: dict[str, Any]) -> None:
        assert sf.delete("Lead", [ctx["created"]])[0].ok

    def read_deleted(sf: SalesforceConnector, ctx: dict[str, Any]) -> None:
        deleted = sf.read_deleted("Lead", EPOCH)
        assert ctx["created"] in [d.id for d in deleted.records]
        assert deleted.complete is False  # EPOCH is far beyond the 15 days Salesforce keeps

    yield from [("check", check), ("describe", describe), ("read_changed", read_changed),
                ("upsert", upsert), ("read_by_ids", read_by_ids),
                ("find_by_emails", find_by_emails), ("delete", delete),
                ("read_deleted", read_deleted)]


def hubspot_steps() -> Iterator[tuple[str, Step]]:
    def check(hs: HubSpotConnector, ctx: dict[str, Any]) -> None:
        report = hs.check()
        assert [o.name for o in report.objects] == ["contacts", "companies", "deals"]

    def describe(hs: HubSpotConnector, ctx: dict[str, Any]) -> None:
        hs.clear_cache()
        assert hs.describe("contacts").fields["lifecyclestage"].picklist_values[0] == "subscriber"
        deals = hs.describe("deals")
        assert [s.id for s in deals.pipelines["default"]][-1] == "closedlost"

    def read_changed(hs: HubSpotConnector, ctx: dict[str, Any]) -> None:
        records = list(hs.read_changed("contacts", EPOCH, UNTIL, ["email", "lifecyclestage"]))
        assert len(records) > 200  # more than one search page
        assert len({r.id for r in records}) == len(records)
        assert [r.cursor for r in records] == sorted(r.cursor for r in records)
        ctx["contact"] = records[0]

    def upsert(hs: HubSpotConnector, ctx: dict[str, Any]) -> None:
        results = hs.upsert("contacts", [
            WriteRecord(values={"email": "cassette@example.com", "lifecyclestage": "opportunity"}),
            WriteRecord(values={"email": "bad@example.com", "lifecyclestage": "nope"}),
            WriteRecord(id="999999999", values={"firstname": "Ghost"}),
            WriteRecord(match=("email", "Upserted@Example.com"), values={"firstname": "Up"}),
        ])
        assert [r.ok for r in results] == [True, False, False, True]
        assert results[1].error is not None
        assert results[1].error.code == "INVALID_OPTION"
        assert results[2].error is not None
        assert results[2].error.code == "OBJECT_NOT_FOUND"
        backward = hs.upsert("contacts", [WriteRecord(
            id=results[0].id, values={"lifecyclestage": "lead"},
            current={"lifecyclestage": "opportunity"})])
        assert backward[0].ok
        ctx["created"] = results[0].id

    def read_by_ids(hs: HubSpotConnector, ctx: dict[str, Any]) -> None:
        found = hs.read_by_ids("contacts", [ctx["created"]], ["lifecyclestage"])
        assert found[0].values["lifecyclestage"] == "lead"

    def find_by_emails(hs: HubSpotConnector, ctx: dict[str, Any]) -> None:
        found = hs.find_by_emails("contacts", [" CASSETTE@example.com"], ["email"])
        assert [r.id for r in found] == [ctx["created"]]

    def associate(hs: HubSpotConnector, ctx: dict[str, Any]) -> None:
        company = hs.upsert("companies", [WriteRecord(values={"name": "Cassette Co"})])[0].id
        assert company is not None
        assert hs.associate("contacts", "companies", [(ctx["created"], company)]) == 1
        assert hs.associated("contacts", "companies", [ctx["created"]]) == {
            ctx["created"]: [company]}
        assert any(o["email"] for o in hs.owners())

    def delete(hs: HubSpotConnector, ctx: dict[str, Any]) -> None:
        assert hs.delete("contacts", [ctx["created"]])[0].ok

    def read_deleted(hs: HubSpotConnector, ctx: dict[str, Any]) -> None:
        deleted = hs.read_deleted("contacts", EPOCH)
        assert ctx["created"] in [d.id for d in deleted.records]

    yield from [("check", check), ("describe", describe), ("read_changed", read_changed),
                ("upsert", upsert), ("read_by_ids", read_by_ids),
                ("find_by_emails", find_by_emails), ("associate", associate),
                ("delete", delete), ("read_deleted", read_deleted)]


def run(system: str, connector: Any, mode: str,
        wrap: Callable[[str], AbstractContextManager[Any]] | None = None) -> list[str]:
    """Run a system's steps, each inside its own cassette; returns the cassette names."""
    steps = salesforce_steps() if system == "salesforce" else hubspot_steps()
    ctx: dict[str, Any] = {}
    names = []
    rec = recorder(mode)
    for name, step in steps:
        cassette = f"{system}-{name}.yaml"
        with rec.use_cassette(cassette):
            step(connector, ctx)
        names.append(cassette)
    return names


def replay_connectors() -> tuple[SalesforceConnector, HubSpotConnector]:
    sf_settings, hs_settings = replay_settings()
    no_wait = RetryPolicy(initial=0.0, maximum=0.0)
    return SalesforceConnector(sf_settings, no_wait), HubSpotConnector(hs_settings, no_wait)
