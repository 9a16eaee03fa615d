"""Both connectors against recorded HTTP (vcrpy, ``record_mode="none"``), with no server.

Re-record with ``python -m tests.record_cassettes`` after a deliberate change in what the
connectors send.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.cassette_scenarios import CASSETTES, REDACTED, replay_connectors, run


@pytest.mark.parametrize("system", ["salesforce", "hubspot"])
def test_connector_operations_replay_from_cassettes(system: str) -> None:
    salesforce, hubspot = replay_connectors()
    connector = salesforce if system == "salesforce" else hubspot
    names = run(system, connector, "none")
    assert all((CASSETTES / name).exists() for name in names)


def test_replay_fails_when_the_connector_sends_something_else() -> None:
    import vcr.errors

    from connectors.records import WriteRecord
    from tests.cassette_scenarios import recorder

    _, hubspot = replay_connectors()
    with recorder("none").use_cassette("hubspot-delete.yaml"), pytest.raises(
            vcr.errors.CannotOverwriteExistingCassetteException):
        hubspot.upsert("contacts", [WriteRecord(values={"email": "other@example.com"})])


@pytest.mark.parametrize("cassette", sorted(p.name for p in CASSETTES.glob("*.yaml")))
def test_cassettes_hold_no_secrets(cassette: str) -> None:
    data = yaml.safe_load((CASSETTES / cassette).read_text())
    for interaction in data["interactions"]:
        request, response = interaction["request"], interaction["response"]
        assert "authorization" not in {k.lower() for k in request["headers"]}
        assert "cookie" not in {k.lower() for k in request["headers"]}
        assert "set-cookie" not in {k.lower() for k in response["headers"]}
        if request["uri"].endswith("/oauth2/token"):
            assert not request["body"]
            assert f'"access_token": "{REDACTED}"' in response["body"]["string"]


def test_every_connector_operation_has_a_cassette() -> None:
    names = {p.stem for p in Path(CASSETTES).glob("*.yaml")}
    for system in ("salesforce", "hubspot"):
        for op in ("check", "describe", "read_changed", "read_deleted", "read_by_ids",
                   "find_by_emails", "upsert", "delete"):
            assert f"{system}-{op}" in names
