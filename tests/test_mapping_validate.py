"""Offline validation: every problem at once, each with file, line, column, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mapping.validate import check_file, check_text

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"

SEEDED = """\
version: 1
objects:
  - name: leads
    salesforce: Lead
    hubspot: contacts
    fields:
      - {salesforce: FirstName, hubspot: firstname, rule: two_way}
      - {salesforce: FirstName, hubspot: lastname, rule: two_way}
      - {salesforce: Status, hubspot: lifecyclestage, rule: both_ways}
      - {salesforce: Status, hubspot: lifecyclestage, rule: none, stage_map: nope}
    conversion: {to_pair: contactz}
  - name: deals
    salesforc: Opportunity
    hubspot: deals
stage_maps:
  funnel:
    salesforce_field: Lead.Status
    hubspot_field: contacts.lifecyclestage
    stages:
      - {salesforce: New, hubspot: lead}
      - {salesforce: New, hubspot: marketingqualifiedlead}
    recycle:
      - {side: salesforce, from: New, to: Working}
      - {side: hubspot, from: lead, to: marketingqualifiedlead}
      - {side: hubspot, from: marketingqualifiedlead, to: lead}
sla:
  - name: cold
    pair: leads
    stage_map: funnel
    stage: lead
    within_business_hours: four
"""


def problems_by_line(text: str) -> dict[int, list[str]]:
    _, problems = check_text(text, "seeded.yaml")
    out: dict[int, list[str]] = {}
    for p in problems:
        out.setdefault(p.line, []).append(f"{p.key}: {p.message} | {p.fix}")
    return out


def test_default_mapping_is_valid() -> None:
    mapping, problems = check_file(DEFAULT)
    assert problems == []
    assert mapping is not None
    assert {p.name for p in mapping.objects} == {"leads", "contacts", "accounts", "opportunities"}


def test_every_error_class_is_reported_with_its_line() -> None:
    found = problems_by_line(SEEDED)
    text = "\n".join(f"{line}: {' / '.join(msgs)}" for line, msgs in sorted(found.items()))
    # a field targeted twice (FirstName written by two two-way rules)
    assert "written by two rules" in " ".join(found[8]), text
    # a value of the wrong kind, and the allowed ones
    assert "both_ways" in " ".join(found[9]), text
    # a reference to a stage map that does not exist
    assert "no stage map named 'nope'" in " ".join(found[10]), text
    # a reference to an object pair that does not exist
    assert "no object pair named 'contactz'" in " ".join(found[11]), text
    # an unknown key, with "did you mean"
    assert "unknown key 'salesforc'" in " ".join(found[13]), text
    assert "did you mean 'salesforce'" in " ".join(found[13]), text
    # a stage mapped to two stages
    assert "mapped to two stages" in " ".join(found[21]), text
    # a stage left unmapped
    assert "'Working' is not mapped" in " ".join(found[23]), text
    # a cycle in recycle rules
    assert "leads back to itself" in " ".join(found[24] + found[25]), text
    # a wrong type
    assert "valid number" in " ".join(found[31]), text


def test_problem_lines_read_like_compiler_errors() -> None:
    _, problems = check_text(SEEDED, "seeded.yaml")
    first = str(problems[0])
    assert first.startswith("seeded.yaml:")
    assert "(fix: " in first
    assert all(p.line > 0 and p.column > 0 for p in problems)


@pytest.mark.parametrize(("text", "expected"), [
    ("version: 1\nobjects: [\n", "YAML syntax"),
    ("version: 1\nobjects: !!python/object/apply:os.system ['touch {sentinel}']\n",
     "!!python/object/apply:os.system is not allowed"),
    ("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", "aliases"),
    ("version: 1\nversion: 2\nobjects: []\n", "appears twice"),
    ("", "empty"),
])
def test_hostile_or_broken_text_is_refused(text: str, expected: str, tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    _, problems = check_text(text.replace("{sentinel}", str(sentinel)), "bad.yaml")
    assert len(problems) == 1
    message = str(problems[0])
    if expected == "YAML syntax":
        assert "fix the YAML syntax" in message
    else:
        assert expected in message
    assert not sentinel.exists()


def test_big_and_badly_encoded_files_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("version: 1\n# " + "x" * (10 * 1024 * 1024) + "\n")
    _, problems = check_file(big)
    assert "may be at most" in str(problems[0])
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("version: 1\nobjects: []\n# caf\xe9\n".encode("latin-1"))
    _, problems = check_file(latin)
    assert "not UTF-8" in str(problems[0])
    assert problems[0].line == 3
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_bytes("version: 1\nobjects: []\n".encode("utf-16"))
    _, problems = check_file(utf16)
    assert "UTF-8" in str(problems[0])
    _, problems = check_file(tmp_path / "missing.yaml")
    assert "cannot read" in str(problems[0])


def test_lead_score_and_a_field_rule_on_one_field_is_targeted_twice() -> None:
    text = DEFAULT.read_text().replace(
        "      - {salesforce: Id, hubspot: salesforceleadid, rule: always_salesforce}",
        "      - {salesforce: Id, hubspot: salesforceleadid, rule: always_salesforce}\n"
        "      - {salesforce: Lead_Score__c, hubspot: hubspotscore, rule: two_way}")
    _, problems = check_text(text, "score.yaml")
    assert any("written by the lead score and by a field rule" in p.message for p in problems)
