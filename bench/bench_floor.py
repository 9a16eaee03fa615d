"""The floor under the steady-state bar: how fast the work no design of the engine can skip
runs in this language, done as plainly as it can be done.

``bench_steady`` asks one cycle over 1,000,000 linked pairs with 1% changed to keep 50,000
changed records a second through every stage, the APIs' time excluded: 20 microseconds a
record. Here the same 10,000 changes (half Salesforce Leads, half HubSpot contacts, one field
changed each, 13 mapped fields a pair) go through only what any engine that keeps this
product's promises must do for them, with no engine code at all:

1. decode the vendors' read answers (a Salesforce query page, a HubSpot search page);
2. find each record's link and what was last synced for it (SQLite, indexed, a page of 500
   ids a query; one JSON document a link, which is cheaper than the store's row a field);
3. compare every mapped field with what was remembered (no transforms, no stage maps, no
   owners, no echo or conflict rules);
4. write ahead: one intent row a pair, committed before any write (a killed cycle must be
   recognised: no lost update);
5. encode the write batches and decode the vendors' answers to them (making the answers is
   the vendors' work and is not timed);
6. record: one ledger row a changed field, the remembered document updated, the intents
   cleared, committed with it.

Nothing here talks HTTP. The best of three runs is printed against the steady bar: a figure
short of 50,000 says the bar asks for less time than the work itself takes in CPython,
whatever the engine around it does.

``python -m bench.bench_floor --changed 10000`` (env ``BENCH_FLOOR_CHANGED``).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import report

BAR = 50_000  # changed records a second: bench_steady's bar
PAGE = 500  # ids an IN list
SF_FIELDS = ("FirstName", "LastName", "Company", "Email", "Phone", "Title", "City", "Country",
             "Status", "Website", "OwnerId", "LeadSource", "Industry")
HS_FIELDS = ("firstname", "lastname", "company", "email", "phone", "jobtitle", "city",
             "country", "hs_lead_status", "website", "hubspot_owner_id", "hs_analytics_source",
             "industry")


def _lead(i: int) -> dict[str, Any]:
    return {"FirstName": f"Pat{i}", "LastName": "Steady", "Company": f"Acme {i % 97}",
            "Email": f"pat.steady{i}@example.com", "Phone": f"+1 555 {i:07d}", "Title": "CTO",
            "City": "Oslo", "Country": "Norway", "Status": "Working",
            "Website": "https://acme.example.com", "OwnerId": "005000000000001AAA",
            "LeadSource": "Web", "Industry": "Banking"}


def _sf_id(i: int) -> str:
    return f"00Q{i:015d}"


def _hs_id(i: int) -> str:
    return str(100_000_000 + i)


def _answers(changed: int) -> tuple[bytes, bytes]:
    """A Salesforce query answer for the first half (Title changed) and a HubSpot search
    answer for the second half (city changed), shaped as the vendors send them."""
    half = changed // 2
    leads = []
    for i in range(half):
        row = {**_lead(i), "Title": f"VP {i}"}
        leads.append({"attributes": {"type": "Lead",
                                     "url": f"/services/data/v59.0/sobjects/Lead/{_sf_id(i)}"},
                      "Id": _sf_id(i), **row, "IsDeleted": False, "MasterRecordId": None,
                      "SystemModstamp": "2026-12-07T01:00:00.000+0000"})
    contacts = []
    for i in range(half, changed):
        props = {h: v for h, v in zip(HS_FIELDS, _lead(i).values(), strict=True)}
        props.update({"city": f"Bergen {i}", "hs_object_id": _hs_id(i),
                      "lastmodifieddate": "2026-12-07T01:00:00.000Z"})
        contacts.append({"id": _hs_id(i), "properties": props,
                         "createdAt": "2026-12-01T00:00:00.000Z",
                         "updatedAt": "2026-12-07T01:00:00.000Z", "archived": False})
    sf_body = json.dumps({"totalSize": len(leads), "done": True, "records": leads}).encode()
    hs_body = json.dumps({"total": len(contacts), "results": contacts}).encode()
    return sf_body, hs_body


def _store(path: Path, changed: int) -> sqlite3.Connection:
    """Every changed pair's link and what both sides held at its last sync."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript("""
        CREATE TABLE links (id INTEGER PRIMARY KEY, sf_id TEXT UNIQUE, hs_id TEXT UNIQUE,
                            synced TEXT NOT NULL);
        CREATE TABLE intents (link_id INTEGER PRIMARY KEY, doc TEXT NOT NULL);
        CREATE TABLE ledger (id INTEGER PRIMARY KEY, link_id INTEGER, system TEXT, field TEXT,
                             old TEXT, new TEXT, at TEXT);""")
    rows = []
    for i in range(changed):
        lead = _lead(i)
        rows.append((i + 1, _sf_id(i), _hs_id(i), json.dumps(
            {sf: [lead[sf], lead[sf]] for sf in SF_FIELDS})))
    db.executemany("INSERT INTO links VALUES (?, ?, ?, ?)", rows)
    db.commit()
    return db


def _links(db: sqlite3.Connection, column: str, ids: list[str]
           ) -> dict[str, tuple[int, str, str, dict[str, list[Any]]]]:
    found = {}
    for start in range(0, len(ids), PAGE):
        chunk = ids[start:start + PAGE]
        marks = ",".join("?" * len(chunk))
        for link_id, sf_id, hs_id, synced in db.execute(
                f"SELECT id, sf_id, hs_id, synced FROM links WHERE {column} IN ({marks})",  # noqa: S608 - column is ours
                chunk):
            found[sf_id if column == "sf_id" else hs_id] = (link_id, sf_id, hs_id,
                                                            json.loads(synced))
    return found


def one_run(db: sqlite3.Connection, sf_body: bytes, hs_body: bytes) -> float:
    """Seconds for the unskippable work on the changes in the two answers."""
    started = time.perf_counter()
    leads = json.loads(sf_body)["records"]
    contacts = json.loads(hs_body)["results"]
    by_sf = _links(db, "sf_id", [r["Id"] for r in leads])
    by_hs = _links(db, "hs_id", [r["id"] for r in contacts])
    to_hs, to_sf, after = [], [], {}
    for lead in leads:  # Salesforce changed: HubSpot gets the fields that moved
        link_id, _, hs_id, synced = by_sf[lead["Id"]]
        moved = {h: lead[sf] for sf, h in zip(SF_FIELDS, HS_FIELDS, strict=True)
                 if lead.get(sf) != synced[sf][0]}
        to_hs.append((link_id, hs_id, moved))
        after[link_id] = {sf: [lead.get(sf), lead.get(sf)] for sf in SF_FIELDS}
    for contact in contacts:  # HubSpot changed: Salesforce gets the fields that moved
        link_id, sf_id, _, synced = by_hs[contact["id"]]
        props = contact["properties"]
        moved = {sf: props.get(h) for sf, h in zip(SF_FIELDS, HS_FIELDS, strict=True)
                 if props.get(h) != synced[sf][1]}
        to_sf.append((link_id, sf_id, moved))
        after[link_id] = {sf: [props.get(h), props.get(h)]
                          for sf, h in zip(SF_FIELDS, HS_FIELDS, strict=True)}
    db.executemany("INSERT INTO intents VALUES (?, ?)",
                   [(link_id, json.dumps(doc)) for link_id, doc in after.items()])
    db.commit()  # write-ahead: before any vendor write
    sent = [json.dumps({"inputs": [{"id": hs_id, "properties": moved}
                                   for _, hs_id, moved in to_hs[s:s + 100]]})
            for s in range(0, len(to_hs), 100)]
    sent += [json.dumps({"allOrNone": False, "records": [
        {"attributes": {"type": "Lead"}, "id": sf_id, **moved}
        for _, sf_id, moved in to_sf[s:s + 200]]}) for s in range(0, len(to_sf), 200)]
    vendor = time.perf_counter()  # the vendors' answers are their work, not the engine's
    answers = [json.dumps({"status": "COMPLETE", "results": [
        {"id": hs_id, "properties": moved, "updatedAt": "2026-12-07T01:00:05.000Z"}
        for _, hs_id, moved in to_hs[s:s + 100]]}) for s in range(0, len(to_hs), 100)]
    answers += [json.dumps([{"id": sf_id, "success": True, "errors": []}
                            for _, sf_id, _ in to_sf[s:s + 200]])
                for s in range(0, len(to_sf), 200)]
    started += time.perf_counter() - vendor
    landed = sum(len(a["results"]) if isinstance(a := json.loads(body), dict) else len(a)
                 for body in answers)
    assert landed == len(to_hs) + len(to_sf), "every write answered"
    assert len(sent) == len(answers), "every batch answered"
    stamp = "2026-12-07T01:00:05+00:00"
    db.executemany("INSERT INTO ledger (link_id, system, field, old, new, at) "
                   "VALUES (?, ?, ?, ?, ?, ?)",
                   [(link_id, system, field, None, json.dumps(new), stamp)
                    for system, writes in (("hubspot", to_hs), ("salesforce", to_sf))
                    for link_id, _, moved in writes for field, new in moved.items()])
    db.executemany("UPDATE links SET synced = ? WHERE id = ?",
                   [(json.dumps(doc), link_id) for link_id, doc in after.items()])
    db.execute("DELETE FROM intents")
    db.commit()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_floor")
    parser.add_argument("--changed", type=int,
                        default=int(os.environ.get("BENCH_FLOOR_CHANGED", "10000")),
                        help="changed records, half on each side (1%% of 1,000,000 pairs)")
    args = parser.parse_args(argv)
    changed = max(2, args.changed // 2 * 2)
    sf_body, hs_body = _answers(changed)
    best = float("inf")
    with tempfile.TemporaryDirectory() as folder:
        for n in range(3):  # a fresh store each run: every run writes the same rows
            db = _store(Path(folder) / f"floor{n}.db", changed)
            best = min(best, one_run(db, sf_body, hs_body))
            db.close()
    print(f"# floor: {changed:,} changed records through the unskippable work in "
          f"{best:.3f} s (best of 3)")
    report("engine_steady_state_floor_changed_records_per_second", changed / best,
           "records/s", BAR)


if __name__ == "__main__":
    main()
