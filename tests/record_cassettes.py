"""Record the connector cassettes against the sandbox: ``python -m tests.record_cassettes``.

The sandbox listens on the fixed ports the cassettes name; recorded files are scrubbed of
Authorization headers, cookies, the token grant's form and the session id.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from connectors.config import load_settings
from connectors.hubspot import HubSpotConnector
from connectors.retry import RetryPolicy
from connectors.salesforce import SalesforceConnector
from sandbox.seed import SeedSizes
from sandbox.server import SandboxConfig, SandboxServer
from tests.cassette_scenarios import CASSETTES, HUBSPOT_PORT, SALESFORCE_PORT, run


def main() -> None:
    for old in CASSETTES.glob("*.yaml"):
        old.unlink()
    with tempfile.TemporaryDirectory() as state:
        server = SandboxServer(SandboxConfig(
            salesforce_port=SALESFORCE_PORT, hubspot_port=HUBSPOT_PORT, seed=11,
            state_dir=Path(state), hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
            sizes=SeedSizes(leads=2100, contacts=20, accounts=5, opportunities=5,
                            hubspot_only_contacts=200)))
        server.start()
        try:
            settings = load_settings(server.info.settings_file)
            no_wait = RetryPolicy(initial=0.0, maximum=0.0)
            names = run("salesforce", SalesforceConnector(settings.salesforce, no_wait), "all")
            hs = settings.hubspot.model_copy(update={"requests_per_ten_seconds": 0,
                                                     "searches_per_second": 0})
            names += run("hubspot", HubSpotConnector(hs, no_wait), "all")
        finally:
            server.stop()
    for name in names:
        text = (CASSETTES / name).read_text()
        for secret in (server.info.hubspot_token, server.info.credentials.password,
                       server.info.credentials.client_secret):
            assert secret not in text, f"{name} holds a secret"
    print(f"recorded {len(names)} cassettes in {CASSETTES}")


if __name__ == "__main__":
    main()
