"""Association sync: the v4 association calls one cycle makes for N lead conversions, against
the least the batch endpoints allow.

N leads are synced (HubSpot contacts), then converted in Salesforce with an Account and an
Opportunity each. The next cycle moves the links to the Contacts, creates the companies and
deals, and keeps the default mapping's three associations (contact -> primary company, deal
-> primary company, deal -> contact). For each association the floor is one batch read per
1,000 records and one batch create per 2,000, plus one labels read: 3 x (N/1,000 + N/2,000)
+ 3. The bar is that floor: the engine may not read or write an association more often than
the batch sizes force.

``python -m bench.bench_associations --conversions 10000`` (env
``BENCH_ASSOCIATION_CONVERSIONS``).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

from bench.report import report

READ_BATCH, WRITE_BATCH = 1000, 2000
ENDPOINTS = ("associations.batch.read", "associations.batch.create", "associations.labels")


def measure(conversions: int) -> dict[str, int]:
    """The association calls of the cycle that follows ``conversions`` conversions."""
    from connectors.build import build_connectors
    from connectors.config import load_settings
    from connectors.records import WriteRecord
    from mapping.validate import check_file
    from sandbox.admin import SandboxClient
    from sandbox.seed import SeedSizes
    from sandbox.server import SandboxConfig, SandboxServer
    from sync_agent.cycle import run_cycle
    from sync_agent.store import open_store

    mapping, _ = check_file(Path(__file__).resolve().parents[1] / "mapping" / "default.yaml")
    assert mapping is not None
    with tempfile.TemporaryDirectory() as folder:
        server = SandboxServer(SandboxConfig(
            state_dir=Path(folder), sizes=SeedSizes(leads=0, contacts=0, accounts=0,
                                                    opportunities=0, hubspot_only_contacts=0),
            # call counts, not time, are measured: no search lag or pacing to wait out
            search_lag_seconds=0, hubspot_per_ten_seconds=0, hubspot_search_per_second=0))
        server.start()
        try:
            box = SandboxClient(server.info, server)
            settings = load_settings(box.info.settings_file)
            sf, hs = build_connectors(settings.model_copy(update={
                "hubspot": settings.hubspot.model_copy(update={
                    "requests_per_ten_seconds": 0, "searches_per_second": 0})}))
            store = open_store(f"sqlite:///{Path(folder) / 'state.db'}")
            leads = sf.upsert("Lead", [WriteRecord(values={
                "LastName": f"Convert{n}", "Company": f"Assoc Bench {n} AG",
                "Email": f"assoc.bench.{n}@example.com", "Status": "Working",
                "Website": f"https://assoc-bench-{n}.example.com"})
                for n in range(conversions)])
            run_cycle(store, mapping, sf, hs)
            time.sleep(1.05)  # Salesforce stamps to the second
            for n, lead in enumerate(leads):
                box.admin("salesforce", "POST", "/salesforce/convertLead", {
                    "leadId": lead.id, "opportunityName": f"Assoc Bench {n} - New"})
            time.sleep(1.05)
            cycle = run_cycle(store, mapping, sf, hs)
            assert cycle.converted == conversions, cycle.converted
            return {k: cycle.calls.get(k, 0) for k in ENDPOINTS}
        finally:
            server.stop()


def floor(conversions: int, associations: int = 3) -> int:
    return associations * (math.ceil(conversions / READ_BATCH)
                           + math.ceil(conversions / WRITE_BATCH) + 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conversions", type=int, default=int(os.environ.get(
        "BENCH_ASSOCIATION_CONVERSIONS", "10000")))
    args = parser.parse_args(argv)
    calls = measure(args.conversions)
    report(f"association_calls_{args.conversions}_conversions", sum(calls.values()), "calls",
           floor(args.conversions), higher_is_better=False)


if __name__ == "__main__":
    main()
