"""Salesforce sign-in by every configured kind, reaching the sandbox by configuration alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from connectors.config import (
    ClientCredentialsAuth,
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
    settings = base(sandbox).model_copy(update={"auth": JwtBearerAuth(
        kind="jwt", client_id="x", username="y", private_key_file=tmp_path / "missing.pem")})
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
