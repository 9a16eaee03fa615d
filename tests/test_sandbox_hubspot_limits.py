"""The HubSpot emulator's limits, errors and auth answer as HubSpot's do: the daily limit's 429,
search at 4/s, the search body and filter caps, 403 MISSING_SCOPES, and OAuth tokens that
expire (see the fidelity table in sandbox/README.md)."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import hubspot
import pytest
from hubspot.oauth.exceptions import ApiException as OAuthApiException

from sandbox.admin import SandboxClient
from sandbox.hubspot.access import DEPLOYMENT_SCOPES
from sandbox.server import SandboxConfig

CONTACTS = "/crm/v3/objects/contacts"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def get(box: SandboxClient, path: str, token: str | None = None) -> Any:
    return box.http.get(box.url("hubspot", path), headers=bearer(token or box.info.hubspot_token))


def search(box: SandboxClient, body: Any) -> Any:
    return box.http.post(box.url("hubspot", CONTACTS + "/search"), data=json.dumps(body),
                         headers={**bearer(box.info.hubspot_token),
                                  "Content-Type": "application/json"})


def test_daily_limit_answers_429_daily_in_the_documented_shape(make_sandbox: Any,
                                                               reference: Path) -> None:
    box = make_sandbox(hubspot_daily_limit=3, hubspot_per_ten_seconds=0,
                       hubspot_search_per_second=0)
    answers = [get(box, CONTACTS + "?limit=1") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[2].headers["X-HubSpot-RateLimit-Daily"] == "3"
    assert answers[2].headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    refused = answers[3].json()
    documented = json.loads((reference / "hubspot" / "doc-429-daily.body.json").read_text())
    assert set(refused) == set(documented)
    assert (refused["policyName"], refused["errorType"], refused["message"]) == (
        documented["policyName"], documented["errorType"], documented["message"])
    assert answers[3].headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    assert "Retry-After" not in answers[3].headers  # the client works out the reset itself
    # searches count against the same day and are refused the same way
    assert search(box, {"limit": 1}).json()["policyName"] == "DAILY"


def test_daily_limit_resets_at_midnight_in_the_account_time_zone(make_sandbox: Any) -> None:
    box = make_sandbox(hubspot_daily_limit=1, hubspot_time_zone="Pacific/Kiritimati",
                       hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    assert get(box, CONTACTS).status_code == 200
    assert get(box, CONTACTS).status_code == 429
    limiter = box.server.limiter
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=14))).date()
    assert limiter._day == today  # the account's day (UTC+14), not the UTC one
    limiter._day = today - dt.timedelta(days=1)  # as if the account's midnight just passed
    assert get(box, CONTACTS).status_code == 200


def test_default_daily_limit_is_the_smallest_tier() -> None:
    assert SandboxConfig().hubspot_daily_limit == 250_000


def test_search_is_limited_to_four_per_second_by_default(make_sandbox: Any) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0)
    assert SandboxConfig().hubspot_search_per_second == 4
    started = time.monotonic()
    answers = [search(box, {"limit": 1}) for _ in range(5)]
    assert time.monotonic() - started < 1.0
    assert [a.status_code for a in answers] == [200] * 4 + [429]
    assert answers[4].json()["policyName"] == "SECONDLY"


def padded(size: int) -> dict[str, Any]:
    """A search body of exactly ``size`` characters, as sent."""
    body: dict[str, Any] = {"limit": 1, "properties": ["email", ""]}
    body["properties"][1] = "p" * (size - len(json.dumps(body)))
    assert len(json.dumps(body)) == size
    return body


def test_search_body_over_3000_characters_is_a_400(make_sandbox: Any) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    assert search(box, padded(3000)).status_code == 200
    refused = search(box, padded(3001))
    assert refused.status_code == 400
    assert refused.json()["category"] == "VALIDATION_ERROR"
    assert "3000" in refused.json()["message"]


def groups(count: int, per_group: int) -> list[dict[str, Any]]:
    return [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}] * per_group}
            for _ in range(count)]


@pytest.mark.parametrize(("count", "per_group", "status"), [
    (5, 5, 200), (6, 1, 400), (1, 10, 200), (1, 11, 400), (3, 8, 200), (3, 9, 400)])
def test_filters_are_capped_at_5_groups_10_per_group_25_in_all(
        sandbox: SandboxClient, count: int, per_group: int, status: int) -> None:
    answer = search(sandbox, {"limit": 1, "filterGroups": groups(count, per_group)})
    assert answer.status_code == status, answer.text
    if status == 400:
        assert answer.json()["category"] == "VALIDATION_ERROR"


def test_a_token_without_a_scope_gets_403_missing_scopes(make_sandbox: Any,
                                                         reference: Path) -> None:
    scopes = tuple(s for s in DEPLOYMENT_SCOPES if s != "crm.objects.deals.read")
    box = make_sandbox(hubspot_scopes=scopes, hubspot_per_ten_seconds=0,
                       hubspot_search_per_second=0)
    assert get(box, CONTACTS).status_code == 200
    refused = get(box, "/crm/v3/objects/deals")
    assert refused.status_code == 403
    recorded = json.loads((reference / "hubspot" / "amp-error-403-missing-scopes.json")
                          .read_text())
    body = refused.json()
    assert set(body) == set(recorded)
    assert set(body["context"]) == set(recorded["context"])
    assert (body["category"], body["message"]) == (recorded["category"], recorded["message"])
    assert body["context"]["requiredGranularScopes"] == ["crm.objects.deals.read"]
    # a search is a read, even though it is a POST
    deals_search = box.http.post(box.url("hubspot", "/crm/v3/objects/deals/search"),
                                 json={"limit": 1}, headers=bearer(box.info.hubspot_token))
    assert deals_search.status_code == 403


def test_default_scopes_are_all_a_deployment_needs(sandbox: SandboxClient) -> None:
    for path in (CONTACTS, "/crm/v3/objects/companies", "/crm/v3/objects/deals",
                 "/crm/v3/properties/contacts", "/crm/v3/pipelines/deals", "/crm/v3/owners"):
        assert get(sandbox, path).status_code == 200, path


def oauth_client(box: SandboxClient) -> Any:
    return hubspot.Client.create(host=box.info.hubspot_url)


def refresh(box: SandboxClient, **overrides: str) -> Any:
    app = box.info.hubspot_oauth
    assert app is not None
    form = {"grant_type": "refresh_token", "client_id": app.client_id,
            "client_secret": app.client_secret, "refresh_token": app.refresh_token, **overrides}
    return oauth_client(box).oauth.tokens_api.create(**form)


def test_refresh_token_grant_answers_as_hubspot(make_sandbox: Any) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    answer = box.http.post(box.url("hubspot", "/oauth/v1/token"), data={
        "grant_type": "refresh_token", "client_id": box.info.hubspot_oauth.client_id,
        "client_secret": box.info.hubspot_oauth.client_secret,
        "refresh_token": box.info.hubspot_oauth.refresh_token})
    assert answer.status_code == 200
    body = answer.json()
    assert {"access_token", "refresh_token", "expires_in", "token_type"} <= set(body)
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 1800  # HubSpot's access tokens live 30 minutes
    token = refresh(box)  # through hubspot-api-client's own model
    assert token.access_token
    assert token.expires_in == 1800
    assert get(box, CONTACTS + "?limit=1", token.access_token).status_code == 200
    info = oauth_client(box).oauth.access_tokens_api.get(token.access_token)
    assert set(info.scopes) == set(DEPLOYMENT_SCOPES)
    with pytest.raises(OAuthApiException) as bad:
        refresh(box, refresh_token="na1-not-it")
    assert bad.value.status == 400
    assert json.loads(bad.value.body)["status"] == "BAD_REFRESH_TOKEN"


def test_expired_access_token_gets_401_expired_authentication(make_sandbox: Any) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       hubspot_oauth_lifetime_seconds=1)
    token = refresh(box).access_token
    assert get(box, CONTACTS, token).status_code == 200
    time.sleep(1.2)
    expired = get(box, CONTACTS, token)
    assert expired.status_code == 401
    body = expired.json()
    assert body["category"] == "EXPIRED_AUTHENTICATION"
    assert body["message"].startswith("The OAuth token used to make this call expired ")
    assert body["message"].endswith(" second(s) ago.")
    assert list(body["context"]) == ["expire time"]
    # the private app token does not expire
    assert get(box, CONTACTS).status_code == 200
