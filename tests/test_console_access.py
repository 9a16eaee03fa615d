"""Who reaches the console: loopback without a token; any other bind only with one, then on
every request (a browser signs in through the login form, a probe sends the header)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.admin import SandboxClient
from tests.chromium import VIEWPORT, browser, screenshot
from tests.test_console_browser import start_console, stop
from tests.test_cycle import DEFAULT
from tests.test_service_health import free_port, wait_for

TOKEN = "console-token-for-tests-0123456789"
OFF_LOOPBACK = "0.0.0.0"  # noqa: S104 - every interface; the tests connect through 127.0.0.1


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STAGESYNC_CONSOLE_")}
    return subprocess.run([sys.executable, "-c", "from sync_agent.cli import app; app()",
                           *args], capture_output=True, text=True, timeout=60,
                          env={**clean, "COLUMNS": "400", **(env or {})})


def one_error(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0]
    return lines[0]


@pytest.mark.parametrize("command", [
    ["console", "--host", OFF_LOOPBACK], ["run", "--health-host", OFF_LOOPBACK]])
def test_a_bind_off_loopback_without_a_token_is_refused(command: list[str], tmp_path: Path
                                                        ) -> None:
    done = cli(*command, "--db", f"sqlite:///{tmp_path / 'state.db'}")
    line = one_error(done, OFF_LOOPBACK, "STAGESYNC_CONSOLE_TOKEN",
                     "STAGESYNC_CONSOLE_TOKEN_FILE", "127.0.0.1")
    assert line.startswith("error: --")


def test_bad_token_settings_are_one_line_and_never_echo_the_token(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'state.db'}"
    short = one_error(cli("console", "--db", db, env={"STAGESYNC_CONSOLE_TOKEN": "abc123"}),
                      "STAGESYNC_CONSOLE_TOKEN", "16 characters")
    assert "abc123" not in short
    loose = tmp_path / "token"
    loose.write_text(TOKEN + "\n")
    loose.chmod(0o644)
    line = one_error(cli("console", "--db", db, env={"STAGESYNC_CONSOLE_TOKEN_FILE": str(loose)}),
                     str(loose), "readable by others", "chmod 600")
    assert TOKEN not in line
    one_error(cli("console", "--db", db, env={
        "STAGESYNC_CONSOLE_TOKEN_FILE": str(tmp_path / "missing")}), "missing")
    one_error(cli("console", "--db", db, env={"STAGESYNC_CONSOLE_TOKEN_FILE": str(loose),
                                               "STAGESYNC_CONSOLE_TOKEN": TOKEN}),
              "both set")


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[str]:
    """The console on every interface, its token in a file of its own (0600)."""
    token_file = tmp_path / "console-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    process, url = start_console(
        "--host", OFF_LOOPBACK, "--db", f"sqlite:///{tmp_path / 'state.db'}", "--mapping",
        str(DEFAULT), env={"STAGESYNC_CONSOLE_TOKEN_FILE": str(token_file)})
    try:
        yield url.replace(f"//{OFF_LOOPBACK}:", "//127.0.0.1:")
    finally:
        stop(process)


def test_off_loopback_every_request_needs_the_token(guarded: str) -> None:
    page = requests.get(f"{guarded}/health", timeout=5, allow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fhealth"
    assert TOKEN not in page.text
    wrong = requests.get(f"{guarded}/health", timeout=5,
                         headers={"Authorization": "Bearer not-the-token-at-all"},
                         allow_redirects=False)
    assert wrong.status_code == 303
    right = requests.get(f"{guarded}/health", timeout=5,
                         headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200
    assert "Dead letters" in right.text
    assert TOKEN not in right.text
    post = requests.post(f"{guarded}/dead-letters/retry", timeout=5, data={"csrf": "x"},
                         allow_redirects=False)
    assert post.status_code == 401
    assert post.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("target", ["//evil.example/x", "/\\evil.example", "https://evil.example"])
def test_signing_in_never_sends_the_browser_off_the_console(guarded: str, target: str) -> None:
    browser_session = requests.Session()
    form = browser_session.get(f"{guarded}/login", timeout=5).text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form)
    assert csrf is not None
    answer = browser_session.post(f"{guarded}/login", timeout=5, allow_redirects=False,
                                  data={"csrf": csrf.group(1), "token": TOKEN, "next": target})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/health"


def test_a_browser_signs_in_with_the_token_and_out_again(guarded: str) -> None:
    with browser() as chrome:
        context = chrome.new_context(viewport=VIEWPORT)
        page = context.new_page()
        page.goto(f"{guarded}/mapping")
        assert page.url.endswith("/login?next=%2Fmapping")
        page.get_by_label("Token").fill("not-the-token-at-all")
        page.get_by_role("button", name="Sign in").click()
        assert "not the console's" in page.locator("main").inner_text()
        screenshot(page, "login")
        page.get_by_label("Token").fill(TOKEN)
        page.get_by_role("button", name="Sign in").click()
        assert page.url.endswith("/mapping")
        assert TOKEN not in page.content()
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["stagesync_auth"]["httpOnly"]
        assert cookies["stagesync_auth"]["sameSite"] == "Strict"
        assert TOKEN not in cookies["stagesync_auth"]["value"]
        page.get_by_role("button", name="Sign out").click()
        assert "/login" in page.url
        page.goto(f"{guarded}/health")
        assert "/login" in page.url
        context.close()


def test_the_agent_off_loopback_asks_the_token_of_healthz_too(make_sandbox: Any,
                                                              tmp_path: Path) -> None:
    box: SandboxClient = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    port = free_port()
    log = tmp_path / "agent.log"
    command = [sys.executable, "-c", "from sync_agent.cli import app; app()", "run",
               "--mapping", str(DEFAULT), "--env-file", str(box.info.settings_file),
               "--db", f"sqlite:///{tmp_path / 'state.db'}", "--interval", "1",
               "--health-port", str(port), "--health-host", OFF_LOOPBACK]
    with log.open("w") as handle:
        agent = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                 env={**os.environ, "STAGESYNC_CONSOLE_TOKEN": TOKEN})
    url = f"http://127.0.0.1:{port}"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    try:
        wait_for(lambda: requests.get(f"{url}/healthz", headers=bearer, timeout=2)
                 .json()["cycles"] >= 1, 60, "a first cycle")
        assert requests.get(f"{url}/healthz", timeout=2).status_code == 401
        assert requests.get(f"{url}/metrics", timeout=2).status_code == 401
        metrics = requests.get(f"{url}/metrics", headers=bearer, timeout=2)
        assert metrics.headers["content-type"] == "text/plain; version=0.0.4"
        assert "stagesync_cycles_total" in metrics.text
        health = requests.get(f"{url}/health", headers=bearer, timeout=5)
        assert "Agent: ok" in health.text
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=60) == 0
    assert TOKEN not in log.read_text()


def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = cli("console", "--db", f"sqlite:///{tmp_path / 'state.db'}", "--mapping",
                   str(DEFAULT), "--port", str(port))
    one_error(done, f"--port {port}", f"127.0.0.1:{port}", "in use")
