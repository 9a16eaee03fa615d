"""The HubSpot connector and the agent against HubSpot's limits, errors and auth (the sandbox
answers as HubSpot does): the daily limit stops HubSpot work until the reset, searches pace to
4/s and fit HubSpot's 3,000-character bodies, a missing scope is named, and OAuth access tokens
are renewed before they expire and once on a 401."""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from connectors.build import build_connectors
from connectors.config import HubSpotOAuth, HubSpotSettings, load_settings
from connectors.errors import ConfigurationError, DailyLimitError
from connectors.hubspot import HubSpotConnector
from connectors.hubspot_limits import SEARCH_BODY_CHARACTERS
from connectors.retry import RetryPolicy
from mapping.validate import check_file
from sandbox.admin import SandboxClient
from sandbox.hubspot.access import DEPLOYMENT_SCOPES
from sync_agent.service import Agent
from sync_agent.store import open_store
from sync_agent.tables import Run

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"


def connector(box: SandboxClient, **settings: Any) -> HubSpotConnector:
    base = load_settings(box.info.settings_file).hubspot
    return HubSpotConnector(base.model_copy(update=settings),
                            RetryPolicy(initial=0.0, maximum=0.0))


def exhaust_daily_limit(box: SandboxClient) -> None:
    box.admin("hubspot", "POST", "/hubspot/config", {"dailyLimit": 50, "dailyUsed": 50})


def test_a_daily_429_stops_hubspot_work_until_the_reset_instead_of_six_retries(
        make_sandbox: Any, caplog: pytest.LogCaptureFixture) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    hs = connector(box, account_time_zone="America/New_York")
    exhaust_daily_limit(box)
    box.reset_requests()
    caplog.set_level(logging.INFO, logger="stagesync.connectors")
    with pytest.raises(DailyLimitError) as stop:
        hs.describe("contacts")
    assert box.requests("hubspot")["total"] == 1  # one refusal, not six
    zone = ZoneInfo("America/New_York")
    tomorrow = dt.datetime.now(zone).date() + dt.timedelta(days=1)
    assert stop.value.resume_at == dt.datetime.combine(tomorrow, dt.time(), zone)
    assert "daily API limit" in str(stop.value)
    assert "America/New_York" in str(stop.value)
    assert any("daily API limit" in r.getMessage() for r in caplog.records)
    with pytest.raises(DailyLimitError):  # while the stop lasts, nothing is sent
        hs.read_by_ids("contacts", ["1"])
    assert box.requests("hubspot")["total"] == 1
    hs.daily_stop = DailyLimitError("hubspot", "test", dt.datetime.now(dt.UTC))  # reset passed
    box.admin("hubspot", "POST", "/hubspot/config", {"dailyUsed": 0})
    assert hs.describe("contacts").fields  # HubSpot work resumes after the reset


def test_a_refusal_soon_after_the_expected_reset_looks_again_hourly(
        make_sandbox: Any) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    hs = connector(box, account_time_zone="Pacific/Kiritimati")
    exhaust_daily_limit(box)
    hs._daily_resumed_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # a stop just ended
    with pytest.raises(DailyLimitError) as stop:
        hs.describe("contacts")
    wait = stop.value.resume_at - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=55) < wait <= dt.timedelta(hours=1)
    assert "ACCOUNT_TIME_ZONE" in str(stop.value)


def test_the_agent_pauses_at_the_daily_limit_and_says_so(make_sandbox: Any,
                                                         tmp_path: Path) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    mapping, _ = check_file(DEFAULT)
    assert mapping is not None
    settings = load_settings(box.info.settings_file)
    sf, hs = build_connectors(settings)
    agent = Agent(open_store(f"sqlite:///{tmp_path / 'state.db'}"), mapping, sf, hs,
                  interval=1)
    agent.cycle()  # a good cycle first: the schemas are read and cached
    assert agent.metrics.cycles == 1
    exhaust_daily_limit(box)
    agent.cycle()
    status, body = agent.health()
    assert status == 200
    assert body["status"] == "quota_paused"
    assert "HubSpot's daily API limit" in body["reason"]
    assert "until" in body["reason"]
    metrics = agent.metrics.prometheus()
    assert "stagesync_hubspot_daily_limit_paused 1" in metrics
    resume = dt.datetime.fromisoformat(body["hubspot_resume_at"])
    assert resume == hs.daily_stop.resume_at  # type: ignore[attr-defined]
    assert (f"stagesync_hubspot_daily_limit_resume_timestamp_seconds {resume.timestamp():.0f}"
            in metrics)
    before = box.requests("hubspot")["total"]
    agent.cycle()  # paused: no call to either system
    assert box.requests("hubspot")["total"] == before
    assert agent.metrics.skipped_quota == 1
    with agent.store.session() as session:
        runs = list(session.scalars(select(Run).order_by(Run.id)))
    assert [r.status for r in runs] == ["ok", "failed"]  # the stopped cycle is on record
    assert "daily API limit" in (runs[1].error or "")


def test_search_paces_to_four_per_second(make_sandbox: Any) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0)  # the sandbox's search limit: 4/s
    hs = HubSpotConnector(load_settings(box.info.settings_file).hubspot,
                          RetryPolicy(initial=0.0, maximum=0.0))
    assert hs.settings.searches_per_second == 4
    for _ in range(10):
        hs.find_by("companies", "name", ["nobody-is-called-this"], ["name"])
    assert box.requests("hubspot")["endpointStatuses"].get("hubspot.objects.search 429", 0) == 0
    assert hs.rate_limited == 0


def test_find_by_splits_values_so_search_bodies_stay_under_3000_characters(
        sandbox: SandboxClient) -> None:
    hs = connector(sandbox, searches_per_second=0)
    seeded = [str(r.values["name"]) for r in hs.read_by_ids(
        "companies", list(hs.list_ids("companies"))[:3], ["name"])]
    fillers = [f"no-such-company-{i:03d}-" + "x" * 40 for i in range(150)]
    every_property = list(hs.describe("contacts").fields)
    before = sandbox.requests("hubspot")["endpointStatuses"]
    found = hs.find_by("companies", "name", [*fillers, *seeded], ["name"])
    assert sorted(str(r.values["name"]) for r in found) == sorted(seeded)
    known = [str(r.values["email"]) for r in hs.read_by_ids(
        "contacts", list(hs.list_ids("contacts"))[:2], ["email"]) if r.values.get("email")]
    emails = [f"nobody{i}@{'y' * 30}.example.com" for i in range(80)]
    # every property and a long value list: the search asks for the cursor only, and the
    # properties come by id
    people = hs.find_by("contacts", "email", [*emails, *known], every_property)
    assert sorted(str(r.values["email"]) for r in people) == sorted(known)
    assert all(set(every_property) <= set(r.values) for r in people)
    after = sandbox.requests("hubspot")["endpointStatuses"]
    assert after.get("hubspot.objects.search 400", 0) == before.get(
        "hubspot.objects.search 400", 0)
    assert after["hubspot.objects.search 200"] - before.get("hubspot.objects.search 200", 0) > 2
    assert SEARCH_BODY_CHARACTERS == 3000


def test_a_missing_scope_is_a_configuration_error_naming_it(make_sandbox: Any) -> None:
    scopes = tuple(s for s in DEPLOYMENT_SCOPES if s != "crm.objects.deals.read")
    box = make_sandbox(hubspot_scopes=scopes, hubspot_per_ten_seconds=0,
                       hubspot_search_per_second=0)
    hs = connector(box)
    with pytest.raises(ConfigurationError) as exc:
        list(hs.read_changed("deals", dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
                             dt.datetime.now(dt.UTC), ["dealname"]))
    assert "MISSING_SCOPES" in str(exc.value)
    assert "crm.objects.deals.read" in str(exc.value)
    assert "deals." in str(exc.value)  # where it happened
    assert box.requests("hubspot")["statuses"].get("403") == 1  # not retried


def oauth_settings(box: SandboxClient, margin: float = 300.0) -> HubSpotSettings:
    app = box.info.hubspot_oauth
    assert app is not None
    return HubSpotSettings(host=box.info.hubspot_url, oauth=HubSpotOAuth(
        client_id=app.client_id, client_secret=SecretStr(app.client_secret),
        refresh_token=SecretStr(app.refresh_token), refresh_margin_seconds=margin),
        requests_per_ten_seconds=0, searches_per_second=0)


def test_oauth_tokens_are_refreshed_before_expiry_and_once_on_a_401(
        make_sandbox: Any, caplog: pytest.LogCaptureFixture) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       hubspot_oauth_lifetime_seconds=2)
    caplog.set_level(logging.DEBUG)
    hs = HubSpotConnector(oauth_settings(box, margin=1.0), RetryPolicy(initial=0, maximum=0))
    assert hs.describe("contacts").fields
    assert hs.tokens.refreshes == 1
    time.sleep(1.1)  # inside the margin before expiry: renewed before the call
    hs.clear_cache()
    assert hs.describe("contacts").fields
    assert hs.tokens.refreshes == 2
    assert box.requests("hubspot")["statuses"].get("401", 0) == 0
    box.admin("hubspot", "POST", "/hubspot/config", {"expireTokens": True,
                                                      "oauthLifetimeSeconds": 1800})
    hs.clear_cache()
    assert hs.describe("contacts").fields  # 401, one refresh, the call again
    assert hs.tokens.refreshes == 3
    assert box.requests("hubspot")["statuses"].get("401", 0) == 1
    app = box.info.hubspot_oauth
    assert app is not None
    secrets = [app.client_secret, app.refresh_token, hs.tokens._token or "-"]
    for text in (caplog.text, repr(hs.settings), str(hs.settings.model_dump())):
        for secret in secrets:
            assert secret not in text


def test_a_refused_refresh_token_is_a_configuration_error(make_sandbox: Any) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    settings = oauth_settings(box)
    assert settings.oauth is not None
    wrong = settings.model_copy(update={"oauth": settings.oauth.model_copy(
        update={"refresh_token": SecretStr("na1-revoked")})})
    with pytest.raises(ConfigurationError) as exc:
        HubSpotConnector(wrong).describe("contacts")
    assert "BAD_REFRESH_TOKEN" in str(exc.value)
    assert "na1-revoked" not in str(exc.value)


def test_settings_need_exactly_one_hubspot_credential() -> None:
    with pytest.raises(ValueError, match="either access_token"):
        HubSpotSettings()
    with pytest.raises(ValueError, match="not both"):
        HubSpotSettings(access_token=SecretStr("pat"), oauth=HubSpotOAuth(
            client_id="c", client_secret=SecretStr("s"), refresh_token=SecretStr("r")))
    with pytest.raises(ValueError, match="unknown time zone"):
        HubSpotSettings(access_token=SecretStr("pat"), account_time_zone="Mars/Olympus")
