"""The HubSpot connector against the sandbox: the traps other connectors fell into."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.config import load_settings
from connectors.errors import ConfigurationError
from connectors.hubspot import HubSpotConnector
from connectors.records import Watermark, WriteRecord, advance
from connectors.retry import RetryPolicy
from sandbox.admin import SandboxClient
from sandbox.seed import SeedSizes

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
FIELDS = ["email", "lifecyclestage", "firstname"]


def connector(box: SandboxClient, policy: RetryPolicy | None = None,
              **settings: Any) -> HubSpotConnector:
    base = load_settings(box.info.settings_file).hubspot
    return HubSpotConnector(base.model_copy(update=settings),
                            policy or RetryPolicy(initial=0.0, maximum=0.0))


def soon() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)


def contacts(n: int, tag: str, **extra: str) -> list[WriteRecord]:
    return [WriteRecord(values={"email": f"{tag}{i}@example.com", "firstname": tag, **extra})
            for i in range(n)]


def test_more_than_10000_records_on_one_timestamp(make_sandbox: Any) -> None:
    # lenience: this test is about 10,000+ records on one stamp, not search lag
    box = make_sandbox(sizes=SeedSizes(leads=0, contacts=0, accounts=1, opportunities=0,
                                       hubspot_only_contacts=10_050),
                       hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       search_lag_seconds=0)
    touched = box.admin("hubspot", "POST", "/hubspot/touch", {"object": "contacts"})
    assert touched["touched"] == 10_050
    hs = connector(box, searches_per_second=0, requests_per_ten_seconds=0)
    records = list(hs.read_changed("contacts", EPOCH, soon(), FIELDS))
    assert len(records) == len({r.id for r in records}) == 10_050
    assert box.requests("hubspot")["endpointStatuses"].get("hubspot.objects.search 400") is None
    assert hs.calls["contacts.search"] <= 1 + 2 + 51  # count, narrow, 51 pages by id


def test_window_split_when_timestamps_differ(make_sandbox: Any) -> None:
    box = make_sandbox(sizes=SeedSizes(leads=0, contacts=0, accounts=1, opportunities=0,
                                       hubspot_only_contacts=10_400),
                       hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    hs = connector(box, searches_per_second=0, requests_per_ten_seconds=0)
    records = list(hs.read_changed("contacts", EPOCH, soon(), FIELDS))
    assert len(records) == len({r.id for r in records}) == 10_400
    assert [r.cursor for r in records] == sorted(r.cursor for r in records)
    assert box.requests("hubspot")["endpointStatuses"].get("hubspot.objects.search 400") is None


def test_an_unordered_read_from_the_beginning_hands_over_each_page_as_it_comes(
        make_sandbox: Any) -> None:
    """What a first sync spools: the listing a page at a time (the spool orders it), not every
    record held to be sorted first; ordered, the same records sorted by (cursor, id)."""
    box = make_sandbox(sizes=SeedSizes(leads=0, contacts=0, accounts=1, opportunities=0,
                                       hubspot_only_contacts=250),
                       hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    hs = connector(box, searches_per_second=0, requests_per_ten_seconds=0)
    stream = hs.read_changed("contacts", EPOCH, soon(), FIELDS, ordered=False)
    first = next(stream)
    assert hs.calls["contacts.list"] == 1
    streamed = [first, *stream]
    assert hs.calls["contacts.list"] == 3  # 250 contacts, 100 a page
    ordered = list(hs.read_changed("contacts", EPOCH, soon(), FIELDS))
    assert [(r.cursor, int(r.id)) for r in ordered] == sorted(
        (r.cursor, int(r.id)) for r in streamed)
    assert len(ordered) == len({r.id for r in streamed}) == 250


def test_lookback_catches_writes_the_search_index_showed_late(make_sandbox: Any) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    hs = connector(box)
    first = list(hs.read_changed("contacts", EPOCH, soon(), FIELDS))
    mark = advance(Watermark(cursor=EPOCH), first, dt.timedelta(minutes=10))
    late = hs.upsert("contacts", contacts(1, "lagging"))[0].id
    # The write became searchable only now, stamped 30 s before the last cycle's watermark:
    box.admin("hubspot", "POST", "/hubspot/touch", {
        "object": "contacts", "ids": [late],
        "at": (mark.cursor - dt.timedelta(seconds=30)).isoformat()})
    naive = list(connector(box, search_lookback_seconds=0).read_changed(
        "contacts", mark, soon(), FIELDS))
    assert late not in [r.id for r in naive]
    caught = list(hs.read_changed("contacts", mark, soon(), FIELDS))
    assert [r.id for r in caught] == [late]


def test_search_lag_hides_fresh_writes_until_the_index_catches_up(make_sandbox: Any) -> None:
    box = make_sandbox(search_lag_seconds=1.5, hubspot_per_ten_seconds=0,
                       hubspot_search_per_second=0)
    hs = connector(box)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    made = hs.upsert("contacts", contacts(1, "fresh"))[0].id
    assert made not in [r.id for r in hs.read_changed("contacts", start, soon(), FIELDS)]
    time.sleep(1.6)
    assert made in [r.id for r in hs.read_changed("contacts", start, soon(), FIELDS)]


def test_archived_records_are_polled_not_searched(make_sandbox: Any) -> None:
    # lenience: this test is about archived records being polled, not search lag
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       search_lag_seconds=0)
    hs = connector(box)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    made = hs.upsert("contacts", contacts(2, "gone"))
    hs.delete("contacts", [made[0].id])
    changed = [r.id for r in hs.read_changed("contacts", since, soon(), FIELDS)]
    assert made[0].id not in changed
    assert made[1].id in changed
    deleted = hs.read_deleted("contacts", since)
    assert [d.id for d in deleted.records] == [made[0].id]


def test_a_207_fails_only_the_records_it_names(sandbox: SandboxClient) -> None:
    hs = connector(sandbox)
    made = hs.upsert("contacts", contacts(2, "partial"))
    updates = [WriteRecord(id=made[0].id, values={"firstname": "A"}),
               WriteRecord(id="987654321", values={"firstname": "B"}),
               WriteRecord(id=made[1].id, values={"firstname": "C"})]
    results = hs.upsert("contacts", updates)
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error is not None
    assert results[1].error.code == "OBJECT_NOT_FOUND"
    conflict = hs.upsert("contacts", contacts(1, "partial") + contacts(1, "brandnew"))
    assert conflict[0].error is not None
    assert conflict[0].error.code == "CONFLICT"
    assert conflict[1].ok


def test_a_429_storm_is_ridden_out_with_the_pause_honoured(make_sandbox: Any) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       faults="hubspot.batch.*=429#4")
    waits: list[float] = []
    hs = connector(box, RetryPolicy(sleep=waits.append))
    results = hs.upsert("contacts", contacts(250, "storm"))
    assert all(r.ok for r in results)
    assert hs.rate_limited == 4
    assert waits == [1.0] * 4
    ok = box.requests("hubspot")["endpointStatuses"]["hubspot.batch.create 200"]
    assert ok == 3


def test_backward_lifecycle_moves_are_cleared_first(sandbox: SandboxClient) -> None:
    hs = connector(sandbox)
    made = hs.upsert("contacts", contacts(1, "backwards", lifecyclestage="opportunity"))[0].id
    before = dict(hs.calls)
    results = hs.upsert("contacts", [WriteRecord(id=made, values={"lifecyclestage": "lead"})])
    assert results[0].ok
    grown = {k: v - before.get(k, 0) for k, v in hs.calls.items()}
    assert grown["contacts.batch.read"] == 1  # current stage unknown: read once
    assert grown["contacts.batch.update"] == 2  # clear, then set
    assert hs.read_by_ids("contacts", [made], FIELDS)[0].values["lifecyclestage"] == "lead"
    known = WriteRecord(id=made, values={"lifecyclestage": "subscriber"},
                        current={"lifecyclestage": "lead"})
    before = dict(hs.calls)
    assert hs.upsert("contacts", [known])[0].ok
    assert hs.calls["contacts.batch.read"] == before["contacts.batch.read"]


def test_client_side_pacing_keeps_under_the_rolling_window(make_sandbox: Any) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=6, hubspot_search_per_second=0)
    hs = connector(box, requests_per_ten_seconds=6)
    hs.window.window = 1.05  # a 1-second window keeps the test short; the server's is 10 s
    box.admin("hubspot", "POST", "/hubspot/config", {"perTenSeconds": 0})
    started = time.monotonic()
    for _ in range(2):  # describe reads properties and the lifecycle pipeline: 3 calls a turn
        hs.upsert("contacts", contacts(1, f"paced{time.monotonic_ns()}"))
        hs.describe("contacts")
        hs.clear_cache()
    assert time.monotonic() - started < 5
    assert hs.window.waited == 0  # six calls fit the window
    for _ in range(6):
        hs.describe("deals")
        hs.clear_cache()
    assert hs.window.waited > 0
    assert hs.rate_limited == 0


def test_no_secret_reaches_logs_errors_or_reprs(sandbox: SandboxClient,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = sandbox.info.hubspot_token
    hs = connector(sandbox)
    hs.upsert("contacts", contacts(1, "secretive"))
    list(hs.read_changed("contacts", dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5), soon(),
                         FIELDS))
    wrong = connector(sandbox, access_token=SecretStr("pat-wrong-" + token[-6:]))
    with pytest.raises(ConfigurationError) as exc:
        wrong.describe("contacts")
    for text in (caplog.text, str(exc.value), repr(exc.value), repr(hs.settings),
                 str(hs.settings.model_dump())):
        assert token not in text
        assert "secretive0@example.com" not in caplog.text
    assert logging.getLogger("hubspot").level == logging.WARNING
