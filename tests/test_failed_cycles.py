"""Every cycle that fails is on record, whatever step it failed in: the run, with the error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors.build import build_connectors
from connectors.config import load_settings
from connectors.errors import ConfigurationError
from mapping.validate import check_file
from sandbox.hubspot.access import DEPLOYMENT_SCOPES
from sync_agent.cycle import run_cycle
from sync_agent.store import open_store
from sync_agent.tables import Run

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"


def test_a_cycle_failing_while_it_loads_owners_and_schemas_is_recorded_failed(
        make_sandbox: Any, tmp_path: Path) -> None:
    mapping, _ = check_file(DEFAULT)
    assert mapping is not None
    box = make_sandbox(hubspot_scopes=tuple(s for s in DEPLOYMENT_SCOPES
                                            if s != "crm.objects.owners.read"))
    sf, hs = build_connectors(load_settings(box.info.settings_file))
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    with pytest.raises(ConfigurationError):
        run_cycle(store, mapping, sf, hs)
    with store.session() as session:
        runs = [(r.kind, r.status, r.error or "") for r in session.scalars(select(Run))]
    assert len(runs) == 1
    kind, status, error = runs[0]
    assert (kind, status) == ("cycle", "failed")
    assert "crm.objects.owners.read" in error
