"""`stagesync mapping diff`: every setting that changes is named with its old and new value,
and a proposed file that is not a valid mapping is a file to fix first (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mapping.diff import diff
from mapping.validate import check_text
from sync_agent.cli import app

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
runner = CliRunner()


def changed(*edits: tuple[str, str]) -> str:
    text = DEFAULT.read_text()
    for before, after in edits:
        assert before in text, before
        text = text.replace(before, after, 1)
    return text


def run_diff(tmp_path: Path, text: str) -> tuple[int, str]:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(DEFAULT.read_text())
    new.write_text(text)
    result = runner.invoke(app, ["mapping", "diff", str(old), str(new)], terminal_width=200)
    return result.exit_code, result.output


def test_the_operators_three_changes_are_each_said_old_to_new(tmp_path: Path) -> None:
    code, out = run_diff(tmp_path, changed(
        ("timezone: UTC}", "timezone: Europe/Berlin}"),
        ("sync: prefer_salesforce_unless_blank", "sync: two_way"),
        ("within_business_hours: 4 ", "within_business_hours: 8 ")))
    assert code == 0, out
    assert out.splitlines() == [
        "~ SLA mql_follow_up.within_business_hours: 4 → 8",
        "~ business_hours.timezone: UTC → Europe/Berlin",
        "~ owners.sync: prefer_salesforce_unless_blank → two_way"]


@pytest.mark.parametrize(("before", "after", "line"), [
    ("[{kind: truncate, length: 40}]}\n      - salesforce: Title",
     "[{kind: truncate, length: 30}]}\n      - salesforce: Title",
     "~ leads.Phone>phone.transforms.0.length: 40 → 30"),
    ("      to_pair: contacts", "      to_pair: contacts\n      contact_field: MyContact__c",
     "~ leads.conversion.contact_field: ConvertedContactId → MyContact__c"),
    ("      - {side: salesforce, from: Unqualified, to: Nurturing}",
     "      - {side: salesforce, from: Unqualified, to: New}",
     "~ stage map lead_lifecycle.recycle.0.to: Nurturing → New"),
    ("  record_types:\n    Renewal: {pipeline: \"705209413\", stage_map: renewal_stages}\n", "",
     "- deal_pipelines.record_types.Renewal: {pipeline: 705209413, stage_map: renewal_stages}"),
    ("safety: {max_create_share: 0.1, create_floor: 100}",
     "safety: {max_create_share: 0.1, create_floor: 250}", "~ safety.create_floor: 100 → 250"),
    ("salesforce: {duplicate_rules: respect}", "salesforce: {duplicate_rules: allow_save}",
     "~ salesforce.duplicate_rules: respect → allow_save"),
    ("             pairs: [leads, contacts]}", "             pairs: [leads]}",
     "~ lead_score.pairs: [leads, contacts] → [leads]"),
    ("      lifecyclestage: [marketingqualifiedlead, salesqualifiedlead]",
     "      lifecyclestage: [salesqualifiedlead]",
     "~ leads.create_in_salesforce.only_when.lifecyclestage: [marketingqualifiedlead, "
     "salesqualifiedlead] → [salesqualifiedlead]"),
    ("    hubspot_property: lifecyclestage\n    salesforce_field: StageName",
     "    hubspot_property: hs_lead_status\n    salesforce_field: StageName",
     "~ stage follow contact_lifecycle.hubspot_property: lifecyclestage → hs_lead_status"),
])
def test_any_other_setting_is_said_old_to_new(before: str, after: str, line: str) -> None:
    old, _ = check_text(DEFAULT.read_text())
    new, problems = check_text(changed((before, after)))
    assert old is not None
    assert new is not None, problems
    assert diff(old, new) == [line]


def test_every_setting_of_the_file_is_covered() -> None:
    """Whatever leaf of the default mapping is changed (a number, a flag, a name, a value),
    the diff says something."""
    old, _ = check_text(DEFAULT.read_text())
    assert old is not None
    data = old.model_dump(mode="json", by_alias=True)
    silent = []
    for path, value in leaves(data, ()):
        other = (value + 1 if isinstance(value, int) and not isinstance(value, bool) else
                 (not value) if isinstance(value, bool) else
                 value * 2 if isinstance(value, float) else
                 value + "x" if isinstance(value, str) else None)
        if other is None:
            continue
        edited = set_leaf(old.model_dump(mode="json", by_alias=True), path, other)
        try:
            new = type(old).model_validate(edited)
        except ValueError:
            continue  # outside what the model allows (business hours past 24)
        if not diff(old, new):
            silent.append(path)
    assert silent == []


def leaves(value: object, path: tuple[object, ...]) -> list[tuple[tuple[object, ...], object]]:
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in leaves(v, (*path, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in leaves(v, (*path, i))]
    return [(path, value)]


def set_leaf(data: object, path: tuple[object, ...], value: object) -> object:
    node = data
    for step in path[:-1]:
        node = node[step]  # type: ignore[index]
    node[path[-1]] = value  # type: ignore[index]
    return data


def test_an_invalid_proposed_file_is_exit_2_with_its_line(tmp_path: Path) -> None:
    garbled = changed(("    within_business_hours: 4 ", "    within_business_hours 4 "))
    code, out = run_diff(tmp_path, garbled)
    line = next(n for n, text in enumerate(garbled.splitlines(), 1)
                if "within_business_hours 4" in text)
    assert code == 2, out
    new = tmp_path / "new.yaml"
    assert f"{new}:{line + 1}:5: error: (file): could not find expected ':'" in out
    assert out.splitlines()[-1] == (f"error: {new}: 1 error(s); nothing to compare (fix: "
                                    f"correct them; `stagesync mapping validate {new}` lists "
                                    "them)")


def test_a_proposed_file_with_a_wrong_value_is_exit_2(tmp_path: Path) -> None:
    code, out = run_diff(tmp_path, changed(("timezone: UTC}", "timezone: Mars/Olympus}")))
    assert code == 2, out
    assert "unknown time zone 'Mars/Olympus'" in out
