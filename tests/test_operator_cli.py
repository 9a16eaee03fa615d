"""What an operator reads after real cycles: ``stagesync gaps`` (whole details at any width,
cold leads with owner and age, duplicates grouped, filters, JSON, resolve and ignore),
``explain``, ``status`` and ``report``, through the real command line against a store that
``sync once`` filled from the sandbox."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from connectors.records import WriteRecord
from sandbox.admin import SandboxClient
from sync_agent.cli import app
from tests.test_cycle import DEFAULT, connectors, next_second
from tests.test_cycle_stages import WEEK

runner = CliRunner()


@pytest.fixture(scope="module")
def sandbox_options() -> dict[str, Any]:
    # lenience: these tests read what cycles recorded; search lag would only hold creates
    return {"search_lag_seconds": 0}


def cli(*args: str, width: int = 200) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": str(width)})
    return result.exit_code, result.output


def column(output: str, title: str, header: str) -> str:
    """The text of one column of the table titled ``title``, its cells' lines joined."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    head = next(i for i in range(start, len(lines)) if header in lines[i])
    cells = [c.strip() for c in re.split("[┃│]", lines[head])]
    index = cells.index(header)
    text = []
    for line in lines[head + 1:]:
        if line.startswith("└"):
            break
        parts = re.split("│", line)
        if len(parts) > index:
            text.append(parts[index].strip())
    return " ".join(text)


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def filled(sandbox: SandboxClient, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store two ``sync once`` runs filled: twins sharing an email (a duplicate pair), a
    lead three weeks cold owned by a seeded rep, a HubSpot contact Salesforce refuses (a dead
    letter), and a Title changed in Salesforce that the second cycle carries across."""
    folder = tmp_path_factory.mktemp("operator")
    db = f"sqlite:///{folder / 'state.db'}"
    env = str(sandbox.info.settings_file)
    sf, hs = connectors(sandbox)
    rep = next(p for p in sf.people() if p.email == "kofi.0@sales.example.com")
    twins = [str(r.id) for r in sf.upsert("Lead", [WriteRecord(values={
        "LastName": f"Twin{i}", "Company": "T", "Email": "op.twin@example.com"})
        for i in range(2)])]
    cold = str(sf.upsert("Lead", [WriteRecord(values={
        "LastName": "Frost", "Company": "Ice AG", "Status": "Working",
        "Email": "op.cold@example.com", "OwnerId": rep.id})])[0].id)
    sandbox.admin("salesforce", "POST", "/salesforce/age", {"id": cold, "minutes": 3 * WEEK})
    # HubSpot takes this address; Salesforce refuses it (no underscore in a domain)
    refused = hs.upsert("contacts", [WriteRecord(values={
        "email": "op.odd@exa_mple.com", "lastname": "Odd",
        "lifecyclestage": "marketingqualifiedlead"})])[0].id
    code, out = cli("sync", "once", "--mapping", str(DEFAULT), "--env-file", env, "--db", db)
    assert code == 0, out
    next_second()
    code, out = cli("explain", "op.cold@example.com", "--db", db, "--json")
    assert code == 0, out
    lead = next(w for w in json.loads(out)["links"])
    sf.upsert("Lead", [WriteRecord(id=lead["salesforce"]["id"],
                                   values={"Title": "Head of Reading Logs"})])
    next_second()
    code, out = cli("sync", "once", "--mapping", str(DEFAULT), "--env-file", env, "--db", db)
    assert code == 0, out
    return {"db": db, "twins": twins, "cold": cold, "refused": str(refused),
            "rep": {"Id": rep.id, "Name": rep.name, "Email": rep.email},
            "cold_hs": lead["hubspot"]["id"]}


def test_a_dead_letters_message_is_whole_at_200_and_wraps_at_80(filled: dict[str, Any]
                                                                ) -> None:
    code, wide = cli("gaps", "--kind", "sync_error", "--db", filled["db"], width=200)
    assert code == 0, wide
    code, out = cli("explain", filled["refused"], "--db", filled["db"], "--json")
    message = json.loads(out)["dead_letters"][0]["message"]
    assert "op.odd@exa_mple.com" in message
    assert f"message={message}" in wide  # one line, uncut
    code, narrow = cli("gaps", "--kind", "sync_error", "--db", filled["db"], width=80)
    assert code == 0, narrow
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert f"message={message}" not in narrow  # it wrapped...
    detail = column(narrow, "sync_error", "detail")
    assert squeezed(f"message={message}") in squeezed(detail)  # ...and is all there
    assert "…" not in narrow + wide


def test_a_cold_lead_shows_its_owner_age_and_arrival_first(filled: dict[str, Any]) -> None:
    code, out = cli("gaps", "--db", filled["db"], "--limit", "0")
    assert code == 0, out
    rep = filled["rep"]
    titles = [line for line in out.splitlines() if re.match(r"^[a-z_]+: \d+", line)]
    assert titles[0].startswith("cold_lead:")  # cold leads come first
    row = next(line for line in out.splitlines() if filled["cold"] in line)
    assert rep["Name"] in row
    assert re.search(r"2[01]d( \d+h)? \(since", row)  # three weeks at the stage
    assert rep["Email"] in out
    code, data = cli("gaps", "--db", filled["db"], "--json", "--kind", "cold_lead",
                     "--owner", rep["Email"].upper())
    rows = json.loads(data)
    assert [r["key"] for r in rows] == [filled["cold"]]
    [only] = rows
    assert only["owner"] == {"id": rep["Id"], "name": rep["Name"], "email": rep["Email"]}
    assert only["age_seconds"] >= 20 * 86400
    assert only["arrived_at"] is not None
    code, data = cli("gaps", "--db", filled["db"], "--json", "--kind", "cold_lead",
                     "--older-than", "30d")
    assert filled["cold"] not in {r["key"] for r in json.loads(data)}
    code, data = cli("gaps", "--db", filled["db"], "--json", "--older-than", "2w")
    assert filled["cold"] in {r["key"] for r in json.loads(data)}


def test_a_duplicate_pair_is_one_row_naming_both_ids_whole(filled: dict[str, Any]) -> None:
    twins = filled["twins"]
    _, out = cli("gaps", "--db", filled["db"], "--json", "--kind", "duplicate_match")
    rows = [r for r in json.loads(out) if twins[0] in r["records"]]
    assert len(rows) == 1
    assert set(twins) <= set(rows[0]["records"])
    assert len(rows[0]["ids"]) == 2
    _, out = cli("gaps", "--db", filled["db"], "--kind", "duplicate_match", "--limit", "0",
                 width=80)
    records = squeezed(column(out, "duplicate_match", "records"))
    assert all(t in records for t in twins)  # both ids, each whole


def test_gap_options_that_are_wrong_are_one_line_and_exit_2(filled: dict[str, Any]) -> None:
    result = runner.invoke(app, ["gaps", "--db", filled["db"], "--older-than", "soon"])
    assert result.exit_code == 2
    assert result.output.strip() == ("error: --older-than 'soon': write a number and a unit, "
                                     "e.g. 90m, 2h, 3d or 1w")
    result = runner.invoke(app, ["gaps", "resolve", "999999", "--note", "x", "--db",
                                 filled["db"]])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: gap 999999 does not exist")
    assert "Traceback" not in result.output


def test_a_person_ignores_a_duplicate_pair_from_the_command_line(filled: dict[str, Any]
                                                                ) -> None:
    twins = filled["twins"]
    code, out = cli("gaps", "--db", filled["db"], "--json", "--kind", "duplicate_match")
    row = next(r for r in json.loads(out) if twins[0] in r["records"])
    code, out = cli("gaps", "ignore", str(row["id"]), "--note", "two brothers, one inbox",
                    "--by", "ana@ops.example.com", "--db", filled["db"])
    assert code == 0, out
    assert "ignored by ana@ops.example.com: two brothers, one inbox" in out
    code, out = cli("gaps", "--db", filled["db"], "--json")
    assert not any(twins[0] in r["records"] for r in json.loads(out))
    code, out = cli("explain", twins[0], "--db", filled["db"], "--json")
    decided = {(g["id"], g["outcome"], g["note"], g["decided_by"])
               for g in json.loads(out)["gaps"] if g["kind"] == "duplicate_match"}
    assert decided == {(i, "ignored", "two brothers, one inbox", "ana@ops.example.com")
                       for i in row["ids"]}  # both twins' gaps, in their history
    code, out = cli("gaps", "resolve", str(row["id"]), "--note", "x", "--db", filled["db"])
    assert code == 2
    assert "is closed already (ignored by ana@ops.example.com" in out


def test_explain_shows_the_rule_and_reason_of_a_cycles_write(filled: dict[str, Any]) -> None:
    code, out = cli("explain", filled["cold_hs"], "--system", "hubspot", "--db", filled["db"])
    assert code == 0, out
    row = next(line for line in out.splitlines() if "Head of Reading Logs" in line)
    assert "jobtitle" in row
    assert "two_way" in row
    assert "changed in Salesforce" in row
    assert "cold_lead" in out  # its open gap
    code, data = cli("explain", "OP.COLD@EXAMPLE.COM", "--db", filled["db"], "--json")
    found = json.loads(data)
    write = next(w for w in found["writes"] if w["new"] == "Head of Reading Logs")
    assert (write["field"], write["rule"], write["reason"], write["system"]) == (
        "jobtitle", "two_way", "changed in Salesforce", "hubspot")
    assert isinstance(write["run_id"], int)
    assert any(w["because"] and "follow-up Task" in w["because"] for w in found["writes"])


def test_explain_of_an_unknown_record_is_one_line_and_exit_2(filled: dict[str, Any]) -> None:
    for args in (["nobody@example.org"], ["00Q000000000000AAA"], ["123", "--system", "jira"]):
        result = runner.invoke(app, ["explain", *args, "--db", filled["db"]])
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1
        assert result.output.startswith("error: ")


def test_status_says_an_unchanged_object_is_read_up_to_now(filled: dict[str, Any]) -> None:
    code, out = cli("status", "--db", filled["db"])
    assert code == 0, out
    assert "days" not in out
    assert "OpportunityContactRole" in out
    assert "no records yet" in out  # never a lag of decades
    code, data = cli("status", "--db", filled["db"], "--json")
    status = json.loads(data)
    reads = {(r["system"], r["object"], r["purpose"]): r for r in status["reads"]}
    role = reads[("salesforce", "OpportunityContactRole", "changes")]
    assert role["last_change"] is None
    assert role["behind_seconds"] < 600
    assert all(r["behind_seconds"] < 600 for r in status["reads"])
    cycles = [r for r in status["runs"] if r["kind"] == "cycle"]
    assert len(cycles) == 2
    assert all(r["status"] == "ok" and r["seconds"] > 0 for r in cycles)
    assert cycles[-1]["written"] > 0


def test_report_shows_conversion_after_a_first_sync(filled: dict[str, Any]) -> None:
    code, out = cli("report", "--mapping", str(DEFAULT), "--db", filled["db"])
    assert code == 0, out
    lifecycle = out.split("funnel: lead_lifecycle")[1].split("funnel:")[0]
    assert re.search(r"\b([1-9]\d?|100)%", lifecycle)  # not 0% everywhere
    code, data = cli("report", "--mapping", str(DEFAULT), "--db", filled["db"], "--json")
    report = json.loads(data)
    funnel = next(f for f in report["funnels"] if f["stage_map"] == "lead_lifecycle")
    first = funnel["stages"][0]
    assert first["reached"]["salesforce"] >= first["now"]["salesforce"]
    assert 0 < first["to_next"]["salesforce"] < 1
    assert funnel["stages"][-1]["to_next"] == {"salesforce": None, "hubspot": None}
    # Unqualified is where leads leave: one seen only there never reached Qualified
    qualified, unqualified = funnel["stages"][-2], funnel["stages"][-1]
    assert unqualified["now"]["salesforce"] > 0
    assert qualified["reached"]["salesforce"] == qualified["now"]["salesforce"]


def test_sync_once_records_the_cycle_from_the_command_start(
        sandbox: SandboxClient, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'state.db'}"
    before = time.time()
    code, out = cli("sync", "once", "--mapping", str(DEFAULT), "--env-file",
                    str(sandbox.info.settings_file), "--db", db)
    after = time.time()
    assert code == 0, out
    code, data = cli("status", "--db", db, "--json")
    [run] = json.loads(data)["runs"]
    import datetime as dt

    started = dt.datetime.fromisoformat(run["started_at"]).timestamp()
    finished = dt.datetime.fromisoformat(run["finished_at"]).timestamp()
    assert before <= started < before + 1  # from the command's start, sign-in included
    assert after - 1 < finished <= after
    assert run["seconds"] == pytest.approx(finished - started, abs=0.01)


def test_gaps_still_answers_as_before(filled: dict[str, Any]) -> None:
    code, out = cli("gaps", "--db", filled["db"], "--limit", "3")
    assert code == 0, out
    assert out.startswith("open gaps")
    code, out = cli("gaps", "--db", filled["db"], "--kind", "no_such_kind")
    assert code == 0
    assert out.strip() == "no open gaps of kind no_such_kind"
