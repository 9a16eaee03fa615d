"""Kill the agent mid-sync, run it again, and compare both systems with an uninterrupted run.

The agent runs as a real process (`stagesync sync once`) that dies like `kill -9` at a named
point (a failpoint: exit 137, no cleanup, no commit): after the Salesforce writes, after the
HubSpot writes, after the SLA follow-up Tasks, and just before the commit. The rerun must
leave both systems exactly as a run that never crashed: nothing lost, nothing duplicated.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from connectors.records import Watermark
from sandbox.admin import SandboxClient
from sync_agent.cycle import run_cycle
from sync_agent.store import open_store
from tests.test_cycle import DEFAULT, MAPPING, connectors, next_second

EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
SETTLE = 3  # cycles: the first, then new ids flowing back, then quiet
FIELDS = {
    ("salesforce", "Lead"): ["Email", "FirstName", "LastName", "Company", "Status", "Title",
                             "City", "Phone", "OwnerId", "Lead_Score__c"],
    ("salesforce", "Contact"): ["Email", "FirstName", "LastName", "Title", "Phone"],
    ("salesforce", "Task"): ["WhoId", "Subject"],
    ("hubspot", "contacts"): ["email", "firstname", "lastname", "lifecyclestage",
                              "hs_lead_status", "jobtitle", "city", "phone",
                              "hubspot_owner_id", "stagesync_cold_lead"],
    ("hubspot", "companies"): ["name", "phone", "city", "salesforceaccountid"],
    ("hubspot", "deals"): ["dealname", "dealstage", "amount", "salesforceopportunityid"],
}


def snapshot(sf: Any, hs: Any) -> dict[tuple[str, str], Counter[tuple[Any, ...]]]:
    """Every record's synced fields, ids left out (created records get new ones)."""
    out = {}
    now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    for (system, obj), fields in FIELDS.items():
        connector = sf if system == "salesforce" else hs
        rows = connector.read_changed(obj, Watermark(cursor=EPOCH), now, fields)
        out[(system, obj)] = Counter(tuple(str(r.values.get(f) or "").lower() for f in fields)
                                     for r in rows)
    return out


def settle(box: SandboxClient, db: Path) -> dict[tuple[str, str], Counter[tuple[Any, ...]]]:
    sf, hs = connectors(box)
    store = open_store(f"sqlite:///{db}")
    for _ in range(SETTLE):
        run_cycle(store, MAPPING, sf, hs)
        next_second()
    return snapshot(sf, hs)


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Any]:
    from sandbox.pytest_plugin import SMALL
    from sandbox.server import SandboxConfig, SandboxServer

    server = SandboxServer(SandboxConfig(
        sizes=SMALL, state_dir=tmp_path_factory.mktemp("baseline"),
        hubspot_per_ten_seconds=0, hubspot_search_per_second=0))
    server.start()
    try:
        return settle(SandboxClient(server.info, server),
                      tmp_path_factory.mktemp("baseline-db") / "state.db")
    finally:
        server.stop()


def agent(box: SandboxClient, db: Path, failpoint: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STAGESYNC_FAILPOINT": failpoint,
           "STAGESYNC_HUBSPOT__REQUESTS_PER_TEN_SECONDS": "0",
           "STAGESYNC_HUBSPOT__SEARCHES_PER_SECOND": "0"}
    return subprocess.run(
        [sys.executable, "-c", "from sync_agent.cli import main; main()", "sync", "once",
         "--mapping", str(DEFAULT), "--env-file", str(box.info.settings_file),
         "--db", f"sqlite:///{db}"], env=env, capture_output=True, text=True, timeout=300,
        check=False)


@pytest.mark.parametrize("failpoint", [
    "cycle.write.salesforce.Lead",  # Salesforce written, HubSpot not, nothing recorded
    "cycle.write.hubspot.contacts",  # both written, links and ledger not recorded
    "cycle.write.salesforce.Task",  # the SLA follow-up Tasks exist, their gaps do not
    "cycle.commit",  # everything written, nothing recorded
])
def test_a_killed_cycle_reruns_to_the_same_result(make_sandbox: Any, tmp_path: Path,
                                                  expected: dict[tuple[str, str], Any],
                                                  failpoint: str) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    db = tmp_path / "state.db"
    killed = agent(box, db, failpoint)
    assert killed.returncode == 137, killed.stderr[-2000:]
    after = settle(box, db)
    for key, records in expected.items():
        assert after[key] == records, f"{key}: {after[key] - records} extra, " \
                                      f"{records - after[key]} missing"
    assert expected[("salesforce", "Task")]  # the scenario really has cold leads
    companies = [r[-1] for r in after[("hubspot", "companies")].elements() if r[-1]]
    assert len(companies) == len(set(companies))  # one company per Salesforce account
