"""The mapping's speed bars: offline validation of the default mapping <= 200 ms; the field-rule
function >= 100,000 record pairs per second on one core."""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path
from typing import Any

from bench.report import report
from mapping.rules import PairPlanner, apply, synced
from mapping.validate import check_file

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
PAIRS = 200_000
CHANGED_SHARE = 0.10


def bench_validation() -> None:
    check_file(DEFAULT)  # imports and pydantic schema building happen once per process
    runs = []
    for _ in range(20):
        started = time.perf_counter()
        mapping, problems = check_file(DEFAULT)
        runs.append((time.perf_counter() - started) * 1000)
        assert mapping is not None
        assert not problems
    report("mapping_validate_default_offline", statistics.median(runs), "ms", 200,
           higher_is_better=False)


def _pairs(planner: PairPlanner, n: int, rng: random.Random) -> list[tuple[Any, ...]]:
    statuses = ["New", "Working", "Nurturing", "Qualified", "Unqualified"]
    out = []
    for i in range(n):
        sf = {"FirstName": f"First{i % 997}", "LastName": f"Last{i}", "Company": "Acme",
              "Phone": "+1 555 0100", "Title": "CTO", "Website": "https://acme.example.com",
              "City": "Oslo", "Country": "Norway", "Status": rng.choice(statuses),
              "Id": f"00Q{i:015d}", "Lead_Score__c": float(i % 100)}
        hs: dict[str, Any] = {}
        apply(planner.plan(sf, hs, None, 1.0, 0.0), sf, hs)  # a linked pair, in sync
        last = synced(planner, sf, hs)
        if rng.random() < CHANGED_SHARE:  # changed since the last cycle on one side
            if rng.random() < 0.5:
                sf = {**sf, "Title": "VP Sales", "Status": rng.choice(statuses)}
            else:
                hs = {**hs, "lifecyclestage": "salesqualifiedlead", "city": "Bergen"}
        out.append((sf, hs, last, 2.0, 1.0))
    return out


def bench_planner() -> None:
    mapping, _ = check_file(DEFAULT)
    assert mapping is not None
    planner = PairPlanner(mapping, "leads")
    pairs = _pairs(planner, PAIRS, random.Random(5))
    started = time.perf_counter()
    changes = 0
    for sf, hs, last, t_sf, t_hs in pairs:
        changes += len(planner.plan(sf, hs, last, t_sf, t_hs).changes)
    rate = PAIRS / (time.perf_counter() - started)
    print(f"# {PAIRS} linked lead pairs, {CHANGED_SHARE:.0%} changed, "
          f"{len(planner.fields)} field rules each: {changes} field changes planned")
    report("mapping_field_rules_pairs_per_second", rate, "pairs/s", 100_000)
    fresh = pairs[:20_000]
    started = time.perf_counter()
    for sf, hs, _, t_sf, t_hs in fresh:
        planner.plan(sf, hs, None, t_sf, t_hs)
    worst = len(fresh) / (time.perf_counter() - started)
    print(f"# without sync history (first cycle, every field compared): {worst:,.0f} pairs/s")


def main() -> None:
    bench_validation()
    bench_planner()


if __name__ == "__main__":
    main()
