"""The first sync at scale, and the cycles right after it.

At 10,000, 50,000 and 200,000 leads (with contacts, accounts, opportunities and HubSpot-only
contacts in the seed's default proportions), each size in a fresh process so its peak RSS is
its own: the sandbox in its own process with its rate limits on, the default mapping, SQLite
in a temporary folder, cycles through ``sync_agent.cycle.run_cycle``. Per size: wall time
and CPU seconds of the agent process (the sandbox is another process), each against 1.25x
the bound HubSpot's rate limit sets for the HubSpot calls the minimum needs (those calls /
the sandbox's requests per second), and that ratio for the wall time; peak RSS and its
growth over the process's baseline (bar 600 MB); calls against the minimum; then the second
cycle's writes. At the smallest and largest sizes, the quiet cycle's calls per system; at
the smallest, the first cycle after a burst of changes (half to Salesforce leads, half to
HubSpot contacts, each of a linked pair whose other side is left alone). Growth from the
second-largest size to the largest is compared with linear in the records read.

Minimums: Salesforce reads 2,000 a page; HubSpot's first read lists 100 a page, later reads
search 200 a page (one call per object with nothing changed; Salesforce one for all
objects); writes 200 (Salesforce) and 100 (HubSpot) a batch, writes refused by the duplicate
rules counted with the lookups naming their matches (as bench_engine counts them). Reading
a changed record's unchanged counterpart is not in the minimum: the store holds what it held
at the last sync, and the change read says it has not changed since.

``python -m bench.bench_scale --leads 1000,2000 --burst 1000`` runs small (env
``BENCH_SCALE_LEADS``, ``BENCH_SCALE_BURST``).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.profile import profiled
from bench.report import report
from bench.sandbox_process import in_fresh_process, peak_rss_mb, rss_mb, sandbox_process
from bench.vendor_api import VendorApi

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
READ_PAGE = {"salesforce": 2000, "hubspot.list": 100, "hubspot.search": 200}
BATCH = {"salesforce": 200, "hubspot": 100}
QUIET_AFTER = 20  # seconds; the lookbacks are set shorter, as in bench_engine
SEARCH_LAG = 3.0  # the sandbox's default: HubSpot search sees a write this much later
RSS_BAR_MB = 600
TIME_BAR = 1.25  # x the HubSpot-rate-limited bound
LINEAR_BAR = 1.15
CALLS_BAR = 1.05
BURST_BAR = 1.1


def label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def seed_sizes(leads: int) -> Any:
    """The seed's default proportions, scaled to ``leads``."""
    from sandbox.seed import SeedSizes

    base = SeedSizes()
    f = leads / base.leads
    return SeedSizes(leads=leads, contacts=round(base.contacts * f),
                     accounts=max(1, round(base.accounts * f)),
                     opportunities=round(base.opportunities * f),
                     hubspot_only_contacts=round(base.hubspot_only_contacts * f),
                     users=base.users)


def refusals(store: Any) -> int:
    """Writes the org's duplicate rules refused (each left a gap saying so)."""
    from sync_agent import state

    with store.session() as session:
        return sum(1 for gap in state.open_gaps(session)
                   if (gap.detail or {}).get("code") == "DUPLICATES_DETECTED")


def minimum(read: Counter[str], written: Counter[str], refused: int, first: bool
            ) -> tuple[int, int]:
    """(calls, of them HubSpot's) the cycle's reads and writes need at the least."""
    sf_pages = [math.ceil(n / READ_PAGE["salesforce"]) for key, n in read.items()
                if key.startswith("salesforce.")]
    sf_reads = sum(max(1, p) for p in sf_pages) if first else max(1, sum(sf_pages))
    hs_page = READ_PAGE["hubspot.list" if first else "hubspot.search"]
    hs_reads = sum(max(1, math.ceil(n / hs_page)) for key, n in read.items()
                   if key.startswith("hubspot.") and ".associations." not in key)
    # associations: a v4 batch read per 1,000 records in play, a labels read each, and a
    # batch create per 2,000 associations written
    hs_reads += sum(math.ceil(n / 1000) + 1 for key, n in read.items()
                    if key.startswith("hubspot.associations."))
    writes = Counter(written)
    writes["salesforce.refused"] += refused
    batches = {key: math.ceil(n / (2000 if key.endswith(".associations")
                                   else BATCH[key.split(".")[0]]))
               for key, n in writes.items()}
    hs_writes = sum(n for key, n in batches.items() if key.startswith("hubspot."))
    lookups = 2 * math.ceil(refused / 200)  # one query per object (Lead, Contact) per 200
    total = sf_reads + hs_reads + sum(batches.values()) + lookups
    return total, hs_reads + hs_writes


def _per_system(sf: Any, hs: Any, before: tuple[Counter[str], Counter[str]]) -> tuple[int, int]:
    return (sum((Counter(sf.calls) - before[0]).values()),
            sum((Counter(hs.calls) - before[1]).values()))


def _burst(api: VendorApi, store: Any, changes: int) -> int:
    """Change up to ``changes`` linked records through the vendors' APIs: half of them leads
    in Salesforce, half HubSpot contacts of other pairs; returns how many were changed."""
    from sqlalchemy import select

    from sync_agent.tables import Link

    with store.session() as session:
        links = list(session.execute(select(Link.sf_object, Link.sf_id, Link.hs_id)
                                     .where(Link.hs_object == "contacts").order_by(Link.id)))
    leads = [link for link in links if link[0] == "Lead"][:changes // 2]
    chosen = {sf_id for _, sf_id, _ in leads}
    others = [link for link in links if link[1] not in chosen][:changes - len(leads)]
    with api.unthrottled():
        api.sf_write("PATCH", "Lead", [{"Id": sf_id, "Title": f"Burst VP {n}"}
                                       for n, (_, sf_id, _) in enumerate(leads)])
        api.hs_write("update", "contacts", [
            {"id": hs_id, "properties": {"jobtitle": f"Burst Head {n}"}}
            for n, (_, _, hs_id) in enumerate(others)])
    return len(leads) + len(others)


def run_size(leads: int, quiet: bool, burst: int, queue: Any) -> None:
    """One size in this (fresh) process; puts its figures on ``queue``."""
    from connectors.build import build_connectors
    from connectors.config import load_settings
    from mapping.validate import check_file
    from sync_agent.cycle import run_cycle
    from sync_agent.store import open_store

    mapping, _ = check_file(DEFAULT)
    assert mapping is not None
    out: dict[str, Any] = {"leads": leads}
    with sandbox_process(sizes=seed_sizes(leads)) as settings_file, \
            tempfile.TemporaryDirectory() as folder:
        api = VendorApi(settings_file)
        out["hs_per_second"] = api.hubspot_limits()["perTenSeconds"] / 10
        settings = load_settings(settings_file)
        sf, hs = build_connectors(settings.model_copy(update={
            "hubspot": settings.hubspot.model_copy(update={
                "search_lookback_seconds": QUIET_AFTER - 1}),
            "salesforce": settings.salesforce.model_copy(update={"lookback_seconds": 5})}))
        store = open_store(f"sqlite:///{folder}/state.db")
        baseline = rss_mb()
        wall, cpu = time.perf_counter(), time.process_time()
        with profiled(f"first-sync-{label(leads)}"):  # BENCH_PROFILE=<dir>: where time goes
            first = run_cycle(store, mapping, sf, hs)
        out["wall"], out["cpu"] = time.perf_counter() - wall, time.process_time() - cpu
        out["peak"], out["baseline"] = peak_rss_mb(), baseline
        out["records"] = sum(first.read.values())
        refused = refusals(store)
        out["calls"] = sum(first.calls.values())
        out["minimum"], out["hs_minimum"] = minimum(first.read, first.written, refused, True)
        print(f"# {label(leads)} leads, first cycle: {out['wall']:.1f} s, read "
              f"{dict(first.read)}, wrote {dict(first.written)}, created "
              f"{dict(first.created)}, {refused} refused, {out['calls']} calls: "
              f"{first.calls}", flush=True)
        time.sleep(1.1)  # the cycle after a first sync: the creates got their ids in it
        second = run_cycle(store, mapping, sf, hs, refresh_schemas=False)
        out["second_writes"] = sum(second.written.values())
        print(f"# second cycle: {sum(second.calls.values())} calls; wrote "
              f"{dict(second.written)}", flush=True)
        if quiet:
            time.sleep(QUIET_AFTER)  # nothing changes for longer than the lookbacks, and the
            # first cycle after that still re-reads the last burst (see bench_engine)
            settling = run_cycle(store, mapping, sf, hs, refresh_schemas=False)
            print(f"# cycle after the wait: {settling.calls}; wrote {dict(settling.written)}")
            before = (Counter(sf.calls), Counter(hs.calls))
            quiet_report = run_cycle(store, mapping, sf, hs, refresh_schemas=False)
            out["quiet"] = _per_system(sf, hs, before)
            print(f"# quiet cycle: {quiet_report.calls}; wrote {dict(quiet_report.written)}",
                  flush=True)
        if quiet and burst:
            refused_before = refusals(store)
            out["burst"] = _burst(api, store, burst)
            time.sleep(SEARCH_LAG + 1.1)  # HubSpot search shows the changes; a new second
            after = run_cycle(store, mapping, sf, hs, refresh_schemas=False)
            out["burst_calls"] = sum(after.calls.values())
            out["burst_minimum"], _ = minimum(after.read, after.written,
                                              refusals(store) - refused_before, False)
            print(f"# burst of {out['burst']} changes: read {dict(after.read)}, wrote "
                  f"{dict(after.written)}, {out['burst_calls']} calls (minimum "
                  f"{out['burst_minimum']}): {after.calls}", flush=True)
    queue.put(out)


def _report_size(r: dict[str, Any], hs_objects: int) -> None:
    size = f"{label(r['leads'])}_leads"
    bound = r["hs_minimum"] / r["hs_per_second"]
    print(f"# {size}: {r['records']} records read; HubSpot calls at the least "
          f"{r['hs_minimum']} at {r['hs_per_second']:g}/s: bound {bound:.1f} s; RSS baseline "
          f"{r['baseline']:.0f} MB")
    report(f"engine_first_sync_{size}_wall", r["wall"], "s", TIME_BAR * bound, False)
    report(f"engine_first_sync_{size}_cpu", r["cpu"], "s", TIME_BAR * bound, False)
    report(f"engine_first_sync_{size}_wall_vs_hubspot_rate_bound", r["wall"] / bound, "x",
           TIME_BAR, False)
    report(f"engine_first_sync_{size}_peak_rss", r["peak"], "MB", RSS_BAR_MB, False)
    report(f"engine_first_sync_{size}_rss_growth", r["peak"] - r["baseline"], "MB",
           RSS_BAR_MB, False)
    report(f"engine_first_sync_{size}_calls_vs_minimum", r["calls"] / r["minimum"], "x",
           CALLS_BAR, False)
    report(f"engine_second_cycle_after_first_sync_{size}_writes", r["second_writes"],
           "writes", 0, False)
    if "quiet" in r:
        n = label(r["leads"])
        report(f"engine_quiet_cycle_salesforce_calls_{n}", r["quiet"][0], "calls", 1, False)
        report(f"engine_quiet_cycle_hubspot_calls_{n}", r["quiet"][1], "calls", hs_objects,
               False)
    if "burst" in r:
        report(f"engine_burst_{label(r['burst'])}_changes_{size}_calls_vs_minimum",
               r["burst_calls"] / r["burst_minimum"], "x", BURST_BAR, False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale")
    parser.add_argument("--leads", default=os.environ.get("BENCH_SCALE_LEADS",
                                                          "10000,50000,200000"),
                        help="comma-separated sizes (leads)")
    parser.add_argument("--burst", type=int,
                        default=int(os.environ.get("BENCH_SCALE_BURST", "10000")),
                        help="changes after the smallest size's quiet cycle (0: none)")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.leads.split(",") if s.strip())
    from mapping.validate import check_file

    mapping, _ = check_file(DEFAULT)
    assert mapping is not None
    hs_objects = len({p.hubspot for p in mapping.objects})
    results = []
    for leads in sizes:
        quiet = leads in (sizes[0], sizes[-1])
        result = in_fresh_process(run_size, leads, quiet, args.burst if leads == sizes[0]
                                  else 0)
        _report_size(result, hs_objects)
        results.append(result)
    if len(results) >= 2:
        small, large = results[-2], results[-1]
        span = f"{label(small['leads'])}_to_{label(large['leads'])}"
        records = large["records"] / small["records"]
        for what in ("wall", "cpu"):
            report(f"engine_first_sync_{what}_growth_{span}_vs_linear",
                   large[what] / small[what] / records, "x", LINEAR_BAR, False)


if __name__ == "__main__":
    main()
