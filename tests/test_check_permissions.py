"""`stagesync check` verifies the HubSpot scopes a deployment needs, for a private app token
(one harmless call per scope) and for an OAuth app (the token's metadata)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from connectors.hubspot_scopes import REQUIRED_SCOPES
from sandbox.admin import SandboxClient
from sandbox.hubspot.access import DEPLOYMENT_SCOPES
from sync_agent.cli import app

runner = CliRunner()


def check(env_file: Path) -> Any:
    return runner.invoke(app, ["check", "--env-file", str(env_file)], terminal_width=200)


def oauth_env(box: SandboxClient, tmp_path: Path) -> Path:
    """The sandbox's settings with the OAuth app instead of the private app token."""
    oauth = box.info.hubspot_oauth
    assert oauth is not None
    lines = [line for line in box.info.settings_file.read_text().splitlines()
             if not line.startswith("STAGESYNC_HUBSPOT__ACCESS_TOKEN=")]
    lines += [f"STAGESYNC_HUBSPOT__OAUTH__CLIENT_ID={oauth.client_id}",
              f"STAGESYNC_HUBSPOT__OAUTH__CLIENT_SECRET={oauth.client_secret}",
              f"STAGESYNC_HUBSPOT__OAUTH__REFRESH_TOKEN={oauth.refresh_token}"]
    path = tmp_path / "oauth.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_sandbox_grants_by_default_what_the_product_needs() -> None:
    assert set(DEPLOYMENT_SCOPES) == set(REQUIRED_SCOPES)


def test_check_passes_with_every_scope(sandbox: SandboxClient) -> None:
    result = check(sandbox.info.settings_file)
    assert result.exit_code == 0, result.output
    assert f"all {len(REQUIRED_SCOPES)} scopes granted" in result.output


def test_check_names_the_scopes_a_private_app_lacks(make_sandbox: Any) -> None:
    lacking = {"crm.objects.contacts.write", "crm.objects.owners.read"}
    box = make_sandbox(hubspot_scopes=tuple(s for s in REQUIRED_SCOPES if s not in lacking),
                       hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    result = check(box.info.settings_file)
    assert result.exit_code == 1
    for scope in lacking:
        assert f"missing: scope {scope}" in result.output
    assert "missing: scope crm.objects.deals.write" not in result.output
    counts = box.admin("hubspot", "GET", "/hubspot/counts")
    assert counts["contacts"] > 0  # the write probe (no inputs) changed nothing
    assert box.requests("hubspot")["endpointStatuses"].get("hubspot.batch.update 403") == 1


def test_check_reads_an_oauth_tokens_scopes_from_its_metadata(make_sandbox: Any,
                                                              tmp_path: Path) -> None:
    box = make_sandbox(hubspot_scopes=tuple(s for s in REQUIRED_SCOPES
                                            if s != "crm.objects.deals.write"),
                       hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    result = check(oauth_env(box, tmp_path))
    assert result.exit_code == 1
    assert "missing: scope crm.objects.deals.write" in result.output
    assert "OAuth token's metadata" in result.output
    endpoints = box.requests("hubspot")["endpoints"]
    assert endpoints.get("hubspot.oauth.tokenInfo") == 1
    assert "hubspot.batch.update" not in endpoints  # no probes needed
    oauth = box.info.hubspot_oauth
    assert oauth is not None
    assert oauth.client_secret not in result.output
    assert oauth.refresh_token not in result.output


def test_check_with_oauth_and_every_scope_passes(make_sandbox: Any, tmp_path: Path) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    result = check(oauth_env(box, tmp_path))
    assert result.exit_code == 0, result.output
    assert "OAuth app;" in result.output


def test_check_names_the_salesforce_permissions_the_user_lacks(make_sandbox: Any) -> None:
    box = make_sandbox(salesforce_user_permissions={"PermissionsApiEnabled": True,
                                                    "PermissionsTransferAnyLead": False},
                       salesforce_denied=("Task:create", "Opportunity:edit"),
                       hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    result = check(box.info.settings_file)
    assert result.exit_code == 1
    assert "missing: permission Transfer Leads (PermissionsTransferAnyLead)" in result.output
    assert "missing: create on Task" in result.output
    assert "missing: edit on Opportunity" in result.output
    assert "missing: read on" not in result.output
    assert "API Enabled (" not in result.output
    assert f"all {len(REQUIRED_SCOPES)} scopes granted" in result.output  # HubSpot is fine


def test_check_reports_salesforce_permissions_granted(sandbox: SandboxClient) -> None:
    result = check(sandbox.info.settings_file)
    assert result.exit_code == 0, result.output
    assert "API Enabled, Transfer Leads" in result.output
    assert "granted" in result.output
