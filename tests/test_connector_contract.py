"""One contract suite, run against both connectors (and so against both emulators)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest

from connectors.config import load_settings
from connectors.hubspot import HubSpotConnector
from connectors.records import Watermark, WriteRecord, advance
from connectors.salesforce import SalesforceConnector
from sandbox.admin import SandboxClient


@dataclass
class Subject:
    """How one system spells the same contract: its object, fields and a valid new record."""

    connector: Any
    object: str
    email: str
    fields: list[str]
    stage_field: str
    stage_values: tuple[str, str]

    def new(self, n: int, **extra: Any) -> WriteRecord:
        if self.object == "Lead":
            values = {"LastName": f"Contract{n}", "Company": "Contract Co",
                      "Email": f"contract.{n}@example.com", **extra}
        else:
            values = {"lastname": f"Contract{n}", "email": f"contract.{n}@example.com", **extra}
        return WriteRecord(values=values)


def subject(box: SandboxClient, system: str) -> Subject:
    settings = load_settings(box.info.settings_file)
    if system == "salesforce":
        return Subject(SalesforceConnector(settings.salesforce), "Lead", "Email",
                       ["Email", "LastName", "Status"], "Status", ("Working", "Nurturing"))
    return Subject(HubSpotConnector(settings.hubspot), "contacts", "email",
                   ["email", "lastname", "lifecyclestage"], "lifecyclestage",
                   ("lead", "marketingqualifiedlead"))


@pytest.fixture(scope="module")
def sandbox_options() -> dict[str, Any]:
    # lenience: these tests write, then read at once; they are about the contract, not search lag
    return {"search_lag_seconds": 0}


@pytest.fixture(params=["salesforce", "hubspot"])
def system(request: pytest.FixtureRequest, sandbox: SandboxClient) -> Subject:
    return subject(sandbox, request.param)


EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def later() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)


def test_check_names_objects_and_counts(system: Subject) -> None:
    report = system.connector.check()
    counts = {o.name: o.records for o in report.objects}
    assert counts[system.object] > 0


def test_describe_gives_types_picklists_and_is_cached(system: Subject) -> None:
    def calls() -> int:  # the sign-in is not part of describe
        return sum(n for k, n in system.connector.calls.items() if "oauth2" not in k)

    system.connector.clear_cache()
    before = calls()
    schema = system.connector.describe(system.object)
    cost = calls() - before  # HubSpot reads properties and pipelines
    assert cost >= 1
    stage = schema.fields[system.stage_field]
    assert set(system.stage_values) <= set(stage.picklist_values)
    assert schema.fields[system.email].type in ("email", "string")
    system.connector.describe(system.object)
    assert calls() == before + cost
    system.connector.clear_cache()
    system.connector.describe(system.object)
    assert calls() == before + 2 * cost


def test_upsert_read_by_ids_and_find_by_emails(system: Subject) -> None:
    results = system.connector.upsert(system.object, [system.new(n) for n in (1, 2)])
    assert [r.ok for r in results] == [True, True]
    assert [r.index for r in results] == [0, 1]
    ids = [r.id for r in results]
    read = system.connector.read_by_ids(system.object, ids, system.fields)
    assert sorted(r.id for r in read) == sorted(ids)
    found = system.connector.find_by_emails(system.object, ["  CONTRACT.1@example.com "],
                                            system.fields)
    assert [r.id for r in found] == [ids[0]]


def test_one_bad_record_fails_alone_with_code_and_field(system: Subject) -> None:
    bad = system.new(3, **{system.stage_field: "No Such Stage"})
    results = system.connector.upsert(system.object, [system.new(4), bad, system.new(5)])
    assert [r.ok for r in results] == [True, False, True]
    error = results[1].error
    assert error is not None
    assert error.code in ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "INVALID_OPTION")
    assert system.stage_field in error.fields


def test_update_by_id_changes_values(system: Subject) -> None:
    made = system.connector.upsert(system.object, [system.new(6)])[0]
    assert made.ok
    update = WriteRecord(id=made.id, values={system.stage_field: system.stage_values[1]})
    assert system.connector.upsert(system.object, [update])[0].ok
    read = system.connector.read_by_ids(system.object, [made.id], system.fields)[0]
    assert read.values[system.stage_field] == system.stage_values[1]


def test_read_changed_is_sorted_bounded_and_resumable(system: Subject) -> None:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    made = system.connector.upsert(system.object, [system.new(n) for n in range(10, 14)])
    mine = {r.id for r in made}
    until = later()
    records = list(system.connector.read_changed(system.object, start, until, system.fields))
    assert mine <= {r.id for r in records}
    keys = [(r.cursor, r.id) for r in records]
    assert [k[0] for k in keys] == sorted(k[0] for k in keys)
    assert all(r.cursor <= until for r in records)
    assert len({r.id for r in records}) == len(records)
    mark = advance(Watermark(cursor=start), records, dt.timedelta(minutes=10))
    again = list(system.connector.read_changed(system.object, mark, later(), system.fields))
    assert not mine & {r.id for r in again}  # inclusive bound, but nothing read twice
    past = list(system.connector.read_changed(system.object, EPOCH, start - dt.timedelta(
        minutes=30), system.fields))
    assert not mine & {r.id for r in past}  # never past ``until``


def test_delete_then_read_deleted(system: Subject) -> None:
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
    made = system.connector.upsert(system.object, [system.new(20)])[0]
    assert system.connector.delete(system.object, [made.id])[0].ok
    deleted = system.connector.read_deleted(system.object, since)
    assert deleted.complete
    assert made.id in [d.id for d in deleted.records]
    assert made.id not in set(system.connector.list_ids(system.object))


def test_calls_are_counted_per_endpoint(system: Subject) -> None:
    before = dict(system.connector.calls)
    system.connector.read_by_ids(system.object, ["00Q5g0000000001EAA", "1001"], system.fields)
    grown = {k: v - before.get(k, 0) for k, v in system.connector.calls.items()
             if v != before.get(k, 0)}
    assert sum(grown.values()) >= 1
    assert all(" " in k or "." in k for k in grown)
