"""`stagesync init`, `mapping validate [--live]`, `mapping schema`, `mapping diff`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from sandbox.admin import SandboxClient
from sync_agent.cli import app

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), terminal_width=200)
    return result.exit_code, result.output


def test_init_then_validate_live_against_the_sandbox(sandbox: SandboxClient,
                                                     tmp_path: Path) -> None:
    mapping = tmp_path / "stagesync.yaml"
    code, out = invoke("init", "--mapping", str(mapping))
    assert code == 0, out
    assert "# stagesync mapping file" in mapping.read_text()
    code, out = invoke("init", "--mapping", str(mapping))
    assert code == 1  # never overwrites without --force
    code, out = invoke("mapping", "validate", str(mapping), "--live", "--env-file",
                       str(sandbox.info.settings_file))
    assert code == 0, out
    assert "0 error(s), 0 warning(s) (offline and live)" in out


def test_live_validation_finds_what_only_the_schemas_know(sandbox: SandboxClient,
                                                          tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[1] / "mapping" / "default.yaml").read_text()
    text = text.replace("{salesforce: Phone, hubspot: phone, rule: two_way, transforms: "
                        "[{kind: truncate, length: 40}]}\n      - salesforce: Title",
                        "{salesforce: Phnoe, hubspot: phone, rule: two_way}\n"
                        "      - salesforce: Title", 1)
    text = text.replace("{salesforce: Closed Lost, hubspot: closedlost}",
                        "{salesforce: Closed Lost, hubspot: closedlots}")
    text = text.replace("- {salesforce: Unqualified, hubspot: UNQUALIFIED}\n", "")
    text = text.replace("{salesforce: Id, hubspot: salesforcecontactid, rule: always_salesforce}",
                        "{salesforce: Id, hubspot: salesforcecontactid, rule: two_way}")
    text = text.replace("- {salesforce: Amount, hubspot: amount}\n    create_in_hubspot",
                        "- {salesforce: Amount, hubspot: amonut}\n    create_in_hubspot", 1)
    text = text.replace("hubspot: domain              #", "hubspot: domian              #", 1)
    text = text.replace("salesforce_field: AccountId,\n     hubspot_label: Primary, rule: two_way}"
                        "           # the contact's primary company",
                        "salesforce_field: AccountId,\n     hubspot_label: Main, rule: two_way}", 1)
    text = text.replace("salesforce_field: ContactId", "salesforce_field: Description", 1)
    text = text.replace("{salesforce: Closed Won, hubspot: customer}",
                        "{salesforce: Closed Won, hubspot: custmer}", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    code, out = invoke("mapping", "validate", str(bad), "--live", "--env-file",
                       str(sandbox.info.settings_file))
    assert code == 1, out
    assert "has no field 'Phnoe'" in out
    assert "did you mean 'Phone'" in out
    assert "deals.dealstage has no stage 'closedlots'" in out
    # the misspelt stage is one problem, which names the stage meant (not also "not mapped")
    assert "did you mean 'closedlost'?" in out
    assert "stage 'closedlost' of deals.dealstage is not mapped" not in out
    assert "salesforce stage 'Unqualified' of Lead.Status is not mapped" in out
    assert "which Salesforce does not let the integration user update" in out
    assert "objects.2.match.hubspot" in out  # the company key's property, misspelt
    assert "'domian'" in out
    assert "objects.3.match.also.1.hubspot" in out  # a composite key's part
    assert "'amonut'" in out
    # associations: the label exists between the objects, the lookup is a lookup, the
    # stage a contact follows to is one of the property's options
    assert "HubSpot has no association label 'Main' from contacts to companies" in out
    assert "use one of ['Primary'] or null (unlabeled)" in out
    assert "Opportunity.Description is a textarea field, not a lookup" in out
    assert "contacts.lifecyclestage has no option 'custmer'" in out
    assert all(line.startswith(str(bad)) for line in out.splitlines()[:-1])


def test_validate_reports_every_error_and_exits_non_zero(tmp_path: Path) -> None:
    from tests.test_mapping_validate import SEEDED

    seeded = tmp_path / "seeded.yaml"
    seeded.write_text(SEEDED)
    code, out = invoke("mapping", "validate", str(seeded))
    assert code == 1
    assert out.count(f"{seeded}:") >= 9
    assert "error(s)" in out.splitlines()[-1]


def test_schema_is_json_schema_that_accepts_the_default(tmp_path: Path) -> None:
    code, out = invoke("mapping", "schema")
    assert code == 0
    schema = json.loads(out)
    default = yaml.safe_load((Path(__file__).resolve().parents[1] / "mapping" /
                              "default.yaml").read_text())
    jsonschema.validate(default, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**default, "versoin": 1}, schema)


def test_diff_says_what_a_change_would_do(tmp_path: Path) -> None:
    old = tmp_path / "old.yaml"
    invoke("init", "--mapping", str(old))
    text = old.read_text()
    text = text.replace("{salesforce: [New, Nurturing], hubspot: [lead, subscriber]}",
                        "{salesforce: New, hubspot: [lead, subscriber]}")
    text = text.replace("{salesforce: Working, hubspot: marketingqualifiedlead}",
                        "{salesforce: [Working, Nurturing], hubspot: marketingqualifiedlead}")
    text = text.replace("{salesforce: Website, hubspot: website, "
                        "rule: prefer_salesforce_unless_blank}",
                        "{salesforce: Website, hubspot: website, rule: two_way}")
    text = text.replace("        - {salesforce: Amount, hubspot: amount}\n", "", 1)
    text = text.replace("hubspot_label: Primary, rule: two_way}           # the deal's",
                        "hubspot_label: Primary, rule: always_salesforce}  # the deal's", 1)
    text = text.replace("{salesforce: Closed Won, hubspot: customer}",
                        "{salesforce: Closed Won, hubspot: evangelist}", 1)
    text = text.replace("      salesforce: delete_counterpart  #", "      salesforce: gap  #", 1)
    new = tmp_path / "new.yaml"
    new.write_text(text)
    code, out = invoke("mapping", "diff", str(old), str(new))
    assert code == 0, out
    assert "~ leads.Website>website: rule prefer_salesforce_unless_blank → two_way" in out
    assert ("~ opportunities.match: Name <-> dealname (text) + CloseDate <-> closedate + "
            "Amount <-> amount → Name <-> dealname (text) + CloseDate <-> closedate") in out
    assert ("~ stage map lead_lifecycle: salesforce 'Nurturing' -> hubspot 'lead' becomes "
            "'marketingqualifiedlead'") in out
    assert "~ association deal_company.rule: two_way → always_salesforce" in out
    assert ("~ stage follow contact_lifecycle: 'Closed Won' lifts to customer → evangelist"
            in out)
    assert ("~ opportunities.on_delete.salesforce: delete_counterpart → gap (a record "
            "deleted in Salesforce leaves a gap)") in out
    code, out = invoke("mapping", "diff", str(old), str(old))
    assert out.strip() == "no change in meaning"


def test_delete_rules_are_checked_offline_and_against_the_schemas(make_sandbox: Any,
                                                                  tmp_path: Path) -> None:
    """Offline: ``recreate`` where the pair may not create. Live: ``delete_counterpart`` of
    records the integration user may not delete (no Delete on Account here)."""
    text = (Path(__file__).resolve().parents[1] / "mapping" / "default.yaml").read_text()
    text = text.replace("  - name: accounts\n", "  - name: accounts\n"
                        "    on_delete: {salesforce: recreate}\n", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    code, out = invoke("mapping", "validate", str(bad))
    assert code != 0
    assert "pair 'accounts' re-creates records deleted in Salesforce but may not create" in out
    assert "create_in_salesforce: {enabled: true}" in out
    bad.write_text(text.replace("    on_delete: {salesforce: recreate}\n",
                                "    on_delete: {hubspot: delete_counterpart}\n", 1))
    box = make_sandbox(salesforce_denied=("Account:delete",))
    code, out = invoke("mapping", "validate", str(bad), "--live", "--env-file",
                       str(box.info.settings_file))
    assert code != 0
    assert "the integration user may not delete Account records" in out
    assert "give it Delete on Account, or use gap" in out
