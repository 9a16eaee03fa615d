"""A HubSpot change is written to its linked Salesforce record without reading that record
again: Salesforce's change read vouches that it has not changed since the last sync, so what
was remembered is what it holds. Where the store cannot vouch (a field the last sync never
saw), the record is read by id as before."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import select

from connectors.records import WriteRecord
from mapping.model import FieldRule, MappingFile, Rule
from sync_agent.cycle import run_cycle
from sync_agent.tables import Link
from tests.test_cycle import MAPPING, fresh, next_second


def _settled(store: Any, mapping: MappingFile, sf: Any, hs: Any, n: int = 2) -> list[Link]:
    for _ in range(3):  # first sync, back-references, echoes: then quiet
        run_cycle(store, mapping, sf, hs)
        next_second()
    with store.session() as session:
        return list(session.scalars(select(Link).where(Link.pair == "leads")
                                    .order_by(Link.id).limit(n)))


def _salesforce_reads(sf: Any, before: Counter[str]) -> dict[str, int]:
    """The Salesforce calls made since ``before``, writes left out (SObject Collections
    create and update; its retrieve, ``POST composite/sobjects/<object>``, is a read)."""
    return {k: n for k, n in (Counter(sf.calls) - before).items()
            if not k.endswith(" composite/sobjects")}


def test_a_hubspot_change_is_written_without_reading_its_salesforce_record(
        make_sandbox: Any, tmp_path: Path) -> None:
    # lenience: search_lag_seconds=0, this test is about reads by id, not search lag
    _box, sf, hs, store = fresh(lambda **kw: make_sandbox(search_lag_seconds=0, **kw),
                                tmp_path)
    links = _settled(store, MAPPING, sf, hs)
    titles = {r.id: r.values.get("Title") for r in sf.read_by_ids(
        "Lead", [link.sf_id for link in links], ["Title"])}
    for round_, field, prop in ((1, "City", "city"), (2, "Phone", "phone")):
        hs.upsert("contacts", [WriteRecord(id=link.hs_id, values={prop: f"{prop} {round_} {n}"})
                               for n, link in enumerate(links)])
        next_second()
        before = Counter(sf.calls)
        report = run_cycle(store, MAPPING, sf, hs)
        assert report.written["salesforce.Lead"] == len(links)
        # one Composite read for every object; no query for the Leads by id
        assert _salesforce_reads(sf, before) == {"POST composite": 1}, report.calls
        now = {r.id: r.values for r in sf.read_by_ids(
            "Lead", [link.sf_id for link in links], ["City", "Phone", "Title"])}
        for n, link in enumerate(links):
            assert now[link.sf_id][field] == f"{prop} {round_} {n}"
            assert now[link.sf_id]["Title"] == titles[link.sf_id]  # nothing else written back
        next_second()
        quiet = run_cycle(store, MAPPING, sf, hs)  # the writes' echoes: nothing to do
        assert sum(quiet.written.values()) == 0, quiet.written
    # the first round's City survived the second round's write from remembered values
    assert all(v["City"].startswith("city 1") for v in now.values())


def test_a_field_the_last_sync_never_saw_is_read_by_id(make_sandbox: Any,
                                                        tmp_path: Path) -> None:
    # lenience: search_lag_seconds=0, this test is about reads by id, not search lag
    _box, sf, hs, store = fresh(lambda **kw: make_sandbox(search_lag_seconds=0, **kw),
                                tmp_path)
    narrow = MAPPING.model_copy(update={"objects": [
        p.model_copy(update={"fields": [f for f in p.fields if f.salesforce != "Title"]})
        if p.name == "leads" else p for p in MAPPING.objects]})
    links = _settled(store, narrow, sf, hs, n=1)
    sf.upsert("Lead", [WriteRecord(id=links[0].sf_id, values={"Title": "Chief Sync Officer"})])
    next_second()
    run_cycle(store, narrow, sf, hs)  # Title is not mapped yet: its change is not synced
    next_second()
    hs.upsert("contacts", [WriteRecord(id=links[0].hs_id, values={"city": "Tromsø"})])
    next_second()
    before = Counter(sf.calls)
    report = run_cycle(store, MAPPING, sf, hs)  # now Title is mapped
    assert set(_salesforce_reads(sf, before)) - {"POST composite"}, report.calls
    contact = hs.read_by_ids("contacts", [links[0].hs_id], ["jobtitle"])[0]
    assert contact.values["jobtitle"] == "Chief Sync Officer"  # the Lead as it is, read
    lead = sf.read_by_ids("Lead", [links[0].sf_id], ["City"])[0]
    assert lead.values["City"] == "Tromsø"


def test_a_mapped_formula_field_is_read_by_id(make_sandbox: Any, tmp_path: Path) -> None:
    """A formula changes without bumping SystemModstamp: the change read cannot vouch."""
    # lenience: search_lag_seconds=0, this test is about reads by id, not search lag
    _box, sf, hs, store = fresh(lambda **kw: make_sandbox(search_lag_seconds=0, **kw),
                                tmp_path)
    formula = FieldRule(salesforce="Days_Since_Created__c", hubspot="mobilephone",
                        rule=Rule.ALWAYS_SALESFORCE)
    with_formula = MAPPING.model_copy(update={"objects": [
        p.model_copy(update={"fields": [*p.fields, formula]}) if p.name == "leads" else p
        for p in MAPPING.objects]})
    links = _settled(store, with_formula, sf, hs, n=1)
    hs.upsert("contacts", [WriteRecord(id=links[0].hs_id, values={"city": "Bodø"})])
    next_second()
    before = Counter(sf.calls)
    run_cycle(store, with_formula, sf, hs)
    assert set(_salesforce_reads(sf, before)) - {"POST composite"}
    assert sf.read_by_ids("Lead", [links[0].sf_id], ["City"])[0].values["City"] == "Bodø"
