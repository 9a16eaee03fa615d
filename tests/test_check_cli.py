"""`stagesync check`: what a first-time user runs against the sandbox."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from typer.testing import CliRunner

from sandbox.admin import SandboxClient
from sync_agent.cli import app

runner = CliRunner()


def test_check_reports_both_systems_through_the_real_clients(sandbox: SandboxClient) -> None:
    result = runner.invoke(app, ["check", "--env-file", str(sandbox.info.settings_file)],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    counts = sandbox.admin("salesforce", "GET", "/salesforce/counts")
    lead_row = re.search(r"Lead\s+│\s+Leads\s+│\s+(\d+)", result.output)
    assert lead_row is not None
    assert int(lead_row.group(1)) == counts["Lead"]
    hs_counts = sandbox.admin("hubspot", "GET", "/hubspot/counts")
    contacts_row = re.search(r"contacts\s+│\s+Contacts\s+│\s+(\d+)", result.output)
    assert contacts_row is not None
    assert int(contacts_row.group(1)) == hs_counts["contacts"]
    assert "(59.0)" in result.output
    assert "CRM v3" in result.output
    endpoints = sandbox.requests("salesforce")["endpoints"]
    assert endpoints["salesforce.describe"] >= 6


def test_check_never_prints_secrets(sandbox: SandboxClient,
                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    result = runner.invoke(app, ["check", "--env-file", str(sandbox.info.settings_file)])
    secrets = [sandbox.info.credentials.password, sandbox.info.credentials.client_secret,
               sandbox.info.hubspot_token]
    for secret in secrets:
        assert secret not in result.output
        assert secret not in caplog.text


def test_wrong_password_is_a_clear_error(sandbox: SandboxClient, tmp_path: Any) -> None:
    text = sandbox.info.settings_file.read_text()
    bad = tmp_path / "bad.env"
    bad.write_text(text.replace(sandbox.info.credentials.password, "wrong-password"))
    result = runner.invoke(app, ["check", "--env-file", str(bad)], terminal_width=200)
    assert result.exit_code == 1
    assert "sign-in refused: invalid_grant: authentication failure" in result.output
    assert "wrong-password" not in result.output


def test_missing_setting_is_named(tmp_path: Any) -> None:
    env = tmp_path / "partial.env"
    env.write_text("STAGESYNC_HUBSPOT__ACCESS_TOKEN=x\n")
    result = runner.invoke(app, ["check", "--env-file", str(env)], terminal_width=200)
    assert result.exit_code == 2
    assert "STAGESYNC_SALESFORCE" in result.output
