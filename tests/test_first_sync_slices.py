"""A first sync a slice at a time decides exactly what the whole first sync decides.

Two sandboxes seeded alike (the demo's data, every realistic default on) get a first sync
each: one whole, one 40 Salesforce records a slice. The links, the records created in each
system, the gaps, the stage history and the ledger must come out the same (a record created
by the agent gets a new id in each sandbox, so it is compared by the seeded record it was made
from), and the cycle after the sliced one writes nothing.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors.build import build_connectors
from connectors.config import load_settings
from mapping.validate import check_file
from sandbox.seed import SeedSizes
from sync_agent import state
from sync_agent.cycle import run_cycle
from sync_agent.spool import PREFIX
from sync_agent.store import Store, open_store
from sync_agent.tables import DeadLetter, LedgerEntry, Link, StageVisit

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
SIZES = SeedSizes()  # 300 leads, 150 contacts, 60 accounts, 80 opportunities


def _seeded(box: Any) -> set[str]:
    """Every record id in both systems before the sync."""
    org, portal = box.server.org, box.server.portal
    return ({i for rows in org.records.values() for i in rows}
            | {i for rows in portal.records.values() for i in rows})


def _outcome(store: Store, seeded: set[str]) -> dict[str, Any]:
    """What the first sync left, with ids the agent's creates got replaced by what they were
    made from (the other side of their link)."""
    with store.session() as session:
        links = list(session.scalars(select(Link)))
        made_from = {}
        for link in links:
            if link.sf_id not in seeded:
                made_from[link.sf_id] = f"made from {link.hs_id}"
            if link.hs_id not in seeded:
                made_from[link.hs_id] = f"made from {link.sf_id}"

        def norm(record_id: str) -> str:
            return made_from.get(record_id, record_id)

        return {
            "links": sorted((k.pair, norm(k.sf_id), norm(k.hs_id)) for k in links),
            "gaps": sorted((g.kind, g.pair, norm(g.key)) for g in state.open_gaps(session)),
            "letters": sorted((d.system, d.object, norm(d.record_id or ""), d.error_code)
                              for d in session.scalars(select(DeadLetter))),
            "stages": sorted((v.system, norm(v.record_id), v.stage_map, v.stage or "",
                              v.left_at is None) for v in session.scalars(select(StageVisit))),
            # an association's value is an id too (of the record it points to)
            "ledger": Counter((e.system, e.object, norm(e.record_id), e.field,
                               norm(str(e.new)) if e.field.startswith("associations.")
                               or e.field in ("AccountId", "ContactId") else str(e.new))
                              for e in session.scalars(select(LedgerEntry))),
        }


def _first_sync(make_sandbox: Any, folder: Path, slice_records: int
                ) -> tuple[Any, Any, Store, dict[str, Any], Any]:
    mapping, _ = check_file(DEFAULT)
    assert mapping is not None
    box = make_sandbox(sizes=SIZES, hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    seeded = _seeded(box)
    sf, hs = build_connectors(load_settings(box.info.settings_file))
    store = open_store(f"sqlite:///{folder / 'state.db'}")
    report = run_cycle(store, mapping, sf, hs, slice_records=slice_records)
    return box, (mapping, sf, hs), store, _outcome(store, seeded), report


def test_a_sliced_first_sync_decides_what_the_whole_one_does(
        make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "whole").mkdir()
    (tmp_path / "sliced").mkdir()
    (tmp_path / "temp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))  # where spools go
    _, _, _, whole, whole_report = _first_sync(make_sandbox, tmp_path / "whole", 10_000)
    box, (mapping, sf, hs), store, sliced, sliced_report = _first_sync(
        make_sandbox, tmp_path / "sliced", 40)
    assert whole_report.linked > 100
    assert sum(whole_report.created.values()) > 100
    assert whole["gaps"]  # the demo data has duplicates and records no rule may create
    for part in ("links", "gaps", "letters", "stages", "ledger"):
        assert sliced[part] == whole[part], part
    assert dict(sliced_report.created) == dict(whole_report.created)
    assert dict(sliced_report.written) == dict(whole_report.written)
    assert sliced_report.linked == whole_report.linked
    assert not list((tmp_path / "temp").glob(f"{PREFIX}*"))  # each spool went with its cycle
    # settled in one cycle, sliced or not
    time.sleep(1.05)
    box.reset_requests()
    again = run_cycle(store, mapping, sf, hs, slice_records=40)
    assert dict(+again.written) == {}
    assert sum(again.created.values()) == 0
    assert again.linked == 0
