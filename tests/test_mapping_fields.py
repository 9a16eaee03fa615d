"""The custom fields and properties a mapping needs: `stagesync check` lists the missing ones
(system, object, name, type), `stagesync init --create-fields` shows the plan, asks, creates the
HubSpot properties through the properties API and prints the Salesforce Setup steps."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sandbox.admin import SandboxClient
from sandbox.hubspot.access import DEPLOYMENT_SCOPES
from sync_agent.cli import app
from tests.conftest import hubspot_client

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
runner = CliRunner()
SCHEMA_WRITE = tuple(f"crm.schemas.{o}.write" for o in ("contacts", "companies", "deals"))


@pytest.fixture(autouse=True)
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stagesync.yaml here unless a test writes one
    for name in ("STAGESYNC_HUBSPOT__REQUESTS_PER_TEN_SECONDS",
                 "STAGESYNC_HUBSPOT__SEARCHES_PER_SECOND"):
        monkeypatch.setenv(name, "0")
    return tmp_path


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), input=stdin, terminal_width=200)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def remove(box: SandboxClient, salesforce: tuple[str, ...] = (),
           hubspot: tuple[str, ...] = ()) -> None:
    for spec in salesforce:
        obj, name = spec.split(".")
        box.admin("salesforce", "POST", "/salesforce/deleteField", {"object": obj, "field": name})
    for spec in hubspot:
        obj, name = spec.split(".")
        box.admin("hubspot", "POST", "/hubspot/deleteProperty", {"object": obj, "property": name})


def listed(out: str) -> list[tuple[str, str, str, str]]:
    """The missing rows ``check`` prints: (system, object, name, type)."""
    rows = re.findall(r"^  (salesforce|hubspot)\s+(\S+)\s+(\S+)\s+(.+?)\s+needed by: ", out,
                      re.MULTILINE)
    return [(a, b, c, d) for a, b, c, d in rows]


def test_check_says_when_the_default_mapping_has_all_it_needs(sandbox: SandboxClient) -> None:
    code, out = invoke("check", "--env-file", str(sandbox.info.settings_file))
    assert code == 0, out
    assert "fields: every field and property the default mapping needs is there" in out


def test_check_lists_a_removed_field_and_property_by_system_object_name_type(
        make_sandbox: Any) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    remove(box, salesforce=("Lead.Lead_Score__c",), hubspot=("contacts.stagesync_cold_lead",))
    code, out = invoke("check", "--env-file", str(box.info.settings_file))
    assert code == 1, out
    assert "missing for the default mapping: 2 field(s) and property(ies)" in out
    assert listed(out) == [("salesforce", "Lead", "Lead_Score__c", "Number(18, 0)"),
                           ("hubspot", "contacts", "stagesync_cold_lead",
                            "bool (booleancheckbox)")]
    assert "needed by: lead_score of leads" in out
    assert "needed by: SLA mql_follow_up: set_hubspot_property" in out
    assert "stagesync init --create-fields" in out


def test_init_create_fields_shows_the_plan_asks_then_creates(make_sandbox: Any,
                                                             here: Path) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       hubspot_scopes=(*DEPLOYMENT_SCOPES, *SCHEMA_WRITE))
    remove(box, salesforce=("Lead.Lead_Score__c",),
           hubspot=("contacts.salesforceleadid", "contacts.stagesync_cold_lead"))
    env = str(box.info.settings_file)
    box.reset_requests()
    code, out = invoke("init", "--create-fields", "--env-file", env, stdin="n\n")
    assert code == 1, out
    assert (here / "stagesync.yaml").read_text() == DEFAULT.read_text()
    assert "HubSpot: 2 property(ies) to create through the properties API:" in out
    assert ("  + contacts.salesforceleadid: string (text), label 'Salesforce Lead ID', group "
            "contactinformation (needed by: leads: Id <-> salesforceleadid)") in out
    assert ("  + contacts.stagesync_cold_lead: bool (booleancheckbox), label 'Stagesync Cold "
            "Lead', group contactinformation") in out
    assert "Salesforce: 1 field(s) to add in Setup" in out
    assert ("  Lead.Lead_Score__c (Number(18, 0); needed by: lead_score of leads): Setup > "
            "Object Manager > Lead > Fields & Relationships > New > Number; Field Label: Lead "
            "Score; Field Name: Lead_Score; Length: 18, Decimal Places: 0; Next > Field-Level "
            "Security: tick Visible") in out
    assert "Create the 2 HubSpot property(ies) now? [y/N]: n" in out
    assert "nothing was created" in out
    assert "hubspot.properties.create" not in box.requests("hubspot")["endpoints"]

    code, out = invoke("init", "--create-fields", "--yes", "--env-file", env)
    assert code == 1, out  # the Salesforce field is still the admin's to add
    assert "stagesync.yaml exists: creating the fields it needs" in out
    assert "  created: contacts.salesforceleadid" in out
    assert "  created: contacts.stagesync_cold_lead" in out
    hs = hubspot_client(box)
    made = hs.crm.properties.core_api.get_by_name(object_type="contacts",
                                                  property_name="stagesync_cold_lead")
    assert (made.type, made.field_type, made.group_name) == ("bool", "booleancheckbox",
                                                             "contactinformation")
    assert [(o.value, o.label) for o in made.options] == [("true", "Yes"), ("false", "No")]
    lead_id = hs.crm.properties.core_api.get_by_name(object_type="contacts",
                                                     property_name="salesforceleadid")
    assert (lead_id.type, lead_id.field_type, lead_id.label) == ("string", "text",
                                                                 "Salesforce Lead ID")

    code, out = invoke("check", "--env-file", env)
    assert code == 1, out
    assert listed(out) == [("salesforce", "Lead", "Lead_Score__c", "Number(18, 0)")]


def test_create_fields_without_the_write_scope_names_the_scope(make_sandbox: Any,
                                                               here: Path) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    remove(box, hubspot=("companies.salesforceaccountid",))
    shutil.copy(DEFAULT, here / "stagesync.yaml")
    code, out = invoke("init", "--create-fields", "--yes", "--env-file",
                       str(box.info.settings_file))
    assert code == 1, out
    line = next(line for line in out.splitlines() if "not created" in line)
    assert "companies.salesforceaccountid" in line
    assert "403 MISSING_SCOPES" in line
    assert "crm.schemas.companies.write" in line


def test_a_property_created_after_the_start_check_cached_the_describes_is_no_error(
        make_sandbox: Any, here: Path) -> None:
    """The start check reads the store's cached describes; a refusal is confirmed against
    fresh ones, so a property made since (here by `init --create-fields`) is found."""
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       hubspot_scopes=(*DEPLOYMENT_SCOPES, *SCHEMA_WRITE))
    remove(box, hubspot=("deals.salesforceopportunityid",))
    shutil.copy(DEFAULT, here / "stagesync.yaml")
    env, db = str(box.info.settings_file), f"sqlite:///{here / 'state.db'}"
    code, out = invoke("sync", "once", "--dry-run", "--env-file", env, "--db", db)
    assert code == 2, out
    assert "hubspot deals has no field 'salesforceopportunityid'" in out
    code, out = invoke("init", "--create-fields", "--yes", "--env-file", env)
    assert code == 0, out
    assert "  created: deals.salesforceopportunityid" in out
    code, out = invoke("sync", "once", "--dry-run", "--env-file", env, "--db", db)
    assert code == 0, out
    assert "nothing written" in out
