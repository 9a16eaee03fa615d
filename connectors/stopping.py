"""The process-wide stop request, and waits that end the moment it is made.

The agent's SIGTERM handling sets ``STOP``; every wait the connectors make between calls (a
retry's backoff, a ``Retry-After``, client-side pacing, a Bulk job's polling) is a
``STOP.wait`` that raises ``Stopping`` as soon as the stop is requested, and no new vendor call
starts after it. A cycle that meets ``Stopping`` stops as a crashed one would, minus the crash:
its write-ahead intents and pending creates stay, so the next run finishes the work with no
duplicate. ``Stopping`` is not a ``ConnectorError``: nothing that handles a vendor's answer
(and carries on) may swallow it.
"""

from __future__ import annotations

import threading

STOP = threading.Event()


class Stopping(Exception):
    """A stop was requested: abandon this call (and the cycle around it)."""

    def __init__(self, during: str = "a wait") -> None:
        super().__init__(f"stop requested during {during}")
        self.during = during


def request_stop() -> None:
    """Ask every wait and every next vendor call in this process to give up."""
    STOP.set()


def clear() -> None:
    """Forget an earlier stop request (an agent started again in the same process)."""
    STOP.clear()


def requested() -> bool:
    return STOP.is_set()


def check(during: str = "a vendor call") -> None:
    """Raise ``Stopping`` if a stop was requested: called before each vendor call."""
    if STOP.is_set():
        raise Stopping(during)


def pause(seconds: float) -> None:
    """Wait ``seconds``, unless a stop is requested first: then raise ``Stopping`` at once."""
    if STOP.wait(max(seconds, 0.0)):
        raise Stopping(f"a {seconds:.1f} s wait")
