"""Latency from a Salesforce change to HubSpot with the agent running as a service at the
default interval (60 s): p95 <= 70 s.

The sandbox runs in its own process with HubSpot's rate limits on; the agent is the real
service (APScheduler, the store lock, SQLite). Changes to linked leads' titles are made at
random moments over several intervals; a watcher reads HubSpot every two seconds and notes
when each change arrived. Takes about six minutes.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from pathlib import Path

from bench.report import report
from bench.sandbox_process import sandbox_process
from connectors.build import build_connectors
from connectors.config import load_settings
from connectors.records import WriteRecord
from mapping.validate import check_file
from sandbox.seed import SeedSizes
from sync_agent.service import Agent
from sync_agent.store import open_store
from sync_agent.tables import Link

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
INTERVAL = 60.0  # the default of `stagesync run`
WINDOW = 300.0  # seconds over which changes are made
CHANGES = 40


def main() -> None:
    mapping, _ = check_file(DEFAULT)
    assert mapping is not None
    sizes = SeedSizes(leads=300, contacts=100, accounts=20, opportunities=20,
                      hubspot_only_contacts=20)
    with sandbox_process(sizes=sizes) as settings_file, tempfile.TemporaryDirectory() as folder:
        settings = load_settings(settings_file)
        sf, hs = build_connectors(settings)
        editor_sf, watcher_hs = build_connectors(settings)  # a user on each side
        store = open_store(f"sqlite:///{folder}/state.db")
        agent = Agent(store, mapping, sf, hs, INTERVAL)
        agent.start()
        try:
            while agent.metrics.cycles < 1:  # the first, full cycle
                time.sleep(1)
            with store.session() as session:
                links = [(link.sf_id, link.hs_id) for link in session.query(Link).filter(
                    Link.pair == "leads")]
            rng = random.Random(3)
            chosen = rng.sample(links, CHANGES)
            moments = sorted(rng.uniform(0, WINDOW) for _ in range(CHANGES))
            pending: dict[str, tuple[str, float]] = {}
            arrived: list[float] = []
            lock = threading.Lock()
            done = threading.Event()

            def watch() -> None:
                while not done.is_set():
                    with lock:
                        wanted = dict(pending)
                    if wanted:
                        for record in watcher_hs.read_by_ids("contacts", list(wanted),
                                                             ["jobtitle"]):
                            token, made = wanted[record.id]
                            if record.values.get("jobtitle") == token:
                                with lock:
                                    pending.pop(record.id, None)
                                    arrived.append(time.monotonic() - made)
                    time.sleep(2)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            began = time.monotonic()
            for (sf_id, hs_id), moment in zip(chosen, moments, strict=True):
                time.sleep(max(0.0, began + moment - time.monotonic()))
                token = f"Latency probe {sf_id}"
                editor_sf.upsert("Lead", [WriteRecord(id=sf_id, values={"Title": token})])
                with lock:
                    pending[hs_id] = (token, time.monotonic())
            deadline = time.monotonic() + 3 * INTERVAL
            while time.monotonic() < deadline:
                with lock:
                    if not pending:
                        break
                time.sleep(1)
            done.set()
            watcher.join(10)
        finally:
            agent.stop()
    lost = CHANGES - len(arrived)
    ordered = sorted(arrived)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)] if ordered else float("inf")
    print(f"# {len(arrived)} of {CHANGES} changes arrived (lost: {lost}); median "
          f"{ordered[len(ordered) // 2] if ordered else float('nan'):.1f} s, max "
          f"{ordered[-1] if ordered else float('nan'):.1f} s, {agent.metrics.cycles} cycles")
    report("engine_salesforce_to_hubspot_latency_p95", p95 if not lost else float("inf"),
           "s", 70, higher_is_better=False)


if __name__ == "__main__":
    main()
