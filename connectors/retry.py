"""The one retry policy every vendor call goes through.

Composed from named tenacity parts: retry only ``RetriableError``; wait what the server asked
(``Retry-After``), else exponential backoff with jitter; a bounded number of attempts; the last
error re-raised. A ``ReauthenticateError`` triggers one sign-in and one more try, never a loop.

Some network failures are not worth minutes of backoff. A host whose TLS certificate is not
trusted will not become trusted; a host that refuses the connection (or whose name does not
resolve) and has never answered this process is most likely the wrong URL or a service that is
down. Those get at most one quick retry and then an ``UnreachableError`` that names the host
and the request. A refusal from a host that did answer before (a restart, a failover) stays
transient, as do connection resets and timeouts.

Every wait is ``stopping.pause`` (unless a test injects its own ``sleep``) and every attempt
starts with ``stopping.check``: once the agent is asked to stop, a backoff or a ``Retry-After``
of minutes ends at once in ``Stopping``, which is not retried.
"""

from __future__ import annotations

import logging
import random
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import requests
from tenacity import RetryCallState, Retrying, stop_after_attempt
from urllib3.exceptions import MaxRetryError

from connectors import stopping
from connectors.errors import (
    QuotaExhaustedError,
    ReauthenticateError,
    RetriableError,
    UnreachableError,
)

T = TypeVar("T")
log = logging.getLogger("stagesync.connectors")
QUICK_RETRY = 0.25  # seconds before the one retry a never-answered host gets
DEFAULT_PORTS = {"https": 443, "http": 80}
_SOQL_FROM = re.compile(r"\bFROM\s+([A-Za-z][A-Za-z0-9_]*)", re.IGNORECASE)


@dataclass(frozen=True)
class NetworkFailure:
    """A connection that never carried a request: ``kind`` is ``refused``, ``unresolved`` or
    ``tls``; ``host`` is ``host:port``; ``request`` is ``METHOD URL`` without the query."""

    kind: str
    host: str | None
    request: str | None
    detail: str


def host_of(url: str) -> str | None:
    """``host:port`` of a URL (the scheme's default port when none is written)."""
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return f"{parts.hostname.lower()}:{port}" if port else parts.hostname.lower()


def describe_request(method: str | None, url: str) -> str:
    """``GET https://host/path`` with the query left out (it can hold personal data); a SOQL
    query says which object it reads."""
    parts = urlsplit(url)
    text = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else parts.path
    soql = parse_qs(parts.query).get("q")
    if soql:
        found = _SOQL_FROM.search(soql[0])
        if found:
            text += f" (query on {found.group(1)})"
    return f"{method.upper()} {text}" if method else text


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error and everything behind it: causes, contexts, urllib3 reasons, wrapped args."""
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending and len(seen) < 32:
        link = pending.pop(0)
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        reason = getattr(link, "reason", None)
        pending += [e for e in (link.__cause__, link.__context__, reason, *link.args)
                    if isinstance(e, BaseException)]


def network_failure(error: BaseException) -> NetworkFailure | None:
    """What kind of connection failure is behind ``error``, if it is one retrying cannot
    be expected to fix; None for everything else (resets, timeouts, HTTP answers)."""
    kind = detail = ""
    host = method = url = None
    for link in _chain(error):
        if isinstance(link, requests.RequestException) and link.request is not None \
                and url is None and link.request.url:
            method, url = link.request.method, str(link.request.url)
        if isinstance(link, MaxRetryError) and link.pool is not None:
            pool = link.pool
            host = host or f"{pool.host}:{pool.port}"
            if url is None:
                url = f"{pool.scheme}://{pool.host}:{pool.port}{link.url or ''}"
        if isinstance(link, ssl.SSLCertVerificationError):
            kind, detail = "tls", str(link.verify_message or link.reason or link)
        elif isinstance(link, ssl.SSLError) and link.reason == "WRONG_VERSION_NUMBER" \
                and not kind:
            kind, detail = "tls", "the port does not speak TLS"
        elif isinstance(link, ConnectionRefusedError) and not kind:
            kind = "refused"
        elif isinstance(link, socket.gaierror) and not kind:
            kind, detail = "unresolved", str(link.strerror or link)
    if not kind:
        return None
    if host is None and url is not None:
        host = host_of(url)
    return NetworkFailure(kind, host, describe_request(method, url) if url else None, detail)


def unreachable(error: RetriableError, failure: NetworkFailure, attempts: int
                ) -> UnreachableError:
    where = failure.request or "request"
    host = failure.host or "the host"
    if failure.kind == "tls":
        text = (f"{where}: the TLS certificate of {host} is not trusted ({failure.detail}): "
                "check the URL and the CA bundle")
    elif failure.kind == "unresolved":
        text = f"{where}: the host name of {host} does not resolve: check the URL"
    else:
        tries = {1: "once", 2: "twice"}.get(attempts, f"{attempts} times")
        text = (f"{where}: connection refused by {host} (never answered; tried {tries}): check "
                "the URL and that the service is up")
    return UnreachableError(error.system, text, host=failure.host, request=failure.request,
                            kind=failure.kind)


class RetryPolicy:
    def __init__(self, attempts: int = 6, initial: float = 0.5, maximum: float = 30.0,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.attempts = attempts
        self.initial = initial
        self.maximum = maximum
        self._sleep = sleep
        self.retries = 0
        self.answered: set[str] = set()  # host:port that sent an HTTP answer
        self._reached = False  # some call got past the connection (for unreported hosts)

    def mark_answered(self, url: str) -> None:
        """A connector that sees every response reports its host here, so a refusal is
        judged per host; otherwise any answer at all counts."""
        host = host_of(url)
        if host is not None:
            self.answered.add(host)

    def has_answered(self, host: str | None) -> bool:
        if host is not None and host in self.answered:
            return True
        return self._reached and not self.answered

    def _fatal(self, failure: NetworkFailure | None) -> bool:
        """True when retrying this failure (any more) cannot help."""
        if failure is None:
            return False
        return failure.kind == "tls" or not self.has_answered(failure.host)

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetriableError) and error.retry_after is not None:
            return min(error.retry_after, 120.0)
        if error is not None and self._fatal(network_failure(error)):
            return QUICK_RETRY
        backoff = min(self.maximum, self.initial * 2 ** (state.attempt_number - 1))
        return float(backoff + random.uniform(0, backoff / 2))  # noqa: S311 - jitter only

    def _before_sleep(self, state: RetryCallState) -> None:
        self.retries += 1
        error = state.outcome.exception() if state.outcome else None
        log.warning("retrying after %s (attempt %d)", error, state.attempt_number)

    def _retry(self, idempotent: bool) -> Callable[[RetryCallState], bool]:
        def decide(state: RetryCallState) -> bool:
            if state.outcome is None or not state.outcome.failed:
                return False
            error = state.outcome.exception()
            if not isinstance(error, RetriableError) or isinstance(error, QuotaExhaustedError):
                self._reached = True  # an answer (or a local refusal), not a dead connection
                return False
            if not idempotent and not error.unapplied:
                return False
            failure = network_failure(error)
            if failure is None:
                return True
            if failure.kind == "tls":
                return False
            # a host that never answered gets one quick retry; one that did is mid-restart
            return state.attempt_number < 2 or self.has_answered(failure.host)

        return decide

    def _attempts(self, retrying: Retrying, call: Callable[[], T]) -> T:
        try:
            result = retrying(call)
        except RetriableError as exc:
            failure = network_failure(exc)
            if failure is not None and self._fatal(failure):
                attempts = int(retrying.statistics.get("attempt_number", 1))
                raise unreachable(exc, failure, attempts) from exc
            raise
        self._reached = True
        return result

    def run(self, call: Callable[[], T], reauthenticate: Callable[[], None] | None = None,
            idempotent: bool = True) -> T:
        """Run ``call`` under the policy; on an expired session sign in once and try again.

        A non-idempotent call (a create) is retried only when the server certainly did not act
        on it; otherwise a lost answer could mean a duplicate record.
        """
        retrying = Retrying(
            retry=self._retry(idempotent),
            wait=self._wait, stop=stop_after_attempt(self.attempts), reraise=True,
            before_sleep=self._before_sleep, sleep=self._sleep or stopping.pause)

        def attempt() -> T:
            stopping.check()  # a Stopping outcome is not retriable: it ends the loop
            return call()

        try:
            return self._attempts(retrying, attempt)
        except ReauthenticateError:
            if reauthenticate is None:
                raise
            reauthenticate()
            return self._attempts(retrying, attempt)
