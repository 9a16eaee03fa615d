"""pytest fixtures that run the sandbox: ``sandbox`` (one per module) and ``make_sandbox``.

Register with ``pytest_plugins = ["sandbox.pytest_plugin"]``.

Both answer as the live APIs do by default (``SandboxConfig``'s defaults: HubSpot search lags
writes by ``DEFAULT_SEARCH_LAG_SECONDS``, batch results carry no ``objectWriteTraceId`` and come
in no promised order, search ``IN`` does not fold case). A test that needs a lenience names it:
``make_sandbox(search_lag_seconds=0)``, or, for the module's shared ``sandbox``, by overriding
``sandbox_options`` in that module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.admin import SandboxClient
from sandbox.seed import SeedSizes
from sandbox.server import DEFAULT_SEARCH_LAG_SECONDS, SandboxConfig, SandboxServer

SMALL = SeedSizes(leads=60, contacts=30, accounts=12, opportunities=16, hubspot_only_contacts=10)


@pytest.fixture
def make_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        Callable[..., SandboxClient]]:
    """Start a fresh sandbox with any ``SandboxConfig`` fields; stopped after the test."""
    started: list[SandboxServer] = []

    def factory(**overrides: Any) -> SandboxClient:
        overrides.setdefault("sizes", SMALL)
        overrides.setdefault("state_dir", Path(tmp_path_factory.mktemp("sandbox")))
        overrides.setdefault("search_lag_seconds", DEFAULT_SEARCH_LAG_SECONDS)
        server = SandboxServer(SandboxConfig(**overrides))
        server.start()
        started.append(server)
        return SandboxClient(server.info, server)

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def sandbox_options() -> dict[str, Any]:
    """Extra ``SandboxConfig`` fields for the module's shared ``sandbox``. Override it in a test
    module to ask for a named lenience (with a comment saying why)."""
    return {}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory,
            sandbox_options: dict[str, Any]) -> Iterator[SandboxClient]:
    """One seeded sandbox shared by a test module (rate limits off so tests are not paced)."""
    options: dict[str, Any] = {"sizes": SMALL, "hubspot_per_ten_seconds": 0,
                               "hubspot_search_per_second": 0, **sandbox_options}
    server = SandboxServer(SandboxConfig(
        state_dir=Path(tmp_path_factory.mktemp("sandbox")), **options))
    server.start()
    yield SandboxClient(server.info, server)
    server.stop()
