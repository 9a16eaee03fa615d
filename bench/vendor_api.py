"""Plain HTTP to a running sandbox's vendor APIs and admin routes, for benches that seed or
change records themselves: never through the connectors under test, so what a bench sets up
does not depend on them (and their call counters only count the agent's own calls)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from bench.sandbox_process import settings_lines

API = "/services/data/v59.0"
SF_BATCH = 200  # sObject Collections
HS_BATCH = 100  # HubSpot batch endpoints


class VendorApi:
    """Both vendor APIs of one sandbox, signed in as the integration user."""

    def __init__(self, settings_file: Path) -> None:
        self.settings = settings_lines(settings_file)
        self.sf_url = self.settings["STAGESYNC_SALESFORCE__INSTANCE_URL"]
        self.hs_url = self.settings["STAGESYNC_HUBSPOT__HOST"]
        self.http = requests.Session()
        self.http.trust_env = False  # 127.0.0.1 only, whatever the environment's proxies say
        self.http.verify = self.settings["STAGESYNC_SALESFORCE__CA_BUNDLE"]
        s = self.settings
        answer = self.http.post(f"{self.sf_url}/services/oauth2/token", data={
            "grant_type": "password", "client_id": s["STAGESYNC_SALESFORCE__AUTH__CLIENT_ID"],
            "client_secret": s["STAGESYNC_SALESFORCE__AUTH__CLIENT_SECRET"],
            "username": s["STAGESYNC_SALESFORCE__AUTH__USERNAME"],
            "password": s["STAGESYNC_SALESFORCE__AUTH__PASSWORD"]}, timeout=30)
        answer.raise_for_status()
        self.sf_token = str(answer.json()["access_token"])

    def call(self, system: str, method: str, path: str, **kwargs: Any) -> Any:
        base, token = ((self.sf_url, self.sf_token) if system == "salesforce" else
                       (self.hs_url, self.settings["STAGESYNC_HUBSPOT__ACCESS_TOKEN"]))
        # A person editing a record saves past the org's duplicate alerts, as the bench does.
        headers = {"Authorization": f"Bearer {token}",
                   "Sforce-Duplicate-Rule-Header": "allowSave=true"}
        answer = self.http.request(method, base + path, timeout=120, headers=headers, **kwargs)
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {answer.status_code}: {answer.text[:500]}")
        return answer.json() if answer.content else None

    def admin(self, system: str, method: str, path: str, body: Any = None) -> Any:
        base = self.sf_url if system == "salesforce" else self.hs_url
        answer = self.http.request(method, f"{base}/__sandbox{path}", json=body, timeout=60)
        answer.raise_for_status()
        return answer.json()

    def hubspot_limits(self) -> dict[str, Any]:
        """The HubSpot emulator's rate limits as configured (an empty update changes none)."""
        return dict(self.admin("hubspot", "POST", "/hubspot/config", {}))

    @contextlib.contextmanager
    def unthrottled(self) -> Iterator[None]:
        """The bench's own HubSpot calls are not held to the limits the agent is held to
        (they share one window); the limits are restored afterwards."""
        limits = self.hubspot_limits()
        self.admin("hubspot", "POST", "/hubspot/config",
                   {"perTenSeconds": 0, "searchPerSecond": 0})
        try:
            yield
        finally:
            self.admin("hubspot", "POST", "/hubspot/config", {
                "perTenSeconds": limits["perTenSeconds"],
                "searchPerSecond": limits["searchPerSecond"]})

    def sf_write(self, method: str, obj: str, rows: list[dict[str, Any]]) -> list[str]:
        """Create (POST) or update (PATCH, rows with Id) through sObject Collections."""
        ids: list[str] = []
        for start in range(0, len(rows), SF_BATCH):
            chunk = rows[start:start + SF_BATCH]
            body = {"allOrNone": True,
                    "records": [{"attributes": {"type": obj}, **row} for row in chunk]}
            results = self.call("salesforce", method, f"{API}/composite/sobjects", json=body)
            for row, result in zip(chunk, results, strict=True):
                if not result.get("success"):
                    raise RuntimeError(f"{method} {obj} {row}: {result}")
                ids.append(str(result["id"]))
        return ids

    def hs_write(self, action: str, obj: str, inputs: list[dict[str, Any]],
                 key: str = "email") -> list[str]:
        """Batch create or update (inputs with id); ids in input order. A batch create
        answers in no promised order: each result is matched to its input by ``key``."""
        ids: list[str] = []
        for start in range(0, len(inputs), HS_BATCH):
            chunk = inputs[start:start + HS_BATCH]
            answer = self.call("hubspot", "POST", f"/crm/v3/objects/{obj}/batch/{action}",
                               json={"inputs": chunk})
            if answer.get("numErrors") or answer.get("errors"):
                raise RuntimeError(f"{action} {obj}: {answer}")
            if action == "create":
                by_key = {r["properties"][key]: str(r["id"]) for r in answer["results"]}
                ids += [by_key[i["properties"][key]] for i in chunk]
            else:
                ids += [str(i["id"]) for i in chunk]
        return ids
