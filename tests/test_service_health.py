"""The service tells the truth and heals itself (issue 9, point 6).

Every test runs the real ``stagesync`` command as a process against the real sandbox over
HTTP(S) and a real state store (SQLite, and PostgreSQL where the lock is concerned). Faults
come from outside the code under test: a trigger in the database, a SIGKILL, the sandbox's
slow responses and quota counters, a closed port, a wrong token.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from connectors.config import load_settings
from connectors.errors import QuotaExhaustedError, RetriableError, UnreachableError
from connectors.retry import RetryPolicy
from connectors.salesforce import SalesforceConnector
from sandbox.admin import SandboxClient
from sync_agent.store import Store, open_store
from sync_agent.tables import Lock, Run

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
UNPACED = {"STAGESYNC_HUBSPOT__REQUESTS_PER_TEN_SECONDS": "0",
           "STAGESYNC_HUBSPOT__SEARCHES_PER_SECOND": "0"}
# Every SOQL page, and the Composite request a cycle reads through, takes 1.5 s: long cycles.
SLOW_QUERIES = "salesforce.query=slow:1.5@1;salesforce.composite=slow:1.5@1"


# -- fixtures and helpers ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from sync_agent.cli import app; app()", *args]


def start_agent(box: SandboxClient, db: str, port: int, log: Path, *options: str
                ) -> subprocess.Popen[Any]:
    command = cli("run", "--mapping", str(DEFAULT), "--env-file", str(box.info.settings_file),
                  "--db", db, "--health-port", str(port), *options)
    with log.open("w") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                env={**os.environ, **UNPACED})


def stop(agent: subprocess.Popen[Any], kill: bool = False) -> int:
    if agent.poll() is None:
        if kill:
            agent.kill()
        else:
            agent.send_signal(signal.SIGTERM)
    return agent.wait(timeout=30)


def health(port: int) -> tuple[int, dict[str, Any]]:
    answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    return answer.status_code, answer.json()


def metric(port: int, name: str) -> float:
    body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    found = re.search(rf"^{name} (\S+)$", body, re.MULTILINE)
    assert found, f"{name} missing from /metrics"
    return float(found.group(1))


def wait_for(predicate: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (requests.ConnectionError, requests.ReadTimeout):
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {seconds} s: {what}")


def log_lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


class Peek:
    """Reads the state store the agents share (one engine for the whole test)."""

    def __init__(self, db: str) -> None:
        self.store: Store = open_store(db)

    def lock(self) -> tuple[str, dt.datetime] | None:
        with self.store.session() as session:
            row = session.scalars(select(Lock).where(Lock.name == "cycle")).first()
            return (row.holder, row.expires_at) if row is not None else None

    def runs(self) -> list[Run]:
        with self.store.session() as session:
            return sorted(session.scalars(select(Run)), key=lambda r: r.started_at)

    def close(self) -> None:
        self.store.engine.dispose()


@pytest.fixture
def peek() -> Iterator[Callable[[str], Peek]]:
    opened: list[Peek] = []

    def factory(db: str) -> Peek:
        opened.append(Peek(db))
        return opened[-1]

    yield factory
    for one in opened:
        one.close()


def writing(path: Path) -> bool:
    """True while another connection holds the SQLite file's write lock."""
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        probe.close()


def stop_all(agents: list[subprocess.Popen[Any]]) -> list[int]:
    for agent in agents:  # all at once: each finishes its cycle in parallel
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
    return [agent.wait(timeout=30) for agent in agents]


# -- 1. every failure counts; a failing streak turns /healthz 503 ---------------------------------
def test_any_failed_cycle_is_counted_and_a_streak_turns_healthz_503(make_sandbox: Any,
                                                                    tmp_path: Path) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    path = tmp_path / "state.db"
    db, port, log = f"sqlite:///{path}", free_port(), tmp_path / "agent.log"
    agent = start_agent(box, db, port, log, "--interval", "0.3", "--unhealthy-after", "2")
    try:
        wait_for(lambda: health(port)[1]["cycles"] >= 1, 15, "a first good cycle")
        # The store itself now refuses every new run: sqlite raises IntegrityError, which is
        # no connector's error.
        with sqlite3.connect(path) as raw:
            raw.execute("CREATE TRIGGER refuse_runs BEFORE INSERT ON runs BEGIN "
                        "SELECT RAISE(ABORT, 'refused by the test trigger'); END")
        body = wait_for(lambda: (lambda h: h[1] if h[0] == 503 else None)(health(port)),
                        10, "/healthz turning 503")
        assert body["status"] == "failing"
        assert body["consecutive_failures"] >= 2
        assert "IntegrityError" in body["reason"]
        assert "refused by the test trigger" in body["reason"]
        assert body["last_error_type"] == "IntegrityError"
        failures = metric(port, "stagesync_cycle_failures_total")
        assert failures >= 2
        assert metric(port, "stagesync_consecutive_cycle_failures") >= 2
        with sqlite3.connect(path) as raw:
            raw.execute("DROP TRIGGER refuse_runs")
        wait_for(lambda: health(port)[0] == 200, 10, "/healthz healthy again")
        body = health(port)[1]
        assert body["status"] == "ok"
        assert body["consecutive_failures"] == 0
        assert body["failures"] >= failures  # the count stays: it is a counter
    finally:
        code = stop(agent)
    assert code == 0
    lines = log_lines(log)
    failed = [line for line in lines if line["message"].startswith("cycle failed")]
    assert failed
    assert all(line["level"] == "error" and line["error_type"] == "IntegrityError"
               for line in failed)
    assert "[parameters:" not in log.read_text()  # they hold personal data
    assert not any("raised an exception" in line["message"] for line in lines)  # apscheduler's


# -- 2. a restarted agent takes a killed agent's lock at once -----------------------------------
def test_a_restarted_agent_takes_over_a_killed_agents_lock_at_once(
        make_sandbox: Any, tmp_path: Path, db_url: str, peek: Callable[[str], Peek]) -> None:
    state = peek(db_url)
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       faults=SLOW_QUERIES)
    first = start_agent(box, db_url, free_port(), tmp_path / "first.log", "--interval", "1")
    try:
        wait_for(lambda: (lambda row: row and row[0].endswith(f":{first.pid}"))(
            state.lock()), 15, "the first agent mid-cycle, holding the lock")
    finally:
        first.kill()  # SIGKILL: no cleanup, the lock row stays behind
        first.wait(timeout=10)
    row = state.lock()
    assert row is not None
    assert row[0].endswith(f":{first.pid}")  # a dead holder's lease, minutes from expiry
    box.faults("salesforce", "")
    port, log = free_port(), tmp_path / "second.log"
    began = time.monotonic()
    second = start_agent(box, db_url, port, log, "--interval", "1")  # default 300 s lease
    try:
        wait_for(lambda: health(port)[1]["cycles"] >= 1, 15, "the restarted agent's cycle")
        assert time.monotonic() - began < 15
    finally:
        assert stop(second) == 0
    assert not any(line["message"].startswith("another agent holds the lock")
                   for line in log_lines(log))


# -- 3. a cycle longer than its lease keeps the lock; SQLite never says "locked" -------------------
def test_a_cycle_longer_than_the_lease_never_overlaps_another(
        make_sandbox: Any, tmp_path: Path, db_url: str, peek: Callable[[str], Peek]) -> None:
    state = peek(db_url)
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       faults=SLOW_QUERIES)
    ports = [free_port(), free_port()]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    options = ("--interval", "0.2", "--lock-ttl", "0.6")
    agents = [start_agent(box, db_url, ports[0], logs[0], *options),
              start_agent(box, db_url, ports[1], logs[1], *options)]
    try:
        # both agents up and contending (one of them has been turned away at least once)
        wait_for(lambda: all(health(p)[0] for p in ports) and sum(
            metric(p, "stagesync_cycles_skipped_locked_total") for p in ports), 15,
            "both agents contending for the lock")
        wait_for(lambda: len([r for r in state.runs() if r.finished_at]) >= 2, 15,
                 "two finished cycles")
        renewals = sum(metric(p, "stagesync_lock_renewals_total") for p in ports)
        lost = sum(metric(p, "stagesync_lock_lost_total") for p in ports)
    finally:
        for agent in agents:  # the clean stop is test_service's; here a cycle may be cut short
            stop(agent, kill=True)
    runs = state.runs()
    finished = [r for r in runs if r.finished_at is not None]
    longest = max((r.finished_at - r.started_at).total_seconds() for r in finished)
    assert longest > 1.2  # the cycles did outlast the 0.6 s lease twice over
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at is not None  # only the last one may have been cut short
        assert earlier.finished_at <= later.started_at  # never overlapping
    assert all(r.status == "ok" for r in finished)
    assert lost == 0
    if db_url.startswith("postgresql"):
        assert renewals >= 3  # the heartbeat kept the lease
    for log in logs:
        body = log.read_text()
        assert "database is locked" not in body
        assert "Traceback" not in body


def test_sync_once_exits_3_while_an_agent_is_mid_cycle_without_waiting(
        make_sandbox: Any, tmp_path: Path, peek: Callable[[str], Peek]) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       faults="salesforce.composite=slow:10@1")  # a cycle reads for 10 s+
    db = f"sqlite:///{tmp_path / 'state.db'}"
    agent = start_agent(box, db, free_port(), tmp_path / "agent.log", "--interval", "0.3")
    state = peek(db)
    try:
        wait_for(state.lock, 15, "the agent holding the lock")
        # the read alone takes 10 s (the fault), then describes, matching and planning: a
        # bound, not a timing (it returns as soon as the agent writes)
        wait_for(lambda: writing(tmp_path / "state.db"), 40, "the agent mid-cycle, writing")
        began = time.monotonic()
        once = subprocess.run(cli("sync", "once", "--mapping", str(DEFAULT), "--env-file",
                                  str(box.info.settings_file), "--db", db),
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, **UNPACED})
        took = time.monotonic() - began
    finally:
        stop(agent, kill=True)
    assert once.returncode == 3, once.stdout + once.stderr
    assert "another agent is running a cycle" in once.stdout
    assert "Traceback" not in once.stderr
    assert took < 8  # the start-up alone; no wait on the agent's write transaction


def test_sync_once_on_a_store_busy_past_its_timeout_exits_3_not_a_traceback(
        make_sandbox: Any, tmp_path: Path) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    path = tmp_path / "state.db"
    open_store(f"sqlite:///{path}").engine.dispose()  # the schema exists
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another writer holds the file, e.g. a long backfill
    try:
        once = subprocess.run(cli("sync", "once", "--mapping", str(DEFAULT), "--env-file",
                                  str(box.info.settings_file), "--db",
                                  f"sqlite:///{path}?timeout=1"),
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, **UNPACED})
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert once.returncode == 3, once.stdout + once.stderr
    assert "Traceback" not in once.stderr
    assert "database is locked" not in once.stdout + once.stderr
    assert not (tmp_path / "state.db?timeout=1").exists()  # the query is not a file name


# -- 4. the quota stop heals itself ---------------------------------------------------------------
def test_a_quota_stop_rechecks_limits_on_a_schedule_and_resumes(make_sandbox: Any,
                                                               tmp_path: Path) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    box.admin("salesforce", "POST", "/salesforce/config",
              {"apiDailyMax": 100_000, "apiUsed": 80_000})  # past the 75% stop
    db, port, log = f"sqlite:///{tmp_path / 'state.db'}", free_port(), tmp_path / "agent.log"
    agent = start_agent(box, db, port, log, "--interval", "0.2", "--quota-recheck", "1")
    try:
        wait_for(lambda: health(port)[1]["quota_paused"], 15, "the quota stop")
        status, body = health(port)
        assert status == 200
        assert body["status"] == "quota_paused"
        assert "75%" in body["reason"]
        assert body["failures"] >= 1
        box.reset_requests()
        time.sleep(3.5)  # ~17 ticks, ~3 scheduled checks
        served = box.requests("salesforce")["endpoints"]
        assert 2 <= served.get("salesforce.limits", 0) <= 5
        assert sum(served.values()) == served.get("salesforce.limits", 0)  # nothing else
        assert health(port)[1]["cycles"] == 0
        box.admin("salesforce", "POST", "/salesforce/config", {"apiUsed": 0})  # a new day
        wait_for(lambda: health(port)[1]["cycles"] >= 1, 10, "a resumed cycle")
        status, body = health(port)
        assert status == 200
        assert body["status"] == "ok"
        assert not body["quota_paused"]
        assert metric(port, "stagesync_quota_paused") == 0
    finally:
        assert stop(agent) == 0
    messages = [line["message"] for line in log_lines(log)]
    assert "Salesforce has room again; resuming" in messages


def test_the_agents_own_call_budget_is_per_utc_day(make_sandbox: Any) -> None:
    box = make_sandbox()
    settings = load_settings(box.info.settings_file).salesforce.model_copy(
        update={"daily_call_budget": 3})
    sf = SalesforceConnector(settings, RetryPolicy(initial=0.0, maximum=0.0))
    sf.describe("Lead")  # the token grant and a describe: two of the day's three calls...
    sf.describe("Contact")
    with pytest.raises(QuotaExhaustedError, match="budget of 3"):
        sf.describe("Account")
    assert sf.recheck_quota() is False  # same day: no call to find that out
    assert box.calls("salesforce", "salesforce.limits") == 0
    sf.budget_day -= dt.timedelta(days=1)  # ...as if those calls were made yesterday
    assert sf.recheck_quota() is True
    assert box.calls("salesforce", "salesforce.limits") == 1
    sf.describe("Account")  # a new UTC day, a new budget


# -- 5. what retrying cannot fix is reported at once, with where ----------------------------------
def closed_port() -> int:
    return free_port()  # bound and closed again: nothing listens there


CASES: dict[str, Callable[[str, SandboxClient], str]] = {
    "hubspot-closed-port": lambda env, box: re.sub(
        r"STAGESYNC_HUBSPOT__HOST=.*", "STAGESYNC_HUBSPOT__HOST=http://127.0.0.1:{port}", env),
    "salesforce-closed-port": lambda env, box: env.replace(
        box.info.salesforce_url, "https://127.0.0.1:{port}"),
    "salesforce-untrusted-certificate": lambda env, box: re.sub(
        r"STAGESYNC_SALESFORCE__CA_BUNDLE=.*\n", "", env),
    "salesforce-wrong-password": lambda env, box: re.sub(
        r"STAGESYNC_SALESFORCE__AUTH__PASSWORD=.*", "STAGESYNC_SALESFORCE__AUTH__PASSWORD=nope",
        env),
    "hubspot-wrong-token": lambda env, box: re.sub(
        r"STAGESYNC_HUBSPOT__ACCESS_TOKEN=.*", "STAGESYNC_HUBSPOT__ACCESS_TOKEN=pat-wrong", env),
}
WHERE = {  # (host, what the line must name besides the host)
    "hubspot-closed-port": ("127.0.0.1:{port}", "connection refused"),
    "salesforce-closed-port": ("127.0.0.1:{port}", "connection refused"),
    "salesforce-untrusted-certificate": ("{salesforce}", "TLS certificate"),
    "salesforce-wrong-password": ("{salesforce}", "sign-in refused"),
    "hubspot-wrong-token": ("{hubspot}", "401"),  # and the endpoint, e.g. properties.list
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_error_retrying_cannot_fix_is_one_line_within_seconds(
        case: str, make_sandbox: Any, tmp_path: Path) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    port = closed_port()
    settings = tmp_path / "settings.env"
    settings.write_text(CASES[case](box.info.settings_file.read_text(), box)
                        .replace("{port}", str(port)))
    began = time.monotonic()
    once = subprocess.run(cli("sync", "once", "--mapping", str(DEFAULT), "--env-file",
                              str(settings), "--db", f"sqlite:///{tmp_path / 'state.db'}"),
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **UNPACED, "COLUMNS": "400"})
    took = time.monotonic() - began
    assert once.returncode == 1, once.stdout + once.stderr
    assert took < 10, f"{took:.1f} s: {once.stderr}"
    assert "Traceback" not in once.stdout + once.stderr
    lines = [line for line in once.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, once.stdout
    host, what = WHERE[case]
    assert what in lines[0]
    if host is not None:
        salesforce = box.info.salesforce_url.removeprefix("https://")
        hubspot = box.info.hubspot_url.removeprefix("http://")
        assert host.format(port=port, salesforce=salesforce, hubspot=hubspot) in lines[0]
        if case == "hubspot-wrong-token":  # the client keeps no URL: the endpoint's name
            assert re.search(r"\(\w+\.\w+ at http://", lines[0])
        else:
            assert re.search(r"(GET|POST|PATCH|DELETE)? ?https?://\S+/\S+", lines[0])


def test_a_refusal_is_transient_once_the_host_has_answered(make_sandbox: Any) -> None:
    box = make_sandbox()
    settings = load_settings(box.info.settings_file).salesforce
    waits: list[float] = []
    sf = SalesforceConnector(settings, RetryPolicy(attempts=4, sleep=waits.append))
    sf.describe("Lead")  # the host answered
    assert box.server is not None
    box.server.stop()  # ...and now refuses: a restart, a failover
    with pytest.raises(RetriableError) as raised:
        sf.describe("Contact")
    assert not isinstance(raised.value, UnreachableError)
    assert len(waits) == 3  # every attempt the policy allows, with its backoff
    assert waits[-1] >= 2.0


def test_a_never_answering_host_gets_one_quick_retry(make_sandbox: Any) -> None:
    box = make_sandbox()
    base = load_settings(box.info.settings_file).salesforce
    url = f"https://127.0.0.1:{closed_port()}"
    settings = base.model_copy(update={"instance_url": url,
                                       "token_url": f"{url}/services/oauth2/token"})
    waits: list[float] = []
    sf = SalesforceConnector(settings, RetryPolicy(attempts=6, sleep=waits.append))
    with pytest.raises(UnreachableError) as raised:
        sf.describe("Lead")
    assert waits == [0.25]
    assert raised.value.host == url.removeprefix("https://")
    assert raised.value.request == f"POST {url}/services/oauth2/token"


def test_resets_and_timeouts_stay_retryable(make_sandbox: Any) -> None:
    box = make_sandbox(faults="salesforce.describe=reset#2")
    settings = load_settings(box.info.settings_file).salesforce
    sf = SalesforceConnector(settings, RetryPolicy(initial=0.0, maximum=0.0))
    sf.describe("Lead")  # two resets, then the answer
    assert sf.policy.retries == 2
    box.faults("salesforce", "salesforce.describe=slow:2#1")
    slow = SalesforceConnector(settings.model_copy(update={"timeout_seconds": 0.5}),
                               RetryPolicy(initial=0.0, maximum=0.0))
    slow.describe("Contact")  # one read timeout, then the answer
    assert slow.policy.retries == 1


def test_a_nul_byte_from_a_vendor_is_a_dead_letter_not_a_failing_store(
        make_sandbox: Any, db_url: str) -> None:
    """Salesforce refuses a too-long website and echoes it, NUL byte and all, in its message:
    PostgreSQL's text refuses NUL, which once failed every cycle. The record is a dead letter
    on both backends, and the cycles go on."""
    from connectors.records import WriteRecord
    from sync_agent.cycle import run_cycle
    from sync_agent.tables import DeadLetter
    from tests.test_cycle import MAPPING, connectors

    # lenience: this test is about what the store keeps, not search lag
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       search_lag_seconds=0)
    sf, hs = connectors(box)
    hs.upsert("contacts", [WriteRecord(values={
        "email": "nul.byte@example.com", "lastname": "Nul", "website": "x\x00" * 200,
        "lifecyclestage": "marketingqualifiedlead"})])
    store = open_store(db_url)
    first = run_cycle(store, MAPPING, sf, hs)
    assert first.failed >= 1
    run_cycle(store, MAPPING, sf, hs)  # the next cycle runs too
    with store.session() as session:
        assert [r.status for r in session.scalars(select(Run))] == ["ok", "ok"]
        letters = [d for d in session.scalars(select(DeadLetter))
                   if d.payload["source"]["object"] == "contacts"]
    store.engine.dispose()
    assert letters, "the refused record was not kept for retry"
    assert all("\x00" not in d.error_message for d in letters)
