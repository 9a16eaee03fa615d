"""The demo's scripted change: one edit in Salesforce and one in HubSpot, through the
connectors, so the second cycle has something to carry across."""

from __future__ import annotations

import sys
from pathlib import Path

from connectors.build import build_connectors
from connectors.config import load_settings
from connectors.records import WriteRecord
from sync_agent.state import find_link
from sync_agent.store import open_store


def main(env_file: str, db: str) -> None:
    salesforce, hubspot = build_connectors(load_settings(Path(env_file)))
    store = open_store(db)
    with store.session() as session:
        link = find_link(session, "leads", sf_id=None)
    if link is None:
        raise SystemExit("no linked lead yet: run a cycle first")
    salesforce.upsert("Lead", [WriteRecord(id=link.sf_id, values={
        "Title": "VP Revenue Operations", "Status": "Working"})])
    hubspot.upsert("contacts", [WriteRecord(id=link.hs_id, values={"city": "Lisbon"})])
    print(f"changed Salesforce Lead {link.sf_id}: Title, Status=Working")
    print(f"changed HubSpot contact {link.hs_id}: city=Lisbon")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
