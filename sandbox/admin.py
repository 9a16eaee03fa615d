"""A small client for the sandbox's admin routes (``/__sandbox/...``), for tests and benches.

Admin calls are not counted in the request log, not rate limited and never faulted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from sandbox.server import SandboxInfo, SandboxServer


class SandboxClient:
    def __init__(self, info: SandboxInfo, server: SandboxServer | None = None) -> None:
        self.info = info
        self.server = server
        self.http = requests.Session()
        self.http.trust_env = False  # REQUESTS_CA_BUNDLE must not override the sandbox CA
        self.http.verify = str(info.ca_bundle)

    def url(self, system: str, path: str) -> str:
        base = self.info.salesforce_url if system == "salesforce" else self.info.hubspot_url
        return base + path

    def admin(self, system: str, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, self.url(system, f"/__sandbox{path}"), json=body,
                                     timeout=30)
        response.raise_for_status()
        return response.json()

    def requests(self, system: str) -> dict[str, Any]:
        """Counts of API requests served, per endpoint and status."""
        return dict(self.admin(system, "GET", "/requests"))

    def reset_requests(self) -> None:
        for system in ("salesforce", "hubspot"):
            self.admin(system, "DELETE", "/requests")

    def faults(self, system: str, spec: str) -> None:
        self.admin(system, "POST", "/faults", {"spec": spec})

    def calls(self, system: str, endpoint_prefix: str = "") -> int:
        counts = self.requests(system)["endpoints"]
        return sum(n for name, n in counts.items() if name.startswith(endpoint_prefix))
