"""The state store on both backends: SQLite (the default) and a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from connectors.records import Activity, Watermark
from sync_agent import activity, state
from sync_agent.store import Store, open_store

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    yield opened
    opened.engine.dispose()


def test_migrations_create_the_schema_and_are_idempotent(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {"links", "synced_values", "watermarks", "runs", "ledger", "dead_letters", "gaps",
            "locks", "alembic_version"} <= tables
    again = open_store(store.engine.url.render_as_string(hide_password=False))
    assert set(inspect(again.engine).get_table_names()) == tables
    again.engine.dispose()


def test_the_default_sqlite_file_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.chdir(tmp_path)
    opened = open_store()
    assert oct((tmp_path / "stagesync.db").stat().st_mode & 0o777) == "0o600"
    opened.engine.dispose()


def test_watermarks_round_trip(store: Store) -> None:
    mark = Watermark(cursor=T0, seen=frozenset({("00Q1", T0), ("00Q2", T0 - dt.timedelta(
        seconds=30))}))
    with store.session() as session, session.begin():
        assert state.get_watermark(session, "salesforce", "Lead") is None
        state.put_watermark(session, "salesforce", "Lead", mark)
    with store.session() as session:
        assert state.get_watermark(session, "salesforce", "Lead") == mark
    later = Watermark(cursor=T0 + dt.timedelta(minutes=1), read_until=T0 + dt.timedelta(
        minutes=2))
    with store.session() as session, session.begin():
        state.put_watermark(session, "salesforce", "Lead", later)
    with store.session() as session:
        assert state.get_watermark(session, "salesforce", "Lead") == later


def test_links_are_unique_per_side_and_follow_conversion(store: Store) -> None:
    with store.session() as session, session.begin():
        link = state.add_link(session, "leads", "Lead", "00Q1", "contacts", "101", "a@b.c")
        state.remember_synced(session, link.id, {"FirstName>firstname": ("Ada", "Ada")})
    with pytest.raises(IntegrityError), store.session() as session, session.begin():
        state.add_link(session, "leads", "Lead", "00Q1", "contacts", "102", "x@y.z")
    with store.session() as session, session.begin():
        found = state.find_link(session, "leads", hs_id="101")
        assert found is not None
        state.move_link(session, found, pair="contacts", sf_object="Contact", sf_id="0031")
    with store.session() as session:
        moved = state.find_link(session, "contacts", sf_id="0031")
        assert moved is not None
        assert moved.hs_id == "101"
        assert state.synced_values(session, moved.id) == {"FirstName>firstname": ("Ada", "Ada")}
        assert state.find_link(session, "leads", sf_id="00Q1") is None


def test_runs_ledger_and_dead_letters(store: Store) -> None:
    with store.session() as session, session.begin():
        run = state.start_run(session, "cycle")
        state.record_writes(session, run.id, [{
            "system": "hubspot", "object": "contacts", "record_id": "101",
            "field": "lifecyclestage", "old": "lead", "new": "marketingqualifiedlead",
            "rule": "two_way", "reason": "changed in Salesforce"}])
        letter = state.add_dead_letter(
            session, system="salesforce", obj="Lead", record_id=None, operation="create",
            payload={"LastName": "X"}, code="REQUIRED_FIELD_MISSING",
            message="Required fields are missing: [Company]", field="Company")
        state.finish_run(session, run, "ok", {"written": 1}, {"GET query": 2})
    with store.session() as session, session.begin():
        assert state.due_dead_letters(session) == []
        due = state.due_dead_letters(session, state.now() + dt.timedelta(minutes=6))
        assert [d.error_code for d in due] == ["REQUIRED_FIELD_MISSING"]
        state.retried(due[0], succeeded=False, message="still missing")
        first_retry = state._aware(due[0].next_retry_at)
        assert first_retry > state.now() + dt.timedelta(minutes=29)
    with store.session() as session, session.begin():
        letter_row = state.due_dead_letters(session, state.now() + dt.timedelta(hours=1))[0]
        assert letter_row.attempts == 2
        state.retried(letter_row, succeeded=True)
    with store.session() as session:
        assert state.due_dead_letters(session, state.now() + dt.timedelta(days=9)) == []
    assert letter.field == "Company"


def test_gaps_open_close_and_keep_history(store: Store) -> None:
    with store.session() as session, session.begin():
        assert state.observe_gaps(session, "missing_in_hubspot", "leads",
                                  {"00Q1": {"email": "a@b.c"}, "00Q2": {}}) == (2, 0)
    with store.session() as session, session.begin():
        assert state.observe_gaps(session, "missing_in_hubspot", "leads",
                                  {"00Q2": {}, "00Q3": {}}) == (1, 1)
    with store.session() as session:
        from sqlalchemy import select

        from sync_agent.tables import Gap
        rows = {(g.key, g.closed_at is None) for g in session.scalars(select(Gap))}
    assert rows == {("00Q1", False), ("00Q2", True), ("00Q3", True)}


def test_the_activity_log_keeps_the_latest_rep_activity_and_our_own_tasks(store: Store
                                                                         ) -> None:
    def act(who: str, task: str, minutes: int) -> Activity:
        return Activity(record_id=who, id=task, at=T0 + dt.timedelta(minutes=minutes))

    many = [f"00Q{n:015d}" for n in range(1200)]  # more than one IN list's worth
    with store.session() as session, session.begin():
        activity.record_activity(session, [act(w, "00T1", 5) for w in many] + [
            act("00Q1", "00T2", 30), act("00Q1", "00T3", 10)], [act("00Q2", "00Tours", 20)])
    with store.session() as session, session.begin():  # a re-read and later activity
        activity.record_activity(session, [act("00Q1", "00T3", 10), act("00Q2", "00T4", 1)],
                                 [act("00Q2", "00Tours", 20), act("00Q2", "00Tmore", 40)])
    with store.session() as session:
        logged = activity.logged_for(session, [*many, "00Q1", "00Q2", "00Q3"])
    assert len(logged) == len(many) + 2
    assert logged[many[-1]] == activity.Logged(T0 + dt.timedelta(minutes=5))
    assert logged["00Q1"] == activity.Logged(T0 + dt.timedelta(minutes=30))  # the latest
    assert logged["00Q2"] == activity.Logged(T0 + dt.timedelta(minutes=1), (
        ("00Tours", T0 + dt.timedelta(minutes=20)), ("00Tmore", T0 + dt.timedelta(minutes=40))))
    assert "00Q3" not in logged


def test_one_agent_at_a_time(store: Store) -> None:
    ttl = dt.timedelta(minutes=5)
    assert state.acquire_lock(store, "cycle", "agent-a", ttl)
    assert not state.acquire_lock(store, "cycle", "agent-b", ttl)
    assert state.acquire_lock(store, "cycle", "agent-a", ttl)  # re-entrant for its holder
    assert state.renew_lock(store, "cycle", "agent-a", ttl)
    assert not state.renew_lock(store, "cycle", "agent-b", ttl)
    state.release_lock(store, "cycle", "agent-a")
    assert state.acquire_lock(store, "cycle", "agent-b", ttl)
    # agent-b is killed; its lock expires and agent-a takes over
    assert state.acquire_lock(store, "stale", "agent-b", dt.timedelta(seconds=-1))
    assert state.acquire_lock(store, "stale", "agent-a", ttl)


def test_an_older_store_upgrades_in_place(store: Store) -> None:
    from alembic import command
    from sqlalchemy import select

    from sync_agent.store import alembic_config, migrate
    from sync_agent.tables import WatermarkRow

    config = alembic_config()
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
        connection.execute(text(
            "INSERT INTO watermarks (system, object, cursor, seen, updated_at) VALUES "
            "('hubspot', 'contacts', '2026-11-01 12:00:00+00:00', '[]', "
            "'2026-11-01 12:00:00+00:00')"))
    migrate(store.engine)
    with store.session() as session:
        row = session.scalars(select(WatermarkRow)).one()
        assert row.read_until is None
        mark = state.get_watermark(session, "hubspot", "contacts")
        assert mark is not None
        assert mark.cursor == T0


def test_a_store_with_a_row_a_field_keeps_its_synced_values_upgraded(store: Store) -> None:
    """Migration 0008 folds the rows of ``synced_fields`` into one document a link: what
    the engine remembered before the upgrade is what it reads after (values of every JSON
    type, None included), links without values stay without, and it goes back down."""
    from alembic import command

    from sync_agent.store import alembic_config, migrate

    with store.session() as session, session.begin():
        one = state.add_link(session, "leads", "Lead", "00Q1", "contacts", "101", "a@b.c")
        two = state.add_link(session, "leads", "Lead", "00Q2", "contacts", "102", "d@e.f")
        bare = state.add_link(session, "leads", "Lead", "00Q3", "contacts", "103", None)
        ids = (one.id, two.id, bare.id)
    remembered = {ids[0]: {"FirstName>firstname": ("Ada", "Ada"), "Score__c>score": (4.5, "4.5"),
                           "Phone>phone": (None, "")},
                  ids[1]: {"Status>hs_lead_status": ("Working", "IN_PROGRESS"),
                           "Tags__c>tags": (["a", 1], ["a", 1]), "IsX__c>x": (True, "true")}}
    config = alembic_config()
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0007")
        for link_id, values in remembered.items():
            for key, (sf_value, hs_value) in values.items():
                connection.execute(text(
                    "INSERT INTO synced_fields (link_id, field_key, sf_value, hs_value, "
                    "synced_at) VALUES (:l, :k, :s, :h, '2026-11-01 12:00:00+00:00')"),
                    {"l": link_id, "k": key, "s": json.dumps(sf_value),
                     "h": json.dumps(hs_value)})
    migrate(store.engine)
    with store.session() as session:
        for link_id, values in remembered.items():
            assert state.synced_values(session, link_id) == values
        assert state.synced_values(session, ids[2]) == {}
    with store.engine.begin() as connection:  # and back down: a row a field again
        config.attributes["connection"] = connection
        command.downgrade(config, "0007")
        rows = connection.execute(text("SELECT link_id, field_key FROM synced_fields")).all()
        assert sorted(rows) == sorted((i, k) for i, v in remembered.items() for k in v)
    migrate(store.engine)


def test_agents_starting_together_migrate_once(store: Store) -> None:
    import threading

    url = store.engine.url.render_as_string(hide_password=False)
    store.engine.dispose()
    errors: list[BaseException] = []
    if url.startswith("sqlite"):
        fresh_url = url.replace("state.db", "together.db")
    else:  # a brand-new database, so that the agents really race to create the tables
        name = "together" + uuid.uuid4().hex[:8]
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        fresh_url = url.rsplit("/", 1)[0] + f"/{name}"

    def open_one() -> None:
        try:
            open_store(fresh_url).engine.dispose()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
