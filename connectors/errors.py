"""The connectors' exceptions: three kinds, sorted by what the caller should do.

    ConnectorError
    ├── RetriableError        wait and try again (429, 5xx, resets, timeouts)
    │   └── QuotaExhaustedError  the day's quota share is spent: stop the cycle, resume later
    │       └── DailyLimitError  HubSpot's daily limit (429 DAILY): stop until ``resume_at``
    ├── ReauthenticateError   the session expired: sign in again, then retry once
    └── FatalError            retrying will not help
        ├── ConfigurationError  wrong URL, credentials, permissions, unknown object
        │   └── UnreachableError  refused, unresolvable or untrusted (TLS) host: names the
        │                         host and the request, raised by the retry policy
        └── DataError           one record was refused (carries record, field, vendor code)

Messages never contain secrets: settings hold them as ``SecretStr`` and bodies are not echoed.
"""

from __future__ import annotations

import datetime as dt


class ConnectorError(Exception):
    """Base of every error a connector raises."""

    def __init__(self, system: str, message: str) -> None:
        super().__init__(f"{system}: {message}")
        self.system = system
        self.message = message


class BulkJobError(ConnectorError):
    """A Bulk API query job failed, was aborted, or did not finish in time."""


class RetriableError(ConnectorError):
    """``unapplied`` is True when the server certainly did not act on the request (429, 503,
    connection refused), so even a non-idempotent call such as a create may be sent again."""

    def __init__(self, system: str, message: str, retry_after: float | None = None,
                 unapplied: bool = False) -> None:
        super().__init__(system, message)
        self.retry_after = retry_after
        self.unapplied = unapplied


class QuotaExhaustedError(RetriableError):
    """Not retried within a cycle: the engine checkpoints and stops until quota returns."""


class DailyLimitError(QuotaExhaustedError):
    """HubSpot answered 429 with ``policyName: DAILY``: no call succeeds before the daily reset
    (midnight in the account's time zone), so HubSpot work stops until ``resume_at``."""

    def __init__(self, system: str, message: str, resume_at: dt.datetime) -> None:
        super().__init__(system, message)
        self.resume_at = resume_at


class ReauthenticateError(ConnectorError):
    pass


class FatalError(ConnectorError):
    pass


class ConfigurationError(FatalError):
    pass


class UnreachableError(ConfigurationError):
    """The host cannot be reached in a way that waiting will not mend: it refused the
    connection (or its name does not resolve) and has never answered this process, or its TLS
    certificate is not trusted. ``host`` is ``host:port``; ``request`` is ``METHOD URL`` (no
    query string: it can hold personal data) when known."""

    def __init__(self, system: str, message: str, *, host: str | None = None,
                 request: str | None = None, kind: str = "refused") -> None:
        super().__init__(system, message)
        self.host = host
        self.request = request
        self.kind = kind


class DataError(FatalError):
    def __init__(self, system: str, message: str, *, record_id: str | None = None,
                 field: str | None = None, code: str | None = None) -> None:
        super().__init__(system, message)
        self.record_id = record_id
        self.field = field
        self.code = code
