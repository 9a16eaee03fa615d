"""The first sync's spool: records on disk in (cursor, id) order whatever order they came in,
found again by id, gone after."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from connectors.records import Record
from sync_agent import spool
from sync_agent.spool import Spool

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _own_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def lead(n: int, **values: object) -> Record:
    return Record(system="salesforce", object="Lead", id=f"00Q{n:015d}",
                  cursor=T0 + dt.timedelta(seconds=n), values={"Email": f"p{n}@x.test", **values})


def test_records_come_back_in_cursor_order_by_page_and_by_id() -> None:
    box = Spool()
    try:
        rows = [lead(n, Status="New", Score=n / 2, Tags=["a", n]) for n in (5, 3, 9, 1)]
        spooled = box.records("salesforce", "Lead", iter(rows))  # as a Bulk job sends them
        in_order = sorted(rows, key=lambda r: r.cursor)
        assert len(spooled) == 4
        assert [r.id for page in spooled.pages(3) for r in page] == [r.id for r in in_order]
        assert [len(page) for page in spooled.pages(3)] == [3, 1]
        assert list(spooled) == in_order  # values, cursor and types as read
        assert spooled.get([rows[2].id, "nope"]) == {rows[2].id: rows[2]}
        spooled.extend([lead(7), lead(5, Status="Changed")])  # an id held is kept as first read
        assert len(spooled) == 5
        assert spooled.get([rows[0].id])[rows[0].id].values["Status"] == "New"
        spooled.drop([rows[1].id, rows[3].id])
        assert spooled.ids() == [rows[0].id, lead(7).id, rows[2].id]
        assert len(spooled) == 3
        assert [r.values for r in spooled.stamps()] == [{}, {}, {}]
    finally:
        box.close()
    assert not box.folder.exists()


def test_ties_on_the_cursor_go_by_id_numeric_ids_as_numbers() -> None:
    """HubSpot's ids are numbers (99 before 100); a cursor's microseconds count; a cursor in
    another zone is compared in UTC. The order is the connectors' own (cursor, id)."""
    def contact(record_id: str, cursor: dt.datetime) -> Record:
        return Record(system="hubspot", object="contacts", id=record_id, cursor=cursor,
                      values={})

    later = T0 + dt.timedelta(microseconds=1)
    oslo = dt.timezone(dt.timedelta(hours=1))
    rows = [contact("100", T0), contact("7", later), contact("99", T0),
            contact("5", T0.astimezone(oslo) - dt.timedelta(microseconds=1))]
    box = Spool()
    try:
        spooled = box.records("hubspot", "contacts", rows)
        assert spooled.ids() == ["5", "99", "100", "7"]
        assert spooled.ids() == [r.id for r in sorted(rows, key=lambda r: (r.cursor, int(r.id)))]
    finally:
        box.close()


def test_a_disk_book_answers_as_the_dict_or_set_it_stands_in_for() -> None:
    """A sliced first sync keeps its claims and record sets on disk: each answers ``in``,
    ``get``, ``setdefault``, assignment, ``add``, ``update`` and ``discard`` as a dict or set
    would, and two books in one spool never see each other's keys."""
    box = Spool()
    try:
        claims = spool.DiskBook(box, [(("contacts", "101"), "leads:00Q1")])
        marks = spool.DiskBook(box)
        assert ("contacts", "101") in claims
        assert claims.get(("contacts", "101")) == "leads:00Q1"
        assert claims.get(("contacts", "102")) is None
        assert claims.setdefault(("contacts", "101"), "contacts:003X") == "leads:00Q1"
        assert claims.setdefault(("contacts", "email:a@x.test"), "leads:00Q2") == "leads:00Q2"
        claims[("contacts", "101")] = "contacts:003Y"
        assert claims.get(("contacts", "101")) == "contacts:003Y"
        marks.add(("hubspot", "101"))
        marks.update([("hubspot", "102"), ("leads", "sf", "00Q1")])
        assert ("hubspot", "102") in marks
        assert ("leads", "sf", "00Q1") in marks
        assert ("contacts", "101") not in marks  # the other book's key
        assert ("hubspot", "101") not in claims
        marks.discard(("hubspot", "102"))
        marks.discard(("hubspot", "999"))  # not there: nothing happens
        assert ("hubspot", "102") not in marks
        assert "hubspot" not in marks  # not a key at all
    finally:
        box.close()


def test_a_killed_agents_spool_is_removed_by_the_next(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    left = tmp_path / f"{spool.PREFIX}{dead.stdout.strip()}-abc"
    (left / "changes.db").parent.mkdir()
    (left / "changes.db").write_bytes(b"x" * 1000)
    box = Spool()  # a live one of this process is kept
    try:
        other = Spool()
        other.close()
        assert not left.exists()
        assert box.folder.exists()
    finally:
        box.close()
