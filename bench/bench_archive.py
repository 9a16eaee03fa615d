"""The HubSpot archive read per quiet cycle, with 50,000 archived contacts.

HubSpot lists archived records only in id order, with no filter on the archive time (search
never shows them), so reading the whole archive every cycle costs one call per 100 archived
records: 500 calls a cycle here. The engine reads a slice per cycle instead
(``archive_pages_per_cycle``, 20 pages by default) and picks up where it stopped.

Bar: <= 25 ``contacts.list`` calls per quiet cycle (the slice, plus the small companies and
deals archives); the cycles one full pass takes are printed too.
"""

from __future__ import annotations

import tempfile

from bench.bench_engine import leads_only
from bench.report import report
from bench.sandbox_process import sandbox_process
from connectors.build import build_connectors
from connectors.config import load_settings
from connectors.records import WriteRecord
from sandbox.seed import SeedSizes
from sync_agent.cycle import run_cycle
from sync_agent.store import open_store

ARCHIVED = 50_000
QUIET_CYCLES = 30


def main() -> None:
    sizes = SeedSizes(leads=50, contacts=0, accounts=1, opportunities=0,
                      hubspot_only_contacts=0)
    mapping = leads_only()
    # lenience: search_lag_seconds=0, so the 50,000 contacts made and archived before the
    # measured cycles are out of search at once (the bench is about the archive, not search).
    with sandbox_process(sizes=sizes, hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                         search_lag_seconds=0) as settings_file, \
            tempfile.TemporaryDirectory() as folder:
        settings = load_settings(settings_file)
        hs_settings = settings.hubspot.model_copy(update={
            "requests_per_ten_seconds": 0, "searches_per_second": 0,
            # a slice every cycle: what one poll costs (by default a poll comes every 15 min)
            "archive_poll_minutes": 0})
        sf, hs = build_connectors(settings.model_copy(update={"hubspot": hs_settings}))
        store = open_store(f"sqlite:///{folder}/state.db")
        run_cycle(store, mapping, sf, hs)
        made = hs.upsert("contacts", [WriteRecord(values={"email": f"gone{n}@archive.example"})
                                      for n in range(ARCHIVED)])
        hs.delete("contacts", [r.id for r in made if r.id])
        run_cycle(store, mapping, sf, hs)
        per_cycle: list[int] = []
        archived_seen = 0
        passes_done_at = None
        for number in range(QUIET_CYCLES):
            before = hs.calls["contacts.list"]
            report_ = run_cycle(store, mapping, sf, hs)
            per_cycle.append(hs.calls["contacts.list"] - before)
            assert sum(report_.written.values()) == 0
            archived_seen += per_cycle[-1] * 100
            if passes_done_at is None and archived_seen >= ARCHIVED:
                passes_done_at = number + 1
        average = sum(per_cycle) / len(per_cycle)
        print(f"# contacts.list calls per quiet cycle: {per_cycle}; a full scan each cycle "
              f"would be {ARCHIVED // 100}; one pass over the archive takes "
              f"{passes_done_at} cycles")
        report("hubspot_archive_list_calls_per_quiet_cycle_50k_archived", average, "calls", 25,
               higher_is_better=False)
        report("hubspot_archive_worst_quiet_cycle_50k_archived", max(per_cycle), "calls", 25,
               higher_is_better=False)


if __name__ == "__main__":
    main()
