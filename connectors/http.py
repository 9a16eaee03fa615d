"""The requests Session every Salesforce call goes through.

``requests`` lets the ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` environment variables override a
Session's ``verify`` when ``trust_env`` is on, which silently drops a configured CA bundle (the
sandbox's, or a corporate one). So ``trust_env`` is off and proxies are taken only from the
settings, explicitly.
"""

from __future__ import annotations

from pathlib import Path

import requests


def make_session(ca_bundle: Path | None, proxies: dict[str, str] | None = None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca_bundle) if ca_bundle is not None else True
    if proxies:
        session.proxies.update(proxies)
    session.headers["User-Agent"] = "stagesync"
    return session
