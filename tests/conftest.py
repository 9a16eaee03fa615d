"""Shared fixtures: the sandbox (from sandbox.pytest_plugin) and the real clients pointed at it
through the settings file the sandbox writes, exactly as a user would configure stagesync."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hubspot
import pytest
from simple_salesforce import Salesforce
from sqlalchemy import create_engine, text

from connectors.config import load_settings
from connectors.salesforce import SalesforceConnector
from sandbox.admin import SandboxClient
from tests.postgres import binaries, postgres_server

pytest_plugins = ["sandbox.pytest_plugin"]

# The recorded vendor payloads, read in place (never copied in); STAGESYNC_REFERENCE points
# elsewhere, e.g. at a missing folder to check that the tests needing them skip.
REFERENCE = Path(os.environ.get("STAGESYNC_REFERENCE") or
                 Path(__file__).resolve().parents[2] / "shared" / "reference")


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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for the session (Debian's packages; CI installs them)."""
    if binaries() is None:
        if os.environ.get("CI"):
            pytest.fail("CI must test PostgreSQL for real: .ci/run installs it")
        pytest.skip("PostgreSQL is not installed here (apt-get install postgresql); CI runs it")
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh state-store URL on each backend: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    server = request.getfixturevalue("postgres_url")
    name = "t" + uuid.uuid4().hex[:12]
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return str(server).rsplit("/", 1)[0] + f"/{name}"
