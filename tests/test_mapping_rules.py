"""The field-rule function, by example and by property (hypothesis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mapping.model import FieldRule, MappingFile, ObjectPair, Rule
from mapping.rules import FieldTimes, PairPlanner, apply, synced
from mapping.transforms import blank
from mapping.validate import check_file

DEFAULT = Path(__file__).resolve().parents[1] / "mapping" / "default.yaml"
MAPPING, _ = check_file(DEFAULT)
assert MAPPING is not None
TEXT = st.one_of(st.none(), st.just(""), st.just("  "), st.text(max_size=12),
                 st.sampled_from(["Acme", " acme ", "ACME", "x" * 140]))
NUMBER = st.one_of(st.none(), st.integers(-5, 500), st.floats(0, 1e6, allow_nan=False),
                   st.sampled_from(["12", "12.0", "abc", ""]))
LEAD_STATUS = st.one_of(st.none(), st.sampled_from(
    ["New", "Working", "Nurturing", "Qualified", "Unqualified", "Bogus"]))
LIFECYCLE = st.one_of(st.none(), st.sampled_from(
    ["subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
     "customer", "other", "bogus"]))


def one_rule_mapping(rule: Rule, transforms: list[Any] | None = None) -> MappingFile:
    return MappingFile(version=1, objects=[ObjectPair(
        name="p", salesforce="Lead", hubspot="contacts",
        fields=[FieldRule(salesforce="A", hubspot="a", rule=rule, transforms=transforms or [])])])


lead_sf = st.fixed_dictionaries({
    "FirstName": TEXT, "LastName": TEXT, "Company": TEXT, "Phone": TEXT, "Title": TEXT,
    "Website": TEXT, "City": TEXT, "Country": TEXT, "Status": LEAD_STATUS, "Id": TEXT,
    "Lead_Score__c": NUMBER})
lead_hs = st.fixed_dictionaries({
    "firstname": TEXT, "lastname": TEXT, "company": TEXT, "phone": TEXT, "jobtitle": TEXT,
    "website": TEXT, "city": TEXT, "country": TEXT, "lifecyclestage": LIFECYCLE,
    "hs_lead_status": st.one_of(st.none(), st.sampled_from(["NEW", "OPEN", "UNQUALIFIED"])),
    "salesforceleadid": TEXT, "hubspotscore": NUMBER})
times = st.floats(0, 100, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(lead_sf, lead_hs, times, times)
def test_applying_the_plan_twice_changes_nothing_more(sf: dict[str, Any], hs: dict[str, Any],
                                                      t_sf: float, t_hs: float) -> None:
    planner = PairPlanner(MAPPING, "leads")
    first = planner.plan(sf, hs, None, t_sf, t_hs)
    apply(first, sf, hs)
    last = synced(planner, sf, hs)
    assert planner.plan(sf, hs, last, t_sf, t_hs).changes == []
    assert planner.plan(sf, hs, None, t_sf, t_hs).changes == []  # settled even with no history


@settings(max_examples=200, deadline=None)
@given(TEXT, TEXT, times, times)
def test_none_fields_never_move(s: Any, h: Any, t_sf: float, t_hs: float) -> None:
    planner = PairPlanner(one_rule_mapping(Rule.NONE), "p")
    assert planner.plan({"A": s}, {"a": h}, None, t_sf, t_hs).changes == []


@settings(max_examples=200, deadline=None)
@given(TEXT, TEXT, st.sampled_from([Rule.ALWAYS_SALESFORCE, Rule.ALWAYS_HUBSPOT]), times, times)
def test_always_x_converges_to_x(s: Any, h: Any, rule: Rule, t_sf: float, t_hs: float) -> None:
    planner = PairPlanner(one_rule_mapping(rule, [{"kind": "trim"}]), "p")
    sf, hs = {"A": s}, {"a": h}
    plan = planner.plan(sf, hs, None, t_sf, t_hs)
    winner = "salesforce" if rule is Rule.ALWAYS_SALESFORCE else "hubspot"
    assert all(c.side != winner for c in plan.changes)  # X itself is never written
    apply(plan, sf, hs)
    source = sf["A"] if winner == "salesforce" else hs["a"]
    target = hs["a"] if winner == "salesforce" else sf["A"]
    carried = source.strip() if isinstance(source, str) else source
    assert (blank(carried) and blank(target)) or target == carried


@settings(max_examples=300, deadline=None)
@given(TEXT, TEXT, st.sampled_from([Rule.PREFER_SALESFORCE_UNLESS_BLANK,
                                    Rule.PREFER_HUBSPOT_UNLESS_BLANK]), times, times)
def test_blank_never_overwrites_under_prefer_unless_blank(s: Any, h: Any, rule: Rule,
                                                           t_sf: float, t_hs: float) -> None:
    planner = PairPlanner(one_rule_mapping(rule), "p")
    for change in planner.plan({"A": s}, {"a": h}, None, t_sf, t_hs).changes:
        assert not (blank(change.new) and not blank(change.old))


@settings(max_examples=200, deadline=None)
@given(TEXT, TEXT, TEXT, times, times)
def test_two_way_takes_the_side_that_changed(base: Any, s: Any, h: Any, t_sf: float,
                                             t_hs: float) -> None:
    planner = PairPlanner(one_rule_mapping(Rule.TWO_WAY), "p")
    last = {"A>a": (base, base)}
    plan = planner.plan({"A": s}, {"a": base}, last, t_sf, t_hs)  # only Salesforce moved
    assert all(c.side == "hubspot" for c in plan.changes)
    plan = planner.plan({"A": base}, {"a": h}, last, t_sf, t_hs)  # only HubSpot moved
    assert all(c.side == "salesforce" for c in plan.changes)


def test_conflicts_go_to_the_later_change_and_say_so() -> None:
    planner = PairPlanner(one_rule_mapping(Rule.TWO_WAY), "p")
    last = {"A>a": ("old", "old")}
    later_hs = planner.plan({"A": "from sf"}, {"a": "from hs"}, last, 1.0, 2.0).changes
    assert [(c.side, c.new) for c in later_hs] == [("salesforce", "from hs")]
    assert "HubSpot modified later" in later_hs[0].reason
    later_sf = planner.plan({"A": "from sf"}, {"a": "from hs"}, last, 3.0, 2.0).changes
    assert [(c.side, c.new) for c in later_sf] == [("hubspot", "from sf")]


def test_a_conflicts_field_times_decide_it_over_the_records_times() -> None:
    """A plan names the fields it decided on record times in a real conflict (both sides
    moved since the last sync); given the fields' own times, those decide, and say so."""
    planner = PairPlanner(one_rule_mapping(Rule.TWO_WAY), "p")
    last = {"A>a": ("old", "old")}
    on_records = planner.plan({"A": "from sf"}, {"a": "from hs"}, last, 1.0, 9.0)
    assert on_records.conflicts == ["A>a"]
    times = {"A>a": FieldTimes(sf=5.0, hs=2.0, sf_from="field history",
                               hs_from="property history")}
    decided = planner.plan({"A": "from sf"}, {"a": "from hs"}, last, 1.0, 9.0, times)
    assert [(c.side, c.new) for c in decided.changes] == [("hubspot", "from sf")]
    assert "Salesforce's is later" in decided.changes[0].reason
    assert "field history" in decided.changes[0].reason
    assert decided.conflicts == []
    # no history (a first link): nothing to look up, the record times decide
    assert planner.plan({"A": "from sf"}, {"a": "from hs"}, None, 1.0, 9.0).conflicts == []
    # one side moved: no conflict, whatever the times
    assert planner.plan({"A": "from sf"}, {"a": "old"}, last, 1.0, 9.0).conflicts == []


def test_stage_maps_translate_and_unknown_stages_are_not_written() -> None:
    planner = PairPlanner(MAPPING, "opportunities")
    plan = planner.plan({"StageName": "Needs Analysis", "Name": "D", "Id": "006x"},
                        {"dealstage": "appointmentscheduled", "dealname": "D"},
                        {"StageName>dealstage": ("Prospecting", "appointmentscheduled")})
    assert [(c.field, c.new) for c in plan.changes if c.field == "dealstage"] == [
        ("dealstage", "qualifiedtobuy")]
    odd = planner.plan({"StageName": "Nonsense"}, {"dealstage": "closedwon"},
                       {"StageName>dealstage": ("Closed Won", "closedwon")})
    assert not [c for c in odd.changes if c.field == "dealstage"]
    assert any("Nonsense" in w for w in odd.warnings)


def test_values_are_carried_in_each_systems_form() -> None:
    planner = PairPlanner(MAPPING, "accounts")
    plan = planner.plan({"NumberOfEmployees": 250, "AnnualRevenue": 1500000.0,
                         "Industry": "Communications", "Name": "A"},
                        {"numberofemployees": None, "annualrevenue": None,
                         "industry": "TELECOMMUNICATIONS", "name": "A"})
    writes = {c.field: c.new for c in plan.changes}
    # Industry: Communications and TELECOMMUNICATIONS are in sync through the many-to-one
    # value map (TELECOMMUNICATIONS comes back as Telecommunications);
    # no Salesforce Id in the record, so nothing to carry to salesforceaccountid.
    assert writes == {"numberofemployees": "250", "annualrevenue": "1500000"}
    back = planner.plan({"NumberOfEmployees": None, "Name": "A"},
                        {"numberofemployees": "99", "name": "A"})
    assert [(c.field, c.new) for c in back.changes] == [("NumberOfEmployees", 99)]


def test_truncation_is_reported_and_funnel_positions_known() -> None:
    planner = PairPlanner(MAPPING, "leads")
    plan = planner.plan({"Title": "t" * 200, "LastName": "L"}, {"jobtitle": None,
                                                                "lastname": "L"})
    assert any("cut to 128 characters" in w for w in plan.warnings)
    funnel = MAPPING.stage_maps["lead_lifecycle"]
    assert funnel.position("hubspot", "salesqualifiedlead") == 2
    assert funnel.position("salesforce", "New") == funnel.position("salesforce", "Nurturing") == 0
    assert funnel.position("hubspot", "nope") is None


def test_which_side_each_rule_writes() -> None:
    table = {rule: (rule.writes("salesforce"), rule.writes("hubspot")) for rule in Rule}
    assert table == {
        Rule.TWO_WAY: (True, True),
        Rule.PREFER_SALESFORCE_UNLESS_BLANK: (True, True),
        Rule.PREFER_HUBSPOT_UNLESS_BLANK: (True, True),
        Rule.ALWAYS_SALESFORCE: (False, True),
        Rule.ALWAYS_HUBSPOT: (True, False),
        Rule.NONE: (False, False),
    }
