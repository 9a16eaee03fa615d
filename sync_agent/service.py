"""``stagesync run``: the agent as a long-running service.

APScheduler 3 fires the cycle on an interval (coalesced, at most one instance); the state
store's watermarks are the memory, not the job store (it stays in memory). Each cycle takes the
store's lock first, so two agents on one store never run a cycle at the same time.

SIGTERM or SIGINT stops the agent within ``STOP_GRACE_SECONDS`` wherever it is: no new cycle
fires (the job is paused first: APScheduler 3 logs errors when a job fires during shutdown),
and the process-wide stop request (``connectors.stopping``) ends every retry wait, pacing wait
and next vendor call of the running cycle in ``Stopping``. That cycle stops as a crashed one
would, minus the crash: its run is recorded ``stopped``, its write-ahead intents and pending
creates stay, and the next run finishes its work with no duplicate. A vendor call still in
flight after the grace period (a socket read waits up to the HTTP timeout) is abandoned: the
cycle runs in a daemon thread, so the process exits anyway, and the lock's lease runs out (or
an agent restarted on this host takes it over at once).

``/healthz``, Prometheus ``/metrics`` (``Metrics.prometheus`` is the text) and the operator's
console (``sync_agent.console``) are served on one port, 127.0.0.1 unless told otherwise; logs
are JSON lines.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import StatementError

from connectors import stopping
from connectors.contract import Connector
from connectors.errors import ConnectorError, DailyLimitError, QuotaExhaustedError
from connectors.stopping import Stopping
from mapping.model import MappingFile
from sync_agent import state
from sync_agent.cycle import run_cycle
from sync_agent.dead_letters import retry_dead_letters
from sync_agent.gauges import StoreGauges, read_gauges
from sync_agent.store import Store

if TYPE_CHECKING:
    from sync_agent.console.app import Console
    from sync_agent.console.server import RunningServer

log = logging.getLogger("stagesync.agent")
LOCK = "cycle"
UNHEALTHY_AFTER = 3  # /healthz answers 503 after this many failed cycles in a row
QUOTA_RECHECK_SECONDS = 300.0  # how often a quota-paused agent asks Salesforce's /limits
# SIGTERM to exit: a running cycle gets this long to notice the stop (its waits end at once);
# under Kubernetes' default 30 s grace period, and the 10 s operators are promised
STOP_GRACE_SECONDS = 7.0
# upper bounds (seconds) of the cycle duration histogram's buckets
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


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
    consecutive_failures: int = 0
    skipped_locked: int = 0
    skipped_quota: int = 0
    quota_checks: int = 0
    quota_paused: bool = False
    hubspot_resume_at: float | None = None  # epoch seconds: paused at HubSpot's daily limit
    lock_renewals: int = 0
    lock_takeovers: int = 0
    lock_lost: int = 0
    last_cycle_end: float | None = None
    last_error: str | None = None
    last_error_type: str | None = None
    written: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    gaps_opened: Counter[str] = field(default_factory=Counter)
    last_cycle_seconds: float | None = None
    durations: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    durations_sum: float = 0.0
    store: StoreGauges = field(default_factory=StoreGauges)  # as of the last cycle
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cycle_took(self, seconds: float) -> None:
        """A completed cycle's duration, into the last value and the histogram."""
        with self.lock:
            self.last_cycle_seconds = seconds
            self.durations_sum += seconds
            slot = next((i for i, bound in enumerate(DURATION_BUCKETS) if seconds <= bound),
                        len(DURATION_BUCKETS))
            self.durations[slot] += 1

    def prometheus(self, now: dt.datetime | None = None) -> str:
        """The Prometheus text exposition of every metric: what ``/metrics`` serves."""
        def counter(name: str, text: str, value: float, kind: str = "counter") -> list[str]:
            return [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value:g}"]

        with self.lock:
            lines = self._counters(counter)
            lines += self._cycle_durations()
            lines += self._store_gauges(now or dt.datetime.now(dt.UTC))
        return "\n".join(lines) + "\n"

    def _cycle_durations(self) -> list[str]:
        lines: list[str] = []
        if self.last_cycle_seconds is not None:
            lines += ["# HELP stagesync_last_cycle_duration_seconds How long the last completed "
                      "cycle took (its dead-letter retry included).",
                      "# TYPE stagesync_last_cycle_duration_seconds gauge",
                      f"stagesync_last_cycle_duration_seconds {self.last_cycle_seconds:.3f}"]
        lines += ["# HELP stagesync_cycle_duration_seconds How long completed cycles took.",
                  "# TYPE stagesync_cycle_duration_seconds histogram"]
        total = 0
        for bound, count in zip((*DURATION_BUCKETS, None), self.durations, strict=True):
            total += count
            le = "+Inf" if bound is None else f"{bound:g}"
            lines.append(f'stagesync_cycle_duration_seconds_bucket{{le="{le}"}} {total}')
        lines += [f"stagesync_cycle_duration_seconds_sum {self.durations_sum:.3f}",
                  f"stagesync_cycle_duration_seconds_count {total}"]
        return lines

    def _store_gauges(self, now: dt.datetime) -> list[str]:
        gauges = self.store
        lines = ["# HELP stagesync_read_lag_seconds Seconds since the last read of the object "
                 "ran up to: every change older than this has been read (an object not read "
                 "yet is absent).", "# TYPE stagesync_read_lag_seconds gauge"]
        for (system, obj), until in sorted(gauges.read_until.items()):
            lag = max((now - until).total_seconds(), 0.0)
            lines.append(f"stagesync_read_lag_seconds{{system={_label(system)},"
                         f"object={_label(obj)}}} {lag:.3f}")
        lines += ["# HELP stagesync_dead_letters Refused records waiting for retry.",
                  "# TYPE stagesync_dead_letters gauge"]
        for (system, obj), count in sorted(gauges.dead_letters.items()):
            lines.append(f"stagesync_dead_letters{{system={_label(system)},"
                         f"object={_label(obj)}}} {count}")
        lines += ["# HELP stagesync_open_gaps Open gaps (stagesync gaps), per kind.",
                  "# TYPE stagesync_open_gaps gauge"]
        for kind, count in sorted(gauges.open_gaps.items()):
            lines.append(f"stagesync_open_gaps{{kind={_label(kind)}}} {count}")
        for name, text, index in (
                ("stagesync_api_quota_used", "Daily API calls used, as the last cycle saw.", 0),
                ("stagesync_api_quota_limit", "The daily API call allowance.", 1)):
            lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge"]
            for system, usage in sorted(gauges.quota.items()):
                lines.append(f"{name}{{system={_label(system)}}} {usage[index]}")
        return lines

    def _counters(self, counter: Callable[..., list[str]]) -> list[str]:
        lines = [
            *counter("stagesync_cycles_total", "Sync cycles completed.", self.cycles),
            *counter("stagesync_cycle_failures_total", "Cycles that stopped on an error (any "
                     "error, quota stops included).", self.failures),
            *counter("stagesync_consecutive_cycle_failures", "Cycles in a row that failed "
                     "(0 after a good one).", self.consecutive_failures, "gauge"),
            *counter("stagesync_cycles_skipped_locked_total", "Cycles skipped: another agent "
                     "held the lock.", self.skipped_locked),
            *counter("stagesync_cycles_skipped_quota_total", "Cycles skipped: paused at the "
                     "Salesforce quota stop.", self.skipped_quota),
            *counter("stagesync_quota_checks_total", "Salesforce /limits checks made while "
                     "paused.", self.quota_checks),
            *counter("stagesync_quota_paused", "1 while paused at the Salesforce quota stop.",
                     int(self.quota_paused), "gauge"),
            *counter("stagesync_hubspot_daily_limit_paused", "1 while paused at HubSpot's "
                     "daily API limit (429 DAILY) until its reset.",
                     int(self.hubspot_resume_at is not None), "gauge"),
            *([] if self.hubspot_resume_at is None else [
                "# HELP stagesync_hubspot_daily_limit_resume_timestamp_seconds When HubSpot "
                "work resumes (midnight in the account's time zone).",
                "# TYPE stagesync_hubspot_daily_limit_resume_timestamp_seconds gauge",
                "stagesync_hubspot_daily_limit_resume_timestamp_seconds "
                f"{self.hubspot_resume_at:.0f}"]),
            *counter("stagesync_lock_renewals_total", "Lease renewals of the cycle lock by "
                     "the heartbeat.", self.lock_renewals),
            *counter("stagesync_lock_takeovers_total", "Cycle locks taken over from a killed "
                     "agent on this host.", self.lock_takeovers),
            *counter("stagesync_lock_lost_total", "Cycles whose lock another agent took "
                     "while they ran.", self.lock_lost),
            "# HELP stagesync_records_written_total Records written, per system and object.",
            "# TYPE stagesync_records_written_total counter"]
        for key, count in sorted(self.written.items()):
            system, _, obj = key.partition(".")
            lines.append(f'stagesync_records_written_total{{system="{system}",'
                         f'object="{obj}"}} {count}')
        lines += ["# HELP stagesync_api_calls_total API calls, per endpoint.",
                  "# TYPE stagesync_api_calls_total counter"]
        for endpoint, count in sorted(self.calls.items()):
            safe = endpoint.replace('"', "'")
            lines.append(f'stagesync_api_calls_total{{endpoint="{safe}"}} {count}')
        if self.last_cycle_end is not None:
            lines += ["# HELP stagesync_last_cycle_end_timestamp_seconds When the last cycle "
                      "ended.", "# TYPE stagesync_last_cycle_end_timestamp_seconds gauge",
                      f"stagesync_last_cycle_end_timestamp_seconds {self.last_cycle_end:.3f}"]
        return lines


def _label(value: str) -> str:
    """A label value, quoted and escaped as the exposition format wants."""
    text = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def describe_error(exc: BaseException) -> str:
    """One line for logs and ``/healthz``: connector errors as they read; database errors by
    the driver's message (never the statement or its parameters: they hold personal data)."""
    if isinstance(exc, ConnectorError):
        text = str(exc)
    elif isinstance(exc, StatementError) and exc.orig is not None:
        text = f"{type(exc).__name__}: {exc.orig}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:500]


class Heartbeat:
    """Renews the cycle's lock every third of its lease while the cycle runs, so a cycle that
    outlasts the lease keeps the lock. A renewal the store cannot take now (a busy SQLite file:
    there the OS lock protects the holder anyway) is tried again at the next beat; a lock found
    taken by another agent is reported (``lost``)."""

    def __init__(self, store: Store, holder: str, ttl: dt.timedelta, metrics: Metrics) -> None:
        self.store = store
        self.holder = holder
        self.ttl = ttl
        self.metrics = metrics
        self.every = max(ttl.total_seconds() / 3, 0.05)
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="stagesync-lock-heartbeat",
                                        daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=min(self.every, 1.0))  # a renewal stuck on a busy store
        # finishes on its own (daemon thread); finding the lock released, it stays quiet

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                held = state.renew_lock(self.store, LOCK, self.holder, self.ttl)
            except Exception as exc:  # a thread must not die; tried next beat
                log.info("could not renew the cycle lock now; trying again",
                         extra={"reason": describe_error(exc)})
                continue
            if held:
                with self.metrics.lock:
                    self.metrics.lock_renewals += 1
                continue
            if self._stop.is_set():  # a late renewal after the cycle let the lock go
                return
            self.lost = True
            with self.metrics.lock:
                self.metrics.lock_lost += 1
            log.error("the cycle lock was taken by another agent while this cycle ran (its "
                      "lease ran out without a renewal)", extra={"holder": self.holder})
            return


class Agent:
    def __init__(self, store: Store, mapping: MappingFile, salesforce: Connector,
                 hubspot: Connector, interval: float = 60.0, *, lock_ttl: float | None = None,
                 unhealthy_after: int = UNHEALTHY_AFTER,
                 quota_recheck: float = QUOTA_RECHECK_SECONDS,
                 stop_grace: float = STOP_GRACE_SECONDS) -> None:
        self.store = store
        self.mapping = mapping
        self.sf = salesforce
        self.hs = hubspot
        self.interval = interval
        self.lock_ttl = dt.timedelta(seconds=lock_ttl if lock_ttl else max(interval * 5, 300))
        self.unhealthy_after = max(unhealthy_after, 1)
        self.quota_recheck = quota_recheck
        self.quota_check_at: float | None = None  # time.monotonic() of the next /limits check
        self.host = socket.gethostname()
        self.holder = f"{self.host}:{os.getpid()}"
        self.metrics = Metrics()
        self.stopping = threading.Event()
        self.stop_grace = stop_grace
        self._idle = threading.Event()  # no cycle running
        self._idle.set()
        self._abandon = threading.Event()  # stop: give up waiting for the running cycle
        self.scheduler = BackgroundScheduler(timezone="UTC", job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": None})

    # -- one scheduled tick ----------------------------------------------------------------
    def _tick(self) -> None:
        """The scheduled job: the cycle runs in a daemon thread this job waits on, so a stop
        can give up on a vendor call stuck past the grace period (the scheduler's pool
        threads would hold the process at exit; a daemon thread does not)."""
        self._idle.clear()

        def run() -> None:
            try:
                self.cycle()
            finally:
                self._idle.set()

        threading.Thread(target=run, name="stagesync-cycle", daemon=True).start()
        while not self._idle.wait(0.2):
            if self._abandon.is_set():
                return

    def cycle(self) -> None:
        """One tick: unless paused at the quota stop, take the lock (or skip), run a cycle
        with the lock's heartbeat going, count the outcome, release. Never raises: every
        failure, whatever its type, is counted, logged and shown on ``/healthz``; a stop
        request is logged as such, not counted."""
        if self.stopping.is_set() or not self._quota_allows():
            return
        try:
            held = self._take_lock()
        except Exception as exc:  # the store is unreachable or broken
            self._failed(exc)
            return
        if not held:
            with self.metrics.lock:
                self.metrics.skipped_locked += 1
            log.info("another agent holds the lock; skipping this cycle")
            return
        try:
            with Heartbeat(self.store, self.holder, self.lock_ttl, self.metrics):
                self._run_cycle()
        except QuotaExhaustedError as exc:
            self._quota_stopped(exc)
        except Stopping as exc:
            log.info("cycle stopped: the agent is stopping; its intents and pending creates "
                     "are kept, so the next run finishes its work",
                     extra={"during": exc.during})
        except Exception as exc:  # counted and logged, never lost
            self._failed(exc)
        finally:
            try:
                state.release_lock(self.store, LOCK, self.holder)
            except Exception as exc:  # its lease runs out instead
                log.warning("could not release the cycle lock; its lease will run out",
                            extra={"reason": describe_error(exc)})
            self._observe_store()

    def _observe_store(self) -> None:
        """The store's gauges for ``/metrics`` (dead letters, gaps, read lag, quota); a
        store that cannot answer now leaves the last ones (the failure is logged elsewhere)."""
        try:
            with self.store.session() as session:
                gauges = read_gauges(session)
        except Exception as exc:
            log.info("could not read the store's gauges for /metrics now",
                     extra={"reason": describe_error(exc)})
            return
        with self.metrics.lock:
            before = self.metrics.store  # a series that emptied shows 0, not a hole
            for key in before.dead_letters.keys() - gauges.dead_letters.keys():
                gauges.dead_letters[key] = 0
            for kind in before.open_gaps.keys() - gauges.open_gaps.keys():
                gauges.open_gaps[kind] = 0
            self.metrics.store = gauges

    def _take_lock(self) -> bool:
        if state.acquire_lock(self.store, LOCK, self.holder, self.lock_ttl):
            return True
        # a holder killed on this host (kill -9, OOM) leaves its row: take it over now
        # rather than idle until its lease runs out
        if state.take_over_dead_lock(self.store, LOCK, self.host) and state.acquire_lock(
                self.store, LOCK, self.holder, self.lock_ttl):
            with self.metrics.lock:
                self.metrics.lock_takeovers += 1
            log.info("took over the cycle lock: its holder on this host is gone")
            return True
        return False

    def _run_cycle(self) -> None:
        # describes and owners come from the state store's cache until their refresh interval
        # (``schema_refresh_hours``, ``people_refresh_hours``): a restart describes nothing
        began = time.monotonic()
        report = run_cycle(self.store, self.mapping, self.sf, self.hs)
        with self.store.session() as session:
            due = bool(state.due_dead_letters(session))
        if due:  # refused records whose backoff has passed are synced again as they are
            retried = retry_dead_letters(self.store, self.mapping, self.sf, self.hs)
            log.info("dead letters retried", extra={
                "tried": retried.tried, "resolved": retried.resolved,
                "refused_again": retried.failed})
        self.metrics.cycle_took(time.monotonic() - began)
        with self.metrics.lock:
            self.metrics.cycles += 1
            self.metrics.consecutive_failures = 0
            self.metrics.last_cycle_end = dt.datetime.now(dt.UTC).timestamp()
            self.metrics.last_error = self.metrics.last_error_type = None
            self.metrics.written.update(report.written)
            self.metrics.calls.update(report.calls)
            self.metrics.gaps_opened.update(report.gaps)
        log.info("cycle done", extra={
            "read": dict(report.read), "written": dict(report.written),
            "created_records": dict(report.created), "refused": report.failed,
            "gaps": dict(report.gaps), "calls": sum(report.calls.values())})

    def _failed(self, exc: Exception) -> None:
        reason = describe_error(exc)
        with self.metrics.lock:
            self.metrics.failures += 1
            self.metrics.consecutive_failures += 1
            self.metrics.last_error = reason
            self.metrics.last_error_type = type(exc).__name__
            streak = self.metrics.consecutive_failures
        extra: dict[str, Any] = {"reason": reason, "error_type": type(exc).__name__,
                                 "consecutive_failures": streak}
        if isinstance(exc, ConnectorError):
            log.error("cycle failed; the watermarks did not move, so the next cycle reads again",
                      extra={**extra, "system": exc.system})
        else:  # not a vendor's answer: a bug or a store problem, so keep the traceback
            log.error("cycle failed on an unexpected error; the watermarks did not move",
                      extra=extra, exc_info=exc)

    # -- the Salesforce quota stop -----------------------------------------------------------
    def _quota_stopped(self, exc: QuotaExhaustedError) -> None:
        if isinstance(exc, DailyLimitError):
            self._daily_limit_stopped(exc)
            return
        with self.metrics.lock:
            self.metrics.failures += 1  # a failed cycle, but not a malfunction: the streak stays
            self.metrics.last_error = describe_error(exc)
            self.metrics.last_error_type = type(exc).__name__
            self.metrics.quota_paused = True
        self.quota_check_at = time.monotonic() + self.quota_recheck
        log.warning("quota reached; pausing until Salesforce has room again (the watermarks "
                    "hold, so nothing is lost)", extra={"reason": str(exc),
                                                        "recheck_seconds": self.quota_recheck})

    # -- HubSpot's daily limit: no call can succeed before its reset, so none is made ----------
    def _daily_limit_stopped(self, exc: DailyLimitError) -> None:
        with self.metrics.lock:
            self.metrics.failures += 1  # a failed cycle, not a malfunction: the streak stays
            self.metrics.last_error = describe_error(exc)
            self.metrics.last_error_type = type(exc).__name__
            self.metrics.hubspot_resume_at = exc.resume_at.timestamp()
        log.warning("HubSpot's daily API limit is reached; pausing HubSpot work until the daily "
                    "reset (the watermarks hold, so nothing is lost)",
                    extra={"reason": str(exc), "resume_at": exc.resume_at.isoformat()})

    def _daily_limit_allows(self) -> bool:
        with self.metrics.lock:
            resume = self.metrics.hubspot_resume_at
            if resume is None:
                return True
            if dt.datetime.now(dt.UTC).timestamp() < resume:
                self.metrics.skipped_quota += 1
                return False
            self.metrics.hubspot_resume_at = None
        log.info("HubSpot's daily limit has reset; resuming")
        return True

    def _quota_allows(self) -> bool:
        """While paused, True only once a scheduled ``/limits`` check finds room (or, at
        HubSpot's daily limit, once its reset has passed)."""
        if not self._daily_limit_allows():
            return False
        if self.quota_check_at is None:
            return True
        if time.monotonic() < self.quota_check_at:
            with self.metrics.lock:
                self.metrics.skipped_quota += 1
            return False
        with self.metrics.lock:
            self.metrics.quota_checks += 1
        recheck = getattr(self.sf, "recheck_quota", None)
        try:
            room = bool(recheck()) if recheck is not None else True
        except Stopping:
            return False
        except Exception as exc:  # cannot tell: stay paused, say why
            self._failed(exc)
            room = False
        if not room:
            self.quota_check_at = time.monotonic() + self.quota_recheck
            with self.metrics.lock:
                self.metrics.skipped_quota += 1
            log.info("still at the Salesforce quota stop; checking again later",
                     extra={"recheck_seconds": self.quota_recheck})
            return False
        self.quota_check_at = None
        with self.metrics.lock:
            self.metrics.quota_paused = False
        log.info("Salesforce has room again; resuming")
        return True

    # -- what /healthz says ----------------------------------------------------------------
    def health(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body): 503 once ``unhealthy_after`` cycles in a row failed, or when
        no cycle has finished for five intervals; 200 otherwise (paused at the quota stop
        included: waiting is the remedy, a restart would not help)."""
        m = self.metrics
        with m.lock:
            body: dict[str, Any] = {
                "status": "ok", "cycles": m.cycles, "failures": m.failures,
                "consecutive_failures": m.consecutive_failures,
                "unhealthy_after": self.unhealthy_after, "last_error": m.last_error,
                "last_error_type": m.last_error_type, "quota_paused": m.quota_paused}
            last_end = m.last_cycle_end
        age = None if last_end is None else dt.datetime.now(dt.UTC).timestamp() - last_end
        if body["consecutive_failures"] >= self.unhealthy_after:
            body["status"] = "failing"
            body["reason"] = (f"the last {body['consecutive_failures']} cycles failed (unhealthy "
                              f"after {self.unhealthy_after} in a row); last error: "
                              f"{body['last_error']}")
            return 503, body
        resume = m.hubspot_resume_at
        if resume is not None:
            body["status"] = "quota_paused"
            body["hubspot_resume_at"] = dt.datetime.fromtimestamp(resume, dt.UTC).isoformat()
            body["reason"] = (f"paused at HubSpot's daily API limit until "
                              f"{body['hubspot_resume_at']} ({body['last_error']})")
            return 200, body
        if body["quota_paused"]:
            body["status"] = "quota_paused"
            check_at = self.quota_check_at
            wait = 0.0 if check_at is None else max(check_at - time.monotonic(), 0.0)
            body["reason"] = (f"paused at the Salesforce quota stop ({body['last_error']}); "
                              f"next /limits check in {wait:.0f} s")
            return 200, body
        if age is not None and age > self.interval * 5:
            body["status"] = "stale"
            body["reason"] = (f"no cycle has finished for {age:.0f} s (interval "
                              f"{self.interval:g} s)")
            return 503, body
        return 200, body

    def start(self) -> None:
        stopping.clear()  # this process may have stopped an agent before (tests do)
        self._observe_store()  # /metrics has the store's numbers before the first cycle ends
        self.scheduler.add_job(self._tick, "interval", seconds=self.interval, id="cycle",
                               next_run_time=dt.datetime.now(dt.UTC))
        self.scheduler.start()
        log.info("agent started", extra={"interval_seconds": self.interval,
                                         "holder": self.holder,
                                         "lock_ttl_seconds": self.lock_ttl.total_seconds(),
                                         "unhealthy_after": self.unhealthy_after})

    def stop(self) -> bool:
        """Stop within ``stop_grace`` seconds: no new cycle fires, the running one is asked to
        stop (its waits and its next vendor call end in ``Stopping``; it keeps its intents)
        and given the grace period; a vendor call still in flight after it is abandoned.
        Returns whether the running cycle (if any) ended before the shutdown."""
        self.stopping.set()
        stopping.request_stop()
        began = time.monotonic()
        self.scheduler.pause()
        finished = self._idle.wait(self.stop_grace)
        if not finished:
            log.warning("a vendor call is still in flight after the stop's grace period; "
                        "exiting without it (the cycle's intents are kept; the lock's lease "
                        "runs out, or an agent restarted on this host takes it over)",
                        extra={"grace_seconds": self.stop_grace})
            self._abandon.set()
        self.scheduler.shutdown(wait=True)  # the job returns at once once abandoned
        log.info("agent stopped", extra={"cycle_finished": finished,
                                         "stop_seconds": round(time.monotonic() - began, 3)})
        return finished


def serve_health(agent: Agent, port: int, host: str = "127.0.0.1",
                 console: Console | None = None) -> RunningServer:
    """``/healthz`` and ``/metrics`` on ``host:port``, and the console beside them when given
    (``stagesync run``), served by uvicorn in a thread. ``OSError`` when the port is taken."""
    from sync_agent.console.app import Console, build_app
    from sync_agent.console.server import serve_in_thread

    if console is None:  # the console's pages need the mapping file's path: none without it
        console = Console(agent.store, None)
    console.health, console.metrics = agent.health, agent.metrics.prometheus
    return serve_in_thread(build_app(console), host, port, name="stagesync-health")


def run_forever(agent: Agent, health_port: int, health_host: str = "127.0.0.1",
                console: Console | None = None) -> None:
    """Run until SIGTERM or SIGINT, then stop within the grace period (``Agent.stop``)."""
    done = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal received; stopping", extra={"signal": signum})
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    health = serve_health(agent, health_port, health_host, console)
    log.info("serving /healthz, /metrics and the console",
             extra={"url": health.url, "console": console is not None})
    agent.start()
    try:
        done.wait()
    finally:
        agent.stop()
        health.shutdown()
