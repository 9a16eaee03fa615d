"""HubSpot batch results as the real API gives them: no ``objectWriteTraceId`` on created
records, in no promised order. Each input must still get its own record's id, and a record
HubSpot created is never reported as failed. Searches send ``IN`` values lower-cased."""

from __future__ import annotations

from typing import Any

from connectors.records import WriteRecord
from tests.test_cycle import connectors


def test_created_records_are_matched_to_their_inputs_by_what_was_sent(
        make_sandbox: Any) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    _, hs = connectors(box)
    inputs = [WriteRecord(values={"lastname": f"Nomail{i}",
                                  "salesforceleadid": f"00Q5g00000AbC{i:03d}"})
              for i in range(30)]
    inputs += [WriteRecord(values={"lastname": "Mailed", "email": f"Person.{i}@Example.com"},
                           match=("email", f"Person.{i}@Example.com")) for i in range(30)]
    results = hs.upsert("contacts", inputs)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert len({r.id for r in results}) == len(inputs)
    read = {r.id: r for r in hs.read_by_ids(
        "contacts", [str(r.id) for r in results], ["lastname", "email", "salesforceleadid"])}
    for sent, result in zip(inputs, results, strict=True):
        got = read[str(result.id)].values
        assert got["lastname"] == sent.values["lastname"]
        if "salesforceleadid" in sent.values:
            assert got["salesforceleadid"] == sent.values["salesforceleadid"]
        else:
            assert got["email"] == sent.values["email"].lower()


def test_updates_are_matched_by_id_whatever_the_order(make_sandbox: Any) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    _, hs = connectors(box)
    created = hs.upsert("contacts", [WriteRecord(values={"lastname": f"U{i}"})
                                     for i in range(20)])
    updates = [WriteRecord(id=r.id, values={"jobtitle": f"Title {i}"})
               for i, r in enumerate(created)]
    results = hs.upsert("contacts", updates)
    assert [r.id for r in results] == [u.id for u in updates]
    assert all(r.ok and r.created is False for r in results)


def test_find_by_a_mixed_case_salesforce_id_finds_the_record(make_sandbox: Any) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       search_lag_seconds=0)  # lenience: this test is about case, not lag
    _, hs = connectors(box)
    carried = "0015g00000XyZaBAAA"
    other = "0015g00000xyzabaaa"  # the same letters in another case: another Salesforce id
    hs.upsert("companies", [WriteRecord(values={"name": "Mixed", "salesforceaccountid": carried}),
                            WriteRecord(values={"name": "Lower", "salesforceaccountid": other})])
    found = hs.find_by("companies", "salesforceaccountid", [carried], ["name"])
    assert [r.values["name"] for r in found] == ["Mixed"]
