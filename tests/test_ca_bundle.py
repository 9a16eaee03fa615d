"""The REQUESTS_CA_BUNDLE trap: a CA set only on a Session is overridden by the environment."""

from __future__ import annotations

import certifi
import pytest
import requests

from connectors.config import load_settings
from connectors.http import make_session
from connectors.salesforce import SalesforceConnector
from sandbox.admin import SandboxClient


def test_env_bundle_overrides_a_plain_session(sandbox: SandboxClient,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    naive = requests.Session()
    naive.verify = str(sandbox.info.ca_bundle)
    with pytest.raises(requests.exceptions.SSLError):
        naive.get(sandbox.info.salesforce_url + "/services/data", timeout=5)


def test_connector_session_keeps_the_configured_ca(sandbox: SandboxClient,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    session = make_session(sandbox.info.ca_bundle)
    assert session.get(sandbox.info.salesforce_url + "/services/data", timeout=5).ok
    settings = load_settings(sandbox.info.settings_file)
    report = SalesforceConnector(settings.salesforce).check()
    assert {o.name for o in report.objects} >= {"Lead", "Contact", "Opportunity"}


def test_without_the_ca_the_sandbox_is_not_trusted(sandbox: SandboxClient) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        make_session(None).get(sandbox.info.salesforce_url + "/services/data", timeout=5)
