"""The requests Session every Salesforce call goes through.

``requests`` lets the ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` environment variables override a
Session's ``verify`` when ``trust_env`` is on, which silently drops a configured CA bundle (the
sandbox's, or a corporate one). So ``trust_env`` is off and proxies are taken only from the
settings, explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

CONNECT_TIMEOUT = 10.0  # seconds: a host that takes longer to accept a connection is down


class TimeoutSession(requests.Session):
    """A Session with a default timeout: simple-salesforce sets none, and a hung socket would
    hang the agent. Connecting gets at most ``CONNECT_TIMEOUT`` (as the HubSpot connector's
    pools do); reading, the configured timeout."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.default_timeout: tuple[float, float] = (min(timeout, CONNECT_TIMEOUT), timeout)

    def request(self, method: str | bytes, url: str | bytes,
                *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)


def make_session(ca_bundle: Path | None, proxies: dict[str, str] | None = None,
                 timeout: float = 60.0) -> requests.Session:
    session = TimeoutSession(timeout)
    session.trust_env = False
    session.verify = str(ca_bundle) if ca_bundle is not None else True
    if proxies:
        session.proxies.update(proxies)
    session.headers["User-Agent"] = "stagesync"
    return session
