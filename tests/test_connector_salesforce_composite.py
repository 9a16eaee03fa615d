"""The Salesforce connector's Composite reads against the sandbox, through simple-salesforce:
a quiet cycle's reads of every object cost one API call, with read_changed's rules."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import Any

import pytest
from simple_salesforce.format import format_soql

from connectors.errors import ConfigurationError
from connectors.records import ObjectChanges, ObjectRead, Watermark, WriteRecord, advance
from connectors.salesforce import SalesforceConnector, activity_soqls
from sandbox.admin import SandboxClient
from sandbox.seed import SeedSizes
from tests.test_connector_salesforce import EPOCH, connector, soon

OBJECTS = {"Lead": ["Email", "LastName", "Status"], "Contact": ["Email", "LastName"],
           "Account": ["Name"], "Opportunity": ["Name", "StageName"]}
BIG = SeedSizes(leads=2100, contacts=2050, accounts=3, opportunities=3, hubspot_only_contacts=0)


@pytest.fixture(scope="module")
def sandbox_options() -> dict[str, Any]:
    """More than one page (2,000 rows) of Leads and of Contacts, for the paging tests."""
    return {"sizes": BIG}


def reads(marks: dict[str, Watermark]) -> list[ObjectRead]:
    return [ObjectRead(name, marks[name], fields) for name, fields in OBJECTS.items()]


def warm(sf: SalesforceConnector, *names: str) -> None:
    """Describes are cached between schema refreshes: a quiet cycle makes none."""
    for name in names or OBJECTS:
        sf.describe(name)


def api_used(box: SandboxClient) -> int:
    return int(box.admin("salesforce", "POST", "/salesforce/config", {})["apiUsed"])


def ids(changes: ObjectChanges) -> set[str]:
    return {r.id for r in changes.records}


def test_four_objects_changes_deletes_and_merges_in_one_call(make_sandbox: Any) -> None:
    box = make_sandbox()
    sf = connector(box)
    warm(sf)
    time.sleep(1.1)  # the seed's stamps fall before the first read's own second
    first_until = dt.datetime.now(dt.UTC)
    first = sf.read_many(reads(dict.fromkeys(OBJECTS, Watermark(cursor=EPOCH))), first_until)
    assert len(first["Lead"].records) == len(list(sf.list_ids("Lead")))
    marks = {name: advance(Watermark(cursor=EPOCH), first[name].records, sf.lookback,
                           first_until) for name in OBJECTS}
    time.sleep(1.1)
    lead, keep, gone = (r.id for r in sf.upsert("Lead", [WriteRecord(values={
        "LastName": f"Composite {n}", "Company": f"Composite Co {n}",
        "Email": f"composite{n}@example.com"}) for n in range(3)]))
    assert None not in (lead, keep, gone)
    box.admin("salesforce", "POST", "/salesforce/merge",
              {"object": "Lead", "masterId": keep, "mergedIds": [gone]})
    contact = sf.upsert("Contact", [WriteRecord(values={"LastName": "Composite"})])[0].id
    account = sf.upsert("Account", [WriteRecord(values={"Name": "Composite Gone"})])[0].id
    assert account is not None
    assert sf.delete("Account", [account])[0].ok
    opportunity = first["Opportunity"].records[0].id
    sf.upsert("Opportunity", [WriteRecord(id=opportunity, values={"Name": "Composite Deal"})])
    task = sf.upsert("Task", [WriteRecord(values={"Subject": "Call", "WhoId": lead})])[0].id
    soql = activity_soqls([lead, keep], first_until)[0]
    calls, used = Counter(sf.calls), api_used(box)

    changes, extra = sf.read_many(reads(marks), soon(), {"Tasks": soql})

    assert Counter(sf.calls) - calls == Counter({"POST composite": 1})
    assert api_used(box) - used == 1
    assert ids(changes["Lead"]) == {lead, keep}
    assert ids(changes["Contact"]) == {contact}
    assert ids(changes["Account"]) == set()
    assert ids(changes["Opportunity"]) == {opportunity}
    assert changes["Opportunity"].records[0].values["Name"] == "Composite Deal"
    assert [(d.id, d.merged_into) for d in changes["Lead"].deleted.records] == [(gone, keep)]
    assert [(d.id, d.merged_into) for d in changes["Account"].deleted.records] == [
        (account, None)]
    assert changes["Contact"].deleted.records == []
    assert all(c.deleted.complete for c in changes.values())
    for record in changes["Lead"].records:  # the split's columns are not the caller's fields
        assert set(record.values) == {"Id", "SystemModstamp", *OBJECTS["Lead"]}
    stamps = [r.cursor for r in changes["Lead"].records]
    assert stamps == sorted(stamps)
    assert [row["Id"] for row in extra["Tasks"]] == [task]


def test_asked_for_deletion_columns_stay_in_the_values(sandbox: SandboxClient) -> None:
    sf = connector(sandbox)
    since = Watermark(cursor=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    made = sf.upsert("Account", [WriteRecord(values={"Name": "Columns Co"})])[0].id
    answer = sf.read_many([ObjectRead("Account", since, ["Name", "IsDeleted"])], soon())
    record = next(r for r in answer["Account"].records if r.id == made)
    assert record.values["IsDeleted"] is False
    assert "MasterRecordId" not in record.values


def test_a_delete_the_watermark_saw_is_not_reported_again(sandbox: SandboxClient) -> None:
    sf = connector(sandbox)
    now = dt.datetime.now(dt.UTC)
    made = sf.upsert("Account", [WriteRecord(values={"Name": "Seen Gone"})])[0].id
    assert made is not None
    assert sf.delete("Account", [made])[0].ok
    mark = Watermark(cursor=now - dt.timedelta(minutes=1), read_until=now)
    gone = sf.read_many([ObjectRead("Account", mark, ["Name"])], soon())["Account"].deleted
    seen = next(d for d in gone.records if d.id == made)
    mark = mark.model_copy(update={"seen": frozenset({(made, seen.deleted_at)})})
    again = sf.read_many([ObjectRead("Account", mark, ["Name"])], soon())["Account"].deleted
    assert made not in {d.id for d in again.records}


def test_same_records_as_read_changed_across_pages_next_pages_batched(
        sandbox: SandboxClient) -> None:
    sf = connector(sandbox)
    warm(sf)
    until = soon()
    mark = Watermark(cursor=EPOCH)
    calls = Counter(sf.calls)
    changes = sf.read_many(reads(dict.fromkeys(OBJECTS, mark)), until)
    # the first pages of four queries, then the second pages of Leads and Contacts together
    assert Counter(sf.calls) - calls == Counter({"POST composite": 2})
    for name, fields in OBJECTS.items():
        alone = list(sf.read_changed(name, mark, until, fields))
        assert [(r.id, r.values) for r in changes[name].records] == [
            (r.id, r.values) for r in alone]
    assert len(changes["Lead"].records) >= 2100
    assert len(changes["Contact"].records) >= 2050


def test_more_than_five_queries_take_a_second_call(sandbox: SandboxClient) -> None:
    sf = connector(sandbox)
    warm(sf, "Task", "User", *OBJECTS)
    now = dt.datetime.now(dt.UTC)
    mark = Watermark(cursor=now - dt.timedelta(minutes=1), read_until=now)
    six = [*reads(dict.fromkeys(OBJECTS, mark)), ObjectRead("Task", mark, ["Subject"]),
           ObjectRead("User", mark, ["Email"])]
    calls = Counter(sf.calls)
    changes = sf.read_many(six, soon())
    assert Counter(sf.calls) - calls == Counter({"POST composite": 2})
    assert set(changes) == {"Lead", "Contact", "Account", "Opportunity", "Task", "User"}
    rows = sf.query_all_many({f"q{n}": "SELECT Id FROM User" for n in range(5)})
    assert Counter(sf.calls) - calls == Counter({"POST composite": 3})
    assert len({len(r) for r in rows.values()}) == 1


def test_big_reads_take_bulk_2_with_deletes_from_the_rows_or_one_query_all(
        sandbox: SandboxClient) -> None:
    rest = connector(sandbox)
    small = Watermark(cursor=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    made = [r.id for r in rest.upsert("Account", [WriteRecord(values={"Name": f"Bulk {n}"})
                                                  for n in range(6)])]
    assert rest.delete("Account", [str(made[0])])[0].ok
    expected = {name: rest.read_many([ObjectRead(name, mark, OBJECTS[name])], soon())[name]
                for name, mark in (("Account", small), ("Lead", Watermark(cursor=EPOCH)))}
    sf = connector(sandbox, bulk_threshold=3)
    warm(sf)
    calls = Counter(sf.calls)
    bulk = sf.read_many([ObjectRead("Account", small, OBJECTS["Account"]),
                         ObjectRead("Lead", Watermark(cursor=EPOCH), OBJECTS["Lead"])], soon())
    made_calls = Counter(sf.calls) - calls
    assert made_calls["POST composite"] == 1  # first pages only: no Lead page followed
    assert made_calls["POST jobs/query"] == 2  # Accounts (one page) and Leads (2,100 rows)
    assert made_calls["GET queryAll"] == 1  # the Leads' deletes, past their first page
    for name, answer in bulk.items():
        assert [(r.id, r.values) for r in answer.records] == [
            (r.id, r.values) for r in expected[name].records]
        assert answer.deleted == expected[name].deleted
    assert made[0] in {d.id for d in bulk["Account"].deleted.records}


def test_a_lazy_read_streams_the_same_records_one_object_at_a_time(
        sandbox: SandboxClient) -> None:
    """What a first sync spools: each object's records made only as they are iterated (a Bulk
    job runs then, its rows in the job's own order: the spool orders them), the same records
    and deletes as the eager read, at the same calls."""
    sf = connector(sandbox, bulk_threshold=2000)  # Leads and Contacts (2,100+) go Bulk
    warm(sf)
    until, mark = soon(), Watermark(cursor=EPOCH)
    calls = Counter(sf.calls)
    eager = sf.read_many(reads(dict.fromkeys(OBJECTS, mark)), until)
    eager_calls = Counter(sf.calls) - calls
    calls = Counter(sf.calls)
    lazy, _ = sf.read_many(reads(dict.fromkeys(OBJECTS, mark)), until, {}, lazy=True)
    assert (Counter(sf.calls) - calls)["POST jobs/query"] == 0  # no Bulk job until iterated
    for name in OBJECTS:
        stream = lazy[name].stream
        assert stream is not None
        assert lazy[name].records == []
        streamed = sorted(stream, key=lambda r: (r.cursor, r.id))
        assert [(r.id, r.values) for r in streamed] == [
            (r.id, r.values) for r in eager[name].records]
        assert lazy[name].deleted == eager[name].deleted
    assert Counter(sf.calls) - calls == eager_calls  # two Bulk jobs, the same calls as eager
    assert eager_calls["POST jobs/query"] == 2


def test_a_lazy_bulk_read_holds_one_results_page_at_a_time(
        sandbox: SandboxClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first sync of a large org must not hold an object's every row to sort it: a lazy
    Bulk read hands over each results page's records before it asks for the next."""
    monkeypatch.setattr("connectors.salesforce.BULK_PAGE", 1000)  # 2,100+ Leads: 3 pages
    sf = connector(sandbox, bulk_threshold=2000)
    warm(sf)
    lazy, _ = sf.read_many([ObjectRead("Lead", Watermark(cursor=EPOCH), OBJECTS["Lead"])],
                           soon(), {}, lazy=True)
    stream = lazy["Lead"].stream
    assert stream is not None
    results = "GET jobs/query/{id}/results"
    before = sf.calls[results]
    taken = [next(stream) for _ in range(1000)]  # the whole first page
    assert sf.calls[results] - before == 1
    rest = list(stream)
    assert sf.calls[results] - before == 3
    ids = [r.id for r in taken + rest]
    assert len(ids) == len(set(ids)) > 2000


def test_values_are_escaped_and_survive_the_subrequest_url(sandbox: SandboxClient) -> None:
    sf = connector(sandbox)
    email = "a+b&c=d#e%27f'@example.com"
    made = sf.upsert("Lead", [WriteRecord(values={"LastName": "O'Hara & Sons", "Company": "X",
                                                  "Email": email})])[0].id
    rows = sf.query_all_many({
        "exact": format_soql("SELECT Id, LastName FROM Lead WHERE Email = {}", email),
        "hostile": format_soql("SELECT Id FROM Lead WHERE Email = {}", "x' OR Id != '")})
    assert [(r["Id"], r["LastName"]) for r in rows["exact"]] == [(made, "O'Hara & Sons")]
    assert rows["hostile"] == []
    with pytest.raises(ConfigurationError, match="no field"):
        sf.read_many([ObjectRead("Lead", Watermark(cursor=EPOCH), ["Email FROM User --"])],
                     soon())
    with pytest.raises(ConfigurationError, match="cannot name a Composite subrequest"):
        sf.query_all_many({"not ok": "SELECT Id FROM User"})


def test_a_subrequest_error_is_the_error_the_query_alone_raises(sandbox: SandboxClient) -> None:
    sf = connector(sandbox)
    bad = "SELECT Nope__c FROM Lead"
    with pytest.raises(ConfigurationError) as alone:
        list(sf._query_pages(bad))
    with pytest.raises(ConfigurationError) as composite:
        sf.read_many([ObjectRead("Account", Watermark(cursor=EPOCH), ["Name"])], soon(),
                     {"Broken": bad})
    assert str(composite.value) == str(alone.value)
    assert "INVALID_FIELD" in str(composite.value)
    assert "No such column 'Nope__c'" in str(composite.value)
    assert "(GET https://" in str(composite.value)
    assert "/services/data/v59.0/query/ (query on Lead)" in str(composite.value)


def test_a_failed_composite_call_is_retried_as_one(make_sandbox: Any) -> None:
    box = make_sandbox(faults="salesforce.composite=503#1")
    sf = connector(box)
    warm(sf)
    changes = sf.read_many(reads(dict.fromkeys(OBJECTS, Watermark(cursor=EPOCH))), soon())
    assert sf.policy.retries == 1
    assert sf.calls["POST composite"] == 2
    assert len(changes["Lead"].records) == len(list(sf.list_ids("Lead")))
