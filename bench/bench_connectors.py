"""The connectors' call counts and pacing, against the sandbox in its own process.

Bars: reading 10,000 changed Salesforce leads in <= 5 calls; upserting 10,000 HubSpot contacts in
<= 100 batch calls plus retries; with HubSpot's limit at 100 requests per 10 s, upserting 50,000
contacts within 1.1x of the 50 s bound with <= 1% of calls answered 429.
"""

from __future__ import annotations

import datetime as dt
import time

from bench.report import report
from bench.sandbox_process import sandbox_process
from connectors.config import load_settings
from connectors.hubspot import HubSpotConnector
from connectors.records import WriteRecord
from connectors.salesforce import SalesforceConnector
from sandbox.seed import SeedSizes

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
NOTHING = SeedSizes(leads=0, contacts=0, accounts=1, opportunities=0, hubspot_only_contacts=0)


def contacts(n: int, tag: str) -> list[WriteRecord]:
    return [WriteRecord(values={"email": f"{tag}.{i}@example.com", "firstname": tag,
                                "lastname": str(i), "lifecyclestage": "lead"})
            for i in range(n)]


def bench_salesforce_read() -> None:
    sizes = SeedSizes(leads=10_000, contacts=0, accounts=1, opportunities=0,
                      hubspot_only_contacts=0)
    with sandbox_process(sizes=sizes) as settings_file:
        sf = SalesforceConnector(load_settings(settings_file).salesforce)
        sf.describe("Lead")  # cached per cycle; counted apart from the read
        started = time.perf_counter()
        records = list(sf.read_changed("Lead", EPOCH, dt.datetime.now(dt.UTC),
                                       ["Email", "Status", "LastName", "Company", "OwnerId"]))
        elapsed = time.perf_counter() - started
        reads = sf.calls["GET query"] + sf.calls["GET query/{id}"]
        print(f"# read {len(records)} leads in {elapsed:.2f} s; all calls: {dict(sf.calls)}")
        assert len(records) == 10_000
        report("salesforce_read_10k_changed_leads_calls", reads, "calls", 5,
               higher_is_better=False)


def bench_hubspot_upsert() -> None:
    with sandbox_process(sizes=NOTHING, hubspot_per_ten_seconds=100) as settings_file:
        hs = HubSpotConnector(load_settings(settings_file).hubspot)
        results = hs.upsert("contacts", contacts(10_000, "bench"))
        assert all(r.ok for r in results)
        batches = hs.calls["contacts.batch.create"]
        print(f"# all calls: {dict(hs.calls)}; retries {hs.policy.retries}")
        report("hubspot_upsert_10k_contacts_batch_calls", batches - hs.policy.retries, "calls",
               100, higher_is_better=False)


def bench_hubspot_paced() -> None:
    with sandbox_process(sizes=NOTHING, hubspot_per_ten_seconds=100,
                         hubspot_search_per_second=5) as settings_file:
        hs = HubSpotConnector(load_settings(settings_file).hubspot)
        hs.describe("contacts")  # before the clock starts: the write below is what is timed
        records = contacts(50_000, "paced")
        started = time.perf_counter()
        results = hs.upsert("contacts", records)
        elapsed = time.perf_counter() - started
        assert all(r.ok for r in results)
        calls = sum(hs.calls.values()) - 1
        share = hs.rate_limited / calls
        print(f"# {calls} calls, {hs.rate_limited} answered 429, {elapsed:.1f} s")
        report("hubspot_upsert_50k_paced_seconds", elapsed, "s", 55, higher_is_better=False)
        report("hubspot_upsert_50k_paced_429_share", share * 100, "%", 1,
               higher_is_better=False)


def main() -> None:
    bench_salesforce_read()
    bench_hubspot_upsert()
    bench_hubspot_paced()


if __name__ == "__main__":
    main()
