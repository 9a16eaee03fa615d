"""`stagesync run` as a real process: cycles on a schedule, health and metrics, JSON logs,
one agent per store, and a clean stop on SIGTERM."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select

from sandbox.admin import SandboxClient
from sync_agent.store import open_store
from sync_agent.tables import Run

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_agent(box: SandboxClient, db: str, port: int, log: Path) -> subprocess.Popen[Any]:
    """The agent as a subprocess, its output going to ``log`` (closed when it exits)."""
    command = [sys.executable, "-c", "from sync_agent.cli import app; app()", "run",
               "--mapping", str(DEFAULT), "--env-file", str(box.info.settings_file),
               "--db", db, "--interval", "1", "--health-port", str(port)]
    with log.open("w") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env={
            **os.environ, "STAGESYNC_HUBSPOT__REQUESTS_PER_TEN_SECONDS": "0",
            "STAGESYNC_HUBSPOT__SEARCHES_PER_SECOND": "0"})


def wait_for(predicate: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_the_service_cycles_reports_and_stops_cleanly(make_sandbox: Any, tmp_path: Path
                                                      ) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    db = f"sqlite:///{tmp_path / 'state.db'}"
    port = free_port()
    log = tmp_path / "agent.log"
    agent = start_agent(box, db, port, log)
    try:
        health = f"http://127.0.0.1:{port}/healthz"
        wait_for(lambda: requests.get(health, timeout=2).json()["cycles"] >= 3)
        assert requests.get(health, timeout=2).json()["status"] == "ok"
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        assert "stagesync_cycles_total" in metrics
        assert 'stagesync_records_written_total{system="hubspot",object="contacts"}' in metrics
        assert 'stagesync_api_calls_total{endpoint="GET query"}' in metrics
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(timeout=60)
    assert code == 0
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    messages = [line["message"] for line in lines]
    assert "agent started" in messages
    assert "cycle done" in messages
    assert messages[-1] == "agent stopped"
    assert not any(line["level"] == "error" for line in lines)
    store = open_store(db)
    with store.session() as session:
        runs = list(session.scalars(select(Run)))
    assert len(runs) >= 3
    assert all(r.status == "ok" and r.finished_at is not None for r in runs)


def test_two_agents_on_one_store_never_run_a_cycle_together(make_sandbox: Any,
                                                            tmp_path: Path) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    ports = [free_port(), free_port()]
    agents = [start_agent(box, db, port, tmp_path / f"agent{i}.log")
              for i, port in enumerate(ports)]
    try:
        wait_for(lambda: sum(requests.get(f"http://127.0.0.1:{p}/healthz", timeout=2)
                             .json()["cycles"] for p in ports) >= 6)
    finally:
        for agent in agents:
            agent.send_signal(signal.SIGTERM)
        codes = [agent.wait(timeout=60) for agent in agents]
    assert codes == [0, 0]
    store = open_store(db)
    with store.session() as session:
        runs = sorted(session.scalars(select(Run)), key=lambda r: r.started_at)
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at is not None
        assert earlier.finished_at <= later.started_at  # never overlapping
