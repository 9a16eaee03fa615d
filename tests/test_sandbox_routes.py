"""Every Salesforce route answers; the sandbox runs as a command a user starts and stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from simple_salesforce.format import format_soql

from sandbox.admin import SandboxClient
from sandbox.salesforce.app import SalesforceEmulator
from sandbox.salesforce.org import Org
from sandbox.seed import SeedSizes
from tests.conftest import salesforce_client


def test_every_salesforce_route_answers(make_sandbox: Any) -> None:
    box: SandboxClient = make_sandbox(sizes=SeedSizes(leads=450, contacts=10, accounts=3,
                                                      opportunities=3, hubspot_only_contacts=0))
    sf = salesforce_client(box)
    v = "/services/data/v59.0"
    http = box.http
    headers = {"Authorization": f"Bearer {sf.session_id}"}

    def call(method: str, path: str, extra: dict[str, str] | None = None, **kwargs: Any) -> Any:
        response = http.request(method, box.info.salesforce_url + path,
                                headers={**headers, **(extra or {})}, **kwargs)
        assert response.status_code < 400, (path, response.text)
        return response

    assert call("GET", "/services/data").json()[0]["version"] == "59.0"
    assert "query" in call("GET", v).json()
    assert {o["name"] for o in sf.describe()["sobjects"]} >= {"Lead", "Task", "User"}
    assert sf.Lead.metadata()["objectDescribe"]["keyPrefix"] == "00Q"
    lead = sf.Lead.create({"LastName": "R", "Company": "C", "Email": "routes@example.com"})["id"]
    sf.Lead.get(lead)
    sf.Lead.update(lead, {"Title": "T"})
    sf.query(format_soql("SELECT Id FROM Lead WHERE Id = {}", lead))
    call("GET", v + "/query", params={"q": "SELECT Id FROM Lead"},
         extra={"Sforce-Query-Options": "batchSize=200"})
    sf.query_all_iter("SELECT Id FROM Lead", include_deleted=True).__next__()
    more = call("GET", v + "/queryAll", params={"q": "SELECT Id FROM Lead"},
                extra={"Sforce-Query-Options": "batchSize=200"}).json()
    call("GET", more["nextRecordsUrl"])
    page = call("GET", v + "/query", params={"q": "SELECT Id FROM Lead"},
                extra={"Sforce-Query-Options": "batchSize=200"}).json()
    call("GET", page["nextRecordsUrl"])
    retrieved = call("GET", v + "/composite/sobjects/Lead",
                     params={"ids": lead, "fields": "Id,Email"}).json()
    assert retrieved[0]["Email"] == "routes@example.com"
    posted = call("POST", v + "/composite/sobjects/Lead",
                  json={"ids": [lead, "00Q5g00000zzzzzEAA"], "fields": ["Id"]}).json()
    assert posted[1] is None
    made = call("POST", v + "/composite/sobjects", json={"records": [
        {"attributes": {"type": "Contact"}, "LastName": "U", "HubSpot_Contact_Id__c": "h1"}]})
    assert made.json()[0]["success"]
    upserted = call("PATCH", v + "/composite/sobjects/Contact/HubSpot_Contact_Id__c", json={
        "records": [{"attributes": {"type": "Contact"}, "HubSpot_Contact_Id__c": "h1",
                     "LastName": "U2"},
                    {"attributes": {"type": "Contact"}, "HubSpot_Contact_Id__c": "h2",
                     "LastName": "New"}]}).json()
    assert [r["created"] for r in upserted] == [False, True]
    call("PATCH", v + "/composite/sobjects", json={"records": [
        {"attributes": {"type": "Lead"}, "Id": lead, "Title": "X"}]})
    sf.Contact.upsert("HubSpot_Contact_Id__c/h3", {"LastName": "Single"})
    # Twins get past the standard duplicate rules as an API client's would: allowSave=true.
    twins = [sf.Lead.create({"LastName": "Twin", "Company": "C", "Email": "twin.r@example.com"},
                            headers={"Sforce-Duplicate-Rule-Header": "allowSave=true"})
             for _ in range(2)]
    several = http.patch(box.info.salesforce_url + v + "/sobjects/Lead/Email/twin.r@example.com",
                         json={"Title": "?"}, headers=headers)
    assert several.status_code == 300
    assert len(several.json()) == len(twins)
    sf.limits()
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    sf.Lead.updated(now - dt.timedelta(hours=1), now)
    sf.Lead.deleted(now - dt.timedelta(hours=1), now)
    job = call("POST", v + "/jobs/query", json={"operation": "query",
                                                "query": "SELECT Id FROM Lead"}).json()
    call("GET", f"{v}/jobs/query/{job['id']}")
    assert call("GET", f"{v}/jobs/query/{job['id']}/results").headers["Sforce-Locator"] == "null"
    aborted = call("POST", v + "/jobs/query", json={"query": "SELECT Id FROM Lead"}).json()
    assert call("PATCH", f"{v}/jobs/query/{aborted['id']}",
                json={"state": "Aborted"}).json()["state"] == "Aborted"
    call("DELETE", f"{v}/jobs/query/{aborted['id']}")
    sf.Lead.describe()
    composite = call("POST", v + "/composite", json={"compositeRequest": [
        {"method": "GET", "url": v + "/sobjects/Lead/" + lead, "referenceId": "lead"}]}).json()
    assert composite["compositeResponse"][0]["httpStatusCode"] == 200
    call("DELETE", v + "/composite/sobjects", params={"ids": twins[0]["id"]})
    sf.Lead.delete(lead)

    served = set(box.requests("salesforce")["endpoints"])
    routes = {r.endpoint for r in SalesforceEmulator(Org(), None, "").routes()}  # type: ignore[arg-type]
    assert routes - served == set()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sandbox_command_starts_serves_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    sf_port, hs_port = _free_port(), _free_port()
    command = [sys.executable, "-c", "from sync_agent.cli import app; app()", "sandbox", "start",
               "--state-dir", str(tmp_path), "--salesforce-port", str(sf_port),
               "--hubspot-port", str(hs_port), "--records", "200", "--seed", "3"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    try:
        lines = []
        deadline = time.monotonic() + 30
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "sandbox ready" in line or not line:
                break
        output = "".join(lines)
        assert "sandbox ready" in output, output
        assert f"https://127.0.0.1:{sf_port}" in output
        settings = (tmp_path / "sandbox.env").read_text()
        assert f"STAGESYNC_HUBSPOT__HOST=http://127.0.0.1:{hs_port}" in settings
        assert oct((tmp_path / "sandbox.env").stat().st_mode & 0o777) == "0o600"
        check = subprocess.run([sys.executable, "-c", "from sync_agent.cli import app; app()",
                                "check", "--env-file", str(tmp_path / "sandbox.env")],
                               capture_output=True, text=True, timeout=60,
                               env={**os.environ, "COLUMNS": "200"})
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=15)
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0
    for port in (sf_port, hs_port):  # both servers really stopped
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0
