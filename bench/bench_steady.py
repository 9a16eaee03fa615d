"""Steady state: one cycle over a state store holding 1,000,000 linked lead pairs, 1% of
them changed, on SQLite and on PostgreSQL; the engine's time, the APIs' excluded, must keep
>= 50,000 changed records a second.

Setup (not measured): a sandbox seeded with just the changed pairs (10,000 leads and their
10,000 HubSpot contacts, through the vendors' APIs, values agreeing), read back through the
connectors; then 1,000,000 links and their last-synced values bulk-inserted through
SQLAlchemy core into a store opened (and migrated) by ``open_store``: the real pairs with
the values the engine's own planner remembers for them, spread among made-up pairs that
repeat those values under made-up ids. The real records' current stage visits are recorded,
the full id check is marked done, and the watermarks start just after the seed, so the cycle
reads exactly the changes: 5,000 leads changed in Salesforce and 5,000 contacts in HubSpot,
each with its linked counterpart unchanged.

Measured: one ``run_cycle``'s wall time minus the time spent in HTTP, timed around the
connectors' own sessions (the Salesforce requests session's ``send``, the urllib3 pool
managers hubspot-api-client calls) -- nothing of the product is wrapped. The sandbox runs
without rate limits and the connectors' pacing is off: waiting for quota is the API's time,
not the engine's. Each backend runs in a fresh process with its own sandbox.

``python -m bench.bench_steady --pairs 20000`` runs small (env ``BENCH_STEADY_PAIRS``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from bench.profile import profiled
from bench.report import report
from bench.sandbox_process import in_fresh_process, sandbox_process
from bench.vendor_api import VendorApi

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
CHANGED_SHARE = 0.01
BAR = 50_000  # changed records a second
CHUNK = 5_000  # links a bulk insert
SEARCH_LAG = 3.0  # the sandbox's default: HubSpot search sees a write this much later


def label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


class HttpClock:
    """Seconds spent in HTTP by the connectors, timed around their sessions' own calls."""

    def __init__(self, *connectors: Any) -> None:
        self.seconds = 0.0
        self.requests = 0
        wrapped: set[int] = set()
        for connector in connectors:
            for value in vars(connector).values():
                for item in value.values() if isinstance(value, dict) else [value]:
                    target: Any
                    if isinstance(item, requests.Session):
                        target, method = item, "send"  # the body is read inside send
                    else:  # hubspot-api-client talks urllib3 directly
                        rest = getattr(getattr(item, "api_client", None), "rest_client", None)
                        target, method = getattr(rest, "pool_manager", None), "request"
                    if target is not None and id(target) not in wrapped:
                        wrapped.add(id(target))
                        setattr(target, method, self._timed(getattr(target, method)))

    def _timed(self, inner: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.requests += 1
        return timed


def _seed(api: VendorApi, pairs: int) -> tuple[list[str], list[str]]:
    """``pairs`` leads and their HubSpot contacts, agreeing field by field (a New lead is a
    HubSpot lead with status NEW: no SLA clock runs)."""
    leads = [{"FirstName": f"Pat{i}", "LastName": "Steady", "Company": f"Acme {i % 97}",
              "Email": f"pat.steady{i}@example.com", "Phone": f"+1 555 {i:07d}",
              "Title": "CTO", "City": "Oslo", "Country": "Norway", "Status": "New",
              "Website": "https://acme.example.com"} for i in range(pairs)]
    lead_ids = api.sf_write("POST", "Lead", leads)
    contacts = [{"properties": {
        "email": row["Email"], "firstname": row["FirstName"], "lastname": row["LastName"],
        "company": row["Company"], "phone": row["Phone"], "jobtitle": row["Title"],
        "city": row["City"], "country": row["Country"], "website": row["Website"],
        "lifecyclestage": "lead", "hs_lead_status": "NEW", "salesforceleadid": lead_id}}
        for row, lead_id in zip(leads, lead_ids, strict=True)]
    return lead_ids, api.hs_write("create", "contacts", contacts)


def _insert_links(store: Any, real: list[tuple[str, str, str, dict[str, Any]]],
                  pairs: int) -> None:
    """Every pair's link and last-synced values, the real ones spread among made-up ones.

    Each distinct document is encoded once, by the column type's own bind processor (what a
    typed insert would store), and the rows go in through untyped core tables: the made-up
    pairs repeat the real pairs' values, so encoding them per row would only cost time."""
    from sqlalchemy import column, insert, table, text

    from sync_agent.tables import Link, SyncedValues

    dialect = store.engine.dialect

    def encoder(col: Any) -> Callable[[Any], Any]:
        processor = col.type.dialect_impl(dialect).bind_processor(dialect)
        return processor or (lambda value: value)

    now = dt.datetime.now(dt.UTC)
    link_cols, value_cols = Link.__table__.c, SyncedValues.__table__.c
    link_stamp, value_stamp = encoder(link_cols.created_at)(now), encoder(
        value_cols.synced_at)(now)
    to_json = encoder(value_cols.fields)
    encoded = [to_json({k: [a, b] for k, (a, b) in values.items()})
               for _, _, _, values in real]
    links_table = table("links", *(column(c.name) for c in link_cols))
    values_table = table("synced_values", *(column(c.name) for c in value_cols))
    stride = max(1, pairs // len(real))
    for start in range(0, pairs, CHUNK):
        links, documents = [], []
        for n in range(start, min(pairs, start + CHUNK)):
            index, offset = divmod(n, stride)
            if offset == 0 and index < len(real):
                sf_id, hs_id, key, _ = real[index]
                document = encoded[index]
            else:  # a made-up pair holding a real pair's values
                sf_id, hs_id = f"00QZZ{n:013d}", str(100_000_000_000 + n)
                key, document = f"pair{n}@made-up.example", encoded[n % len(real)]
            links.append({"id": n + 1, "pair": "leads", "sf_object": "Lead", "sf_id": sf_id,
                          "hs_object": "contacts", "hs_id": hs_id, "match_key": key,
                          "created_at": link_stamp, "updated_at": link_stamp})
            documents.append({"link_id": n + 1, "fields": document, "synced_at": value_stamp})
        with store.engine.begin() as connection:
            for target, rows in ((links_table, links), (values_table, documents)):
                if dialect.name == "postgresql":
                    _copy(connection, target, rows)
                else:
                    connection.execute(insert(target), rows)
    if dialect.name == "postgresql":  # explicit ids: move the sequence past them
        with store.engine.begin() as connection:
            connection.execute(text("SELECT setval(pg_get_serial_sequence('links', 'id'), "
                                    ":n)"), {"n": pairs})


def _copy(connection: Any, target: Any, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL's bulk load, COPY, on the SQLAlchemy connection's own psycopg connection:
    psycopg's executemany sends one statement per row, and splitting a multi-row INSERT's
    parameters is slow in pure Python (a 1,000,000-pair store would take half an hour)."""
    names = [c.name for c in target.columns]
    with connection.connection.driver_connection.cursor() as cursor, cursor.copy(
            f"COPY {target.name} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[name] for name in names])


def _steady_state(store: Any, mapping: Any, sf: Any, hs: Any, lead_ids: list[str],
                  contact_ids: list[str], pairs: int) -> dt.datetime:
    """The store as a long-running agent leaves it; returns where the watermarks stand."""
    from connectors.records import Watermark
    from mapping.rules import synced
    from sync_agent import merges, state
    from sync_agent.context import fields_of, prepare
    from sync_agent.identity import match_key
    from sync_agent.stages import StageBook

    setup = prepare(mapping, sf, hs)  # the planner and fields the engine uses, owners too
    planner = setup.planners["leads"]
    sf_records = {r.id: r for r in sf.read_by_ids(
        "Lead", lead_ids, fields_of(setup, "salesforce", "Lead"))}
    hs_records = {r.id: r for r in hs.read_by_ids(
        "contacts", contact_ids, fields_of(setup, "hubspot", "contacts"))}
    real = []
    for sf_id, hs_id in zip(lead_ids, contact_ids, strict=True):
        sf_values, hs_values = sf_records[sf_id].values, hs_records[hs_id].values
        real.append((sf_id, hs_id, match_key(sf_values.get("Email")) or "",
                     synced(planner, sf_values, hs_values)))
    inserting = time.perf_counter()
    _insert_links(store, real, pairs)
    print(f"# {store.engine.dialect.name}: {pairs:,} links and their last-synced values "
          f"({len(real[0][3])} fields each) inserted in {time.perf_counter() - inserting:.0f} s",
          flush=True)
    marked = dt.datetime.now(dt.UTC)
    book = StageBook()
    owners = mapping.owners
    for system, obj, records, owner in (("salesforce", "Lead", sf_records, owners.salesforce_field),
                                        ("hubspot", "contacts", hs_records,
                                         owners.hubspot_property)):
        for record in records.values():
            book.observe(mapping, system, obj, record.id, record.values, owner, record.cursor)
    with store.session() as session:
        # the first real pair is link 1: the engine reads back what it would have stored
        assert state.synced_values(session, 1) == real[0][3], "synced values mis-encoded"
        book.flush(session, marked)
        for system, connector, objects in (
                ("salesforce", sf, {p.salesforce for p in mapping.objects}),
                ("hubspot", hs, {p.hubspot for p in mapping.objects})):
            for obj in objects:  # the last read ran long enough ago: start right after it
                state.put_watermark(session, system, obj, Watermark(
                    cursor=marked, read_until=marked + connector.lookback + dt.timedelta(
                        seconds=1)))
                merges.done(session, system, obj, merges.ID_CHECK, marked)
        session.commit()
    return marked


def run_backend(backend: str, pairs: int, queue: Any) -> None:
    """One backend in this (fresh) process; puts its figures (or a skip reason) on queue."""
    from connectors.build import build_connectors
    from connectors.config import load_settings
    from mapping.validate import check_file
    from sandbox.seed import SeedSizes
    from sync_agent.cycle import run_cycle
    from sync_agent.store import open_store
    from tests.postgres import binaries, postgres_server

    mapping, _ = check_file(DEFAULT)
    assert mapping is not None
    changed = max(2, round(pairs * CHANGED_SHARE)) // 2 * 2
    with contextlib.ExitStack() as stack:
        if backend == "postgresql":
            if binaries() is None:
                queue.put({"skipped": "PostgreSQL's initdb was not found"})
                return
            url = stack.enter_context(postgres_server())
        else:
            url = f"sqlite:///{stack.enter_context(tempfile.TemporaryDirectory())}/state.db"
        empty = SeedSizes(leads=0, contacts=0, accounts=0, opportunities=0,
                          hubspot_only_contacts=0)
        settings_file = stack.enter_context(sandbox_process(
            sizes=empty, hubspot_per_ten_seconds=0, hubspot_search_per_second=0))
        api = VendorApi(settings_file)
        settings = load_settings(settings_file)
        sf, hs = build_connectors(settings.model_copy(update={"hubspot": settings.hubspot.
            model_copy(update={"requests_per_ten_seconds": 0, "searches_per_second": 0})}))
        store = open_store(url)
        started = time.perf_counter()
        lead_ids, contact_ids = _seed(api, changed)
        time.sleep(1.5)  # HubSpot's calculated properties settle a second after a create
        marked = _steady_state(store, mapping, sf, hs, lead_ids, contact_ids, pairs)
        # Salesforce reads from the next whole second: changes land after it.
        time.sleep(max(0.0, 2.1 - (dt.datetime.now(dt.UTC) - marked).total_seconds()))
        half = changed // 2
        api.sf_write("PATCH", "Lead", [{"Id": i, "Title": f"VP {n}"}
                                       for n, i in enumerate(lead_ids[:half])])
        api.hs_write("update", "contacts", [{"id": i, "properties": {"city": f"Bergen {n}"}}
                                            for n, i in enumerate(contact_ids[half:])])
        setup = time.perf_counter() - started
        time.sleep(SEARCH_LAG + 1.0)  # HubSpot search shows the changes
        clock = HttpClock(sf, hs)
        wall, cpu = time.perf_counter(), time.process_time()
        with profiled(f"steady-{backend}"):
            result = run_cycle(store, mapping, sf, hs, refresh_schemas=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        queue.put({"changed": changed, "setup": setup, "wall": wall, "cpu": cpu,
                   "http": clock.seconds, "requests": clock.requests,
                   "calls": sum(result.calls.values()), "read": dict(result.read),
                   "written": dict(result.written),
                   "rate_limited": getattr(hs, "rate_limited", "?"),
                   "timings": getattr(result, "timings", None)})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_steady")
    parser.add_argument("--pairs", type=int,
                        default=int(os.environ.get("BENCH_STEADY_PAIRS", "1000000")),
                        help="linked pairs in the state store (1%% of them changed)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    for backend in args.backends.split(","):
        r = in_fresh_process(run_backend, backend, args.pairs)
        if "skipped" in r:
            print(f"# skipped: {r['skipped']} (no {backend} figure)")
            continue
        engine = r["wall"] - r["http"]
        print(f"# {backend}: {args.pairs:,} pairs, {r['changed']:,} changed (setup "
              f"{r['setup']:.0f} s); cycle {r['wall']:.2f} s, of it {r['http']:.2f} s in "
              f"{r['requests']} HTTP requests ({r['calls']} API calls counted, "
              f"{r['rate_limited']} answered 429); engine {engine:.2f} s, CPU {r['cpu']:.2f} "
              f"s; read {r['read']}, wrote {r['written']}")
        if sum(r["read"].values()) != r["changed"]:
            print(f"# note: the cycle read {sum(r['read'].values())} records, not the "
                  f"{r['changed']} changed")
        print(f"# stage timing: {r['timings']}" if r["timings"] else
              "# stage timing: the cycle report offers none")
        report(f"engine_steady_state_{label(args.pairs)}_pairs_changed_records_per_second_"
               f"{backend}", r["changed"] / engine, "records/s", BAR)


if __name__ == "__main__":
    main()
