"""Client-side pacing, so the agent stays under quota instead of bouncing off 429s.

``RollingWindow`` mirrors HubSpot's limits (N requests per rolling 10 s; searches per second),
with a small margin because the server counts arrivals and we count departures. Its waits end
in ``Stopping`` the moment the agent is asked to stop (``stopping.pause``).
``DailyBudget`` stops work at a share of Salesforce's daily API allowance; ``HeaderUsage``
keeps HubSpot's daily use as its response headers say.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Mapping

from connectors import stopping
from connectors.errors import QuotaExhaustedError


class RollingWindow:
    """At most ``limit`` acquisitions in any ``window`` seconds; ``acquire`` waits for room."""

    def __init__(self, limit: int, window: float, margin: float = 0.05,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = stopping.pause) -> None:
        self.limit = limit
        self.window = window + margin
        self._clock = clock
        self._sleep = sleep
        self._sent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self) -> None:
        if self.limit <= 0:
            return
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and self._sent[0] <= now - self.window:
                    self._sent.popleft()
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    return
                # at least 1 ms: a float-rounded wait below the clock's resolution would spin
                wait = max(self._sent[0] + self.window - now, 0.001)
            self.waited += wait
            self._sleep(wait)

    def back_off(self, seconds: float) -> None:
        """After a 429: treat the window as full for ``seconds``."""
        with self._lock:
            until = self._clock() + seconds - self.window
            self._sent.extend([until] * max(self.limit - len(self._sent), 0))


class DailyBudget:
    """Salesforce's daily allowance as last reported by ``Sforce-Limit-Info``.

    Work stops (``QuotaExhaustedError``) once ``used / limit`` reaches ``stop_share``, leaving
    the rest of the day's calls to the org's other integrations, as HubSpot's own connector does
    at 75%. ``max_calls`` optionally caps this agent's own calls per day.
    """

    def __init__(self, stop_share: float = 0.75, max_calls: int | None = None) -> None:
        self.stop_share = stop_share
        self.max_calls = max_calls
        self.used: int | None = None
        self.limit: int | None = None
        self.own_calls = 0

    def observe(self, header: str | None) -> None:
        """Read ``api-usage=USED/LIMIT`` from a response's Sforce-Limit-Info header."""
        if not header:
            return
        for part in header.split(","):
            key, _, value = part.strip().partition("=")
            if key == "api-usage" and "/" in value:
                used, _, limit = value.partition("/")
                if used.isdigit() and limit.isdigit():
                    self.used, self.limit = int(used), int(limit)

    def check(self) -> None:
        if self.used is not None and self.limit and self.used >= self.stop_share * self.limit:
            raise QuotaExhaustedError(
                "salesforce", f"{self.used} of {self.limit} daily API requests used; stopping at "
                f"{self.stop_share:.0%} to leave the rest for other integrations")
        if self.max_calls is not None and self.own_calls >= self.max_calls:
            raise QuotaExhaustedError("salesforce", f"this agent's daily budget of "
                                      f"{self.max_calls} calls is spent")

    @property
    def share_used(self) -> float | None:
        if self.used is None or not self.limit:
            return None
        return self.used / self.limit


class HeaderUsage:
    """HubSpot's daily allowance as its responses report it (``X-HubSpot-RateLimit-Daily`` and
    ``-Daily-Remaining`` on every answer but searches'): for metrics, not for pacing, which
    the rolling windows and the 429 DAILY stop do."""

    LIMIT = "X-HubSpot-RateLimit-Daily"
    REMAINING = "X-HubSpot-RateLimit-Daily-Remaining"

    def __init__(self) -> None:
        self.used: int | None = None
        self.limit: int | None = None

    def observe(self, headers: Mapping[str, str] | None) -> None:
        if not headers:
            return
        limit, remaining = headers.get(self.LIMIT), headers.get(self.REMAINING)
        if limit and remaining and limit.isdigit() and remaining.isdigit():
            self.limit = int(limit)
            self.used = max(self.limit - int(remaining), 0)
