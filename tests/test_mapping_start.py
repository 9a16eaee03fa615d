"""`sync once` and `run` check the mapping against both systems' schemas before they start,
and refuse a mapping with errors: nothing is read or written, no dead letter is made."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def bad_stage(tmp_path: Path) -> tuple[Path, int]:
    """The default mapping with one Lead Status misspelt: Lead.Status is a restricted
    picklist, so every lead written at that stage would be refused."""
    text = DEFAULT.read_text()
    wrong = "      - {salesforce: Workng, hubspot: marketingqualifiedlead}"
    text = text.replace("      - {salesforce: Working, hubspot: marketingqualifiedlead}", wrong)
    path = tmp_path / "stagesync.yaml"
    path.write_text(text)
    return path, next(n for n, line in enumerate(text.splitlines(), 1) if line == wrong)


def test_sync_once_refuses_a_stage_outside_a_restricted_picklist(sandbox: SandboxClient,
                                                                 tmp_path: Path,
                                                                 monkeypatch: Any) -> None:
    for name, value in UNPACED.items():
        monkeypatch.setenv(name, value)
    mapping, line = bad_stage(tmp_path)
    db = f"sqlite:///{tmp_path / 'state.db'}"
    sandbox.reset_requests()
    result = runner.invoke(app, ["sync", "once", "--mapping", str(mapping), "--env-file",
                                       str(sandbox.info.settings_file), "--db", db],
                           terminal_width=200)
    out = result.output
    assert result.exit_code == 2, out
    assert (f"{mapping}:{line}:22: error: stage_maps.lead_lifecycle.stages.1.salesforce: "
            "Lead.Status has no stage 'Workng' (fix: did you mean 'Working'?)") in out
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
