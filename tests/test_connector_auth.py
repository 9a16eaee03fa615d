"""Salesforce sign-in by every configured kind, reaching the sandbox by configuration alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from connectors.config import (
    ClientCredentialsAuth,
    HubSpotSettings,
    JwtBearerAuth,
    SalesforceSettings,
    SessionAuth,
    load_settings,
)
from connectors.errors import ConfigurationError
from connectors.http import make_session
from connectors.salesforce import SalesforceConnector
from connectors.salesforce_auth import authenticate
from sandbox.admin import SandboxClient


def base(box: SandboxClient) -> SalesforceSettings:
    return load_settings(box.info.settings_file).salesforce


def test_jwt_bearer_with_the_connected_app_key(sandbox: SandboxClient) -> None:
    c = sandbox.info.credentials
    settings = base(sandbox).model_copy(update={"auth": JwtBearerAuth(
        kind="jwt", client_id=c.client_id, username=c.username,
        private_key_file=sandbox.info.jwt_key_file)})
    report = SalesforceConnector(settings).check()
    assert report.identity == c.username


def test_client_credentials_and_existing_session(sandbox: SandboxClient) -> None:
    c = sandbox.info.credentials
    creds = base(sandbox).model_copy(update={"auth": ClientCredentialsAuth(
        kind="client_credentials", client_id=c.client_id,
        client_secret=SecretStr(c.client_secret))})
    session = authenticate(creds, make_session(sandbox.info.ca_bundle))
    assert session.session_id not in repr(session)
    reused = base(sandbox).model_copy(update={"auth": SessionAuth(
        kind="session", session_id=SecretStr(session.session_id))})
    assert SalesforceConnector(reused).check().objects


def test_missing_key_file_is_a_configuration_error(sandbox: SandboxClient,
                                                   tmp_path: Path) -> None:
    """A key file gone since the settings loaded (they refuse a missing one at once)."""
    key = tmp_path / "gone.pem"
    key.write_bytes(sandbox.info.jwt_key_file.read_bytes())
    settings = base(sandbox).model_copy(update={"auth": JwtBearerAuth(
        kind="jwt", client_id="x", username="y", private_key_file=key)})
    key.unlink()
    with pytest.raises(ConfigurationError, match="cannot read the JWT private key file"):
        SalesforceConnector(settings).check()


def test_settings_repr_hides_secrets(sandbox: SandboxClient) -> None:
    settings = load_settings(sandbox.info.settings_file)
    text = repr(settings) + str(settings.model_dump())
    assert sandbox.info.credentials.password not in text
    assert sandbox.info.hubspot_token not in text


def test_plain_http_salesforce_url_is_refused() -> None:
    with pytest.raises(ValueError, match="https://"):
        SalesforceSettings.model_validate({"token_url": "http://x/token", "auth": {
            "kind": "session", "session_id": "s"}})


def test_a_jwt_audience_other_than_a_login_host_is_refused_naming_the_setting(
        sandbox: SandboxClient) -> None:
    c = sandbox.info.credentials
    settings = base(sandbox).model_copy(update={"auth": JwtBearerAuth(
        kind="jwt", client_id=c.client_id, username=c.username,
        private_key_file=sandbox.info.jwt_key_file, audience=sandbox.info.salesforce_url)})
    with pytest.raises(ConfigurationError, match="audience is invalid") as exc:
        SalesforceConnector(settings).check()
    assert "STAGESYNC_SALESFORCE__AUTH__AUDIENCE" in exc.value.message
    assert "https://login.salesforce.com" in exc.value.message


def test_client_credentials_on_a_login_host_is_refused_naming_the_fix() -> None:
    for host in ("login.salesforce.com", "TEST.salesforce.com"):
        with pytest.raises(ValueError, match="My Domain token URL") as exc:
            SalesforceSettings.model_validate({
                "token_url": f"https://{host}/services/oauth2/token",
                "auth": {"kind": "client_credentials", "client_id": "app",
                         "client_secret": "s3cr3t-value"}})
        assert "STAGESYNC_SALESFORCE__TOKEN_URL" in str(exc.value)
        assert "s3cr3t" not in str(exc.value)
    mine = SalesforceSettings.model_validate({
        "token_url": "https://acme.my.salesforce.com/services/oauth2/token",
        "auth": {"kind": "client_credentials", "client_id": "app", "client_secret": "s"}})
    assert mine.auth.kind == "client_credentials"


@pytest.mark.parametrize("host", ["http://127.0.0.1:8080", "http://127.9.0.1", "http://[::1]:81",
                                  "http://localhost:3000/"])
def test_plain_http_hubspot_host_is_allowed_only_on_loopback(host: str) -> None:
    assert HubSpotSettings(host=host, access_token=SecretStr("t")).host == host.rstrip("/")


@pytest.mark.parametrize("host", ["http://api.hubapi.com", "http://10.0.0.5:8080",
                                  "http://localhost.example.com", "api.hubapi.com"])
def test_plain_http_hubspot_host_elsewhere_is_refused_naming_the_setting(host: str) -> None:
    with pytest.raises(ValueError, match="STAGESYNC_HUBSPOT__HOST") as exc:
        HubSpotSettings(host=host, access_token=SecretStr("t"))
    assert "https://" in str(exc.value)
