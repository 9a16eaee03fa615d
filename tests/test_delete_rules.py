"""Delete rules per pair and side (``on_delete``) and restores, against the sandbox through
the real clients: a gap by default, the counterpart deleted (the default mapping's deleted
Opportunity deletes its deal, as HubSpot's own connector does), the deleted record made
again, and a record restored from either vendor's bin linked again."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from connectors.records import WriteRecord
from mapping.model import MappingFile
from mapping.validate import check_text
from sandbox.admin import SandboxClient
from sandbox.server import DEFAULT_SEARCH_LAG_SECONDS
from sync_agent import state
from sync_agent.cycle import run_cycle
from sync_agent.restores import RESTORE_CHECK
from sync_agent.store import Store, open_store
from sync_agent.tables import EndedLink, LedgerEntry
from tests.test_cycle import DEFAULT, MAPPING, next_second
from tests.test_cycle_lifecycle import connectors, linked_hs, new_leads, settle, world


def with_rules(pair: str, rules: str) -> MappingFile:
    """The default mapping with ``on_delete: {rules}`` on ``pair`` (instead of its own)."""
    text = DEFAULT.read_text()
    anchor = f"  - name: {pair}"
    assert anchor in text
    head, tail = text.split(anchor, 1)
    first, rest = tail.split("\n", 1)
    if "    on_delete:" in rest.split("  - name:", 1)[0]:  # the pair has rules: drop them
        before, after = rest.split("    on_delete:", 1)
        after = after.split("\n", 1)[1]
        while after.startswith("      "):
            after = after.split("\n", 1)[1]
        rest = before + after
    mapping, problems = check_text(f"{head}{anchor}{first}\n    on_delete: {rules}\n{rest}")
    assert mapping is not None, problems
    return mapping


def linked_sf(store: Store, pair: str, hs_id: str) -> str | None:
    with store.session() as session:
        link = state.find_link(session, pair, hs_id=hs_id)
        return link.sf_id if link is not None else None


def open_gap(store: Store, kind: str, pair: str, key: str) -> dict[str, Any] | None:
    with store.session() as session:
        return state.open_gap_detail(session, kind, pair, key)


def an_hour_on(store: Store, sf: Any, hs: Any, mapping: MappingFile = MAPPING) -> Any:
    """A cycle dated past the restore check's interval (time is the cycle's own)."""
    next_second()
    later = dt.datetime.now(dt.UTC) + RESTORE_CHECK + dt.timedelta(minutes=1)
    return run_cycle(store, mapping, sf, hs, until=later)


def an_hour_ago(box: SandboxClient, sf_id: str, hs_id: str, hs_object: str = "contacts"
                ) -> None:
    """Both records last changed an hour ago, so no change read (nor its look-back) returns
    them: only the restore check can find a restore."""
    box.admin("salesforce", "POST", "/salesforce/age", {"id": sf_id, "minutes": 60})
    at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    time.sleep(DEFAULT_SEARCH_LAG_SECONDS + 0.2)  # earlier writes reach search first
    box.admin("hubspot", "POST", "/hubspot/touch", {"object": hs_object, "ids": [hs_id],
                                                     "at": at.isoformat()})


def new_opportunity(sf: Any, name: str) -> str:
    [made] = sf.upsert("Opportunity", [WriteRecord(values={
        "Name": name, "StageName": "Prospecting", "CloseDate": "2027-03-01",
        "Amount": 1200})])
    assert made.id is not None
    return str(made.id)


def hs_alive(hs: Any, obj: str, record_id: str) -> bool:
    return bool(hs.read_by_ids(obj, [record_id], []))


# -- gap (the default) and restores -----------------------------------------------------------
def test_a_deleted_lead_leaves_a_gap_and_its_undelete_links_it_again(
        make_sandbox: Any, tmp_path: Path) -> None:
    """The undelete moves no stamp, so no change read shows it: the hourly restore check
    reads the deleted id, finds it back and links it to the same HubSpot contact (never a
    second one); the gap closes and a later edit reaches that contact."""
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    run_cycle(store, MAPPING, sf, hs)
    [lead] = new_leads(sf, "Restored")
    settle(store, sf, hs)
    contact = linked_hs(store, "leads", lead)
    assert contact is not None
    sf.delete("Lead", [lead])
    settle(store, sf, hs, cycles=1)
    assert linked_hs(store, "leads", lead) is None
    detail = open_gap(store, "missing_in_salesforce", "leads", contact)
    assert detail is not None
    assert detail["deleted_id"] == lead
    box.admin("salesforce", "POST", "/salesforce/undelete", {"ids": [lead]})
    an_hour_ago(box, lead, contact)
    settle(store, sf, hs, cycles=1)
    assert linked_hs(store, "leads", lead) is None  # checked with the delete: not due yet
    box.reset_requests()
    report = an_hour_on(store, sf, hs)
    assert report.relinked == 1
    assert linked_hs(store, "leads", lead) == contact
    assert open_gap(store, "missing_in_salesforce", "leads", contact) is None
    assert box.calls("hubspot", "hubspot.batch.create") == 0
    assert box.calls("hubspot", "hubspot.batch.upsert") == 0
    sf.upsert("Lead", [WriteRecord(id=lead, values={"FirstName": "Back"})])
    settle(store, sf, hs, cycles=1)
    [after] = hs.read_by_ids("contacts", [contact], ["firstname"])
    assert after.values["firstname"] == "Back"
    with store.session() as session:  # nothing left to watch: later checks read nothing
        [ended] = session.scalars(select(EndedLink))
        assert ended.restored_at is not None


def test_a_restored_hubspot_contact_is_linked_again(make_sandbox: Any, tmp_path: Path) -> None:
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box, hubspot={"archive_poll_minutes": 0})
    run_cycle(store, MAPPING, sf, hs)
    [lead] = new_leads(sf, "Binned")
    settle(store, sf, hs)
    contact = linked_hs(store, "leads", lead)
    assert contact is not None
    hs.delete("contacts", [contact])
    settle(store, sf, hs, cycles=1)
    assert linked_hs(store, "leads", lead) is None
    assert open_gap(store, "missing_in_hubspot", "leads", lead) is not None
    box.admin("hubspot", "POST", "/hubspot/restore", {"object": "contacts", "ids": [contact]})
    an_hour_ago(box, lead, contact)
    settle(store, sf, hs, cycles=1)
    assert linked_hs(store, "leads", lead) is None  # checked with the delete: not due yet
    report = an_hour_on(store, sf, hs)
    assert report.relinked == 1
    assert linked_hs(store, "leads", lead) == contact
    assert open_gap(store, "missing_in_hubspot", "leads", lead) is None


# -- delete_counterpart -----------------------------------------------------------------------
def test_a_deleted_opportunity_deletes_its_deal_and_its_undelete_brings_a_deal_back(
        make_sandbox: Any, tmp_path: Path) -> None:
    """The default mapping's rule, as HubSpot's connector: the deal is archived, the ledger
    names the rule, no gap is left. Undeleted, the Opportunity gets a deal again."""
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    run_cycle(store, MAPPING, sf, hs)
    opportunity = new_opportunity(sf, "Deleted Deal")
    settle(store, sf, hs)
    deal = linked_hs(store, "opportunities", opportunity)
    assert deal is not None
    sf.delete("Opportunity", [opportunity])
    next_second()
    report = run_cycle(store, MAPPING, sf, hs)
    assert report.deleted == 1
    assert not hs_alive(hs, "deals", deal)
    assert linked_hs(store, "opportunities", opportunity) is None
    assert open_gap(store, "missing_in_salesforce", "opportunities", deal) is None
    with store.session() as session:
        [entry] = session.scalars(select(LedgerEntry).where(LedgerEntry.record_id == deal,
                                                            LedgerEntry.field == "(record)"))
        assert (entry.new, entry.rule) == ("deleted", "on_delete.salesforce")
        assert opportunity in entry.reason
    settle(store, sf, hs, cycles=1)  # our own archive read back: nothing more happens
    box.admin("salesforce", "POST", "/salesforce/undelete", {"ids": [opportunity]})
    an_hour_on(store, sf, hs)
    again = linked_hs(store, "opportunities", opportunity)
    assert again is not None
    assert again != deal
    assert hs_alive(hs, "deals", again)


def test_a_dry_run_lists_the_counterpart_delete_and_sends_nothing(
        make_sandbox: Any, tmp_path: Path) -> None:
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    run_cycle(store, MAPPING, sf, hs)
    opportunity = new_opportunity(sf, "Dry Deal")
    settle(store, sf, hs)
    deal = linked_hs(store, "opportunities", opportunity)
    assert deal is not None
    sf.delete("Opportunity", [opportunity])
    next_second()
    report = run_cycle(store, MAPPING, sf, hs, dry_run=True)
    [planned] = [p for p in report.plan if p.record_id == deal]
    assert [(c.field, c.new, c.rule) for c in planned.changes] == [
        ("(record)", "deleted", "on_delete.salesforce")]
    assert hs_alive(hs, "deals", deal)
    assert linked_hs(store, "opportunities", opportunity) == deal


def test_a_refused_counterpart_delete_is_a_gap_with_the_vendors_message(
        make_sandbox: Any, tmp_path: Path) -> None:
    """A contact archived in HubSpot deletes its Lead under ``delete_counterpart``; the
    integration user may not delete Leads here, so the Lead stays and a person is told why."""
    mapping = with_rules("leads", "{hubspot: delete_counterpart}")
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0,
                       salesforce_denied=("Lead:delete",))
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    sf, hs = connectors(box, hubspot={"archive_poll_minutes": 0})
    run_cycle(store, mapping, sf, hs)
    [lead] = new_leads(sf, "Kept")
    settle(store, sf, hs, mapping)
    contact = linked_hs(store, "leads", lead)
    assert contact is not None
    hs.delete("contacts", [contact])
    settle(store, sf, hs, mapping, cycles=1)
    assert sf.read_by_ids("Lead", [lead], ["Id"])
    detail = open_gap(store, "missing_in_hubspot", "leads", lead)
    assert detail is not None
    assert "INSUFFICIENT_ACCESS" in detail["reason"]
    assert detail["deleted_counterpart"] is True


# -- recreate ---------------------------------------------------------------------------------
def test_a_contact_archived_in_hubspot_is_made_again_from_its_lead(
        make_sandbox: Any, tmp_path: Path) -> None:
    mapping = with_rules("leads", "{hubspot: recreate}")
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box, hubspot={"archive_poll_minutes": 0})
    run_cycle(store, mapping, sf, hs)
    [lead] = new_leads(sf, "Recreated")
    settle(store, sf, hs, mapping)
    contact = linked_hs(store, "leads", lead)
    assert contact is not None
    hs.delete("contacts", [contact])
    settle(store, sf, hs, mapping, cycles=1)
    again = linked_hs(store, "leads", lead)
    assert again is not None
    assert again != contact
    [made] = hs.read_by_ids("contacts", [again], ["email", "salesforceleadid"])
    assert made.values["email"] == "recreated@merge.example.com"
    assert made.values["salesforceleadid"] == lead
    assert open_gap(store, "missing_in_hubspot", "leads", lead) is None


def test_a_deal_made_again_and_its_restored_original_are_left_to_a_person(
        make_sandbox: Any, tmp_path: Path) -> None:
    """A deal archived in HubSpot is made again from its Opportunity; when the archived one
    is restored too, it is a second deal for one Opportunity: it stays unlinked, in a gap,
    and is never used to create anything."""
    mapping = with_rules("opportunities", "{salesforce: delete_counterpart, hubspot: recreate}")
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box, hubspot={"archive_poll_minutes": 0})
    run_cycle(store, mapping, sf, hs)
    opportunity = new_opportunity(sf, "Twice Deal")
    settle(store, sf, hs, mapping)
    deal = linked_hs(store, "opportunities", opportunity)
    assert deal is not None
    hs.delete("deals", [deal])
    settle(store, sf, hs, mapping, cycles=1)
    again = linked_hs(store, "opportunities", opportunity)
    assert again is not None
    assert again != deal
    box.admin("hubspot", "POST", "/hubspot/restore", {"object": "deals", "ids": [deal]})
    box.reset_requests()
    an_hour_on(store, sf, hs, mapping)
    assert linked_hs(store, "opportunities", opportunity) == again
    assert linked_sf(store, "opportunities", deal) is None
    detail = open_gap(store, "missing_in_salesforce", "opportunities", deal)
    assert detail is not None
    assert again in detail["reason"]
    settle(store, sf, hs, mapping, cycles=1)
    assert box.calls("salesforce", "salesforce.collections.create") == 0
