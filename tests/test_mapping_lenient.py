"""One run reports every problem: a bad key costs only its own error, offline and live problems
come together, and conversions that go nowhere are refused offline."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mapping.validate import check_text
from sandbox.admin import SandboxClient
from sync_agent.cli import app

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
runner = CliRunner()

# Six typos an operator made (the issue's): three only the file shows, three only the schemas.
TYPOS = [
    ("    create_in_salesforce:          # HubSpot contacts become",
     "    create_in_salesforc:           # HubSpot contacts become"),
    ("{salesforce: Phone, hubspot: phone, rule: two_way, transforms: [{kind: truncate, "
     "length: 40}]}\n      - salesforce: Title",
     "{salesforce: Phnoe, hubspot: phone, rule: two_way, transforms: [{kind: truncate, "
     "length: 40}]}\n      - salesforce: Title"),
    ("      - salesforce: Title\n        hubspot: jobtitle",
     "      - salesforce: Title\n        hubspot: jobtitel"),
    ("{salesforce: Website, hubspot: website, rule: prefer_salesforce_unless_blank}",
     "{salesforce: Website, hubspot: website, rule: prefer_salesforce_unles_blank}"),
    ("      - {salesforce: Working, hubspot: marketingqualifiedlead}",
     "      - {salesforce: Workng, hubspot: marketingqualifiedlead}"),
    ("    within_business_hours: 4 ", "    within_busines_hours: 4 "),
]


def with_typos(typos: list[tuple[str, str]]) -> str:
    text = DEFAULT.read_text()
    for right, wrong in typos:
        assert text.count(right) >= 1, right
        text = text.replace(right, wrong, 1)
    return text


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_six_typos_are_six_errors_in_one_live_run(sandbox: SandboxClient,
                                                  tmp_path: Path) -> None:
    text = with_typos(TYPOS)
    bad = tmp_path / "typos.yaml"
    bad.write_text(text)
    result = runner.invoke(app, ["mapping", "validate", str(bad), "--live", "--env-file",
                                 str(sandbox.info.settings_file)], terminal_width=200)
    out = result.output
    assert result.exit_code == 1, out
    errors = [line for line in out.splitlines() if ": error: " in line]
    expected = {  # the line each typo is on, and what its one error says
        "create_in_salesforc:": "unknown key 'create_in_salesforc' (fix: did you mean "
                                "'create_in_salesforce'?)",
        "salesforce: Phnoe": "salesforce Lead has no field 'Phnoe' (fix: did you mean 'Phone'?)",
        "hubspot: jobtitel": "hubspot contacts has no field 'jobtitel' (fix: did you mean "
                             "'jobtitle'?)",
        "prefer_salesforce_unles_blank": "'prefer_salesforce_unles_blank' is not allowed",
        "salesforce: Workng": "Lead.Status has no stage 'Workng' (fix: did you mean "
                              "'Working'?)",
        "within_busines_hours": "unknown key 'within_busines_hours' (fix: did you mean "
                                "'within_business_hours'?)",
    }
    assert len(errors) == len(expected), out
    for needle, message in expected.items():
        line = line_of(text, needle)
        assert any(e.startswith(f"{bad}:{line}:") and message in e for e in errors), (needle, out)
    assert out.splitlines()[-1] == f"{bad}: 6 error(s), 0 warning(s) (offline and live)"
    # no false follow-ons about the pair whose key was misspelt, or the SLA rule
    assert "no object pair named" not in out
    assert "is required" not in out


def test_a_misspelt_pair_key_leaves_the_rest_of_the_pair_checked() -> None:
    """The pair with the misspelt key is still checked: a field written twice in it is
    found, and nothing else is said about the pair."""
    text = with_typos([TYPOS[0], (
        "      - {salesforce: City, hubspot: city, rule: two_way, transforms: [{kind: truncate, "
        "length: 40}]}",
        "      - {salesforce: City, hubspot: firstname, rule: two_way}")])
    _, problems = check_text(text, "pair.yaml")
    messages = sorted(p.message for p in problems)
    assert messages == sorted([
        "unknown key 'create_in_salesforc'",
        "HubSpot property contacts.firstname is written by two rules (also field #0)"]), messages
    twice = next(p for p in problems if "written by two rules" in p.message)
    assert twice.line == line_of(text, "salesforce: City, hubspot: firstname")
    assert twice.key == "objects.0.fields.6.hubspot"


def test_a_broken_pair_costs_only_its_own_problems() -> None:
    """A pair left out (its Salesforce object misspelt as a key) is referred to by the SLA,
    the lead score, a conversion and the activities setting: none of them is an error."""
    text = with_typos([("  - name: leads                    # a short name other sections "
                        "refer to\n    salesforce: Lead",
                        "  - name: leads\n    salesforc: Lead")])
    _, problems = check_text(text, "broken.yaml")
    assert [p.message for p in problems] == ["unknown key 'salesforc'"], problems


def test_a_pair_converting_into_itself_is_refused_offline() -> None:
    text = with_typos([("      to_pair: contacts", "      to_pair: leads")])
    _, problems = check_text(text, "self.yaml")
    assert [(p.line, p.key, p.message) for p in problems] == [
        (line_of(text, "to_pair: leads"), "objects.0.conversion.to_pair",
         "pair 'leads' converts into itself")]
    assert "a Lead pair converts into a Contact pair" in problems[0].fix


def test_a_conversion_cycle_of_two_pairs_is_refused_offline(tmp_path: Path) -> None:
    text = with_typos([("  - name: contacts\n    salesforce: Contact\n",
                        "  - name: contacts\n    salesforce: Contact\n"
                        "    conversion: {to_pair: leads}\n")])
    path = tmp_path / "cycle.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["mapping", "validate", str(path)], terminal_width=200)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if ": error: " in line]
    assert errors == [f"{path}:{line_of(text, 'to_pair: contacts')}:16: error: "
                      "objects.0.conversion.to_pair: conversions go round in a cycle: leads → "
                      "contacts → leads (fix: a conversion must end at a pair that converts no "
                      "further: remove the conversion of 'contacts')"]
