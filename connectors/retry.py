"""The one retry policy every vendor call goes through.

Composed from named tenacity parts: retry only ``RetriableError``; wait what the server asked
(``Retry-After``), else exponential backoff with jitter; a bounded number of attempts; the last
error re-raised. A ``ReauthenticateError`` triggers one sign-in and one more try, never a loop.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
)

from connectors.errors import QuotaExhaustedError, ReauthenticateError, RetriableError

T = TypeVar("T")
log = logging.getLogger("stagesync.connectors")


class RetryPolicy:
    def __init__(self, attempts: int = 6, initial: float = 0.5, maximum: float = 30.0,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.attempts = attempts
        self.initial = initial
        self.maximum = maximum
        self._sleep = sleep
        self.retries = 0

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetriableError) and error.retry_after is not None:
            return min(error.retry_after, 120.0)
        backoff = min(self.maximum, self.initial * 2 ** (state.attempt_number - 1))
        return float(backoff + random.uniform(0, backoff / 2))  # noqa: S311 - jitter only

    def _before_sleep(self, state: RetryCallState) -> None:
        self.retries += 1
        error = state.outcome.exception() if state.outcome else None
        log.warning("retrying after %s (attempt %d)", error, state.attempt_number)

    def run(self, call: Callable[[], T], reauthenticate: Callable[[], None] | None = None,
            idempotent: bool = True) -> T:
        """Run ``call`` under the policy; on an expired session sign in once and try again.

        A non-idempotent call (a create) is retried only when the server certainly did not act
        on it; otherwise a lost answer could mean a duplicate record.
        """
        retry = retry_if_exception_type(RetriableError) & retry_if_not_exception_type(
            QuotaExhaustedError)
        if not idempotent:
            retry = retry & retry_if_exception(
                lambda e: isinstance(e, RetriableError) and e.unapplied)
        retrying = Retrying(
            retry=retry,
            wait=self._wait, stop=stop_after_attempt(self.attempts), reraise=True,
            before_sleep=self._before_sleep, sleep=self._sleep or time.sleep)
        try:
            return retrying(call)
        except ReauthenticateError:
            if reauthenticate is None:
                raise
            reauthenticate()
            return retrying(call)
