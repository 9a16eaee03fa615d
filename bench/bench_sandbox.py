"""Can the sandbox keep up with later benchmarks?

The sandbox runs in its own process (as `stagesync sandbox start` does); load comes from
separate client processes over keep-alive connections, so the figures are the server's.
Bars: >= 1,000 GET-by-id/s, >= 50 HubSpot batch upserts of 100 records/s, 100,000 records
seeded in <= 10 s.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from bench.report import report
from bench.sandbox_process import sandbox_process, settings_lines
from sandbox.seed import SeedSizes

DURATION = 4.0
CLIENTS = 2


def _connection(url: str, ca: str | None) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=ca)
        return http.client.HTTPSConnection(parts.hostname or "", parts.port, context=context)
    return http.client.HTTPConnection(parts.hostname or "", parts.port)


def _salesforce_token(cfg: dict[str, str]) -> str:
    from urllib.parse import urlencode

    conn = _connection(cfg["STAGESYNC_SALESFORCE__INSTANCE_URL"],
                       cfg["STAGESYNC_SALESFORCE__CA_BUNDLE"])
    body = urlencode({"grant_type": "password",
                      "client_id": cfg["STAGESYNC_SALESFORCE__AUTH__CLIENT_ID"],
                      "client_secret": cfg["STAGESYNC_SALESFORCE__AUTH__CLIENT_SECRET"],
                      "username": cfg["STAGESYNC_SALESFORCE__AUTH__USERNAME"],
                      "password": cfg["STAGESYNC_SALESFORCE__AUTH__PASSWORD"]})
    conn.request("POST", "/services/oauth2/token", body,
                 {"Content-Type": "application/x-www-form-urlencoded"})
    return str(json.loads(conn.getresponse().read())["access_token"])


def _load(job: tuple[str, str, str | None, str, str, list[str], Any, float]) -> int:
    kind, base, ca, token, path_template, ids, body, duration = job
    conn = _connection(base, ca)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    payload = json.dumps(body) if body is not None else None
    done = 0
    deadline = time.perf_counter() + duration
    while time.perf_counter() < deadline:
        path = path_template.format(id=ids[done % len(ids)]) if ids else path_template
        conn.request("POST" if payload else "GET", path, payload, headers)
        response = conn.getresponse()
        response.read()
        if response.status >= 300:
            raise RuntimeError(f"{kind}: {path} answered {response.status}")
        done += 1
    return done


def _rate(jobs: list[Any]) -> float:
    with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
        counts = pool.map(_load, jobs)
    return sum(counts) / jobs[0][-1]


def bench_seeding() -> None:
    from sandbox.hubspot.portal import Portal
    from sandbox.salesforce.org import Org
    from sandbox.seed import scaled, seed

    sizes = scaled(100_000)
    started = time.perf_counter()
    counts = seed(Org(), Portal(), 7, sizes)
    elapsed = time.perf_counter() - started
    total = sum(counts.values())
    print(f"# seeded {total} records ({counts})")
    report("sandbox_seed_100k_records", elapsed, "s", 10, higher_is_better=False)


def main() -> None:
    bench_seeding()
    options = {"hubspot_per_ten_seconds": 0, "hubspot_search_per_second": 0,
               "sizes": SeedSizes(leads=2000, contacts=500, accounts=100, opportunities=100,
                                  hubspot_only_contacts=500)}
    with sandbox_process(**options) as settings_file:
        cfg = settings_lines(settings_file)
        sf_url = cfg["STAGESYNC_SALESFORCE__INSTANCE_URL"]
        ca = cfg["STAGESYNC_SALESFORCE__CA_BUNDLE"]
        hs_url = cfg["STAGESYNC_HUBSPOT__HOST"]
        hs_token = cfg["STAGESYNC_HUBSPOT__ACCESS_TOKEN"]
        sf_token = _salesforce_token(cfg)

        conn = _connection(sf_url, ca)
        conn.request("GET", "/services/data/v59.0/query?q=SELECT+Id+FROM+Lead+LIMIT+500",
                     headers={"Authorization": f"Bearer {sf_token}"})
        lead_ids = [r["Id"] for r in json.loads(conn.getresponse().read())["records"]]
        sf_jobs = [("sf-get", sf_url, ca, sf_token,
                    "/services/data/v59.0/sobjects/Lead/{id}", lead_ids, None, DURATION)
                   for _ in range(CLIENTS)]
        report("sandbox_salesforce_get_by_id", _rate(sf_jobs), "req/s", 1000)

        hs_ids = [str(i) for i in range(1001, 1501)]
        hs_jobs = [("hs-get", hs_url, None, hs_token, "/crm/v3/objects/contacts/{id}",
                    hs_ids, None, DURATION) for _ in range(CLIENTS)]
        report("sandbox_hubspot_get_by_id", _rate(hs_jobs), "req/s", 1000)

        upsert_jobs = []
        for client in range(CLIENTS):
            inputs = [{"id": f"bench{client}.{n}@example.com", "idProperty": "email",
                       "properties": {"firstname": f"B{n}", "lifecyclestage": "lead"}}
                      for n in range(100)]
            upsert_jobs.append(("hs-upsert", hs_url, None, hs_token,
                                "/crm/v3/objects/contacts/batch/upsert", [],
                                {"inputs": inputs}, DURATION))
        report("sandbox_hubspot_batch_upsert_100", _rate(upsert_jobs), "batches/s", 50)


if __name__ == "__main__":
    main()
