"""Fault injection and the request log, seen through the real clients."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceRefusedRequest,
)

from sandbox.faults import FaultInjector, FaultSpecError, parse_fault_spec
from tests.conftest import hubspot_client, salesforce_client


def test_spec_parsing_refuses_unclear_rules() -> None:
    rules = parse_fault_spec("hubspot.*=429@0.5; salesforce.query=expired#2,*=slow:0.25@1")
    assert [(r.pattern, r.kind, r.rate, r.remaining, r.delay) for r in rules] == [
        ("hubspot.*", "429", 0.5, None, 0.0), ("salesforce.query", "expired", None, 2, 0.0),
        ("*", "slow", 1.0, None, 0.25)]
    for bad in ("hubspot.*=429", "=500@0.1", "x=teapot@0.1", "x=500@2", "x=slow@0.1"):
        with pytest.raises(FaultSpecError):
            parse_fault_spec(bad)


def test_rates_are_seeded_and_counts_run_out() -> None:
    one, two = FaultInjector("a=500@0.3", seed=3), FaultInjector("a=500@0.3", seed=3)
    first = [one.pick("a") is not None for _ in range(400)]
    assert first == [two.pick("a") is not None for _ in range(400)]
    assert 80 < sum(first) < 160  # about 30%
    counted = FaultInjector("a=503#2")
    assert [bool(counted.pick("a")) for _ in range(4)] == [True, True, False, False]
    assert counted.pick("b") is None


def test_status_faults_and_request_log(make_sandbox: Any) -> None:
    box = make_sandbox(faults="salesforce.query=503#1;hubspot.objects.list=500#1")
    sf = salesforce_client(box)
    with pytest.raises(SalesforceGeneralError) as exc:
        sf.query("SELECT Id FROM Lead LIMIT 1")
    assert exc.value.status == 503
    assert sf.query("SELECT Id FROM Lead LIMIT 1")["totalSize"] == 1
    log = box.requests("salesforce")
    assert log["endpointStatuses"]["salesforce.query 503"] == 1
    assert log["endpointStatuses"]["salesforce.query 200"] == 1
    hs = hubspot_client(box)
    from hubspot.crm.contacts.exceptions import ApiException

    with pytest.raises(ApiException) as hs_exc:
        hs.crm.contacts.basic_api.get_page(limit=1)
    assert hs_exc.value.status == 500
    assert hs.crm.contacts.basic_api.get_page(limit=1).results


def test_expired_session_fault(make_sandbox: Any) -> None:
    box = make_sandbox()
    sf = salesforce_client(box)
    box.faults("salesforce", "salesforce.sobject.get=expired#1")
    lead = sf.query("SELECT Id FROM Lead LIMIT 1")["records"][0]["Id"]
    with pytest.raises(SalesforceExpiredSession):
        sf.Lead.get(lead)
    assert sf.Lead.get(lead)["Id"] == lead


def test_connection_reset_and_slow_response(make_sandbox: Any) -> None:
    box = make_sandbox(faults="hubspot.objects.list=reset#1;hubspot.owners.list=slow:0.4#1",
                       hubspot_per_ten_seconds=0)
    headers = {"Authorization": f"Bearer {box.info.hubspot_token}"}
    session = requests.Session()
    session.trust_env = False
    with pytest.raises(requests.ConnectionError):
        session.get(box.url("hubspot", "/crm/v3/objects/contacts"), headers=headers, timeout=5)
    assert session.get(box.url("hubspot", "/crm/v3/objects/contacts"), headers=headers,
                       timeout=5).status_code == 200
    started = time.monotonic()
    slow = session.get(box.url("hubspot", "/crm/v3/owners"), headers=headers, timeout=5)
    assert slow.status_code == 200
    assert time.monotonic() - started >= 0.4
    assert box.requests("hubspot")["endpointStatuses"]["hubspot.objects.list 0"] == 1


def test_429_fault_on_salesforce_and_hubspot(make_sandbox: Any) -> None:
    box = make_sandbox(faults="*=429#1", hubspot_per_ten_seconds=0)
    headers = {"Authorization": f"Bearer {box.info.hubspot_token}"}
    first = box.http.get(box.url("hubspot", "/crm/v3/owners"), headers=headers)
    assert first.status_code == 429
    assert first.json()["errorType"] == "RATE_LIMIT"


def test_concurrent_long_request_limit_is_a_403_told_apart_by_its_message(
        make_sandbox: Any) -> None:
    box = make_sandbox(faults="salesforce.describe=concurrent#1")
    sf = salesforce_client(box)
    with pytest.raises(SalesforceRefusedRequest) as exc:
        sf.Lead.describe()
    assert exc.value.status == 403
    assert exc.value.content == [{"message": "ConcurrentPerOrgLongTxn Limit exceeded.",
                                  "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert sf.Lead.describe()["name"] == "Lead"
    box.admin("salesforce", "POST", "/salesforce/config", {"apiUsed": 1_000_000})
    with pytest.raises(SalesforceRefusedRequest) as daily:
        sf.Lead.describe()
    assert daily.value.content[0]["message"] == "TotalRequests Limit exceeded."
