"""The engine against the vendors' record lifecycle: HubSpot's own changes (a default lifecycle
stage, calculated properties that move the last-modified date), HubSpot merges, and deletes
that leave no trace (purges), through the real connectors and a real SQLite store."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from connectors.build import build_connectors
from connectors.config import load_settings
from connectors.records import WriteRecord
from mapping.validate import check_text
from sandbox.admin import SandboxClient
from sandbox.hubspot.portal import CALCULATED_AFTER_SECONDS
from sandbox.server import DEFAULT_SEARCH_LAG_SECONDS
from sync_agent import state
from sync_agent.cycle import run_cycle
from sync_agent.store import Store, open_store
from tests.test_cycle import DEFAULT, MAPPING, next_second

NOW = 1e-6  # hours: a schedule that is always due


def connectors(box: SandboxClient, hubspot: dict[str, Any] | None = None,
               salesforce: dict[str, Any] | None = None) -> tuple[Any, Any]:
    settings = load_settings(box.info.settings_file)
    hs = settings.hubspot.model_copy(update={"requests_per_ten_seconds": 0,
                                             "searches_per_second": 0, **(hubspot or {})})
    sf = settings.salesforce.model_copy(update=salesforce or {})
    return build_connectors(settings.model_copy(update={"hubspot": hs, "salesforce": sf}))


def world(make_sandbox: Any, tmp_path: Path) -> tuple[SandboxClient, Store]:
    box = make_sandbox(hubspot_per_ten_seconds=0, hubspot_search_per_second=0)
    return box, open_store(f"sqlite:///{tmp_path / 'state.db'}")


def settle(store: Store, sf: Any, hs: Any, mapping: Any = MAPPING, cycles: int = 2) -> Any:
    report = None
    for _ in range(cycles):
        next_second()
        report = run_cycle(store, mapping, sf, hs)
    return report


def linked_hs(store: Store, pair: str, sf_id: str) -> str | None:
    with store.session() as session:
        link = state.find_link(session, pair, sf_id=sf_id)
        return link.hs_id if link is not None else None


def hubspot_writes(box: SandboxClient) -> dict[str, int]:
    counts = box.requests("hubspot")["endpoints"]
    return {k: n for k, n in counts.items() if k.startswith("hubspot.batch.")
            and not k.endswith("read")}


# -- HubSpot changes records on its own ------------------------------------------------------
def test_hubspots_own_lead_stage_on_a_created_company_never_flips_salesforce(
        make_sandbox: Any, tmp_path: Path) -> None:
    """A company created without a lifecycle stage comes back ``lead``; that is HubSpot's
    doing, not an edit, so the Account's type (which maps to no stage) stays as it is."""
    text = DEFAULT.read_text().replace(
        "      - {salesforce: Id, hubspot: salesforceaccountid, rule: always_salesforce}",
        "      - {salesforce: Id, hubspot: salesforceaccountid, rule: always_salesforce}\n"
        "      - salesforce: Type\n        hubspot: lifecyclestage\n        rule: two_way\n"
        "        transforms: [{kind: value_map, values: {Prospect: lead, "
        "'Customer - Direct': customer}}]")
    mapping, problems = check_text(text)
    assert mapping is not None, problems
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    run_cycle(store, mapping, sf, hs)
    account = sf.upsert("Account", [WriteRecord(values={"Name": "Otherco", "Type": "Other"})])[0]
    settle(store, sf, hs, mapping, cycles=1)
    company = linked_hs(store, "accounts", str(account.id))
    assert company is not None
    [made] = hs.read_by_ids("companies", [company], ["lifecyclestage"])
    assert made.values["lifecyclestage"] == "lead"  # HubSpot's default
    time.sleep(CALCULATED_AFTER_SECONDS)
    settle(store, sf, hs, mapping)
    [after] = sf.read_by_ids("Account", [str(account.id)], ["Type"])
    assert after.values["Type"] == "Other"


def test_a_calculated_property_update_writes_nothing_and_a_salesforce_edit_still_wins(
        make_sandbox: Any, tmp_path: Path) -> None:
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    run_cycle(store, MAPPING, sf, hs)
    settle(store, sf, hs)
    with store.session() as session:
        links = state.links_of(session, "leads")[:20]
    hs_ids = [link.hs_id for link in links]
    next_second()
    box.admin("hubspot", "POST", "/hubspot/calculate", {"object": "contacts", "ids": hs_ids})
    time.sleep(DEFAULT_SEARCH_LAG_SECONDS + 0.2)
    box.reset_requests()
    quiet = run_cycle(store, MAPPING, sf, hs)
    assert quiet.read["hubspot.contacts"] >= len(hs_ids)  # the moved dates are read...
    assert sum(quiet.written.values()) == 0  # ...and nothing is written: no value moved
    assert hubspot_writes(box) == {}
    lead = links[0]
    sf.upsert("Lead", [WriteRecord(id=lead.sf_id, values={"FirstName": "Edited"})])
    next_second()  # HubSpot's own update comes later than the Salesforce edit
    box.admin("hubspot", "POST", "/hubspot/calculate", {"object": "contacts",
                                                        "ids": [lead.hs_id]})
    next_second()
    run_cycle(store, MAPPING, sf, hs)
    [contact] = hs.read_by_ids("contacts", [lead.hs_id], ["firstname"])
    assert contact.values["firstname"] == "Edited"
    [still] = sf.read_by_ids("Lead", [lead.sf_id], ["FirstName"])
    assert still.values["FirstName"] == "Edited"


# -- HubSpot merges ------------------------------------------------------------------------
def merge(box: SandboxClient, primary: str, other: str) -> str:
    answer = box.http.post(box.url("hubspot", "/crm/v3/objects/contacts/merge"), json={
        "primaryObjectId": primary, "objectIdToMerge": other},
        headers={"Authorization": f"Bearer {box.info.hubspot_token}"})
    answer.raise_for_status()
    return str(answer.json()["id"])


def new_leads(sf: Any, *names: str) -> list[str]:
    made = sf.upsert("Lead", [WriteRecord(values={
        "LastName": n, "Company": "Merge Co", "Email": f"{n.lower()}@merge.example.com"})
        for n in names])
    return [str(r.id) for r in made]


def test_a_hubspot_merge_moves_the_link_to_the_new_record(make_sandbox: Any,
                                                          tmp_path: Path) -> None:
    """The merged-away id vanishes without an archive entry; the new record (new id) lists it
    in ``hs_merged_object_ids`` and takes over its link. Nothing is created for it."""
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    run_cycle(store, MAPPING, sf, hs)
    [lead] = new_leads(sf, "Merged")
    settle(store, sf, hs)
    old = linked_hs(store, "leads", lead)
    assert old is not None
    loose = hs.upsert("contacts", [WriteRecord(values={
        "email": "loose@merge.example.com", "firstname": "Loose"})])[0].id
    assert loose is not None
    survivor = merge(box, loose, old)  # the unlinked contact is the primary
    time.sleep(DEFAULT_SEARCH_LAG_SECONDS + 0.2)
    box.reset_requests()
    report = settle(store, sf, hs)
    assert linked_hs(store, "leads", lead) == survivor
    assert report is not None
    assert "hubspot.batch.create" not in hubspot_writes(box)
    assert sum(report.created.values()) == 0
    with store.session() as session:
        gaps = {(g.kind, g.key) for g in state.open_gaps(session)}
    assert ("missing_in_hubspot", lead) not in gaps


def test_a_merged_away_id_read_by_id_is_followed_at_once(make_sandbox: Any,
                                                          tmp_path: Path) -> None:
    """Right after a merge search does not show the new record yet; a Salesforce edit reads
    the linked id by id, HubSpot answers with the new record, and the edit lands there."""
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    run_cycle(store, MAPPING, sf, hs)
    keep, other = new_leads(sf, "Keeper", "Other")
    settle(store, sf, hs)
    hs_keep, hs_other = linked_hs(store, "leads", keep), linked_hs(store, "leads", other)
    assert hs_keep is not None
    assert hs_other is not None
    survivor = merge(box, hs_keep, hs_other)
    sf.upsert("Lead", [WriteRecord(id=keep, values={"FirstName": "Followed"})])
    next_second()
    report = run_cycle(store, MAPPING, sf, hs)
    assert report.merged == 1
    assert linked_hs(store, "leads", keep) == survivor
    [contact] = hs.read_by_ids("contacts", [survivor], ["firstname"])
    assert contact.values["firstname"] == "Followed"
    # Both were linked: once search shows the new record, Other's link (its id is listed
    # too) is a gap for a person, and Other is never used to create a second HubSpot contact.
    time.sleep(DEFAULT_SEARCH_LAG_SECONDS + 0.2)
    settle(store, sf, hs, cycles=1)
    assert linked_hs(store, "leads", other) is None
    with store.session() as session:
        detail = state.open_gap_detail(session, "missing_in_hubspot", "leads", other)
    assert detail is not None
    assert detail["deleted_counterpart"] is True
    box.reset_requests()
    settle(store, sf, hs)
    assert "hubspot.batch.create" not in hubspot_writes(box)


# -- deletes that vanish -------------------------------------------------------------------
def test_a_purged_hubspot_contact_is_caught_by_the_full_id_check(make_sandbox: Any,
                                                                 tmp_path: Path) -> None:
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    run_cycle(store, MAPPING, sf, hs)
    [lead] = new_leads(sf, "Purged")
    settle(store, sf, hs)
    contact = linked_hs(store, "leads", lead)
    assert contact is not None
    box.admin("hubspot", "POST", "/hubspot/purge", {"ids": [contact]})  # no archive entry
    settle(store, sf, hs, cycles=1)
    assert linked_hs(store, "leads", lead) == contact  # not due yet: the check is daily
    sf, hs = connectors(box, hubspot={"full_id_check_hours": NOW})
    box.reset_requests()
    settle(store, sf, hs, cycles=1)
    assert linked_hs(store, "leads", lead) is None
    with store.session() as session:
        detail = state.open_gap_detail(session, "missing_in_hubspot", "leads", lead)
    assert detail is not None
    assert detail["deleted_counterpart"] is True
    settle(store, sf, hs, cycles=1)
    assert "hubspot.batch.create" not in hubspot_writes(box)


def test_a_lead_purged_from_the_recycle_bin_is_caught_by_the_full_id_check(
        make_sandbox: Any, tmp_path: Path) -> None:
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    run_cycle(store, MAPPING, sf, hs)
    [lead] = new_leads(sf, "Binned")
    settle(store, sf, hs)
    contact = linked_hs(store, "leads", lead)
    assert contact is not None
    box.admin("salesforce", "POST", "/salesforce/purge", {"ids": [lead]})
    sf, hs = connectors(box, salesforce={"full_id_check_hours": NOW})
    settle(store, sf, hs, cycles=1)
    with store.session() as session:
        assert state.find_link(session, "leads", hs_id=contact) is None
        detail = state.open_gap_detail(session, "missing_in_salesforce", "leads", contact)
    assert detail is not None
    assert detail["deleted_counterpart"] is True
    box.reset_requests()
    settle(store, sf, hs, cycles=1)
    assert box.calls("salesforce", "salesforce.collections.create") == 0


def test_the_archive_is_read_a_slice_per_cycle(make_sandbox: Any, tmp_path: Path) -> None:
    """HubSpot lists its archive only in id order: with one page a slice (and a slice every
    cycle), a linked contact archived behind 100 others is unlinked on the second cycle, one
    list call each."""
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box, hubspot={"archive_pages_per_cycle": 1, "archive_poll_minutes": 0})
    run_cycle(store, MAPPING, sf, hs)
    filler = [r.id for r in hs.upsert("contacts", [WriteRecord(values={
        "email": f"filler{n}@archive.example.com"}) for n in range(120)])]
    hs.delete("contacts", [i for i in filler if i])
    [lead] = new_leads(sf, "Archived")
    settle(store, sf, hs)
    contact = linked_hs(store, "leads", lead)
    assert contact is not None
    hs.delete("contacts", [contact])
    calls = []
    for _ in range(3):
        before = hs.calls["contacts.list"]
        settle(store, sf, hs, cycles=1)
        calls.append(hs.calls["contacts.list"] - before)
        if linked_hs(store, "leads", lead) is None:
            break
    assert linked_hs(store, "leads", lead) is None
    assert max(calls) == 1
    assert len(calls) >= 2  # the first slice did not reach it


def test_the_archive_is_polled_on_its_own_slower_schedule(make_sandbox: Any,
                                                         tmp_path: Path) -> None:
    """A slice of the archive every ``archive_poll_minutes`` (15 by default), not every cycle:
    the cycles between polls list no archive at all, and a linked contact archived just after
    a poll is unlinked at the next one. Time is the cycles' own (``until``)."""
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    [lead] = new_leads(sf, "Polled")
    next_second()
    start = dt.datetime.now(dt.UTC)

    def cycle_at(minutes: float) -> int:
        """The archive list calls of a cycle at ``start`` + ``minutes``."""
        before = hs.calls["contacts.list"]
        run_cycle(store, MAPPING, sf, hs, until=start + dt.timedelta(minutes=minutes))
        return hs.calls["contacts.list"] - before

    cycle_at(0)  # the first read lists everything: nothing known can have gone yet
    contact = linked_hs(store, "leads", lead)
    assert contact is not None
    assert cycle_at(1) == 1  # never polled: due at once
    hs.delete("contacts", [contact])
    calls, linked = {}, {}
    for minute in (2, 10, 16, 17, 31):
        calls[minute] = cycle_at(minute)
        linked[minute] = linked_hs(store, "leads", lead)
    assert calls == {2: 0, 10: 0, 16: 1, 17: 0, 31: 1}
    assert linked == {2: contact, 10: contact, 16: None, 17: None, 31: None}
    with store.session() as session:
        detail = state.open_gap_detail(session, "missing_in_hubspot", "leads", lead)
    assert detail is not None
    assert detail["deleted_counterpart"] is True


def test_a_merge_the_change_read_never_shows_is_found_by_the_full_id_check(
        make_sandbox: Any, tmp_path: Path) -> None:
    """The merged record's last change lies before the watermark (so no change read shows it):
    the full id check finds the linked id gone, reads it by id, and HubSpot answers with the
    merged record, which takes the link; the Lead is not reported deleted."""
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    run_cycle(store, MAPPING, sf, hs)
    [lead] = new_leads(sf, "Unseen")
    settle(store, sf, hs)
    old = linked_hs(store, "leads", lead)
    assert old is not None
    loose = hs.upsert("contacts", [WriteRecord(values={"email": "unseen2@merge.example.com"})])
    assert loose[0].id is not None
    survivor = merge(box, loose[0].id, old)
    time.sleep(DEFAULT_SEARCH_LAG_SECONDS + 0.2)  # search has the merge; then its date moves
    found = hs.find_by("contacts", "email", ["unseen2@merge.example.com"])
    assert survivor in {r.id for r in found}
    box.admin("hubspot", "POST", "/hubspot/touch", {
        "object": "contacts", "ids": [survivor], "at": "2026-01-01T00:00:00Z"})
    time.sleep(DEFAULT_SEARCH_LAG_SECONDS + 0.2)
    settle(store, sf, hs, cycles=1)
    assert linked_hs(store, "leads", lead) == old  # not seen, and the check is not due
    sf, hs = connectors(box, hubspot={"full_id_check_hours": NOW})
    report = settle(store, sf, hs, cycles=1)
    assert report is not None
    assert report.merged == 1
    assert linked_hs(store, "leads", lead) == survivor
    with store.session() as session:
        assert state.open_gap_detail(session, "missing_in_hubspot", "leads", lead) is None


def _merge_leads(box: SandboxClient, master: str, merged: str) -> None:
    box.admin("salesforce", "POST", "/salesforce/merge",
              {"object": "Lead", "masterId": master, "mergedIds": [merged]})


def test_a_merge_survivor_already_unqualified_is_not_recycled(make_sandbox: Any,
                                                              tmp_path: Path) -> None:
    """The survivor takes over the merged-away lead's link, whose remembered status was
    Working; the survivor had been Unqualified all along, so it did not *become* Unqualified
    and the stage map's recycle rule (Unqualified -> Nurturing) must not fire. Its stage
    still carries to the HubSpot contact it now owns."""
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    kept, merged = (r.id for r in sf.upsert("Lead", [
        WriteRecord(values={"LastName": "Stays", "Company": "M", "Status": "Unqualified"}),
        WriteRecord(values={"LastName": "Goes", "Company": "M", "Status": "Working",
                            "Email": "merged.away@example.com"})]))
    settle(store, sf, hs)
    contact = linked_hs(store, "leads", merged)
    assert contact is not None
    assert linked_hs(store, "leads", kept) is None  # no email, not created: unlinked
    next_second()
    _merge_leads(box, kept, merged)
    report = settle(store, sf, hs)
    assert report is not None
    assert linked_hs(store, "leads", kept) == contact
    assert sf.read_by_ids("Lead", [kept], ["Status"])[0].values["Status"] == "Unqualified"
    after = hs.read_by_ids("contacts", [contact], ["lifecyclestage", "hs_lead_status"])[0]
    assert after.values["hs_lead_status"] == "UNQUALIFIED"
    assert after.values["lifecyclestage"] == "other"


def test_a_merged_away_duplicates_gap_closes_and_the_survivor_links(make_sandbox: Any,
                                                                    tmp_path: Path) -> None:
    """Two leads on one email are a duplicate_match gap each, for a person. Once the person
    merges them in Salesforce, the merged-away lead's gap is moot and closes; the survivor,
    no longer ambiguous, links (here: creates its contact) and its gap closes too."""
    box, store = world(make_sandbox, tmp_path)
    sf, hs = connectors(box)
    kept, merged = (r.id for r in sf.upsert("Lead", [WriteRecord(values={
        "LastName": f"Twin{i}", "Company": "M", "Status": "Working",
        "Email": "twin.merge@example.com"}) for i in range(2)]))
    settle(store, sf, hs, cycles=1)

    def duplicate_gaps() -> set[str]:
        with store.session() as session:
            return {g.key for g in state.open_gaps(session) if g.kind == "duplicate_match"}

    assert {kept, merged} <= duplicate_gaps()
    next_second()
    _merge_leads(box, kept, merged)
    settle(store, sf, hs, cycles=1)
    assert not {kept, merged} & duplicate_gaps()
    assert linked_hs(store, "leads", kept) is not None
