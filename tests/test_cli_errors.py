"""Bad settings, files and store URLs, met by every command: one line naming the key or path
and the fix, exit status 2, no traceback (issue 13, item 5).

Each case runs the real command line: in process through typer's runner, or as a subprocess
with a timeout (and a memory cap) where the unfixed code would hang or eat memory.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sync_agent.cli import app

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
runner = CliRunner()

SETTINGS = """\
STAGESYNC_SALESFORCE__TOKEN_URL=https://127.0.0.1:1/services/oauth2/token
STAGESYNC_SALESFORCE__AUTH__KIND=password
STAGESYNC_SALESFORCE__AUTH__CLIENT_ID=client
STAGESYNC_SALESFORCE__AUTH__CLIENT_SECRET=client-secret-value
STAGESYNC_SALESFORCE__AUTH__USERNAME=admin@example.com
STAGESYNC_SALESFORCE__AUTH__PASSWORD=password-value
STAGESYNC_HUBSPOT__HOST=http://127.0.0.1:1
STAGESYNC_HUBSPOT__ACCESS_TOKEN=pat-token-value
"""
SECRETS = ("client-secret-value", "password-value", "pat-token-value")


@pytest.fixture(autouse=True)
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean folder (the default store and mapping paths fall in it) and no STAGESYNC_*
    variables from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("STAGESYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    shutil.copy(DEFAULT, tmp_path / "stagesync.yaml")
    return tmp_path


def env_file(folder: Path, extra: str = "", drop: str = "", mode: int = 0o600) -> Path:
    text = "".join(line + "\n" for line in SETTINGS.splitlines() if not drop or drop not in line)
    path = folder / "settings.env"
    path.write_text(text + extra)
    path.chmod(mode)
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), terminal_width=200)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{result.exception!r} escaped: {result.output}")
    return result.exit_code, result.output


def cli(*args: str, timeout: float = 30) -> tuple[int, str]:
    """The installed command in a subprocess: a hang fails the test at ``timeout``, and memory
    is capped at 2 GiB so an unbounded read fails fast instead of starving the machine."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    env = {k: v for k, v in os.environ.items() if not k.startswith("STAGESYNC_")}
    done = subprocess.run([str(Path(sys.executable).parent / "stagesync"), *args],
                          capture_output=True, text=True, timeout=timeout, env=env,
                          preexec_fn=cap, check=False)
    return done.returncode, done.stdout + done.stderr


def one_error(code: int, output: str, *names: str) -> str:
    """Exit 2, no traceback, and one error line (warnings aside) naming every one of
    ``names``, with a fix; the line."""
    assert code == 2, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines()
             if line.strip() and not line.startswith("warning: ")]
    assert len(lines) == 1, output
    for name in names:
        assert name in lines[0], lines[0]
    assert "fix:" in lines[0], lines[0]
    for secret in SECRETS:
        assert secret not in output
    return lines[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: nothing listens there


# -- settings --------------------------------------------------------------------------------
SETTINGS_COMMANDS = [
    ["check"],
    ["sync", "once"],
    ["backfill", "--object", "Lead"],
    ["retry"],
    ["mapping", "validate", "--live"],
]


@pytest.mark.parametrize("command", SETTINGS_COMMANDS, ids=" ".join)
def test_a_missing_ca_bundle_names_the_key(command: list[str], here: Path) -> None:
    settings = env_file(here, f"STAGESYNC_SALESFORCE__CA_BUNDLE={here / 'no' / 'ca.pem'}\n")
    line = one_error(*invoke(*command, "--env-file", str(settings)),
                     "STAGESYNC_SALESFORCE__CA_BUNDLE", str(here / "no" / "ca.pem"))
    assert "does not exist" in line


def test_a_ca_bundle_that_is_no_certificate_names_the_key(here: Path) -> None:
    bogus = here / "ca.pem"
    bogus.write_text("not a certificate\n")
    settings = env_file(here, f"STAGESYNC_SALESFORCE__CA_BUNDLE={bogus}\n")
    line = one_error(*invoke("check", "--env-file", str(settings)),
                     "STAGESYNC_SALESFORCE__CA_BUNDLE")
    assert "no PEM certificate" in line


@pytest.mark.parametrize("command", SETTINGS_COMMANDS, ids=" ".join)
def test_a_binary_env_file_is_named(command: list[str], here: Path) -> None:
    binary = here / "binary.env"
    binary.write_bytes(bytes(range(128, 256)) * 4)
    line = one_error(*invoke(*command, "--env-file", str(binary)), str(binary))
    assert "not UTF-8" in line


def test_a_missing_env_file_is_named_not_skipped(here: Path) -> None:
    """pydantic-settings skips a missing env file: every key then read as missing."""
    line = one_error(*invoke("check", "--env-file", str(here / "nope.env")),
                     str(here / "nope.env"))
    assert "No such file" in line


def test_an_env_file_that_is_a_fifo_is_refused_without_blocking(here: Path) -> None:
    fifo = here / "settings.env"
    os.mkfifo(fifo)
    one_error(*cli("check", "--env-file", str(fifo)), str(fifo), "FIFO")


def test_sync_once_names_the_key_and_the_reason(here: Path) -> None:
    """Not "connection settings are missing": the key and why, as ``check`` says it."""
    settings = env_file(here, drop="AUTH__PASSWORD")
    for command in (["sync", "once"], ["check"]):
        line = one_error(*invoke(*command, "--env-file", str(settings)),
                         "STAGESYNC_SALESFORCE__AUTH__PASSWORD", "missing", str(settings))
        assert "__PASSWORD__PASSWORD" not in line  # the union's tag is not a key


def test_a_wrong_value_is_named_with_its_reason(here: Path) -> None:
    settings = env_file(here, "STAGESYNC_SALESFORCE__TIMEOUT_SECONDS=soon\n")
    one_error(*invoke("sync", "once", "--env-file", str(settings)),
              "STAGESYNC_SALESFORCE__TIMEOUT_SECONDS", "valid number")
    settings = env_file(here, "STAGESYNC_SALESFORCE__AUTH__KIND=oauth\n",
                        drop="AUTH__KIND")
    one_error(*invoke("sync", "once", "--env-file", str(settings)),
              "STAGESYNC_SALESFORCE__AUTH__KIND", "'oauth'")


# -- the state store -------------------------------------------------------------------------
STORE_COMMANDS = [
    ["status"],
    ["gaps"],
    ["report"],
    ["sync", "once"],
    ["retry"],
    ["backfill", "--object", "Lead"],
]


def bad_store(kind: str, folder: Path) -> tuple[str, str]:
    """A store URL of ``kind`` and what the message must name."""
    if kind == "postgresql-unreachable":
        port = closed_port()
        return (f"postgresql+psycopg://agent:s3cret-pw@127.0.0.1:{port}/stagesync",
                f"127.0.0.1:{port}")
    if kind == "not-sqlite":
        (folder / "notes.db").write_text("these are my notes, not a database\n")
        return f"sqlite:///{folder / 'notes.db'}", str(folder / "notes.db")
    if kind == "mysql":
        return "mysql://agent:s3cret-pw@db.example.com/stagesync", "mysql"
    (folder / "a-folder").mkdir()
    return f"sqlite:///{folder / 'a-folder'}", str(folder / "a-folder")


@pytest.mark.parametrize("kind", ["postgresql-unreachable", "not-sqlite", "mysql", "directory"])
@pytest.mark.parametrize("command", STORE_COMMANDS, ids=" ".join)
def test_a_bad_store_url_is_one_line(command: list[str], kind: str, here: Path) -> None:
    url, name = bad_store(kind, here)
    settings = ["--env-file", str(env_file(here))] if command[0] in (
        "sync", "retry", "backfill") else []
    line = one_error(*invoke(*command, *settings, "--db", url), name)
    assert "s3cret-pw" not in line
    assert "--db" in line  # the setting to correct


def test_a_bad_store_url_from_the_environment_is_one_line(here: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setenv("STAGESYNC_DATABASE_URL", "mysql://agent@db.example.com/stagesync")
    one_error(*invoke("status"), "mysql", "STAGESYNC_DATABASE_URL")


def test_run_with_a_bad_store_is_one_line(here: Path) -> None:
    url, name = bad_store("not-sqlite", here)
    one_error(*cli("run", "--env-file", str(env_file(here)), "--db", url,
                   "--health-port", "0"), name)


def test_a_second_run_on_a_busy_health_port_is_one_line(here: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = cli("run", "--env-file", str(env_file(here)),
                           "--db", f"sqlite:///{here / 'state.db'}", "--health-port", str(port))
    output = "\n".join(line for line in output.splitlines()
                       if not line.startswith("{"))  # the service's JSON log lines
    one_error(code, output, "--health-port", f"127.0.0.1:{port}", "in use")


# -- the mapping file ------------------------------------------------------------------------
MAPPING_COMMANDS = [
    ["mapping", "validate", "{m}"],
    ["mapping", "diff", "stagesync.yaml", "{m}"],
    ["sync", "once", "--mapping", "{m}"],
    ["run", "--mapping", "{m}"],
    ["backfill", "--object", "Lead", "--mapping", "{m}"],
    ["retry", "--mapping", "{m}"],
    ["report", "--mapping", "{m}"],
]


def bad_mapping(kind: str, folder: Path) -> Path:
    if kind == "directory":
        (folder / "mappings").mkdir()
        return folder / "mappings"
    if kind == "missing":
        return folder / "missing.yaml"
    if kind == "deep":
        path = folder / "deep.yaml"
        path.write_text("version: 1\nobjects: " + "[" * 10_000 + "]" * 10_000 + "\n")
        return path
    path = folder / "long-number.yaml"
    path.write_text("version: " + "9" * 5_000 + "\nobjects: []\n")
    return path


@pytest.mark.parametrize("kind", ["directory", "missing", "deep", "long-number"])
@pytest.mark.parametrize("command", MAPPING_COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_bad_mapping_file_is_one_line(command: list[str], kind: str, here: Path) -> None:
    path = bad_mapping(kind, here)
    args = [part.replace("{m}", str(path)) for part in command]
    if command[0] in ("sync", "run", "backfill", "retry"):
        args += ["--env-file", str(env_file(here))]
    if command[0] == "run":  # the service: in a subprocess (it takes signals and logging)
        code, output = cli(*args, "--health-port", "0")
    else:
        code, output = invoke(*args)
    line = one_error(code, output, str(path))
    assert {"directory": "a directory", "missing": "No such file",
            "deep": "nests deeper than 50", "long-number": "5,000 characters"}[kind] in line


@pytest.mark.parametrize("command", [["mapping", "validate", "{m}"],
                                     ["sync", "once", "--mapping", "{m}"],
                                     ["mapping", "diff", "stagesync.yaml", "{m}"]],
                         ids=lambda c: " ".join(c[:2]))
def test_a_fifo_for_a_mapping_is_refused_without_blocking(command: list[str],
                                                          here: Path) -> None:
    fifo = here / "mapping.yaml"
    os.mkfifo(fifo)
    args = [part.replace("{m}", str(fifo)) for part in command]
    if command[0] == "sync":
        args += ["--env-file", str(env_file(here))]
    one_error(*cli(*args, timeout=20), str(fifo), "FIFO")


def test_a_device_for_a_mapping_is_refused_without_reading_it() -> None:
    one_error(*cli("mapping", "validate", "/dev/zero", timeout=20), "/dev/zero", "a device")


def test_the_bounds_hold_at_their_edges(here: Path) -> None:
    from mapping.limits import MAX_DEPTH, MAX_NUMBER_CHARS
    from mapping.loader import FileRefused, load_text

    # the root mapping is level 1, each bracket one more
    load_text("objects: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))
    with pytest.raises(FileRefused, match="nests deeper"):
        load_text("objects: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert load_text("n: " + "9" * MAX_NUMBER_CHARS).data["n"] == int("9" * MAX_NUMBER_CHARS)
    with pytest.raises(FileRefused, match="characters"):
        load_text("n: " + "9" * (MAX_NUMBER_CHARS + 1))
    with pytest.raises(FileRefused, match="characters"):
        load_text("n: 0." + "9" * MAX_NUMBER_CHARS)


def test_a_mapping_with_errors_still_exits_1(here: Path) -> None:
    """Exit 2 is for a file refused outright; a mapping read and found wrong is exit 1."""
    (here / "typo.yaml").write_text("version: 1\nobjects: [\n")
    code, output = invoke("mapping", "validate", "typo.yaml")
    assert code == 1, output
    assert "YAML syntax" in output


# -- files the commands write ----------------------------------------------------------------
def test_init_into_a_directory_or_missing_folder_is_one_line(here: Path) -> None:
    (here / "mappings").mkdir()
    one_error(*invoke("init", "--mapping", "mappings", "--force"), "mappings", "directory")
    one_error(*invoke("init", "--mapping", "nowhere/stagesync.yaml"),
              "nowhere/stagesync.yaml", "No such file")


def test_report_html_into_a_directory_is_one_line(here: Path) -> None:
    (here / "out").mkdir()
    one_error(*invoke("report", "--html", "out"), "out", "directory")


def test_a_health_port_out_of_range_is_refused() -> None:
    code, output = invoke("run", "--health-port", "70000")
    assert code == 2
    assert "Traceback" not in output
    assert "--health-port" in output
