"""The demo's promise, on the realistic sandbox with the default mapping and the demo's data:
a first sync leaves no dead letter the data does not explain, and the cycle after it writes
nothing (records created in a cycle get their back-references in that same cycle)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from connectors.build import build_connectors
from connectors.config import load_settings
from mapping.validate import check_file
from sandbox.seed import SeedSizes
from sync_agent import state
from sync_agent.cycle import run_cycle
from sync_agent.store import open_store
from sync_agent.tables import DeadLetter, Link

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"


def vendor_writes(box: Any) -> dict[str, int]:
    """Write requests the sandbox served, per endpoint."""
    counts = {**box.requests("salesforce")["endpoints"], **box.requests("hubspot")["endpoints"]}
    return {name: n for name, n in counts.items() if n and (
        (name.startswith("salesforce.collections.") and not name.endswith("retrieve"))
        or (name.startswith("salesforce.sobject.") and not name.endswith("get"))
        or (name.startswith("hubspot.batch.") and not name.endswith("read"))
        or name in {"hubspot.objects.create", "hubspot.objects.update"})}


def test_a_first_sync_of_the_demo_data_settles_in_one_cycle(make_sandbox: Any,
                                                            tmp_path: Path) -> None:
    mapping, _ = check_file(DEFAULT)
    assert mapping is not None
    box = make_sandbox(sizes=SeedSizes())  # the demo's data, every realistic default on
    sf, hs = build_connectors(load_settings(box.info.settings_file))
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    first = run_cycle(store, mapping, sf, hs)
    assert sum(first.created.values()) > 0
    assert first.linked > 0
    with store.session() as session:
        letters = [(d.system, d.object, d.record_id, d.error_code, d.error_message)
                   for d in session.scalars(select(DeadLetter))]
        linked = len(list(session.scalars(select(Link))))
        open_before = {(g.kind, g.pair, g.key) for g in state.open_gaps(session)}
    assert letters == []
    assert first.failed == 0  # "refused (dead letters)": duplicate-rule refusals are gaps
    time.sleep(1.05)  # Salesforce stamps to the second
    box.reset_requests()
    second = run_cycle(store, mapping, sf, hs)
    assert dict(+second.written) == {}
    assert vendor_writes(box) == {}
    assert second.linked == 0
    assert sum(second.created.values()) == 0
    with store.session() as session:
        assert len(list(session.scalars(select(Link)))) == linked
        assert {(g.kind, g.pair, g.key) for g in state.open_gaps(session)} == open_before
