"""The Salesforce connector against the sandbox: the traps other connectors fell into."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from connectors.config import load_settings
from connectors.errors import ConfigurationError, QuotaExhaustedError, RetriableError
from connectors.records import Watermark, WriteRecord, advance
from connectors.retry import RetryPolicy
from connectors.salesforce import SalesforceConnector, endpoint_name
from sandbox.admin import SandboxClient
from sandbox.seed import SeedSizes
from tests.conftest import salesforce_client

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
FIELDS = ["Email", "LastName", "Status"]
NO_WAIT = RetryPolicy(initial=0.0, maximum=0.0)


def connector(box: SandboxClient, **settings: Any) -> SalesforceConnector:
    base = load_settings(box.info.settings_file).salesforce
    return SalesforceConnector(base.model_copy(update=settings),
                               RetryPolicy(initial=0.0, maximum=0.0))


def soon() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)


def leads(n: int, tag: str) -> list[WriteRecord]:
    return [WriteRecord(values={"LastName": f"{tag}{i}", "Company": "Stamp Co",
                                "Email": f"{tag.lower()}{i}@example.com"}) for i in range(n)]


def test_shared_stamps_across_a_page_boundary_lose_nothing(make_sandbox: Any) -> None:
    box = make_sandbox(sizes=SeedSizes(leads=0, contacts=0, accounts=1, opportunities=0,
                                       hubspot_only_contacts=0))
    sf = connector(box)
    made = sf.upsert("Lead", leads(2500, "Page"))  # 13 collections of 200: each shares a stamp
    assert all(r.ok for r in made)
    records = list(sf.read_changed("Lead", EPOCH, soon(), FIELDS))
    assert len(records) == len({r.id for r in records}) == 2500
    assert sf.calls["GET query"] == 1
    assert sf.calls["GET query/{id}"] == 1  # the second page starts mid-stamp
    stamps = [r.cursor for r in records]
    assert stamps == sorted(stamps)


def test_a_record_landing_on_the_watermark_stamp_is_not_dropped(make_sandbox: Any) -> None:
    box = make_sandbox()
    sf = connector(box)
    sf.upsert("Lead", leads(150, "Boundary"))
    first = list(sf.read_changed("Lead", EPOCH, soon(), FIELDS))
    mark = advance(Watermark(cursor=EPOCH), first, dt.timedelta(minutes=5))
    late = sf.upsert("Lead", leads(1, "Late"))[0].id
    # A transaction that committed late, stamped with the very second the last cycle ended on:
    box.admin("salesforce", "POST", "/salesforce/age", {"id": late, "at": mark.cursor.isoformat()})
    second = list(sf.read_changed("Lead", mark, soon(), FIELDS))
    assert [r.id for r in second] == [late]
    assert second[0].cursor == mark.cursor  # a `>` cursor would have skipped it


def test_an_expired_session_mid_read_signs_in_again(make_sandbox: Any) -> None:
    box = make_sandbox(sizes=SeedSizes(leads=2100, contacts=0, accounts=1, opportunities=0,
                                       hubspot_only_contacts=0))
    sf = connector(box)
    box.faults("salesforce", "salesforce.query.more=expired#1")
    records = list(sf.read_changed("Lead", EPOCH, soon(), FIELDS))
    assert len(records) == 2100
    assert sf.calls["POST services/oauth2/token"] == 2


def test_soql_values_are_escaped(make_sandbox: Any) -> None:
    box = make_sandbox()
    sf = connector(box)
    made = sf.upsert("Lead", [WriteRecord(values={
        "LastName": "O'Hara \\ \"q\" ünï", "Company": "X", "Email": "real.one@example.com"})])
    hostile = ["x' OR Id != '", "a\\' OR Email != '", "' OR ''='", "ünï'code@example.com",
               "real.one@example.com"]
    found = sf.find_by_emails("Lead", hostile, ["Email", "LastName"])
    assert [r.id for r in found] == [made[0].id]
    assert found[0].values["LastName"] == "O'Hara \\ \"q\" ünï"


def test_merges_surface_as_deletes_pointing_at_the_survivor(make_sandbox: Any) -> None:
    box = make_sandbox()
    sf = connector(box)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
    keep, gone = (r.id for r in sf.upsert("Lead", leads(2, "Merge")))
    box.admin("salesforce", "POST", "/salesforce/merge",
              {"object": "Lead", "masterId": keep, "mergedIds": [gone]})
    deleted = sf.read_deleted("Lead", since)
    assert [(d.id, d.merged_into) for d in deleted.records] == [(gone, keep)]


def test_deletes_older_than_15_days_say_so(make_sandbox: Any) -> None:
    box = make_sandbox()
    sf = connector(box)
    answer = sf.read_deleted("Lead", dt.datetime.now(dt.UTC) - dt.timedelta(days=16))
    assert answer.complete is False
    assert answer.reason is not None
    assert "15 days" in answer.reason
    live = set(sf.list_ids("Lead"))
    assert len(live) == box.admin("salesforce", "GET", "/salesforce/counts")["Lead"]


def test_stops_at_the_configured_share_of_the_daily_limit(make_sandbox: Any) -> None:
    box = make_sandbox()
    box.admin("salesforce", "POST", "/salesforce/config", {"apiDailyMax": 1000, "apiUsed": 749})
    sf = connector(box, quota_stop_share=0.75)
    sf.describe("Lead")  # its response reports 750/1000
    with pytest.raises(QuotaExhaustedError, match="75%"):
        list(sf.read_changed("Lead", EPOCH, soon(), FIELDS))
    used, limit = sf.api_usage
    assert limit == 1000
    assert used is not None
    assert used >= 750


def test_request_limit_exceeded_is_quota_not_a_retry_loop(make_sandbox: Any) -> None:
    box = make_sandbox()
    sf = connector(box, quota_stop_share=1.0)
    sf.describe("Contact")
    # Other integrations spend the rest of the day's quota behind this agent's back:
    box.admin("salesforce", "POST", "/salesforce/config", {"apiUsed": 1_000_000})
    with pytest.raises(QuotaExhaustedError, match="daily API limit"):
        sf.describe("Lead")
    assert box.requests("salesforce")["endpointStatuses"].get("salesforce.describe 403") == 1


def test_concurrent_long_request_limit_is_retried_not_a_stop_for_the_day(
        make_sandbox: Any) -> None:
    box = make_sandbox(faults="salesforce.describe=concurrent#2")
    sf = connector(box, quota_stop_share=1.0)
    assert sf.describe("Lead").object == "Lead"  # 403 twice, then served: backed off, retried
    assert sf.policy.retries == 2
    assert box.requests("salesforce")["endpointStatuses"].get("salesforce.describe 403") == 2


def test_duplicate_rules_refusals_name_the_matches_and_allow_save_saves(
        make_sandbox: Any) -> None:
    box = make_sandbox()
    sf = connector(box)
    account = sf.upsert("Account", [WriteRecord(values={"Name": "Lone Gunmen"})])[0]
    contact = sf.upsert("Contact", [WriteRecord(values={
        "FirstName": "John", "LastName": "Byers", "AccountId": account.id,
        "Email": "byers@example.com"})])[0]
    twin = WriteRecord(values={"FirstName": "John", "LastName": "Byers",
                               "Company": "Lone Gunmen", "Email": "jb@example.com"})
    refused, fine = sf.upsert("Lead", [twin, *leads(1, "Unique")])
    assert fine.ok
    assert refused.error is not None
    assert refused.error.code == "DUPLICATES_DETECTED"
    assert refused.error.matches == (contact.id,)
    sf.duplicate_rules = "allow_save"
    saved = sf.upsert("Lead", [twin])[0]
    assert saved.ok
    assert saved.created


def test_server_errors_are_retried_and_creates_are_not_duplicated(make_sandbox: Any) -> None:
    box = make_sandbox()
    sf = connector(box)
    box.faults("salesforce", "salesforce.query=503#2")
    assert len(list(sf.read_changed("Lead", EPOCH, soon(), FIELDS))) > 0
    assert sf.policy.retries == 2
    before = box.admin("salesforce", "GET", "/salesforce/counts")["Lead"]
    box.faults("salesforce", "salesforce.collections.create=500#1")
    with pytest.raises(RetriableError):
        sf.upsert("Lead", leads(3, "Once"))
    assert box.requests("salesforce")["endpoints"]["salesforce.collections.create"] == 1
    box.faults("salesforce", "salesforce.collections.create=503#1")
    assert all(r.ok for r in sf.upsert("Lead", leads(3, "Twice")))  # 503: not applied, resent
    assert box.admin("salesforce", "GET", "/salesforce/counts")["Lead"] == before + 3


def test_big_reads_go_through_bulk_2_with_the_same_values(make_sandbox: Any) -> None:
    box = make_sandbox(sizes=SeedSizes(leads=450, contacts=0, accounts=1, opportunities=0,
                                       hubspot_only_contacts=0))
    fields = ["Email", "Status", "IsConverted", "CreatedDate", "Lead_Score__c", "NumberOfEmployees"]
    rest = {r.id: r for r in connector(box).read_changed("Lead", EPOCH, soon(), fields)}
    bulk_sf = connector(box, bulk_threshold=100)
    bulk = list(bulk_sf.read_changed("Lead", EPOCH, soon(), fields))
    assert bulk_sf.calls["POST jobs/query"] == 1
    assert len(bulk) == len(rest) == 450
    assert all(r.values == rest[r.id].values and r.cursor == rest[r.id].cursor for r in bulk)
    assert [r.cursor for r in bulk] == sorted(r.cursor for r in bulk)


def test_conversion_is_visible_and_formulas_are_flagged(sandbox: SandboxClient) -> None:
    sf = connector(sandbox)
    lead = sf.upsert("Lead", leads(1, "Convert"))[0].id
    sandbox.admin("salesforce", "POST", "/salesforce/convertLead", {"leadId": lead})
    record = sf.read_by_ids("Lead", [lead], ["IsConverted", "ConvertedContactId"])[0]
    assert record.values["IsConverted"] is True
    assert str(record.values["ConvertedContactId"]).startswith("003")
    schema = sf.describe("Lead")
    assert schema.fields["Days_Since_Created__c"].calculated is True
    assert schema.fields["Status"].restricted_picklist is True
    assert schema.label == "Leads"


def test_endpoint_names_drop_ids() -> None:
    base = "https://x.my.salesforce.com/services/data/v59.0/"
    assert endpoint_name("GET", base + "sobjects/Lead/00Q5g0000000001EAA?fields=Id") == (
        "GET sobjects/Lead/{id}")
    assert endpoint_name("GET", base + "query/01gabc123-2000") == "GET query/{id}"
    assert endpoint_name("PATCH", base + "composite/sobjects") == "PATCH composite/sobjects"


def test_the_client_is_built_on_the_configured_session(sandbox: SandboxClient) -> None:
    sf = connector(sandbox)
    client = sf.client()
    assert client.session is sf.http
    assert sf.http.trust_env is False
    assert salesforce_client(sandbox).sf_instance == client.sf_instance


def test_no_session_id_password_or_key_in_logs_errors_or_reprs(
        sandbox: SandboxClient, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from connectors.config import JwtBearerAuth
    from connectors.errors import ConfigurationError

    caplog.set_level(logging.DEBUG)
    sf = connector(sandbox)
    list(sf.read_changed("Lead", dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1), soon(),
                         FIELDS))
    session_id = sf.client().session_id
    key = sandbox.info.jwt_key_file.read_text()
    c = sandbox.info.credentials
    wrong = connector(sandbox, auth=JwtBearerAuth(kind="jwt", client_id=c.client_id,
                                                  username="someone.else@example.com",
                                                  private_key_file=sandbox.info.jwt_key_file))
    with pytest.raises(ConfigurationError) as exc:
        wrong.describe("Lead")
    texts = [caplog.text, str(exc.value), repr(exc.value), repr(sf.settings),
             str(sf.settings.model_dump())]
    for text in texts:
        assert session_id not in text
        assert c.password not in text
        assert c.client_secret not in text
        assert "PRIVATE KEY" not in text
        assert key[40:80] not in text


def test_activity_is_read_by_change_one_query_per_object(make_sandbox: Any) -> None:
    sf = connector(make_sandbox())
    lead = str(sf.upsert("Lead", leads(1, "Active"))[0].id)
    task = sf.upsert("Task", [WriteRecord(values={"Subject": "Call", "WhoId": lead}),
                              WriteRecord(values={"Subject": "On no one"})])[0].id
    met = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).replace(microsecond=0)
    event = sf.upsert("Event", [WriteRecord(values={
        "Subject": "Meeting", "WhoId": lead, "StartDateTime": met,
        "DurationInMinutes": 30})])[0].id
    until, before = soon(), sum(sf.calls.values())
    tasks = sf.activity_changed("Task", Watermark(cursor=EPOCH), until)
    events = sf.activity_changed("Event", Watermark(cursor=EPOCH), until)
    assert sum(sf.calls.values()) - before == 2
    assert [(a.record_id, a.id) for a in tasks] == [(lead, task)]  # a Task on no one is not
    assert [(a.record_id, a.id, a.at) for a in events] == [(lead, event, met)]  # its start
    assert tasks[0].cursor is not None
    seen = Watermark(cursor=tasks[0].cursor, seen=frozenset({(task, tasks[0].cursor)}))
    assert sf.activity_changed("Task", seen, until) == []  # what the watermark saw is skipped
    with pytest.raises(ConfigurationError):
        sf.activity_soql("Lead", seen, until)
