"""Describes and people lists kept in the state store: a restarted agent and a quiet cycle
describe nothing, old entries and unknown fields are fetched again. Real sandbox, real clients,
real stores."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from connectors.errors import ConfigurationError
from connectors.hubspot import OBJECT_TYPES
from connectors.records import WriteRecord
from connectors.salesforce import SYNCED_OBJECTS
from connectors.schema_cache import dump_people, dump_schema, load_people, load_schema
from sandbox.admin import SandboxClient
from sync_agent.cli import app
from sync_agent.cycle import run_cycle
from sync_agent.schema_cache import StoreSchemaCache
from sync_agent.store import Store, open_store
from sync_agent.tables import Run, SchemaCacheEntry
from tests.test_cycle import DEFAULT, MAPPING, connectors, next_second

SCHEMA_CALLS = ("/describe", "properties.list", "pipelines.list", "owners.list")


def schema_calls(*pair: Any) -> Counter[str]:
    """Describe, property, pipeline and owner calls the connectors made."""
    return Counter({k: n for c in pair for k, n in c.calls.items()
                    if k.endswith(SCHEMA_CALLS)})


def world(make_sandbox: Any, tmp_path: Path) -> tuple[SandboxClient, Store]:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    return box, open_store(f"sqlite:///{tmp_path / 'state.db'}")


def test_describes_and_people_round_trip_exactly(sandbox: SandboxClient) -> None:
    """What goes into the store as JSON comes back equal, for every synced object."""
    sf, hs = connectors(sandbox)
    schemas = [sf.describe(n) for n in SYNCED_OBJECTS] + [hs.describe(n) for n in OBJECT_TYPES]
    for schema in schemas:
        assert load_schema(json.loads(json.dumps(dump_schema(schema)))) == schema
    assert any(s.pipelines for s in schemas)
    assert any(s.record_types for s in schemas)
    for people in (sf.people(), hs.people()):
        assert people
        assert load_people(json.loads(json.dumps(dump_people(people)))) == people
    assert load_schema({"format": "an older agent's", "value": {}}) is None


def test_the_store_keeps_entries_across_processes(sandbox: SandboxClient, db_url: str) -> None:
    sf, _ = connectors(sandbox)
    body = dump_schema(sf.describe("Lead"))
    fetched = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
    first = open_store(db_url)
    StoreSchemaCache(first).put("salesforce", "describe", "Lead", body, fetched)
    second = open_store(db_url)  # another process on the same store
    assert StoreSchemaCache(second).get("salesforce", "describe", "Lead") == (body, fetched)
    StoreSchemaCache(second).drop("salesforce", "describe", "Lead")
    assert StoreSchemaCache(first).get("salesforce", "describe", "Lead") is None
    first.engine.dispose()
    second.engine.dispose()


def test_a_second_process_and_a_quiet_cycle_describe_nothing(make_sandbox: Any,
                                                            tmp_path: Path) -> None:
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    run_cycle(store, MAPPING, sf, hs)
    first = schema_calls(sf, hs)
    assert first["GET sobjects/Lead/describe"] == 1
    assert first["owners.list"] == 1
    for _ in range(2):  # new records' ids flow back; then the pairs are quiet
        next_second()
        run_cycle(store, MAPPING, sf, hs)
    next_second()
    assert run_cycle(store, MAPPING, sf, hs).written.total() == 0
    assert schema_calls(sf, hs) == first  # the later cycles described nothing
    stored = fetched(store)
    assert ("salesforce", "people", "users") in stored
    sf2, hs2 = connectors(box)  # a restarted agent: new clients, the same store
    next_second()
    assert run_cycle(store, MAPPING, sf2, hs2).written.total() == 0
    assert schema_calls(sf2, hs2) == {}  # no describe, property, pipeline or owner call
    assert fetched(store) == stored  # nothing fetched again (the users' query neither)


def fetched(store: Store) -> dict[tuple[str, str, str], dt.datetime]:
    """When each stored entry was fetched: a fetch stores a new time."""
    with store.session() as session:
        return {(r.system, r.kind, r.name): r.fetched_at
                for r in session.scalars(select(SchemaCacheEntry))}


def test_an_entry_older_than_its_refresh_interval_is_fetched_again(make_sandbox: Any,
                                                                   tmp_path: Path) -> None:
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    run_cycle(store, MAPPING, sf, hs)
    now = dt.datetime.now(dt.UTC)
    row = SchemaCacheEntry
    with store.engine.begin() as connection:  # a day and an hour ago; owners two hours ago
        connection.execute(update(row).where(row.system == "salesforce", row.name == "Lead")
                           .values(fetched_at=now - dt.timedelta(hours=25)))
        connection.execute(update(row).where(row.system == "hubspot", row.kind == "people")
                           .values(fetched_at=now - dt.timedelta(hours=2)))
        connection.execute(update(row).where(row.system == "hubspot", row.name == "deals")
                           .values(fetched_at=now - dt.timedelta(hours=23)))
    sf2, hs2 = connectors(box)
    next_second()
    run_cycle(store, MAPPING, sf2, hs2)
    assert schema_calls(sf2, hs2) == {"GET sobjects/Lead/describe": 1, "owners.list": 1}
    with store.session() as session:
        ages = {(r.system, r.name): now - r.fetched_at.replace(tzinfo=dt.UTC)
                for r in session.scalars(select(row))}
    assert ages[("salesforce", "Lead")] < dt.timedelta(minutes=1)
    assert ages[("hubspot", "owners")] < dt.timedelta(minutes=1)
    assert ages[("hubspot", "deals")] > dt.timedelta(hours=22)  # young enough: kept


def test_a_long_running_agent_refreshes_from_memory_on_the_same_schedule(
        make_sandbox: Any, tmp_path: Path) -> None:
    box, store = world(make_sandbox, tmp_path)
    settings = {"schema_refresh_hours": 1e-6}  # always due
    sf, hs = connectors(box, **settings)
    run_cycle(store, MAPPING, sf, hs)
    before = schema_calls(sf, hs)
    next_second()
    run_cycle(store, MAPPING, sf, hs)
    again = schema_calls(sf, hs) - before
    assert again["properties.list"] >= 3  # HubSpot described again, from the same process
    assert again["owners.list"] == 0  # owners have their own interval (an hour)


def test_a_forced_refresh_describes_again_whatever_the_cache_holds(make_sandbox: Any,
                                                                   tmp_path: Path) -> None:
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    run_cycle(store, MAPPING, sf, hs)
    sf2, hs2 = connectors(box)
    next_second()
    run_cycle(store, MAPPING, sf2, hs2, refresh_schemas=True)
    assert schema_calls(sf2, hs2) == schema_calls(sf, hs)


def test_a_field_deleted_after_the_describe_fails_clearly_and_is_described_again(
        make_sandbox: Any, tmp_path: Path) -> None:
    """The mapping's Lead_Score__c is deleted in Salesforce after the describe was cached: the
    next cycle's query is refused (INVALID_FIELD) and the cycle fails saying so; the cached
    Lead describe is gone, so the cycle after describes Lead live and names the missing
    field. Nothing is retried in a loop."""
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    run_cycle(store, MAPPING, sf, hs)
    box.admin("salesforce", "POST", "/salesforce/deleteField",
              {"object": "Lead", "field": "Lead_Score__c"})
    sf2, hs2 = connectors(box)  # a restarted agent: its describe of Lead is the stored one
    next_second()
    with pytest.raises(ConfigurationError) as refused:
        run_cycle(store, MAPPING, sf2, hs2)
    assert "INVALID_FIELD" in refused.value.message
    assert "No such column 'Lead_Score__c' on entity 'Lead'" in refused.value.message
    assert sf2.calls["GET sobjects/Lead/describe"] == 0
    with store.session() as session:
        cached = {(r.system, r.name) for r in session.scalars(select(SchemaCacheEntry))}
    assert ("salesforce", "Lead") not in cached
    assert ("salesforce", "Account") in cached
    with pytest.raises(ConfigurationError, match="Lead has no field 'Lead_Score__c'"):
        run_cycle(store, MAPPING, sf2, hs2)
    assert sf2.calls["GET sobjects/Lead/describe"] == 1
    assert "Lead_Score__c" not in sf2.describe("Lead").fields
    with store.session() as session:
        runs = list(session.scalars(select(Run).order_by(Run.id)))
    assert [r.status for r in runs] == ["ok", "failed", "failed"]
    assert "Lead_Score__c" in (runs[-1].error or "")


def test_a_write_naming_an_unknown_field_drops_that_objects_describe(
        make_sandbox: Any, tmp_path: Path) -> None:
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    cache = StoreSchemaCache(store)
    sf.use_schema_cache(cache)
    hs.use_schema_cache(cache)
    [lead] = sf.upsert("Lead", [WriteRecord(values={"LastName": "Cached", "Company": "C"})])
    [contact] = hs.upsert("contacts", [WriteRecord(values={"email": "cached@example.com"})])
    for name in ("Lead", "Account"):
        sf.describe(name)
    for name in ("contacts", "companies"):
        hs.describe(name)
    box.admin("salesforce", "POST", "/salesforce/deleteField",
              {"object": "Lead", "field": "Lead_Score__c"})
    [refused] = sf.upsert("Lead", [WriteRecord(id=lead.id, values={"Lead_Score__c": 5})])
    assert refused.error is not None
    assert refused.error.code == "INVALID_FIELD"
    assert cache.get("salesforce", "describe", "Lead") is None
    assert cache.get("salesforce", "describe", "Account") is not None
    [refused] = hs.upsert("contacts", [WriteRecord(id=contact.id, values={
        "stagesync_no_such_property": "x"})])
    assert refused.error is not None
    assert "PROPERTY_DOESNT_EXIST" in f"{refused.error.code} {refused.error.message}"
    assert cache.get("hubspot", "describe", "contacts") is None
    assert cache.get("hubspot", "describe", "companies") is not None
    before = schema_calls(sf, hs)
    assert "Lead_Score__c" not in sf.describe("Lead").fields
    hs.describe("contacts")
    assert schema_calls(sf, hs) - before == {"GET sobjects/Lead/describe": 1,
                                             "properties.list": 1, "pipelines.list": 1}


def test_check_and_live_validation_describe_live_whatever_the_store_holds(
        make_sandbox: Any, tmp_path: Path) -> None:
    """An admin checking the mapping wants the schema as it is now, not as a cycle cached it."""
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    run_cycle(store, MAPPING, sf, hs)
    box.admin("salesforce", "POST", "/salesforce/deleteField",
              {"object": "Lead", "field": "Lead_Score__c"})
    box.reset_requests()
    result = CliRunner().invoke(app, ["mapping", "validate", str(DEFAULT), "--live",
                                      "--env-file", str(box.info.settings_file)],
                                terminal_width=200)
    assert result.exit_code == 1, result.output
    assert "has no field 'Lead_Score__c'" in result.output
    described = box.calls("salesforce", "salesforce.describe")
    assert described >= 1
    result = CliRunner().invoke(app, ["check", "--env-file", str(box.info.settings_file)],
                                terminal_width=200)
    assert result.exit_code == 1, result.output  # the deleted field is seen, live
    assert "salesforce  Lead  Lead_Score__c  Number(18, 0)" in result.output
    assert box.calls("salesforce", "salesforce.describe") >= described + len(SYNCED_OBJECTS)
    assert box.calls("hubspot", "hubspot.properties") >= len(OBJECT_TYPES)
    assert load_schema(StoreSchemaCache(store).get("salesforce", "describe", "Lead")[0])
