"""Who may call the HubSpot emulator, with which scopes: the private app token, OAuth access
tokens from the refresh-token grant, and the 403 ``MISSING_SCOPES`` a token without a needed
scope gets.

HubSpot's shapes followed here:
- ``POST /oauth/v1/token`` (form-encoded ``grant_type=refresh_token``, ``client_id``,
  ``client_secret``, ``refresh_token``) answers ``access_token``, ``refresh_token``,
  ``expires_in`` (HubSpot's tokens live 30 minutes), ``token_type: bearer``, plus ``hub_id``
  and ``scopes`` (developers.hubspot.com/changelog/additional-details-returned-when-generating-
  oauth-access-tokens);
- an expired access token gets 401 ``EXPIRED_AUTHENTICATION`` "The OAuth token used to make
  this call expired N second(s) ago." with ``context["expire time"]`` (the body pasted in
  airbytehq/airbyte#74726);
- ``GET /oauth/v1/access-tokens/{token}`` returns the token's metadata with its ``scopes``;
- a missing scope is a 403 ``MISSING_SCOPES`` whose ``context.requiredGranularScopes`` names
  it (recording ``hubspot/amp-error-403-missing-scopes.json``).
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.responses import Response

from sandbox.http import Call, json_response
from sandbox.hubspot.schema import ENGAGEMENTS

OAUTH_LIFETIME_SECONDS = 1800  # HubSpot's access tokens expire after 30 minutes
HUB_ID = 62515
OBJECTS = ("contacts", "companies", "deals")
# The granular scopes a stagesync deployment needs: read and write on the three objects, their
# property definitions (schemas), and the owners list.
DEPLOYMENT_SCOPES: tuple[str, ...] = (
    *(f"crm.objects.{o}.{level}" for o in OBJECTS for level in ("read", "write")),
    *(f"crm.schemas.{o}.read" for o in OBJECTS),
    "crm.objects.owners.read",
)
READ_BY_POST = {"hubspot.objects.search", "hubspot.batch.read",
                "hubspot.associations.batch.read"}


def required_scopes(call: Call, object_types: dict[str, str]) -> list[str]:
    """The granular scopes a call needs; ``object_types`` maps the route's aliases (``0-1``,
    ``contact``) to object names. Unknown objects need nothing here (the route answers 400)."""
    endpoint = call.endpoint
    if endpoint.startswith("hubspot.owners."):
        return ["crm.objects.owners.read"]
    if endpoint.startswith("hubspot.properties."):
        name = object_types.get(call.params.get("object", "").lower())
        level = "write" if call.method != "GET" else "read"  # a create needs the write scope
        return [f"crm.schemas.{name}.{level}"] if name else []
    write = call.method != "GET" and endpoint not in READ_BY_POST
    level = "write" if write else "read"
    if endpoint.startswith("hubspot.associations."):
        names = [object_types.get(call.params.get(k, "").lower()) for k in ("from", "to")]
        names = ["contacts" if n in ENGAGEMENTS else n for n in names]
        return [f"crm.objects.{n}.{level}" for n in names if n]
    name = object_types.get(call.params.get("object", "").lower())
    if name in ENGAGEMENTS:  # calls, notes...: HubSpot's engagement APIs ask for contacts'
        name = "contacts"
    if endpoint.startswith("hubspot.pipelines."):
        return [f"crm.objects.{name}.read"] if name else []
    return [f"crm.objects.{name}.{level}"] if name else []


def missing_scopes_response(missing: list[str]) -> Response:
    """HubSpot's 403, in the recorded shape."""
    return json_response({
        "status": "error", "message": "One or more of the following scopes are required.",
        "correlationId": str(uuid.uuid4()),
        "context": {"requiredGranularScopes": missing,
                    "links": ["https://developers.hubspot.com/scopes"]},
        "category": "MISSING_SCOPES"}, 403)


def _invalid_authentication() -> Response:
    return json_response({
        "status": "error", "message": "Authentication credentials not found. This API supports "
        "OAuth 2.0 authentication and you can find more details at "
        "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        "correlationId": str(uuid.uuid4()), "category": "INVALID_AUTHENTICATION"}, 401)


def _expired(expired_at: dt.datetime, now: dt.datetime) -> Response:
    seconds = max(int((now - expired_at).total_seconds()), 0)
    if seconds >= 3600:
        ago = f"{seconds // 3600} hour(s)"
    elif seconds >= 60:
        ago = f"{seconds // 60} minute(s)"
    else:
        ago = f"{seconds} second(s)"
    stamp = expired_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return json_response({
        "status": "error", "message": f"The OAuth token used to make this call expired {ago} ago.",
        "correlationId": str(uuid.uuid4()), "category": "EXPIRED_AUTHENTICATION",
        "context": {"expire time": [stamp]}}, 401)


def _token_error(status: str, message: str) -> Response:
    return json_response({"status": status, "message": message,
                          "correlationId": str(uuid.uuid4())}, 400)


@dataclass
class AccessToken:
    token: str
    expires_at: dt.datetime | None  # None: a private app token, which does not expire


@dataclass
class Access:
    """The emulator's credentials. ``scopes`` are granted to every token (the private app's
    and the OAuth app's alike); ``oauth_lifetime`` is how long an OAuth access token lives."""

    private_token: str
    scopes: set[str] = field(default_factory=lambda: set(DEPLOYMENT_SCOPES))
    client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_secret: str = field(default_factory=lambda: str(uuid.uuid4()))
    refresh_token: str = field(default_factory=lambda: "na1-" + secrets.token_hex(16))
    oauth_lifetime: float = OAUTH_LIFETIME_SECONDS
    tokens: dict[str, AccessToken] = field(default_factory=dict)
    grants: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set_scopes(self, scopes: Iterable[str]) -> None:
        with self.lock:
            self.scopes = set(scopes)

    def expire_all(self, now: dt.datetime | None = None) -> None:
        """Every OAuth access token issued so far expires now."""
        moment = now or dt.datetime.now(dt.UTC)
        with self.lock:
            for token in self.tokens.values():
                token.expires_at = moment - dt.timedelta(seconds=1)

    def authenticate(self, call: Call, object_types: dict[str, str]) -> Response | None:
        header = call.headers.get("authorization", "")
        given = header[len("Bearer "):] if header.startswith("Bearer ") else None
        now = dt.datetime.now(dt.UTC)
        with self.lock:
            issued = self.tokens.get(given) if given else None
            if given != self.private_token and issued is None:
                return _invalid_authentication()
            if issued is not None and issued.expires_at is not None and issued.expires_at <= now:
                return _expired(issued.expires_at, now)
            granted = set(self.scopes)
        missing = [s for s in required_scopes(call, object_types) if s not in granted]
        return missing_scopes_response(missing) if missing else None

    # -- the OAuth routes (public: they carry their own credentials) ---------------------
    def token_route(self, call: Call) -> Response:
        form = {k: v[0] for k, v in parse_qs(call.body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "refresh_token":
            return _token_error("BAD_GRANT_TYPE", "grant_type must be refresh_token or "
                                "authorization_code; only refresh_token is emulated")
        if form.get("client_id") != self.client_id:
            return _token_error("BAD_CLIENT_ID", "missing or unknown client id")
        if form.get("client_secret") != self.client_secret:
            return _token_error("BAD_CLIENT_SECRET", "missing or invalid client secret")
        if form.get("refresh_token") != self.refresh_token:
            return _token_error("BAD_REFRESH_TOKEN", "missing or unknown refresh token")
        token = "CO" + secrets.token_urlsafe(48)
        with self.lock:
            self.tokens[token] = AccessToken(token, dt.datetime.now(dt.UTC) + dt.timedelta(
                seconds=self.oauth_lifetime))
            self.grants += 1
            scopes = sorted(self.scopes)
        return json_response({"token_type": "bearer", "refresh_token": self.refresh_token,
                              "hub_id": HUB_ID, "scopes": scopes, "access_token": token,
                              "expires_in": int(self.oauth_lifetime)})

    def token_info_route(self, call: Call) -> Response:
        given = call.params.get("token", "")
        now = dt.datetime.now(dt.UTC)
        with self.lock:
            issued = self.tokens.get(given)
            scopes = sorted(self.scopes)
        if issued is None or issued.expires_at is None:
            return json_response({"status": "error", "message": "access token not found",
                                  "correlationId": str(uuid.uuid4()),
                                  "category": "OBJECT_NOT_FOUND"}, 404)
        if issued.expires_at <= now:
            return _expired(issued.expires_at, now)
        body: dict[str, Any] = {
            "token": given, "user": "integration@stagesync.sandbox", "hub_domain":
            "stagesync-sandbox.com", "scopes": scopes, "hub_id": HUB_ID, "app_id": 1,
            "expires_in": math.floor((issued.expires_at - now).total_seconds()),
            "user_id": 1, "token_type": "access"}
        return json_response(body)
