"""pytest fixtures that run the sandbox: ``sandbox`` (one per module) and ``make_sandbox``.

Register with ``pytest_plugins = ["sandbox.pytest_plugin"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.admin import SandboxClient
from sandbox.seed import SeedSizes
from sandbox.server import SandboxConfig, SandboxServer

SMALL = SeedSizes(leads=60, contacts=30, accounts=12, opportunities=16, hubspot_only_contacts=10)


@pytest.fixture
def make_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        Callable[..., SandboxClient]]:
    """Start a fresh sandbox with any ``SandboxConfig`` fields; stopped after the test."""
    started: list[SandboxServer] = []

    def factory(**overrides: Any) -> SandboxClient:
        overrides.setdefault("sizes", SMALL)
        overrides.setdefault("state_dir", Path(tmp_path_factory.mktemp("sandbox")))
        server = SandboxServer(SandboxConfig(**overrides))
        server.start()
        started.append(server)
        return SandboxClient(server.info, server)

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxClient]:
    """One seeded sandbox shared by a test module (rate limits off so tests are not paced)."""
    server = SandboxServer(SandboxConfig(
        sizes=SMALL, state_dir=Path(tmp_path_factory.mktemp("sandbox")),
        hubspot_per_ten_seconds=0, hubspot_search_per_second=0))
    server.start()
    yield SandboxClient(server.info, server)
    server.stop()
