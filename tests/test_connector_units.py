"""The connectors' pure parts: retry policy, pacing, quota budget, watermarks, value forms."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.errors import (
    ConfigurationError,
    QuotaExhaustedError,
    ReauthenticateError,
    RetriableError,
)
from connectors.pacing import DailyBudget, RollingWindow
from connectors.records import FieldInfo, Record, Watermark, advance
from connectors.retry import RetryPolicy
from connectors.salesforce_values import from_csv, parse_datetime


class Flaky:
    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_retriable_errors_are_retried_with_the_servers_pause() -> None:
    waits: list[float] = []
    flaky = Flaky(RetriableError("x", "429", retry_after=7.0), RetriableError("x", "500"))
    assert RetryPolicy(sleep=waits.append).run(flaky) == "done"
    assert flaky.calls == 3
    assert waits[0] == 7.0
    assert 0.5 <= waits[1] <= 1.5  # exponential backoff with jitter after the first retry


def test_attempts_are_bounded_and_the_last_error_raised() -> None:
    flaky = Flaky(*[RetriableError("x", f"503 #{i}") for i in range(10)])
    with pytest.raises(RetriableError, match="503 #2"):
        RetryPolicy(attempts=3, sleep=lambda _: None).run(flaky)
    assert flaky.calls == 3


def test_fatal_and_quota_errors_are_not_retried() -> None:
    for error in (ConfigurationError("x", "bad"), QuotaExhaustedError("x", "spent")):
        flaky = Flaky(error)
        with pytest.raises(type(error)):
            RetryPolicy(sleep=lambda _: None).run(flaky)
        assert flaky.calls == 1


def test_creates_are_resent_only_when_the_server_did_not_act() -> None:
    unknown = Flaky(RetriableError("x", "500"))
    with pytest.raises(RetriableError):
        RetryPolicy(sleep=lambda _: None).run(unknown, idempotent=False)
    assert unknown.calls == 1
    refused = Flaky(RetriableError("x", "503", unapplied=True))
    assert RetryPolicy(sleep=lambda _: None).run(refused, idempotent=False) == "done"


def test_an_expired_session_signs_in_once() -> None:
    signed_in: list[int] = []
    flaky = Flaky(ReauthenticateError("x", "expired"))
    assert RetryPolicy(sleep=lambda _: None).run(flaky, lambda: signed_in.append(1)) == "done"
    assert signed_in == [1]
    twice = Flaky(ReauthenticateError("x", "expired"), ReauthenticateError("x", "again"))
    with pytest.raises(ReauthenticateError, match="again"):
        RetryPolicy(sleep=lambda _: None).run(twice, lambda: signed_in.append(1))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_rolling_window_spaces_calls_like_hubspots_limit() -> None:
    clock = FakeClock()
    window = RollingWindow(100, 10.0, margin=0.05, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(500):
        window.acquire()
        sent.append(clock.now)
        clock.now += 0.01  # each call takes 10 ms
    for i in range(100, 500):
        assert sent[i] - sent[i - 100] >= 10.0  # never 101 calls in any 10 s
    assert sent[-1] < 4 * 10.05 + 1.0 + 0.01  # and no slower than it must be


def test_rolling_window_off_never_waits() -> None:
    clock = FakeClock()
    window = RollingWindow(0, 10.0, clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        window.acquire()
    assert clock.now == 0.0


def test_daily_budget_reads_sforce_limit_info() -> None:
    budget = DailyBudget(stop_share=0.75)
    budget.observe("api-usage=749/1000")
    budget.check()
    budget.observe("per-app-api-usage=17/250(appName=sample), api-usage=750/1000")
    assert budget.share_used == 0.75
    with pytest.raises(QuotaExhaustedError, match="75%"):
        budget.check()
    own = DailyBudget(max_calls=2)
    own.own_calls = 2
    with pytest.raises(QuotaExhaustedError, match="budget of 2"):
        own.check()


T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def rec(i: int, seconds: int) -> Record:
    return Record(system="salesforce", object="Lead", id=f"id{i}",
                  cursor=T0 + dt.timedelta(seconds=seconds))


@given(st.lists(st.integers(min_value=0, max_value=600), min_size=1, max_size=40))
def test_advance_keeps_exactly_the_recent_reads(offsets: list[int]) -> None:
    records = [rec(i, s) for i, s in enumerate(offsets)]
    mark = advance(Watermark(cursor=T0), records, dt.timedelta(seconds=60))
    assert mark.cursor == T0 + dt.timedelta(seconds=max(offsets))
    for r in records:
        assert mark.skips(r) == (r.cursor >= mark.cursor - dt.timedelta(seconds=60))
    assert not mark.skips(rec(999, max(offsets)))  # a new record on the same stamp is read


def test_bulk_csv_values_take_the_rest_form() -> None:
    assert from_csv(FieldInfo(name="b", label="b", type="boolean"), "true") is True
    assert from_csv(FieldInfo(name="n", label="n", type="int"), "42") == 42
    assert from_csv(FieldInfo(name="c", label="c", type="currency"), "12.5") == 12.5
    assert from_csv(FieldInfo(name="e", label="e", type="email"), "") is None
    stamp = from_csv(FieldInfo(name="d", label="d", type="datetime"), "2024-01-02T03:04:05.000Z")
    assert stamp == "2024-01-02T03:04:05.000+0000"
    assert parse_datetime(stamp) == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_both_connectors_satisfy_the_contract_and_hubspot_has_timeouts() -> None:
    from pydantic import SecretStr

    from connectors.config import HubSpotSettings, SalesforceSettings
    from connectors.contract import Connector
    from connectors.hubspot import HubSpotConnector
    from connectors.salesforce import SalesforceConnector

    hs = HubSpotConnector(HubSpotSettings(access_token=SecretStr("t"), timeout_seconds=7))
    sf = SalesforceConnector(SalesforceSettings.model_validate(
        {"auth": {"kind": "session", "session_id": "s"}, "instance_url": "https://x.test"}))
    contract = [n for n in dir(Connector) if not n.startswith("_")]
    for connector in (hs, sf):  # connectors/build.py has mypy prove the signatures too
        assert all(hasattr(connector, n) for n in contract)
    timeout = hs.search["contacts"].api_client.rest_client.pool_manager.connection_pool_kw[
        "timeout"]
    assert timeout.read_timeout == 7
    assert sf.http.default_timeout == (10.0, 60.0)  # type: ignore[attr-defined]


def test_quiet_cycles_do_not_reread_the_last_burst() -> None:
    lookback = dt.timedelta(seconds=300)
    burst = [rec(i, 0) for i in range(100)]  # written together at T0
    mark = advance(Watermark(cursor=T0 - dt.timedelta(hours=1)), burst, lookback,
                   until=T0 + dt.timedelta(seconds=1))
    assert mark.start(lookback) == T0 - lookback + dt.timedelta(seconds=1)  # late arrivals
    quiet = advance(mark, [], lookback, until=T0 + dt.timedelta(minutes=10))
    tick = dt.timedelta(seconds=1)
    assert quiet.start(lookback, tick) == T0 + tick  # ten quiet minutes on: nothing re-read
    assert all(quiet.skips(r) for r in burst)  # and what sits on it is not read twice
    legacy = Watermark(cursor=T0)
    assert legacy.start(lookback) == T0 - lookback
