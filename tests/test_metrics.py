"""`/metrics` of a running agent after a real cycle: cycle duration, read lag per object, dead
letters, open gaps by kind and API quota, each checked against the state store itself."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import text

from connectors.records import WriteRecord
from sync_agent.store import open_store
from tests.test_cycle import DEFAULT, connectors

SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse(body: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name -> {labels: value}; every line a comment or a well-formed sample."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for line in body.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ .+$", line), line
            continue
        found = SAMPLE.match(line)
        assert found, f"not a sample: {line!r}"
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', found["labels"] or "")))
        out.setdefault(found["name"], {})[labels] = float(found["value"])
    return out


def start_agent(box: Any, db: str, port: int, log: Path, interval: float
                ) -> subprocess.Popen[Any]:
    command = [sys.executable, "-c", "from sync_agent.cli import app; app()", "run",
               "--mapping", str(DEFAULT), "--env-file", str(box.info.settings_file),
               "--db", db, "--interval", f"{interval:g}", "--health-port", str(port)]
    with log.open("w") as handle:
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env={
            **os.environ, "STAGESYNC_HUBSPOT__REQUESTS_PER_TEN_SECONDS": "0",
            "STAGESYNC_HUBSPOT__SEARCHES_PER_SECOND": "0"})


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    return parse(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text)


def test_metrics_after_a_real_cycle_match_the_store(make_sandbox: Any, tmp_path: Path) -> None:
    # lenience: this test is about metrics, not search lag
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       search_lag_seconds=0)
    _, hs = connectors(box)
    # Salesforce refuses this address: a dead letter and a sync_error gap
    hs.upsert("contacts", [WriteRecord(values={
        "email": "metrics@exa_mple.com", "lastname": "Metrics",
        "lifecyclestage": "marketingqualifiedlead"})])
    db, port, log = f"sqlite:///{tmp_path / 'state.db'}", free_port(), tmp_path / "agent.log"
    agent = start_agent(box, db, port, log, 3600)  # one cycle while the test looks
    began = time.monotonic()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()[
                        "cycles"] >= 1:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError(f"no cycle in 90 s:\n{log.read_text()}")
        ran = time.monotonic() - began
        scraped_at = dt.datetime.now(dt.UTC)
        body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0
    metrics = parse(body)

    # cycle duration: the last one, and a histogram of one observation
    last = metrics["stagesync_last_cycle_duration_seconds"][()]
    assert 0 < last < ran
    buckets = sorted(((float(dict(k)["le"]), v) for k, v in
                      metrics["stagesync_cycle_duration_seconds_bucket"].items()))
    assert buckets[-1] == (float("inf"), 1)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert next(v for le, v in buckets if le >= last) == 1
    assert metrics["stagesync_cycle_duration_seconds_count"][()] == 1
    assert metrics["stagesync_cycle_duration_seconds_sum"][()] == round(last, 3)

    with open_store(db).engine.connect() as connection:
        marks = connection.execute(text(  # "#": bookkeeping rows (id checks, activity)
            "SELECT system, object, read_until FROM watermarks WHERE object NOT LIKE '%#%'"
        )).all()
        letters = Counter({(s, o): n for s, o, n in connection.execute(text(
            "SELECT system, object, count(*) FROM dead_letters WHERE resolved_at IS NULL "
            "GROUP BY system, object"))})
        gaps = Counter({k: n for k, n in connection.execute(text(
            "SELECT kind, count(*) FROM gaps WHERE closed_at IS NULL GROUP BY kind"))})
        runs = connection.execute(text(
            "SELECT counts FROM runs WHERE kind = 'cycle' AND status = 'ok'")).all()

    # read lag: every object read, as of the read's end (a quiet object is not days behind)
    lags = {(dict(k)["system"], dict(k)["object"]): v
            for k, v in metrics["stagesync_read_lag_seconds"].items()}
    assert set(lags) == {(s, o) for s, o, _ in marks}
    assert {("salesforce", "Lead"), ("hubspot", "contacts"),
            ("salesforce", "OpportunityContactRole")} <= set(lags)  # the last: never a change
    for system, obj, until in marks:
        read_until = dt.datetime.fromisoformat(str(until)).replace(tzinfo=dt.UTC)
        expected = (scraped_at - read_until).total_seconds()
        assert abs(lags[(system, obj)] - expected) < 1.0, (system, obj)
        assert lags[(system, obj)] < ran + 1.0

    # dead letters and open gaps: exactly the store's
    shown = {(dict(k)["system"], dict(k)["object"]): v
             for k, v in metrics["stagesync_dead_letters"].items()}
    assert shown == dict(letters) == {("salesforce", "Lead"): 1}
    assert {dict(k)["kind"]: v for k, v in metrics["stagesync_open_gaps"].items()} == dict(gaps)
    assert gaps["sync_error"] == 1

    # quota: what the cycle saw of each system's daily allowance
    import json

    [(counts,)] = runs
    counts = json.loads(counts) if isinstance(counts, str) else counts
    for system in ("salesforce", "hubspot"):
        used, limit = counts[f"{system}_api"]
        assert limit > used > 0, system
        assert metrics["stagesync_api_quota_used"][(("system", system),)] == used
        assert metrics["stagesync_api_quota_limit"][(("system", system),)] == limit


def test_a_running_agent_writes_a_record_fixed_at_its_source_and_its_letter_reads_0(
        make_sandbox: Any, tmp_path: Path) -> None:
    # lenience: this test is about dead letters, not search lag
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       search_lag_seconds=0)
    _, hs = connectors(box)
    contact = hs.upsert("contacts", [WriteRecord(values={
        "email": "agent.fix@exa_mple.com", "lastname": "Agentfix",
        "lifecyclestage": "marketingqualifiedlead"})])[0]
    db, port, log = f"sqlite:///{tmp_path / 'state.db'}", free_port(), tmp_path / "agent.log"
    agent = start_agent(box, db, port, log, 1)
    letter = (("object", "Lead"), ("system", "salesforce"))
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if scrape(port).get("stagesync_dead_letters", {}).get(letter) == 1:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError(f"no dead letter in 90 s:\n{log.read_text()}")
        hs.upsert("contacts", [WriteRecord(id=contact.id, values={
            "email": "agent.fix@example.com"})])  # fixed; its letter has minutes of backoff
        fixed_at = time.monotonic()
        while time.monotonic() < fixed_at + 30:
            if scrape(port)["stagesync_dead_letters"].get(letter) == 0:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"the letter stayed open:\n{log.read_text()}")
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0
    with open_store(db).engine.connect() as connection:
        still = connection.execute(text(
            "SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL")).scalar()
        linked = connection.execute(text(
            "SELECT count(*) FROM links WHERE pair = 'leads' AND hs_id = :id"),
            {"id": contact.id}).scalar()
    assert (still, linked) == (0, 1)
