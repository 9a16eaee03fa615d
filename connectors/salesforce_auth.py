"""Obtain a Salesforce session from a token URL of our choosing.

simple-salesforce's own logins are pinned to ``https://{domain}.salesforce.com``, which rules
out My Domain token URLs with ports, private endpoints and the sandbox. So we run the OAuth
grant ourselves and hand simple-salesforce the session id and instance URL.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import jwt
import requests

from connectors.config import (
    ClientCredentialsAuth,
    JwtBearerAuth,
    PasswordAuth,
    SalesforceSettings,
    SessionAuth,
)
from connectors.errors import ConfigurationError, RetriableError

SYSTEM = "salesforce"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_LIFETIME = dt.timedelta(minutes=3)  # Salesforce refuses assertions valid for longer
# Refusals whose cause is a setting: the message says which one and how to fix it.
SIGN_IN_FIXES = {
    "audience is invalid": "set STAGESYNC_SALESFORCE__AUTH__AUDIENCE to https://login.salesforce.com"
    " (production) or https://test.salesforce.com (sandbox), not the My Domain URL",
    "request not supported on this domain": "the client credentials flow needs the org's My "
    "Domain token URL: set STAGESYNC_SALESFORCE__TOKEN_URL to "
    "https://YOUR-DOMAIN.my.salesforce.com/services/oauth2/token",
}


@dataclass(frozen=True)
class SalesforceSession:
    session_id: str
    instance_url: str

    def __repr__(self) -> str:  # never show the session id
        return f"SalesforceSession(instance_url={self.instance_url!r}, session_id=***)"


def _form(settings: SalesforceSettings) -> dict[str, str]:
    auth = settings.auth
    if isinstance(auth, PasswordAuth):
        return {"grant_type": "password", "client_id": auth.client_id,
                "client_secret": auth.client_secret.get_secret_value(),
                "username": auth.username, "password": auth.password.get_secret_value()}
    if isinstance(auth, ClientCredentialsAuth):
        return {"grant_type": "client_credentials", "client_id": auth.client_id,
                "client_secret": auth.client_secret.get_secret_value()}
    if isinstance(auth, JwtBearerAuth):
        try:
            key = auth.private_key_file.read_bytes()
        except OSError as exc:
            raise ConfigurationError(SYSTEM, f"cannot read the JWT private key file "
                                     f"{auth.private_key_file}: {exc.strerror}") from None
        now = dt.datetime.now(dt.UTC)
        assertion = jwt.encode({"iss": auth.client_id, "sub": auth.username,
                                "aud": auth.audience, "exp": int((now + JWT_LIFETIME).timestamp())},
                               key, algorithm="RS256")
        return {"grant_type": JWT_GRANT, "assertion": assertion}
    raise ConfigurationError(SYSTEM, f"auth kind {auth.kind!r} has no token grant")


def authenticate(settings: SalesforceSettings, session: requests.Session) -> SalesforceSession:
    """Run the configured grant and return the session; errors name the cause, not secrets."""
    auth = settings.auth
    if isinstance(auth, SessionAuth):
        if settings.instance_url is None:
            raise ConfigurationError(SYSTEM, "session auth needs instance_url")
        return SalesforceSession(auth.session_id.get_secret_value(), settings.instance_url)
    try:
        response = session.post(settings.token_url, data=_form(settings),
                                timeout=settings.timeout_seconds)
    except requests.RequestException as exc:
        raise RetriableError(SYSTEM, f"token request to {settings.token_url} failed: "
                             f"{type(exc).__name__}") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise RetriableError(SYSTEM, f"token endpoint answered {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        raise ConfigurationError(SYSTEM, f"token endpoint {settings.token_url} answered "
                                 f"{response.status_code} without JSON") from None
    if response.status_code != 200 or "access_token" not in body:
        description = str(body.get("error_description", ""))
        hint = SIGN_IN_FIXES.get(description.strip().lower(), "")
        raise ConfigurationError(SYSTEM, f"sign-in refused: {body.get('error', 'error')}: "
                                 f"{description}".rstrip(": ") + (f" ({hint})" if hint else ""))
    instance = settings.instance_url or str(body["instance_url"]).rstrip("/")
    return SalesforceSession(str(body["access_token"]), instance)
