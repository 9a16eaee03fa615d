"""`sync once` and `run` check the mapping against both systems' schemas before they start,
and refuse a mapping with errors: nothing is read or written, no dead letter is made."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from sandbox.admin import SandboxClient
from sync_agent.cli import app
from sync_agent.store import open_store
from sync_agent.tables import DeadLetter, Run

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
runner = CliRunner()
# What a start may ask before it refuses: sign in and describe, nothing more.
DESCRIBING = {"salesforce.oauth.token", "salesforce.describe", "hubspot.properties.list",
              "hubspot.pipelines.list", "hubspot.associations.labels"}
UNPACED = {"STAGESYNC_HUBSPOT__REQUESTS_PER_TEN_SECONDS": "0",
           "STAGESYNC_HUBSPOT__SEARCHES_PER_SECOND": "0"}


WORKING = "      - {salesforce: Working, hubspot: marketingqualifiedlead}"


def edited(tmp_path: Path, right: str, wrong: str) -> tuple[Path, int]:
    """The default mapping with one line changed, and that line's number."""
    text = DEFAULT.read_text()
    assert right in text
    text = text.replace(right, wrong, 1)
    path = tmp_path / "stagesync.yaml"
    path.write_text(text)
    first = wrong.splitlines()[0]
    return path, next(n for n, line in enumerate(text.splitlines(), 1) if line == first)


def bad_stage(tmp_path: Path) -> tuple[Path, int]:
    """The default mapping with one Lead Status misspelt: Lead.Status is a restricted
    picklist, so every lead written at that stage would be refused."""
    return edited(tmp_path, WORKING, WORKING.replace("Working", "Workng"))


# What `mapping validate --live` rejects and a cycle would turn into dead letters.
LIVE_ERRORS = {
    "a stage outside a restricted picklist": (
        WORKING, WORKING.replace("Working", "Workng"),
        ":22: error: stage_maps.lead_lifecycle.stages.1.salesforce: Lead.Status has no stage "
        "'Workng' (fix: did you mean 'Working'?)"),
    "a read-only field written": (
        "      - {salesforce: Id, hubspot: salesforceleadid, rule: always_salesforce}",
        "      - {salesforce: Id, hubspot: salesforceleadid, rule: two_way}",
        "error: objects.0.fields.10.rule: rule two_way writes Lead.Id, which Salesforce does "
        "not let the integration user update"),
    "a value map target the picklist lacks": (
        "              Agriculture: FARMING", "              Agriculture: FARMNG",
        "Industry value 'Agriculture' becomes 'FARMNG', which industry does not accept"),
}


@pytest.mark.parametrize("case", list(LIVE_ERRORS))
def test_sync_once_refuses_what_validate_live_rejects(case: str, sandbox: SandboxClient,
                                                       tmp_path: Path, monkeypatch: Any
                                                       ) -> None:
    for name, value in UNPACED.items():
        monkeypatch.setenv(name, value)
    right, wrong, expected = LIVE_ERRORS[case]
    mapping, line = edited(tmp_path, right, wrong)
    db = f"sqlite:///{tmp_path / 'state.db'}"
    sandbox.reset_requests()
    result = runner.invoke(app, ["sync", "once", "--mapping", str(mapping), "--env-file",
                                 str(sandbox.info.settings_file), "--db", db],
                           terminal_width=200)
    out = result.output
    assert result.exit_code == 2, out
    assert expected in out
    if expected.startswith(":"):
        assert f"{mapping}:{line}{expected}" in out
    assert (f"error: {mapping}: 1 error(s) against the live schemas; no record was read or "
            "written") in out
    assert "Traceback" not in out
    served = {**sandbox.requests("salesforce")["endpoints"],
              **sandbox.requests("hubspot")["endpoints"]}
    assert set(served) <= DESCRIBING, served  # no query, no read of a record, no write
    store = open_store(db)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(DeadLetter)) == 0
        assert session.scalar(select(func.count()).select_from(Run)) == 0


def test_the_start_check_uses_the_cached_describes(sandbox: SandboxClient, tmp_path: Path,
                                                   monkeypatch: Any) -> None:
    """A second start describes nothing: the first one's describes are in the store."""
    for name, value in UNPACED.items():
        monkeypatch.setenv(name, value)
    db = f"sqlite:///{tmp_path / 'state.db'}"
    args = ["sync", "once", "--dry-run", "--mapping", str(DEFAULT), "--env-file",
            str(sandbox.info.settings_file), "--db", db]
    first = runner.invoke(app, args, terminal_width=200)
    assert first.exit_code == 0, first.output
    sandbox.reset_requests()
    second = runner.invoke(app, args, terminal_width=200)
    assert second.exit_code == 0, second.output
    assert "salesforce.describe" not in sandbox.requests("salesforce")["endpoints"]
    assert "hubspot.properties.list" not in sandbox.requests("hubspot")["endpoints"]


def test_run_refuses_a_mapping_with_errors_before_it_serves(sandbox: SandboxClient,
                                                            tmp_path: Path) -> None:
    mapping, line = bad_stage(tmp_path)
    command = [sys.executable, "-c", "from sync_agent.cli import app; app()", "run",
               "--mapping", str(mapping), "--env-file", str(sandbox.info.settings_file),
               "--db", f"sqlite:///{tmp_path / 'state.db'}", "--health-port", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **UNPACED}, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{mapping}:{line}:22: error: " in done.stderr
    assert "Lead.Status has no stage 'Workng'" in done.stderr
    assert "agent started" not in done.stdout + done.stderr
