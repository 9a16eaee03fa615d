"""Match keys beyond email: an Account's Website pairs with a company's domain, an
Opportunity pairs with a deal by a composite key (name, close date and amount), and every
ambiguity is a ``duplicate_match`` gap, never a guess. Through the real clients against the
sandbox's demo data, whose portal already holds companies and deals for many of them."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from connectors.records import Watermark, WriteRecord
from mapping.rules import PairPlanner
from sync_agent.cli import app
from sync_agent.cycle import run_cycle
from sync_agent.identity import domain_key, key_of
from sync_agent.store import open_store
from sync_agent.tables import Gap
from tests.test_cycle import DEFAULT, MAPPING
from tests.test_cycle_lifecycle import connectors, linked_hs, settle
from tests.test_no_duplicates import EPOCH


@pytest.mark.parametrize(("given", "bare"), [
    ("https://www.Acme.com/about", "acme.com"), ("acme.com", "acme.com"),
    ("http://shop.acme.co.uk:8080/?q=1", "shop.acme.co.uk"), ("WWW.ACME.COM.", "acme.com"),
    ("  ", None), (None, None)])
def test_a_website_or_domain_compares_as_its_bare_host(given: Any, bare: str | None) -> None:
    assert domain_key(given) == bare


def test_a_composite_key_compares_each_part_as_its_field_rule_carries_it() -> None:
    pair = next(p for p in MAPPING.objects if p.name == "opportunities")
    assert pair.match is not None
    key = key_of(pair.match, PairPlanner(MAPPING, pair.name))
    sf = key.salesforce({"Name": " Globex - New 3", "CloseDate": "2027-03-01", "Amount": 1200.0})
    hs = key.hubspot({"dealname": "globex - new 3", "closedate": "2027-03-01T00:00:00.000Z",
                      "amount": "1200"})
    assert sf is not None
    assert sf == hs
    assert key.hubspot({"dealname": "Globex - New 3", "closedate": "2027-03-02T00:00:00.000Z",
                        "amount": "1200"}) != sf  # another day: another deal
    assert key.salesforce({"Name": "Globex - New 3", "CloseDate": "2027-03-01"}) is None


def _by(records: list[Any], prop: str, norm: Any = lambda v: v) -> Counter[Any]:
    return Counter(norm(r.values.get(prop)) for r in records if r.values.get(prop))


def _all(connector: Any, obj: str, fields: list[str]) -> list[Any]:
    import datetime as dt
    until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    return list(connector.read_changed(obj, Watermark(cursor=EPOCH), until, fields))


def test_a_first_sync_of_the_demo_data_creates_no_duplicate_company_or_deal(
        make_sandbox: Any, tmp_path: Path) -> None:
    """The demo portal has companies for 60% of the Accounts (same domain) and deals for
    half the Opportunities (same name, close date and amount): the first sync links them
    instead of creating a second one; Accounts sharing a domain are gaps, not guesses."""
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    sf, hs = connectors(box)
    companies = _by(_all(hs, "companies", ["domain"]), "domain", domain_key)
    deals = _by(_all(hs, "deals", ["dealname"]), "dealname")
    accounts = _by(_all(sf, "Account", ["Website"]), "Website", domain_key)
    assert companies
    assert deals  # the scenario: both sides already hold records for the same things
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    settle(store, sf, hs, cycles=2)
    time.sleep(0.5)
    after_companies = _all(hs, "companies", ["domain", "salesforceaccountid"])
    after_deals = _all(hs, "deals", ["dealname", "salesforceopportunityid"])
    for domain, count in _by(after_companies, "domain", domain_key).items():
        assert count <= max(1, companies[domain]), f"a second company for {domain}"
    for name, count in _by(after_deals, "dealname").items():
        assert count <= max(1, deals[name]), f"a second deal named {name}"
    # the ones already there were linked, not left beside a copy
    unique = {d for d, n in accounts.items() if n == 1 and companies[d] == 1}
    linked = {domain_key(c.values["domain"]) for c in after_companies
              if c.values.get("salesforceaccountid")}
    assert unique <= linked
    assert all(d.values.get("salesforceopportunityid") for d in after_deals)
    with store.session() as session:
        ambiguous = session.scalars(select(Gap).where(
            Gap.kind == "duplicate_match", Gap.pair == "accounts",
            Gap.closed_at.is_(None))).all()
    shared = {d for d, n in accounts.items() if n > 1}
    assert {g.detail["key"] for g in ambiguous} == shared


def test_an_account_created_later_links_the_company_that_has_its_domain(
        make_sandbox: Any, tmp_path: Path) -> None:
    """An incremental cycle looks the domain up (no full read): a company already in
    HubSpot is linked; two companies on one domain are a gap and nothing is created."""
    # lenience: search_lag_seconds=0 (the lookup is a search; this is about the key)
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       search_lag_seconds=0)
    sf, hs = connectors(box)
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    run_cycle(store, MAPPING, sf, hs)
    made = hs.upsert("companies", [
        WriteRecord(values={"name": "Newco", "domain": "newco.example.org"}),
        WriteRecord(values={"name": "Twin A", "domain": "twins.example.org"}),
        WriteRecord(values={"name": "Twin B", "domain": "www.twins.example.org"})])
    newco = next(r.id for r in made if r.values.get("name") == "Newco")
    run_cycle(store, MAPPING, sf, hs)  # HubSpot-only companies: gaps, no Account created
    accounts = sf.upsert("Account", [
        WriteRecord(values={"Name": "Newco Inc", "Website": "https://www.NewCo.example.org/"}),
        WriteRecord(values={"Name": "Twins Ltd", "Website": "twins.example.org"})])
    settle(store, sf, hs, cycles=1)
    assert linked_hs(store, "accounts", str(accounts[0].id)) == newco
    assert linked_hs(store, "accounts", str(accounts[1].id)) is None
    with store.session() as session:
        gap = session.scalars(select(Gap).where(
            Gap.kind == "duplicate_match", Gap.key == str(accounts[1].id))).one()
    assert len(gap.detail["hubspot_ids"]) == 2
    twins = [c for c in _all(hs, "companies", ["domain"])
             if domain_key(c.values.get("domain")) == "twins.example.org"]
    assert len(twins) == 2  # nothing created beside them


def test_a_dry_run_lists_the_links_and_creates_a_first_sync_would_make(
        make_sandbox: Any, tmp_path: Path) -> None:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    result = CliRunner().invoke(app, [
        "sync", "once", "--dry-run", "--mapping", str(DEFAULT), "--env-file",
        str(box.info.settings_file), "--db", f"sqlite:///{tmp_path / 'dry.db'}"],
        terminal_width=200)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    links = [line for line in lines if ": link Salesforce " in line]
    creates = [line for line in lines if ": create " in line]
    assert any(line.startswith("accounts: link Salesforce Account") and "match key" in line
               for line in links)
    assert any(line.startswith("opportunities: link Salesforce Opportunity") and " + " in line
               for line in links)  # the composite key, shown part by part
    assert any(line.startswith("leads: create hubspot contacts from Salesforce record")
               for line in creates)
    summary = next(line for line in lines if line.startswith("dry run:"))
    assert summary.startswith(f"dry run: {len(links)} link(s), {len(creates)} create(s)")
