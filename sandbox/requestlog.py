"""Counts of the requests each emulator served, per named endpoint and per status.

Tests and benchmarks read these (``GET /__sandbox/requests``) to assert how many API calls a
piece of the product made, which is how "calls per record" bars are measured.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestLog:
    """Thread-safe per-endpoint and per-status counters."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    by_endpoint: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    by_endpoint_status: Counter[str] = field(default_factory=Counter)

    def record(self, endpoint: str, status: int) -> None:
        with self._lock:
            self.by_endpoint[endpoint] += 1
            self.by_status[str(status)] += 1
            self.by_endpoint_status[f"{endpoint} {status}"] += 1

    def reset(self) -> None:
        with self._lock:
            self.by_endpoint.clear()
            self.by_status.clear()
            self.by_endpoint_status.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": sum(self.by_endpoint.values()),
                "endpoints": dict(self.by_endpoint),
                "statuses": dict(self.by_status),
                "endpointStatuses": dict(self.by_endpoint_status),
            }
