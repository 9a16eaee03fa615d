"""``stagesync run``: the agent as a long-running service.

APScheduler 3 fires the cycle on an interval (coalesced, at most one instance); the state
store's watermarks are the memory, not the job store (it stays in memory). Each cycle takes the
store's lock first, so two agents on one store never run a cycle at the same time. SIGTERM or
SIGINT pauses the job (APScheduler 3 logs errors when a job fires during shutdown), lets the
running cycle finish and exits cleanly. ``/healthz`` and Prometheus ``/metrics`` are served on a
local port; logs are JSON lines.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from apscheduler.schedulers.background import BackgroundScheduler

from connectors.contract import Connector
from connectors.errors import ConnectorError, QuotaExhaustedError
from mapping.model import MappingFile
from sync_agent import state
from sync_agent.cycle import run_cycle
from sync_agent.dead_letters import retry_dead_letters
from sync_agent.store import Store

log = logging.getLogger("stagesync.agent")
LOCK = "cycle"
SCHEMA_REFRESH = dt.timedelta(hours=1)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra`` fields."""

    RESERVED: ClassVar[frozenset[str]] = frozenset(
        vars(logging.LogRecord("", 0, "", 0, "", None, None)))

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage()}
        body.update({k: v for k, v in vars(record).items() if k not in self.RESERVED})
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


def json_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


@dataclass
class Metrics:
    cycles: int = 0
    failures: int = 0
    skipped_locked: int = 0
    last_cycle_end: float | None = None
    last_error: str | None = None
    written: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    gaps_opened: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def prometheus(self) -> str:
        lines = [
            "# HELP stagesync_cycles_total Sync cycles completed.",
            "# TYPE stagesync_cycles_total counter", f"stagesync_cycles_total {self.cycles}",
            "# HELP stagesync_cycle_failures_total Cycles that stopped on an error.",
            "# TYPE stagesync_cycle_failures_total counter",
            f"stagesync_cycle_failures_total {self.failures}",
            "# HELP stagesync_cycles_skipped_locked_total Cycles skipped: another agent held "
            "the lock.", "# TYPE stagesync_cycles_skipped_locked_total counter",
            f"stagesync_cycles_skipped_locked_total {self.skipped_locked}",
            "# HELP stagesync_records_written_total Records written, per system and object.",
            "# TYPE stagesync_records_written_total counter"]
        for key, count in sorted(self.written.items()):
            system, _, obj = key.partition(".")
            lines.append(f'stagesync_records_written_total{{system="{system}",object="{obj}"}} '
                         f"{count}")
        lines += ["# HELP stagesync_api_calls_total API calls, per endpoint.",
                  "# TYPE stagesync_api_calls_total counter"]
        for endpoint, count in sorted(self.calls.items()):
            safe = endpoint.replace('"', "'")
            lines.append(f'stagesync_api_calls_total{{endpoint="{safe}"}} {count}')
        if self.last_cycle_end is not None:
            lines += ["# HELP stagesync_last_cycle_end_timestamp_seconds When the last cycle "
                      "ended.", "# TYPE stagesync_last_cycle_end_timestamp_seconds gauge",
                      f"stagesync_last_cycle_end_timestamp_seconds {self.last_cycle_end:.3f}"]
        return "\n".join(lines) + "\n"


class Agent:
    def __init__(self, store: Store, mapping: MappingFile, salesforce: Connector,
                 hubspot: Connector, interval: float = 60.0) -> None:
        self.store = store
        self.mapping = mapping
        self.sf = salesforce
        self.hs = hubspot
        self.interval = interval
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self.metrics = Metrics()
        self.stopping = threading.Event()
        self.schemas_at: dt.datetime | None = None
        self.scheduler = BackgroundScheduler(timezone="UTC", job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": None})

    def cycle(self) -> None:
        if self.stopping.is_set():
            return
        ttl = dt.timedelta(seconds=max(self.interval * 5, 300))
        if not state.acquire_lock(self.store, LOCK, self.holder, ttl):
            self.metrics.skipped_locked += 1
            log.info("another agent holds the lock; skipping this cycle")
            return
        try:
            now = dt.datetime.now(dt.UTC)
            refresh = self.schemas_at is None or now - self.schemas_at > SCHEMA_REFRESH
            report = run_cycle(self.store, self.mapping, self.sf, self.hs,
                               refresh_schemas=refresh)
            if refresh:
                self.schemas_at = now
            with self.store.session() as session:
                due = bool(state.due_dead_letters(session))
            if due:  # refused records whose backoff has passed are synced again as they are
                retried = retry_dead_letters(self.store, self.mapping, self.sf, self.hs)
                log.info("dead letters retried", extra={
                    "tried": retried.tried, "resolved": retried.resolved,
                    "refused_again": retried.failed})
            with self.metrics.lock:
                self.metrics.cycles += 1
                self.metrics.last_cycle_end = dt.datetime.now(dt.UTC).timestamp()
                self.metrics.last_error = None
                self.metrics.written.update(report.written)
                self.metrics.calls.update(report.calls)
                self.metrics.gaps_opened.update(report.gaps)
            log.info("cycle done", extra={
                "read": dict(report.read), "written": dict(report.written),
                "created_records": dict(report.created), "refused": report.failed,
                "gaps": dict(report.gaps), "calls": sum(report.calls.values())})
        except QuotaExhaustedError as exc:
            self.metrics.failures += 1
            self.metrics.last_error = str(exc)
            log.warning("quota reached; the next cycle resumes from the watermarks",
                        extra={"error": str(exc)})
        except ConnectorError as exc:
            self.metrics.failures += 1
            self.metrics.last_error = str(exc)
            log.error("cycle failed; the watermarks did not move, so the next cycle reads again",
                      extra={"error": str(exc)})
        finally:
            state.release_lock(self.store, LOCK, self.holder)

    def start(self) -> None:
        self.scheduler.add_job(self.cycle, "interval", seconds=self.interval, id="cycle",
                               next_run_time=dt.datetime.now(dt.UTC))
        self.scheduler.start()
        log.info("agent started", extra={"interval_seconds": self.interval,
                                         "holder": self.holder})

    def stop(self) -> None:
        """Pause first (no new cycle may fire), let the running one finish, then shut down."""
        self.stopping.set()
        self.scheduler.pause()
        self.scheduler.shutdown(wait=True)
        log.info("agent stopped")


def serve_health(agent: Agent, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                stale = (agent.metrics.last_cycle_end is not None and
                         dt.datetime.now(dt.UTC).timestamp() - agent.metrics.last_cycle_end
                         > agent.interval * 5)
                body = json.dumps({"status": "stale" if stale else "ok",
                                   "cycles": agent.metrics.cycles,
                                   "failures": agent.metrics.failures,
                                   "last_error": agent.metrics.last_error}).encode()
                self._send(503 if stale else 200, body, "application/json")
            elif self.path == "/metrics":
                self._send(200, agent.metrics.prometheus().encode(),
                           "text/plain; version=0.0.4")
            else:
                self._send(404, b"not found", "text/plain")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="stagesync-health", daemon=True).start()
    return server


def run_forever(agent: Agent, health_port: int) -> None:
    """Run until SIGTERM or SIGINT; the in-flight cycle completes before exit."""
    done = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal received; finishing the current cycle", extra={"signal": signum})
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    health = serve_health(agent, health_port)
    agent.start()
    try:
        done.wait()
    finally:
        agent.stop()
        health.shutdown()
