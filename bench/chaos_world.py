"""Worlds for the chaos bench (``bench/bench_chaos.py``): what one world is, how it is read,
written and synced, and how two worlds are compared.

A world is a sandbox in its own process (``stagesync sandbox start``), the default mapping
(``stagesync init``) and a SQLite state store, synced by the real agent
(``stagesync sync once``) run as a subprocess. The bench reads and writes a world over plain
HTTP -- the vendors' REST APIs and the sandbox's admin routes -- and never through the
connectors under test, so what it observes does not depend on them. All traffic goes to
127.0.0.1.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

API = "/services/data/v59.0"
CLI = [sys.executable, "-c", "from sync_agent.cli import main; main()"]
# The agent's own client pacing off: the sandboxes run without rate limits.
AGENT_ENV = {"STAGESYNC_HUBSPOT__REQUESTS_PER_TEN_SECONDS": "0",
             "STAGESYNC_HUBSPOT__SEARCHES_PER_SECOND": "0", "COLUMNS": "160"}
# HubSpot's re-read window (default 300 s). It is also how long the agent holds a create it
# cannot tell landed (a killed or failed cycle sent it, search may not show it yet): the
# bench shortens it, still well past the sandbox's search lag, so a held create is decided
# within a round instead of five minutes later.
SEARCH_LOOKBACK = float(os.environ.get("CHAOS_SEARCH_LOOKBACK", "15"))
WRITE_ACTIONS = {"create", "update", "upsert", "delete", "archive", "default"}
PREFIX = "Chaos"  # every record the bench creates has a LastName (lastname) starting so

# What is compared, per object: every field the default mapping syncs, plus the keys.
SF_FIELDS: dict[str, list[str]] = {
    "Lead": ["Email", "FirstName", "LastName", "Company", "Phone", "Title", "Website", "City",
             "Country", "Status", "OwnerId", "Lead_Score__c", "IsConverted"],
    "Contact": ["Email", "FirstName", "LastName", "Phone", "Title", "OwnerId", "AccountId",
                "Lead_Score__c"],
    "Account": ["Name", "Phone", "BillingCity", "NumberOfEmployees", "AnnualRevenue",
                "Industry", "OwnerId"],
    "Opportunity": ["Name", "Amount", "CloseDate", "StageName", "AccountId", "OwnerId"],
    "Task": ["WhoId", "Subject", "Status", "OwnerId"],
}
HS_FIELDS: dict[str, list[str]] = {
    "contacts": ["email", "firstname", "lastname", "company", "phone", "jobtitle", "website",
                 "city", "country", "lifecyclestage", "hs_lead_status", "hubspot_owner_id",
                 "stagesync_cold_lead", "salesforceleadid", "salesforcecontactid"],
    "companies": ["name", "phone", "city", "numberofemployees", "annualrevenue", "industry",
                  "hubspot_owner_id", "salesforceaccountid"],
    "deals": ["dealname", "amount", "closedate", "dealstage", "hubspot_owner_id",
              "salesforceopportunityid"],
}
OBJECTS = [*SF_FIELDS, *(f"hs.{o}" for o in HS_FIELDS)]
# HubSpot properties that carry a Salesforce id: one HubSpot record per Salesforce record.
CARRIED = [("hs.contacts", "salesforceleadid"), ("hs.contacts", "salesforcecontactid"),
           ("hs.companies", "salesforceaccountid"), ("hs.deals", "salesforceopportunityid")]

Snapshot = dict[str, list[dict[str, Any]]]


def is_write(endpoint: str) -> bool:
    """A request that changes vendor data (not a sign-in, read, or Bulk query job)."""
    if "bulk2" in endpoint or "oauth" in endpoint:
        return False
    return endpoint.rsplit(".", 1)[-1] in WRITE_ACTIONS


def norm(value: Any) -> str:
    """A value as compared: text trimmed and lower-cased, numbers without a trailing .0,
    None and "" alike (Salesforce stores "" as null; HubSpot answers null when empty)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip().lower()
    if text and text[0] in "-0123456789" and text[-1].isdigit():
        with contextlib.suppress(ValueError):
            number = float(text)
            if math.isfinite(number) and number == int(number):
                return str(int(number))
    return text


@dataclass
class AgentRun:
    """One `stagesync sync once`: its exit, time, and the API calls the sandbox served."""

    world: str
    rc: int
    seconds: float
    killed: bool
    delay: float | None
    calls: Counter[str]
    statuses: Counter[str]
    log: Path
    first_call: float | None = None  # seconds from start to the first API request, if watched
    committed: bool = False  # the store recorded this cycle as completed

    @property
    def work(self) -> float:
        """Seconds from the first API request to the end (all of it when not watched)."""
        return self.seconds - (self.first_call or 0.0)

    @property
    def writes(self) -> Counter[str]:
        return Counter({k: n for k, n in self.calls.items() if is_write(k)})

    @property
    def faults(self) -> int:
        """Answers the fault injector (or a sandbox limit) gave: not 2xx, or a reset."""
        return sum(n for k, n in self.statuses.items()
                   if not k.rsplit(" ", 1)[-1].startswith("2"))

    def phase(self) -> str:
        """Where a killed run was when it died, from what the sandbox served."""
        total = sum(self.calls.values())
        if total == 0:
            return "starting (no API call yet)"
        landed = ", ".join(f"{k}x{n}" for k, n in sorted(self.writes.items())) or "none"
        if self.committed:
            return f"after the commit (writes: {landed})"
        if not self.writes:
            return f"reading ({total} calls, no write yet)"
        return f"writing, not committed (landed: {landed})"

    def tail(self, lines: int = 6) -> str:
        with contextlib.suppress(OSError):
            text = self.log.read_text(errors="replace").strip().splitlines()
            return " | ".join(line.strip() for line in text[-lines:])
        return ""


class World:
    """One sandbox process, its mapping and state store, and an HTTP client for both APIs."""

    def __init__(self, name: str, root: Path, seed: int, records: int,
                 search_lag: float = 3.0, code: Path | None = None) -> None:
        self.name = name
        self.seed = seed
        self.records = records
        self.search_lag = search_lag
        # The product's packages, copied once for the whole bench (see freeze_code), so the
        # engine under test cannot change between the twin's runs and the chaos world's.
        self.code = code
        self.dir = root / name
        self.dir.mkdir(parents=True)
        self.mapping = self.dir / "stagesync.yaml"
        self.db = self.dir / "state.db"
        self.state_dir = self.dir / "sandbox"
        self.env_file = self.state_dir / "sandbox.env"
        self.process: subprocess.Popen[bytes] | None = None
        self.http = requests.Session()
        self.http.trust_env = False  # only 127.0.0.1, whatever the environment's proxies say
        self.settings: dict[str, str] = {}
        self.sf_url = self.hs_url = ""
        self.sf_token = ""
        self.fault_spec = ""
        self.runs = 0

    # -- the sandbox process ------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> None:
        log = (self.dir / "sandbox.log").open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
            [*CLI, "sandbox", "start", "--seed", str(self.seed), "--records", str(self.records),
             "--salesforce-port", "0", "--hubspot-port", "0", "--rate-limit", "0",
             "--search-rate", "0", "--search-lag", str(self.search_lag), "--host", "127.0.0.1",
             "--state-dir", str(self.state_dir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir,
            env=self.environment())
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = (self.dir / "sandbox.log").read_text(errors="replace")
            if "sandbox ready" in text:
                break
            if self.process.poll() is not None:
                raise RuntimeError(f"sandbox {self.name} exited early: {text[-2000:]}")
            time.sleep(0.2)
        else:
            raise RuntimeError(f"sandbox {self.name} did not start in {timeout:.0f} s")
        self.settings = dict(line.split("=", 1) for line in self.env_file.read_text().splitlines()
                             if line and not line.startswith("#"))
        self.sf_url = self.settings["STAGESYNC_SALESFORCE__INSTANCE_URL"]
        self.hs_url = self.settings["STAGESYNC_HUBSPOT__HOST"]
        for url in (self.sf_url, self.hs_url):
            if not url.startswith(("https://127.0.0.1:", "http://127.0.0.1:")):
                raise RuntimeError(f"sandbox {self.name} is not on 127.0.0.1: {url}")
        self.http.verify = self.settings["STAGESYNC_SALESFORCE__CA_BUNDLE"]
        subprocess.run([*CLI, "init", "--mapping", str(self.mapping), "--force"],  # noqa: S603
                       check=True, capture_output=True, cwd=self.dir, timeout=120,
                       env=self.environment())
        self._sign_in()

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of the world's processes: the product's frozen copy first on the
        path, no failpoint, the agent's pacing off."""
        env = {k: v for k, v in os.environ.items() if k != "STAGESYNC_FAILPOINT"}
        if self.code is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                [str(self.code), *filter(None, [os.environ.get("PYTHONPATH")])])
        env.update(AGENT_ENV)
        env["STAGESYNC_HUBSPOT__SEARCH_LOOKBACK_SECONDS"] = f"{SEARCH_LOOKBACK:g}"
        env.update(extra or {})
        return env

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()  # the sandbox stops both servers on SIGTERM
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    # -- HTTP -------------------------------------------------------------------------------
    def _sign_in(self) -> None:
        s = self.settings
        answer = self.http.post(f"{self.sf_url}/services/oauth2/token", data={
            "grant_type": "password", "client_id": s["STAGESYNC_SALESFORCE__AUTH__CLIENT_ID"],
            "client_secret": s["STAGESYNC_SALESFORCE__AUTH__CLIENT_SECRET"],
            "username": s["STAGESYNC_SALESFORCE__AUTH__USERNAME"],
            "password": s["STAGESYNC_SALESFORCE__AUTH__PASSWORD"]}, timeout=30)
        answer.raise_for_status()
        self.sf_token = answer.json()["access_token"]

    def _call(self, system: str, method: str, path: str, **kwargs: Any) -> Any:
        base = self.sf_url if system == "salesforce" else self.hs_url
        for attempt in range(2):
            token = (self.sf_token if system == "salesforce"
                     else self.settings["STAGESYNC_HUBSPOT__ACCESS_TOKEN"])
            answer = self.http.request(method, base + path, timeout=60,
                                       headers={"Authorization": f"Bearer {token}"}, **kwargs)
            if answer.status_code == 401 and system == "salesforce" and attempt == 0:
                self._sign_in()
                continue
            if answer.status_code >= 400:
                raise RuntimeError(f"{self.name}: {method} {path} -> {answer.status_code}: "
                                   f"{answer.text[:500]}")
            return answer.json() if answer.content else None
        raise AssertionError("unreachable")

    def admin(self, system: str, method: str, path: str, body: Any = None) -> Any:
        base = self.sf_url if system == "salesforce" else self.hs_url
        answer = self.http.request(method, f"{base}/__sandbox{path}", json=body, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def set_faults(self, spec: str) -> None:
        """Fault injection on both emulators (admin calls are never faulted themselves)."""
        for system in ("salesforce", "hubspot"):
            self.admin(system, "POST", "/faults", {"spec": spec})
        self.fault_spec = spec

    @contextlib.contextmanager
    def faults_off(self) -> Iterator[None]:
        """The bench's own reads and writes are not faulted."""
        spec = self.fault_spec
        if spec:
            self.set_faults("")
        try:
            yield
        finally:
            if spec:
                self.set_faults(spec)

    def served(self) -> tuple[Counter[str], Counter[str]]:
        """Requests served so far, per endpoint and per 'endpoint status', both emulators."""
        calls: Counter[str] = Counter()
        statuses: Counter[str] = Counter()
        for system in ("salesforce", "hubspot"):
            snap = self.admin(system, "GET", "/requests")
            calls.update(snap["endpoints"])
            statuses.update(snap["endpointStatuses"])
        return calls, statuses

    def soql(self, query: str) -> list[dict[str, Any]]:
        page = self._call("salesforce", "GET", f"{API}/query", params={"q": query})
        rows = list(page["records"])
        for _ in range(10_000):
            if page.get("done", True) or not page.get("nextRecordsUrl"):
                break
            page = self._call("salesforce", "GET", page["nextRecordsUrl"])
            rows += page["records"]
        for row in rows:
            row.pop("attributes", None)
        return rows

    def hs_all(self, obj: str, props: list[str]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        after = ""
        for _ in range(10_000):
            params = {"limit": "100", "properties": ",".join(props)}
            if after:
                params["after"] = after
            page = self._call("hubspot", "GET", f"/crm/v3/objects/{obj}", params=params)
            rows += [{"id": r["id"], **{p: (r.get("properties") or {}).get(p) for p in props}}
                     for r in page["results"]]
            after = ((page.get("paging") or {}).get("next") or {}).get("after") or ""
            if not after:
                break
        return rows

    def snapshot(self) -> Snapshot:
        """Every record of every compared object, as both systems hold it now."""
        with self.faults_off():
            out: Snapshot = {}
            for obj, fields in SF_FIELDS.items():
                out[obj] = self.soql(f"SELECT Id, {', '.join(fields)} FROM {obj}")  # noqa: S608
            for obj, props in HS_FIELDS.items():
                out[f"hs.{obj}"] = self.hs_all(obj, props)
            return out

    def sf_write(self, method: str, obj: str, rows: list[dict[str, Any]]) -> list[str]:
        """Create (POST) or update (PATCH, rows with Id) through sObject Collections."""
        ids: list[str] = []
        for start in range(0, len(rows), 200):
            chunk = rows[start:start + 200]
            body = {"allOrNone": True,
                    "records": [{"attributes": {"type": obj}, **row} for row in chunk]}
            results = self._call("salesforce", method, f"{API}/composite/sobjects", json=body)
            for row, result in zip(chunk, results, strict=True):
                if not result.get("success"):
                    raise RuntimeError(f"{self.name}: {method} {obj} {row}: {result}")
                ids.append(str(result["id"]))
        return ids

    def hs_write(self, action: str, obj: str, inputs: list[dict[str, Any]]) -> list[str]:
        """Batch create or update (inputs with id) of HubSpot records."""
        ids: list[str] = []
        for start in range(0, len(inputs), 100):
            chunk = inputs[start:start + 100]
            answer = self._call("hubspot", "POST", f"/crm/v3/objects/{obj}/batch/{action}",
                                json={"inputs": chunk})
            if answer.get("numErrors") or answer.get("errors"):
                raise RuntimeError(f"{self.name}: {action} {obj}: {answer}")
            results = answer["results"]
            if action == "create":
                # a batch create answers in no promised order: match each result to its input
                by_key = {_hs_key(r.get("properties") or {}): str(r["id"]) for r in results}
                ids += [by_key[_hs_key(i["properties"])] for i in chunk]
            else:
                ids += [str(r["id"]) for r in results]
        return ids

    # -- the agent ------------------------------------------------------------------------
    def run_agent(self, kill_after: float | None = None, env: dict[str, str] | None = None,
                  timeout: float = 300.0, watch: bool = False) -> AgentRun:
        """`stagesync sync once` as a real process. With ``kill_after`` it is SIGKILLed that
        many seconds after its first API request (the sandbox's request log is polled until
        then: killing it while it still imports would test nothing), if it is still running
        then. ``watch`` notes the first request's moment without killing."""
        self.runs += 1
        log = self.dir / f"run-{self.runs:03d}.log"
        before_calls, before_status = self.served()
        before = sum(before_calls.values())
        committed = self.completed_runs()
        environment = self.environment(env)
        started = time.monotonic()
        first: float | None = None
        signalled = False
        with log.open("wb") as out:
            process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
                [*CLI, "sync", "once", "--mapping", str(self.mapping), "--env-file",
                 str(self.env_file), "--db", f"sqlite:///{self.db}"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=environment, cwd=self.dir)
            try:
                while first is None and (watch or kill_after is not None):
                    if time.monotonic() - started > timeout:
                        raise subprocess.TimeoutExpired("sync once", timeout)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(0.05)
                        break  # it ended before any request was seen
                    if sum(self.served()[0].values()) > before:
                        first = time.monotonic()
                if kill_after is not None and first is not None:
                    process.wait(kill_after)
                else:
                    process.wait(max(1.0, timeout - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                signalled = True
                process.wait(30)
        seconds = time.monotonic() - started
        after_calls, after_status = self.served()
        rc = process.returncode
        run = AgentRun(self.name, rc, seconds, signalled and kill_after is not None
                       and rc == -signal.SIGKILL, kill_after, after_calls - before_calls,
                       after_status - before_status, log,
                       first_call=None if first is None else first - started)
        run.committed = self.completed_runs() > committed
        return run

    def pending_creates(self) -> int:
        """Creates the store says were sent (or held) and not yet settled: a world holding
        any has not settled, though a cycle may write nothing."""
        return self._count("SELECT COUNT(*) FROM pending_creates")

    def _count(self, query: str) -> int:
        if not self.db.exists():
            return 0
        try:
            with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True,
                                                    timeout=5)) as db:
                row = db.execute(query).fetchone()
        except sqlite3.Error:  # no such table in this version of the store: none pending
            return 0
        return int(row[0])

    def completed_runs(self) -> int:
        """Cycles the state store records as completed (0 before the first sync is done)."""
        return self._count("SELECT COUNT(*) FROM runs WHERE status = 'ok'")


def freeze_code(source: Path, into: Path) -> str:
    """Copy the product's packages (as they are in the work tree now) to ``into``; returns
    a short digest of the copied sources, which names the code under test."""
    digest = hashlib.sha256()
    for package in ("connectors", "mapping", "sync_agent", "sandbox"):
        shutil.copytree(source / package, into / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path in sorted(into.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(into)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _hs_key(props: dict[str, Any]) -> str:
    return f"{norm(props.get('email'))}|{norm(props.get('lastname'))}|{norm(props.get('name'))}" \
           f"|{norm(props.get('dealname'))}"


# -- identity: the same record in two worlds ----------------------------------------------
@dataclass
class Identities:
    """A world-independent name for every record, so records pair up across worlds whose
    ids differ (records the agent creates get new ids in each world)."""

    of: dict[str, dict[str, str]] = field(default_factory=dict)  # object -> id -> identity

    def get(self, obj: str, record_id: Any) -> str:
        if not record_id:
            return ""
        return self.of.get(obj, {}).get(str(record_id), f"?{record_id}")

    def sf_person(self, record_id: Any) -> str:
        """A Lead or Contact id (a Task's WhoId) by identity."""
        if not record_id:
            return ""
        text = str(record_id)
        for obj in ("Lead", "Contact"):
            if text in self.of.get(obj, {}):
                return f"{obj}:{self.of[obj][text]}"
        return f"?{text}"


def _person(rec: dict[str, Any], email_field: str, last_field: str, rid: str) -> str:
    email = norm(rec.get(email_field))
    if email:
        return f"email:{email}"
    last = str(rec.get(last_field) or "")
    if last.startswith(PREFIX):
        return f"ln:{last.lower()}"
    return f"id:{rid}"


def identities(snap: Snapshot) -> Identities:
    ids = Identities()
    ids.of["Lead"] = {r["Id"]: _person(r, "Email", "LastName", r["Id"]) for r in snap["Lead"]}
    ids.of["Contact"] = {r["Id"]: _person(r, "Email", "LastName", r["Id"])
                         for r in snap["Contact"]}
    ids.of["Account"] = {r["Id"]: f"id:{r['Id']}" for r in snap["Account"]}
    ids.of["Opportunity"] = {r["Id"]: f"id:{r['Id']}" for r in snap["Opportunity"]}
    ids.of["Task"] = {r["Id"]: f"{ids.sf_person(r.get('WhoId'))}|{norm(r.get('Subject'))}"
                      for r in snap["Task"]}
    contacts: dict[str, str] = {}
    for r in snap["hs.contacts"]:
        if norm(r.get("email")):
            contacts[r["id"]] = f"email:{norm(r.get('email'))}"
        elif r.get("salesforceleadid"):
            contacts[r["id"]] = f"lead>{ids.get('Lead', r['salesforceleadid'])}"
        elif r.get("salesforcecontactid"):
            contacts[r["id"]] = f"contact>{ids.get('Contact', r['salesforcecontactid'])}"
        else:
            contacts[r["id"]] = _person(r, "email", "lastname", f"hs{r['id']}")
    ids.of["hs.contacts"] = contacts
    ids.of["hs.companies"] = {r["id"]: (f"id:{r['salesforceaccountid']}"
                                        if r.get("salesforceaccountid")
                                        else f"name:{norm(r.get('name'))}")
                              for r in snap["hs.companies"]}
    ids.of["hs.deals"] = {r["id"]: (f"id:{r['salesforceopportunityid']}"
                                    if r.get("salesforceopportunityid")
                                    else f"name:{norm(r.get('dealname'))}")
                          for r in snap["hs.deals"]}
    return ids


def fields_of(obj: str) -> list[str]:
    return HS_FIELDS[obj[3:]] if obj.startswith("hs.") else SF_FIELDS[obj]


def comparable(obj: str, rec: dict[str, Any], ids: Identities) -> tuple[str, ...]:
    """A record's compared fields, with Salesforce ids of records the agent may create (Leads
    and Contacts) replaced by those records' identities."""
    out = []
    for name in fields_of(obj):
        value = rec.get(name)
        if obj == "hs.contacts" and name == "salesforceleadid":
            out.append(ids.get("Lead", value))
        elif obj == "hs.contacts" and name == "salesforcecontactid":
            out.append(ids.get("Contact", value))
        elif obj == "Task" and name == "WhoId":
            out.append(ids.sf_person(value))
        else:
            out.append(norm(value))
    return tuple(out)


def by_identity(snap: Snapshot) -> dict[str, dict[str, list[dict[str, Any]]]]:
    ids = identities(snap)
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for obj in OBJECTS:
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for rec in snap[obj]:
            groups[ids.get(obj, rec.get("Id") or rec.get("id"))].append(rec)
        out[obj] = dict(groups)
    return out


# -- comparing two worlds -----------------------------------------------------------------
@dataclass
class Difference:
    obj: str
    ident: str
    field: str
    chaos: str
    twin: str

    def key(self) -> tuple[str, ...]:
        return (self.obj, self.ident, self.field, self.chaos, self.twin)


@dataclass
class Comparison:
    counts: dict[str, tuple[int, int]]  # object -> (chaos, twin)
    surplus: list[tuple[str, str, int]]  # records only in the chaos world: obj, identity, n
    missing: list[tuple[str, str, int]]  # records only in the twin
    fields: list[Difference]  # differing fields of records in both
    missing_fields: int  # fields of the records only in the twin
    duplicates: dict[tuple[str, str], tuple[int, int]]  # (class, key) -> (chaos, twin) sizes

    @property
    def duplicate_excess(self) -> int:
        """Records sharing a key that should be unique, beyond what the twin has."""
        return sum(max(0, a - max(b, 1)) for a, b in self.duplicates.values() if a > 1)

    @property
    def fields_differing(self) -> int:
        return len(self.fields) + self.missing_fields


def duplicate_groups(snap: Snapshot) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Records that share what must be unique: a carried Salesforce id (HubSpot), a non-empty
    email (Salesforce Leads, Contacts), a (person, subject) follow-up Task."""
    ids = identities(snap)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for obj, prop in CARRIED:
        target = {"salesforceleadid": "Lead", "salesforcecontactid": "Contact"}.get(prop)
        for rec in snap[obj]:
            if rec.get(prop):
                key = ids.get(target, rec[prop]) if target else str(rec[prop])
                groups[(f"{obj}.{prop}", key)].append(rec)
    for obj in ("Lead", "Contact"):
        for rec in snap[obj]:
            email = norm(rec.get("Email"))
            if email:
                groups[(f"{obj}.Email", email)].append(rec)
    for rec in snap["Task"]:
        groups[("Task.WhoId+Subject", ids.of["Task"][rec["Id"]])].append(rec)
    return {k: v for k, v in groups.items() if len(v) > 1}


def compare(chaos: Snapshot, twin: Snapshot) -> Comparison:
    ids_a, ids_b = identities(chaos), identities(twin)
    groups_a, groups_b = by_identity(chaos), by_identity(twin)
    counts = {obj: (len(chaos[obj]), len(twin[obj])) for obj in OBJECTS}
    surplus: list[tuple[str, str, int]] = []
    missing: list[tuple[str, str, int]] = []
    fields: list[Difference] = []
    missing_fields = 0
    for obj in OBJECTS:
        names = fields_of(obj)
        for ident in sorted(set(groups_a[obj]) | set(groups_b[obj])):
            la = Counter(comparable(obj, r, ids_a) for r in groups_a[obj].get(ident, []))
            lb = Counter(comparable(obj, r, ids_b) for r in groups_b[obj].get(ident, []))
            common = la & lb
            ra = sorted((la - common).elements())
            rb = sorted((lb - common).elements())
            for ta, tb in zip(ra, rb, strict=False):
                fields += [Difference(obj, ident, n, x, y)
                           for n, x, y in zip(names, ta, tb, strict=True) if x != y]
            if len(ra) > len(rb):
                surplus.append((obj, ident, len(ra) - len(rb)))
            elif len(rb) > len(ra):
                missing.append((obj, ident, len(rb) - len(ra)))
                missing_fields += (len(rb) - len(ra)) * len(names)
    dup_a, dup_b = duplicate_groups(chaos), duplicate_groups(twin)
    duplicates = {k: (len(dup_a.get(k, [])), len(dup_b.get(k, [])))
                  for k in set(dup_a) | set(dup_b)}
    return Comparison(counts, surplus, missing, fields, missing_fields, duplicates)


def describe(obj: str, recs: Iterable[dict[str, Any]]) -> str:
    """A few identifying fields of records, for the report."""
    keep = {"Lead": ["Id", "Email", "LastName", "Status", "IsConverted"],
            "Contact": ["Id", "Email", "LastName"], "Task": ["Id", "WhoId", "Subject"],
            "hs.contacts": ["id", "email", "lastname", "lifecyclestage", "salesforceleadid",
                            "salesforcecontactid"],
            "hs.companies": ["id", "name", "salesforceaccountid"],
            "hs.deals": ["id", "dealname", "salesforceopportunityid"]}.get(obj, ["Id", "Name"])
    return "; ".join(", ".join(f"{k}={r.get(k)!s}" for k in keep if r.get(k) not in (None, ""))
                     for r in recs)


# -- injected changes ---------------------------------------------------------------------
@dataclass
class Check:
    """Where an injected value must end up: ``obj`` record named by one of ``idents`` holds
    ``expected`` (normalised) in ``field``. ``counterpart`` checks are on the other system;
    unless ``required`` they apply only where a counterpart exists (in either world): an
    unlinked record's change has nowhere to go."""

    obj: str
    idents: tuple[str, ...]
    field: str
    expected: str
    counterpart: bool = False
    required: bool = False


@dataclass
class Change:
    """One record's injected change (an edit of ``ident``, or a create when it is None), the
    same in both worlds, and the checks that say whether it survived. ``slots`` name what it
    set (pair, logical field): a later change to a slot supersedes this one's checks."""

    round: int
    label: str
    obj: str
    ident: str | None
    values: dict[str, Any]
    checks: list[Check]
    slots: set[tuple[str, str]]
    new_id: str | None = None

    @property
    def side(self) -> str:
        return "hubspot" if self.obj.startswith("hs.") else "salesforce"


# (Salesforce field, HubSpot property, logical field) per pair, two_way in the default mapping
LEAD_FIELDS = [("Title", "jobtitle", "title"), ("City", "city", "city"),
               ("Phone", "phone", "phone"), ("FirstName", "firstname", "firstname")]
CONTACT_FIELDS = [("Title", "jobtitle", "title"), ("Phone", "phone", "phone"),
                  ("FirstName", "firstname", "firstname")]


def _value(logical: str, r: int, n: int) -> str:
    if logical == "phone":
        return f"+1 555-{r:03d}-{n:04d}"
    if logical == "firstname":
        return f"Chaosfn{r}x{n}"
    return f"Chaos {logical} r{r} n{n}"


def plan_round(rng: Any, r: int, twin: Snapshot, chaos: Snapshot, scale: int = 1
               ) -> list[Change]:
    """The changes to inject before round ``r``: edits on both sides of records that exist
    once in both worlds (never both sides of one pair in a round), and new records on both
    sides -- Leads with and without email, an Unqualified Lead, a Contact, an Account, an
    Opportunity; HubSpot contacts at marketingqualifiedlead with and without email and one
    at lead."""
    ga, gb = by_identity(chaos), by_identity(twin)
    changes: list[Change] = []
    used: set[str] = set()
    count = iter(range(10_000))

    def once(obj: str, ident: str) -> bool:
        return len(ga[obj].get(ident, [])) == 1 and len(gb[obj].get(ident, [])) == 1

    def pick(pool: list[str], k: int) -> list[str]:
        free = [p for p in pool if p not in used]
        chosen: list[str] = rng.sample(free, min(k, len(free)))
        used.update(chosen)
        return chosen

    lead_emails = {i for i in gb["Lead"] if i.startswith("email:")}
    contact_emails = {i for i in gb["Contact"] if i.startswith("email:")}
    leads = sorted(i for i in lead_emails - contact_emails if once("Lead", i)
                   and not gb["Lead"][i][0].get("IsConverted"))
    contacts = sorted(i for i in contact_emails - lead_emails if once("Contact", i))
    hs_people = sorted(i for i in gb["hs.contacts"] if i.startswith("email:")
                       and once("hs.contacts", i)
                       and (i in leads or i in contacts
                            or (i not in lead_emails and i not in contact_emails
                                and i not in ga["Lead"] and i not in ga["Contact"])))
    counterpart = gb["hs.contacts"]

    def stage_of(ident: str) -> str:
        recs = counterpart.get(ident, [])
        return norm(recs[0].get("lifecyclestage")) if len(recs) == 1 else "?"

    # Salesforce edits
    for ident in pick(leads, 5 * scale):
        sf, hs, logical = rng.choice(LEAD_FIELDS)
        v = _value(logical, r, next(count))
        changes.append(Change(r, f"Salesforce Lead edit {sf}", "Lead", ident, {sf: v}, [
            Check("Lead", (ident,), sf, norm(v)),
            Check("hs.contacts", (ident,), hs, norm(v), counterpart=True)],
            {(ident, logical)}))
    movable = [i for i in leads if norm(gb["Lead"][i][0].get("Status")) == "new"
               and stage_of(i) in ("lead", "subscriber")]
    for ident in pick(movable, 1 * scale):
        changes.append(Change(r, "Salesforce Lead Status New -> Working", "Lead", ident,
                              {"Status": "Working"}, [
            Check("Lead", (ident,), "Status", "working"),
            Check("hs.contacts", (ident,), "lifecyclestage", "marketingqualifiedlead",
                  counterpart=True),
            Check("hs.contacts", (ident,), "hs_lead_status", "in_progress",
                  counterpart=True)], {(ident, "stage")}))
    for ident in pick(contacts, 2 * scale):
        sf, hs, logical = rng.choice(CONTACT_FIELDS)
        v = _value(logical, r, next(count))
        changes.append(Change(r, f"Salesforce Contact edit {sf}", "Contact", ident, {sf: v}, [
            Check("Contact", (ident,), sf, norm(v)),
            Check("hs.contacts", (ident,), hs, norm(v), counterpart=True)],
            {(ident, logical)}))
    accounts = sorted(i for i in gb["Account"] if once("Account", i))
    for ident in pick(accounts, 1 * scale):
        sf, hs, logical = rng.choice([("Phone", "phone", "phone"),
                                      ("BillingCity", "city", "city")])
        v = _value(logical, r, next(count))
        changes.append(Change(r, f"Salesforce Account edit {sf}", "Account", ident, {sf: v}, [
            Check("Account", (ident,), sf, norm(v)),
            Check("hs.companies", (ident,), hs, norm(v), counterpart=True)],
            {(ident, logical)}))
    opportunities = sorted(i for i in gb["Opportunity"] if once("Opportunity", i))
    for ident in pick(opportunities, 1 * scale):
        n = next(count)
        if rng.random() < 0.5:
            values: dict[str, Any] = {"Name": f"Chaos deal r{r} n{n}"}
            check = ("Name", "dealname", norm(values["Name"]), "name")
        else:
            values = {"Amount": 1000 + 10 * n}
            check = ("Amount", "amount", norm(values["Amount"]), "amount")
        changes.append(Change(r, f"Salesforce Opportunity edit {check[0]}", "Opportunity",
                              ident, values, [
            Check("Opportunity", (ident,), check[0], check[2]),
            Check("hs.deals", (ident,), check[1], check[2], counterpart=True)],
            {(ident, check[3])}))
    # HubSpot edits
    for ident in pick(hs_people, 5 * scale):
        table = CONTACT_FIELDS if ident in contacts else LEAD_FIELDS
        sf, hs, logical = rng.choice(table)
        v = _value(logical, r, next(count))
        target = "Contact" if ident in contacts else "Lead"
        checks = [Check("hs.contacts", (ident,), hs, norm(v))]
        if ident in leads or ident in contacts:
            checks.append(Check(target, (ident,), sf, norm(v), counterpart=True))
        changes.append(Change(r, f"HubSpot contact edit {hs}", "hs.contacts", ident, {hs: v},
                              checks, {(ident, logical)}))
    forward = [i for i in hs_people if i in leads and stage_of(i) in ("lead", "subscriber")
               and norm(gb["Lead"][i][0].get("Status")) == "new"]
    for ident in pick(forward, 1 * scale):
        changes.append(Change(r, "HubSpot lifecyclestage -> marketingqualifiedlead",
                              "hs.contacts", ident,
                              {"lifecyclestage": "marketingqualifiedlead"}, [
            Check("hs.contacts", (ident,), "lifecyclestage", "marketingqualifiedlead"),
            Check("Lead", (ident,), "Status", "working", counterpart=True)],
            {(ident, "stage")}))
    companies = sorted(i for i in gb["hs.companies"] if i.startswith("id:")
                       and once("hs.companies", i))
    for ident in pick(companies, 1 * scale):
        v = _value("city", r, next(count))
        changes.append(Change(r, "HubSpot company edit city", "hs.companies", ident,
                              {"city": v}, [
            Check("hs.companies", (ident,), "city", norm(v)),
            Check("Account", (ident,), "BillingCity", norm(v), counterpart=True)],
            {(ident, "city")}))
    deals = sorted(i for i in gb["hs.deals"] if i.startswith("id:") and once("hs.deals", i))
    for ident in pick(deals, 1 * scale):
        v = f"Chaos deal r{r} n{next(count)}"
        changes.append(Change(r, "HubSpot deal edit dealname", "hs.deals", ident,
                              {"dealname": v}, [
            Check("hs.deals", (ident,), "dealname", norm(v)),
            Check("Opportunity", (ident,), "Name", norm(v), counterpart=True)],
            {(ident, "name")}))
    # Salesforce creates
    for _ in range(2 * scale):
        n = next(count)
        last = f"{PREFIX}LeadR{r}N{n}"
        email = f"chaos.lead.r{r}.n{n}@chaos.test"
        ident = f"email:{email}"
        status = rng.choice(["New", "Working"])
        title = f"Chaos created r{r} n{n}"
        changes.append(Change(r, f"Salesforce Lead create ({status}, with email)", "Lead", None,
                              {"Email": email, "FirstName": "Chaos", "LastName": last,
                               "Company": "Chaos Labs", "Status": status, "Title": title}, [
            Check("Lead", (ident,), "LastName", norm(last)),
            Check("hs.contacts", (ident,), "lastname", norm(last), True, True),
            Check("hs.contacts", (ident,), "jobtitle", norm(title), True, True),
            Check("hs.contacts", (ident,), "company", "chaos labs", True, True),
            Check("hs.contacts", (ident,), "lifecyclestage",
                  "lead" if status == "New" else "marketingqualifiedlead", True, True)],
            {(ident, "lastname"), (ident, "title"), (ident, "stage")}))
    for _ in range(2 * scale):
        n = next(count)
        last = f"{PREFIX}NoemailR{r}N{n}"
        ident = f"ln:{last.lower()}"
        title = f"Chaos created r{r} n{n}"
        changes.append(Change(r, "Salesforce Lead create (New, no email)", "Lead", None,
                              {"LastName": last, "Company": "Chaos Labs", "Status": "New",
                               "Title": title}, [
            Check("Lead", (ident,), "LastName", norm(last)),
            Check("hs.contacts", (f"lead>{ident}",), "lastname", norm(last), True, True),
            Check("hs.contacts", (f"lead>{ident}",), "jobtitle", norm(title), True, True)],
            {(ident, "lastname"), (ident, "title")}))
    n = next(count)
    last = f"{PREFIX}UnqualR{r}N{n}"
    email = f"chaos.unqual.r{r}.n{n}@chaos.test"
    changes.append(Change(r, "Salesforce Lead create (Unqualified: not for HubSpot)", "Lead",
                          None, {"Email": email, "LastName": last, "Company": "Chaos Labs",
                                 "Status": "Unqualified"}, [
        Check("Lead", (f"email:{email}",), "LastName", norm(last))],
        {(f"email:{email}", "lastname")}))
    seeded_accounts = sorted(r_["Id"] for r_ in twin["Account"])
    n = next(count)
    last = f"{PREFIX}ContactR{r}N{n}"
    email = f"chaos.contact.r{r}.n{n}@chaos.test"
    changes.append(Change(r, "Salesforce Contact create", "Contact", None, {
        "Email": email, "FirstName": "Chaos", "LastName": last,
        "AccountId": rng.choice(seeded_accounts)}, [
        Check("Contact", (f"email:{email}",), "LastName", norm(last)),
        Check("hs.contacts", (f"email:{email}",), "lastname", norm(last), True, True)],
        {(f"email:{email}", "lastname")}))
    n = next(count)
    name = f"Chaos Account r{r} n{n}"
    city = f"Chaos City r{r} n{n}"
    changes.append(Change(r, "Salesforce Account create", "Account", None, {
        "Name": name, "BillingCity": city}, [
        Check("Account", ("id:{id}",), "Name", norm(name)),
        Check("hs.companies", ("id:{id}",), "name", norm(name), True, True),
        Check("hs.companies", ("id:{id}",), "city", norm(city), True, True)],
        {("id:{id}", "name"), ("id:{id}", "city")}))
    n = next(count)
    name = f"Chaos deal r{r} n{n}"
    close = time.time() + 30 * 86400
    changes.append(Change(r, "Salesforce Opportunity create", "Opportunity", None, {
        "Name": name, "StageName": "Prospecting", "Amount": 5000 + n,
        "CloseDate": time.strftime("%Y-%m-%d", time.gmtime(close)),
        "AccountId": rng.choice(seeded_accounts)}, [
        Check("Opportunity", ("id:{id}",), "Name", norm(name)),
        Check("hs.deals", ("id:{id}",), "dealname", norm(name), True, True),
        Check("hs.deals", ("id:{id}",), "dealstage", "appointmentscheduled", True, True),
        Check("hs.deals", ("id:{id}",), "amount", str(5000 + n), True, True)],
        {("id:{id}", "name"), ("id:{id}", "stage"), ("id:{id}", "amount")}))
    # HubSpot creates
    for _ in range(2 * scale):
        n = next(count)
        last = f"{PREFIX}HsmqlR{r}N{n}"
        email = f"chaos.hs.r{r}.n{n}@chaos.test"
        ident = f"email:{email}"
        title = f"Chaos created r{r} n{n}"
        changes.append(Change(r, "HubSpot contact create (marketingqualifiedlead, with email)",
                              "hs.contacts", None, {
            "email": email, "firstname": "Chaos", "lastname": last, "jobtitle": title,
            "lifecyclestage": "marketingqualifiedlead"}, [
            Check("hs.contacts", (ident,), "lastname", norm(last)),
            Check("Lead", (ident,), "LastName", norm(last), True, True),
            Check("Lead", (ident,), "Title", norm(title), True, True),
            Check("Lead", (ident,), "Status", "working", True, True)],
            {(ident, "lastname"), (ident, "title"), (ident, "stage")}))
    n = next(count)
    last = f"{PREFIX}HsnoemailR{r}N{n}"
    ident = f"ln:{last.lower()}"
    changes.append(Change(r, "HubSpot contact create (marketingqualifiedlead, no email)",
                          "hs.contacts", None, {
        "firstname": "Chaos", "lastname": last, "lifecyclestage": "marketingqualifiedlead"}, [
        Check("hs.contacts", (f"lead>{ident}", ident), "lastname", norm(last)),
        # The engine may refuse to create a Salesforce record from a contact with no email
        # (nothing to find it again by after an interruption): not required, but where
        # either world has the Lead it must hold these.
        Check("Lead", (ident,), "LastName", norm(last), True),
        Check("Lead", (ident,), "Status", "working", True)],
        {(ident, "lastname"), (ident, "stage")}))
    n = next(count)
    last = f"{PREFIX}HsleadR{r}N{n}"
    email = f"chaos.hslead.r{r}.n{n}@chaos.test"
    changes.append(Change(r, "HubSpot contact create (lead: not for Salesforce)", "hs.contacts",
                          None, {"email": email, "lastname": last, "lifecyclestage": "lead"}, [
        Check("hs.contacts", (f"email:{email}",), "lastname", norm(last))],
        {(f"email:{email}", "lastname")}))
    return changes


def apply_changes(world: World, snap: Snapshot, changes: list[Change]) -> None:
    """Make ``changes`` in ``world`` (whose current state is ``snap``): edits by identity,
    creates as given; Salesforce first, then HubSpot; the bench's writes are not faulted.
    A created Account's or Opportunity's id is stored in the change (the twin must get the
    same one: only the bench creates those)."""
    groups = by_identity(snap)
    edits: dict[str, list[tuple[Change, str]]] = defaultdict(list)
    creates: dict[str, list[Change]] = defaultdict(list)
    for change in changes:
        if change.ident is None:
            creates[change.obj].append(change)
            continue
        recs = groups[change.obj].get(change.ident, [])
        if len(recs) != 1:
            raise RuntimeError(f"{world.name}: {change.obj} {change.ident} is not one record")
        edits[change.obj].append((change, str(recs[0].get("Id") or recs[0].get("id"))))
    with world.faults_off():
        for obj in [*SF_FIELDS, *(f"hs.{o}" for o in HS_FIELDS)]:
            if edits.get(obj):
                if obj.startswith("hs."):
                    world.hs_write("update", obj[3:], [{"id": rid, "properties": c.values}
                                                       for c, rid in edits[obj]])
                else:
                    world.sf_write("PATCH", obj, [{"Id": rid, **c.values}
                                                  for c, rid in edits[obj]])
            if creates.get(obj):
                if obj.startswith("hs."):
                    ids = world.hs_write("create", obj[3:], [{"properties": c.values}
                                                             for c in creates[obj]])
                else:
                    ids = world.sf_write("POST", obj, [c.values for c in creates[obj]])
                for change, new_id in zip(creates[obj], ids, strict=True):
                    if obj in ("Account", "Opportunity"):
                        if change.new_id is not None and change.new_id != new_id:
                            raise RuntimeError(f"{world.name}: {obj} created as {new_id}, "
                                               f"the other world's is {change.new_id}")
                        change.new_id = new_id


def settle_ids(changes: list[Change]) -> None:
    """Put created Accounts' and Opportunities' ids into their checks and slots."""
    for change in changes:
        if change.new_id is None:
            continue
        for check in change.checks:
            check.idents = tuple(i.replace("{id}", change.new_id) for i in check.idents)
        change.slots = {(k.replace("{id}", change.new_id), f) for k, f in change.slots}


@dataclass
class Lost:
    change: Change
    check: Check
    found: str


def verify(changes: list[Change], snap: Snapshot, other: Snapshot) -> list[Lost]:
    """The injected changes whose value is not where it must be in ``snap`` (``other`` is the
    other world, which tells whether an unlinked record has a counterpart anywhere)."""
    latest: dict[tuple[str, str], int] = {}
    for n, change in enumerate(changes):
        for slot in change.slots:
            latest[slot] = n
    groups, others = by_identity(snap), by_identity(other)
    lost: list[Lost] = []
    for n, change in enumerate(changes):
        if any(latest[slot] != n for slot in change.slots):
            continue  # a later change set the same field of the same pair
        for check in change.checks:
            recs = [r for i in check.idents for r in groups[check.obj].get(i, [])]
            if not recs:
                if (check.counterpart and not check.required
                        and not any(others[check.obj].get(i) for i in check.idents)):
                    continue  # no counterpart in either world: nothing to carry it to
                lost.append(Lost(change, check, "no such record"))
                break
            values = [norm(r.get(check.field)) for r in recs]
            if check.expected not in values:
                lost.append(Lost(change, check, f"holds {values}"))
                break
    return lost
