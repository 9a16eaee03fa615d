"""Shared fixtures: the sandbox (from sandbox.pytest_plugin) and the real clients pointed at it
through the settings file the sandbox writes, exactly as a user would configure stagesync."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hubspot
import pytest
from simple_salesforce import Salesforce

from connectors.config import load_settings
from connectors.salesforce import SalesforceConnector
from sandbox.admin import SandboxClient

pytest_plugins = ["sandbox.pytest_plugin"]

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


def salesforce_client(box: SandboxClient) -> Salesforce:
    settings = load_settings(box.info.settings_file)
    return SalesforceConnector(settings.salesforce).client()


def hubspot_client(box: SandboxClient) -> Any:
    settings = load_settings(box.info.settings_file)
    return hubspot.Client.create(access_token=settings.hubspot.access_token.get_secret_value(),
                                 host=settings.hubspot.host)


@pytest.fixture(scope="module")
def sf(sandbox: SandboxClient) -> Salesforce:
    return salesforce_client(sandbox)


@pytest.fixture(scope="module")
def hs(sandbox: SandboxClient) -> Any:
    return hubspot_client(sandbox)


@pytest.fixture
def reference() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"the recorded vendor payloads are not at {REFERENCE} (CI has them beside "
                    "the clone as ../shared/reference)")
    return REFERENCE
