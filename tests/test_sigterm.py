"""SIGTERM stops `stagesync run` within 10 s wherever it is (Kubernetes gives 30 s): mid-retry
(the sandbox answering 503) or with a vendor call hung in flight. The stopped cycle keeps its
intents and pending creates, and a following `stagesync sync once` finishes its work with no
duplicate. A real agent process against the sandbox, counted in the sandbox."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from connectors.records import WriteRecord
from sandbox.admin import SandboxClient
from sync_agent.store import open_store
from sync_agent.tables import Link, Run
from tests.test_cycle import DEFAULT, connectors

DEADLINE = 10.0  # seconds from SIGTERM to exit
EMAILS = [f"sigterm.{i}@example.com" for i in range(3)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(box: SandboxClient, db: str, *args: str) -> list[str]:
    return [sys.executable, "-c", "from sync_agent.cli import app; app()", *args,
            "--mapping", str(DEFAULT), "--env-file", str(box.info.settings_file), "--db", db]


ENV = {**os.environ, "STAGESYNC_HUBSPOT__REQUESTS_PER_TEN_SECONDS": "0",
       "STAGESYNC_HUBSPOT__SEARCHES_PER_SECOND": "0"}


def start_agent(box: SandboxClient, db: str, log: Path) -> subprocess.Popen[Any]:
    command = cli(box, db, "run", "--interval", "1", "--health-port", str(free_port()))
    with log.open("w") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=ENV)


def lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def wait_for_log(log: Path, text: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(text in line["message"] for line in lines(log)):
            return
        time.sleep(0.1)
    raise AssertionError(f"no log line with {text!r} in {seconds} s:\n{log.read_text()}")


def new_leads(sf: Any) -> None:
    """Leads the next cycle creates in HubSpot (upserted on email: a rerun finds them)."""
    sf.upsert("Lead", [WriteRecord(values={"LastName": f"Term{i}", "Company": "Sig",
                                           "Email": email, "Status": "New"})
                       for i, email in enumerate(EMAILS)])


def sigterm(agent: subprocess.Popen[Any]) -> tuple[int, float]:
    began = time.monotonic()
    agent.send_signal(signal.SIGTERM)
    try:
        code = agent.wait(timeout=60)
    finally:
        if agent.poll() is None:
            agent.kill()
    return code, time.monotonic() - began


def contacts_with(hs: Any) -> dict[str, list[str]]:
    found = hs.read_by_ids("contacts", list(hs.list_ids("contacts")), ["email"])
    return {email: [r.id for r in found if r.values.get("email") == email] for email in EMAILS}


def finish_with_sync_once(box: SandboxClient, db: str, hs: Any) -> None:
    """The interrupted work, finished by a one-off cycle: every lead once in HubSpot, linked."""
    done = subprocess.run(cli(box, db, "sync", "once"), env=ENV, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    made = contacts_with(hs)
    assert [len(ids) for ids in made.values()] == [1, 1, 1], made  # no duplicate
    with open_store(db).session() as session:
        linked = {link.hs_id for link in session.scalars(
            select(Link).where(Link.pair == "leads"))}
    assert {ids[0] for ids in made.values()} <= linked, done.stdout


def test_sigterm_mid_retry_stops_within_10_s_and_sync_once_finishes_the_work(
        make_sandbox: Any, tmp_path: Path) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    _, hs = connectors(box)
    sf, _ = connectors(box)
    db, log = f"sqlite:///{tmp_path / 'state.db'}", tmp_path / "agent.log"
    agent = start_agent(box, db, log)
    try:
        wait_for_log(log, "cycle done")
        box.faults("hubspot", "hubspot.batch.upsert=503@1.0")  # the creates: retried, backing off
        new_leads(sf)
        wait_for_log(log, "retrying after hubspot: 503")
    finally:
        code, took = sigterm(agent)
    assert code == 0
    assert took < DEADLINE, f"exited {took:.1f} s after SIGTERM"
    messages = [line["message"] for line in lines(log)]
    assert any(m.startswith("cycle stopped: the agent is stopping") for m in messages)
    assert messages[-1] == "agent stopped"
    assert lines(log)[-1]["cycle_finished"] is True
    with open_store(db).session() as session:
        last = session.scalars(select(Run).order_by(Run.id.desc())).first()
    assert last is not None
    assert last.status == "stopped"
    assert last.error is not None
    assert "stop requested" in last.error
    box.faults("hubspot", "")
    assert contacts_with(hs) == {key: [] for key in EMAILS}  # nothing landed: all 503s
    finish_with_sync_once(box, db, hs)


def test_sigterm_with_a_call_hung_in_flight_exits_within_10_s_without_a_duplicate(
        make_sandbox: Any, tmp_path: Path) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    sf, hs = connectors(box)
    db, log = f"sqlite:///{tmp_path / 'state.db'}", tmp_path / "agent.log"
    agent = start_agent(box, db, log)
    hang = 14.0  # the sandbox answers (and applies) the create after this long
    try:
        wait_for_log(log, "cycle done")
        box.faults("hubspot", f"hubspot.batch.upsert=slow:{hang:g}#1")
        new_leads(sf)
        time.sleep(3.5)  # the next cycle (every second) is in the create by now
    finally:
        sent = time.monotonic()
        code, took = sigterm(agent)
    assert code == 0
    assert took < DEADLINE, f"exited {took:.1f} s after SIGTERM"
    last = lines(log)[-1]
    assert (last["message"], last["cycle_finished"]) == ("agent stopped", False)
    assert any("still in flight" in line["message"] for line in lines(log))
    time.sleep(max(hang - (time.monotonic() - sent) + 1.0, 0))  # the hung create lands
    finish_with_sync_once(box, db, hs)


def test_a_stop_ends_a_long_retry_after_wait_at_once() -> None:
    """A 429 asking for two minutes (the policy's cap): the wait ends the moment the stop is
    requested, in ``Stopping``, and no further attempt is made."""
    from connectors import stopping
    from connectors.errors import RetriableError
    from connectors.retry import RetryPolicy

    attempts: list[float] = []

    def rate_limited() -> None:
        attempts.append(time.monotonic())
        raise RetriableError("hubspot", "429 rate limited", retry_after=600.0, unapplied=True)

    stopping.clear()
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            RetryPolicy().run(rate_limited)
        except BaseException as exc:  # the test inspects what ended the call
            outcome.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    try:
        time.sleep(0.5)
        asked = time.monotonic()
        stopping.request_stop()
        worker.join(timeout=5)
    finally:
        stopping.clear()
    assert not worker.is_alive()
    assert [type(e).__name__ for e in outcome] == ["Stopping"]
    assert len(attempts) == 1  # the wait was for the second attempt, never made
    assert time.monotonic() - asked < 1.0
