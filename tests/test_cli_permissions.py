"""Files holding personal data or secrets are the owner's alone (issue 13, item 6): the state
store, report.html and a cycle's spool are created 0600 whatever the umask, tightened to 0600
with a warning naming the path when found looser; a user's env file of secrets readable by
others is warned about (with the ``chmod 600`` to run), never changed."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sync_agent.cli import app

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
runner = CliRunner()


@pytest.fixture(autouse=True)
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A clean folder, no STAGESYNC_* variables, and a permissive umask (022 is common, 002
    too): what the files get must not depend on it."""
    for name in list(os.environ):
        if name.startswith("STAGESYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    shutil.copy(DEFAULT, tmp_path / "stagesync.yaml")
    before = os.umask(0o002)
    try:
        yield tmp_path
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), terminal_width=200)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{result.exception!r} escaped: {result.output}")
    return result.exit_code, result.output


def warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("warning: ")]


def test_a_new_store_is_created_0600(here: Path) -> None:
    code, output = invoke("status", "--db", f"sqlite:///{here / 'new' / 'state.db'}")
    assert code == 0, output
    assert mode(here / "new" / "state.db") == 0o600
    assert not warnings(output)


def test_an_existing_world_readable_store_is_tightened_with_a_warning(here: Path) -> None:
    db = here / "state.db"
    assert invoke("status", "--db", f"sqlite:///{db}")[0] == 0
    db.chmod(0o644)
    code, output = invoke("status", "--db", f"sqlite:///{db}")
    assert code == 0, output
    assert mode(db) == 0o600
    [line] = warnings(output)
    assert f"{db} was open to others (mode 0644)" in line
    assert line.endswith("set to 0600")
    code, output = invoke("status", "--db", f"sqlite:///{db}")
    assert not warnings(output)  # said once, when it was done


def test_the_report_is_written_0600_and_an_open_one_tightened(here: Path) -> None:
    db = f"sqlite:///{here / 'state.db'}"
    code, output = invoke("report", "--db", db, "--html", "report.html")
    assert code == 0, output
    assert mode(here / "report.html") == 0o600
    assert not warnings(output)
    (here / "report.html").chmod(0o644)
    code, output = invoke("report", "--db", db, "--html", "report.html")
    assert code == 0, output
    assert mode(here / "report.html") == 0o600
    [line] = warnings(output)
    assert "report.html was open to others (mode 0644)" in line


def test_a_cycles_spool_is_private() -> None:
    from sync_agent.spool import Spool

    spool = Spool()
    try:
        assert mode(spool.folder) == 0o700
        assert mode(spool.folder / "changes.db") == 0o600
    finally:
        spool.close()


SECRET_SETTINGS = """\
STAGESYNC_SALESFORCE__TOKEN_URL=https://127.0.0.1:1/services/oauth2/token
STAGESYNC_SALESFORCE__AUTH__KIND=password
STAGESYNC_SALESFORCE__AUTH__CLIENT_ID=client
STAGESYNC_SALESFORCE__AUTH__CLIENT_SECRET=client-secret-value
STAGESYNC_SALESFORCE__AUTH__USERNAME=admin@example.com
STAGESYNC_SALESFORCE__AUTH__PASSWORD=password-value
STAGESYNC_HUBSPOT__HOST=http://127.0.0.1:1
STAGESYNC_HUBSPOT__ACCESS_TOKEN=pat-token-value
"""


@pytest.mark.parametrize("readable", [0o644, 0o640])
def test_an_env_file_of_secrets_others_can_read_is_warned_about(readable: int,
                                                                 here: Path) -> None:
    settings = here / "settings.env"
    settings.write_text(SECRET_SETTINGS + "STAGESYNC_SALESFORCE__TIMEOUT_SECONDS=soon\n")
    settings.chmod(readable)
    code, output = invoke("sync", "once", "--env-file", str(settings))
    assert code == 2  # the bad timeout: the warning comes first, whatever follows
    [line] = warnings(output)
    assert f"chmod 600 {settings}" in line
    assert mode(settings) == readable  # the user's file: never changed behind their back
    for secret in ("client-secret-value", "password-value", "pat-token-value"):
        assert secret not in output


def test_a_private_env_file_or_one_without_secrets_is_not_warned_about(here: Path) -> None:
    settings = here / "settings.env"
    settings.write_text(SECRET_SETTINGS + "STAGESYNC_SALESFORCE__TIMEOUT_SECONDS=soon\n")
    settings.chmod(0o600)
    assert not warnings(invoke("check", "--env-file", str(settings))[1])
    settings.write_text("# no secrets here\nSTAGESYNC_SALESFORCE__AUTH__PASSWORD=\n"
                        "STAGESYNC_HUBSPOT__HOST=http://127.0.0.1:1\n")
    settings.chmod(0o644)
    assert not warnings(invoke("check", "--env-file", str(settings))[1])
