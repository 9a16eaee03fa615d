"""A JWT private key file setting that names no usable key is one line naming the setting and
the path, at once (not a sign-in failure later), exit 2, for ``check`` and every command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sync_agent.cli import app

runner = CliRunner()
KEY = "STAGESYNC_SALESFORCE__AUTH__PRIVATE_KEY_FILE"
SETTINGS = """\
STAGESYNC_SALESFORCE__TOKEN_URL=https://127.0.0.1:1/services/oauth2/token
STAGESYNC_SALESFORCE__AUTH__KIND=jwt
STAGESYNC_SALESFORCE__AUTH__CLIENT_ID=client
STAGESYNC_SALESFORCE__AUTH__USERNAME=integration@example.com
{key}={path}
STAGESYNC_HUBSPOT__HOST=http://127.0.0.1:1
STAGESYNC_HUBSPOT__ACCESS_TOKEN=pat-token-value
"""


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("STAGESYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def settings_with(tmp_path: Path, key_file: Path) -> Path:
    path = tmp_path / "settings.env"
    path.write_text(SETTINGS.format(key=KEY, path=key_file))
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(("make", "reason"), [
    (lambda d: d / "missing.pem", "No such file or directory"),
    (lambda d: d, "a directory"),
    (lambda d: (d / "cert.pem", (d / "cert.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))[0],
     "holds no PEM private key"),
    (lambda d: (d / "locked.pem", (d / "locked.pem").write_text(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"))[0],
     "the private key is encrypted"),
])
@pytest.mark.parametrize("command", [["check"], ["mapping", "validate", "--live"]])
def test_an_unusable_key_file_names_the_setting_and_the_path(
        tmp_path: Path, make: object, reason: str, command: list[str]) -> None:
    key_file = make(tmp_path)  # type: ignore[operator]
    env = settings_with(tmp_path, key_file)
    if command[0] == "mapping":
        (tmp_path / "stagesync.yaml").write_text(
            (Path(__file__).resolve().parents[1] / "mapping" / "default.yaml").read_text())
    result = runner.invoke(app, [*command, "--env-file", str(env)], terminal_width=200)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"error: {KEY}: {key_file}: ")
    assert reason in lines[0]
    assert f"(fix: correct {KEY} in {env})" in lines[0]
    assert "Traceback" not in result.output
