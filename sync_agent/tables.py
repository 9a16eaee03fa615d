"""The state store's tables (SQLAlchemy 2). The engine's memory lives here, never in the
scheduler's job store: links between records, what was last synced per field (to tell our own
writes from real changes), watermarks, runs, the ledger of every write, dead letters, gaps, and
the lock that keeps two agents on one store from running a cycle at once."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def _nul_free(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


class SafeText(TypeDecorator[str]):
    """Text that vendor data reaches (messages, stages, keys). PostgreSQL's text refuses a NUL
    byte, which SQLite stores: one such value in a vendor's error message would fail every
    cycle on PostgreSQL. It is kept as U+FFFD instead, on both backends alike."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return _nul_free(value)


class SafeString(TypeDecorator[str]):
    """``String(n)`` with the same NUL rule as ``SafeText``."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return _nul_free(value)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON, list[Any]: JSON, dt.datetime: DateTime(timezone=True)}


class Link(Base):
    """A Salesforce record and a HubSpot record that are the same person, company or deal."""

    __tablename__ = "links"
    __table_args__ = (UniqueConstraint("pair", "sf_id"), UniqueConstraint("pair", "hs_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair: Mapped[str] = mapped_column(String(64))
    sf_object: Mapped[str] = mapped_column(String(64))
    sf_id: Mapped[str] = mapped_column(String(18))
    hs_object: Mapped[str] = mapped_column(String(64))
    hs_id: Mapped[str] = mapped_column(String(32))
    match_key: Mapped[str | None] = mapped_column(SafeString(320))
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class SyncedValues(Base):
    """What both sides held after the last successful sync of each field pair of one link:
    ``{"FirstName>firstname": [sf_value, hs_value], ...}``, one document a link (a steady
    cycle reads one per changed pair, a first sync writes one per link)."""

    __tablename__ = "synced_values"

    link_id: Mapped[int] = mapped_column(ForeignKey("links.id", ondelete="CASCADE"),
                                         primary_key=True)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    synced_at: Mapped[dt.datetime]


class WatermarkRow(Base):
    __tablename__ = "watermarks"

    system: Mapped[str] = mapped_column(String(16), primary_key=True)
    object: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[dt.datetime]
    seen: Mapped[list[Any]] = mapped_column(JSON)
    read_until: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime]


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(String(16))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    calls: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(SafeText)


class LedgerEntry(Base):
    """Every write: record, field, old -> new, the rule that decided, and the run."""

    __tablename__ = "ledger"
    __table_args__ = (Index("ix_ledger_record", "system", "record_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    system: Mapped[str] = mapped_column(String(16))
    object: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(32))
    field: Mapped[str] = mapped_column(String(100))
    old: Mapped[Any] = mapped_column(JSON, nullable=True)
    new: Mapped[Any] = mapped_column(JSON, nullable=True)
    rule: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(SafeText)
    at: Mapped[dt.datetime]


class DeadLetter(Base):
    """A record a vendor refused, with its message, kept for retry: due at
    ``next_retry_at`` (its backoff), or at once once a cycle read a change to its record
    (``source_changed_at``). ``tried_at`` is when it was last sent and refused."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_due", "resolved_at", "next_retry_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    system: Mapped[str] = mapped_column(String(16))
    object: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str | None] = mapped_column(String(32))
    operation: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    error_code: Mapped[str] = mapped_column(String(80))
    error_message: Mapped[str] = mapped_column(SafeText)
    field: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    next_retry_at: Mapped[dt.datetime]
    created_at: Mapped[dt.datetime]
    resolved_at: Mapped[dt.datetime | None]
    tried_at: Mapped[dt.datetime | None]  # None on letters older than migration 0013
    source_changed_at: Mapped[dt.datetime | None]


class Gap(Base):
    """Something a person may need to close: a record missing on one side, stages that drifted,
    a cold lead, an ambiguous match, a sync error. Closed gaps keep their history."""

    __tablename__ = "gaps"
    __table_args__ = (Index("ix_gaps_open", "kind", "closed_at"),
                      Index("ix_gaps_record", "pair", "key", "closed_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    pair: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(SafeString(400))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    opened_at: Mapped[dt.datetime]
    last_seen_at: Mapped[dt.datetime]
    closed_at: Mapped[dt.datetime | None]


class GapNote(Base):
    """A person's decision on a gap: resolved (they fixed it; a cycle that still finds the
    cause opens a new gap) or ignored (a cycle leaves the record alone while what the gap said
    stays the same). ``active``: the decision still governs its record: an ignore until the
    gap's data changes, a cold lead's decision until the engine has undone its actions."""

    __tablename__ = "gap_notes"
    __table_args__ = (Index("ix_gap_notes_active", "active"),
                      Index("ix_gap_notes_gap", "gap_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gap_id: Mapped[int] = mapped_column(ForeignKey("gaps.id", ondelete="CASCADE"))
    outcome: Mapped[str] = mapped_column(String(16))  # resolved | ignored
    note: Mapped[str] = mapped_column(SafeText)
    by: Mapped[str] = mapped_column(SafeString(200))
    at: Mapped[dt.datetime]
    active: Mapped[bool] = mapped_column(default=False)


class Lock(Base):
    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]


class StageVisit(Base):
    """A record's stay at one funnel stage: when it arrived, when it left (null while it is
    there), and its owner. Funnel reports, SLA clocks and SLA compliance read these."""

    __tablename__ = "stage_visits"
    __table_args__ = (Index("ix_stage_visits_record", "system", "record_id", "left_at"),
                      Index("ix_stage_visits_current", "stage_map", "position", "left_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    system: Mapped[str] = mapped_column(String(16))
    object: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(32))
    stage_map: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str | None] = mapped_column(SafeString(120))
    position: Mapped[int | None] = mapped_column(Integer)
    owner: Mapped[str | None] = mapped_column(SafeString(40))
    entered_at: Mapped[dt.datetime]
    left_at: Mapped[dt.datetime | None]


class Backfill(Base):
    """One backfill of one object: its Bulk API 2.0 job and how far its results were applied,
    so a killed backfill resumes at the next unapplied page instead of starting over."""

    __tablename__ = "backfills"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    system: Mapped[str] = mapped_column(String(16))
    object: Mapped[str] = mapped_column(String(64))
    since: Mapped[dt.datetime | None]
    job_id: Mapped[str | None] = mapped_column(String(40))
    locator: Mapped[str | None] = mapped_column(String(200))  # next results page; null = first
    total: Mapped[int | None] = mapped_column(Integer)
    done: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))  # running | finished | failed
    started_at: Mapped[dt.datetime]
    finished_at: Mapped[dt.datetime | None]


class Intent(Base):
    """What a pair's fields will hold once this cycle's writes land, committed before the
    writes. After a crash between the writes and the cycle's commit, the next cycle treats a
    field whose two values equal its intent as synced: the agent recognises its own writes
    even though it never recorded them, and modification times it caused decide nothing."""

    __tablename__ = "intents"

    pair: Mapped[str] = mapped_column(String(64), primary_key=True)
    sf_id: Mapped[str] = mapped_column(String(18), primary_key=True)
    hs_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime]


class PendingCreate(Base):
    """A counterpart this agent is about to create, committed before the create is sent.

    A create is the one write a crash can turn into a duplicate: the new record's id never
    reached the store. The next cycle finds the record by the id it carries; while search
    may still lag the write (a HubSpot search misses a record for a few seconds), a create
    with a pending row is held rather than sent again."""

    __tablename__ = "pending_creates"

    pair: Mapped[str] = mapped_column(String(64), primary_key=True)
    into: Mapped[str] = mapped_column(String(16), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    planned_at: Mapped[dt.datetime]


class SchemaCacheEntry(Base):
    """A connector's describe of one object, or its people list (Salesforce users, HubSpot
    owners), with when it was fetched from the vendor: kept across cycles and processes, so a
    quiet cycle or a restarted agent does not describe again (``sync_agent.schema_cache``)."""

    __tablename__ = "schema_cache"

    system: Mapped[str] = mapped_column(String(16), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # describe | people
    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # the object, or users/owners
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    fetched_at: Mapped[dt.datetime]


class ActivityLog(Base):
    """Sales activity per Salesforce lead or contact (the ``WhoId`` of its Tasks and Events),
    kept from incremental reads: when a person last acted on it, and the follow-up Tasks the
    agent itself created on it (``[[id, created], ...]``). The SLA clock decides from these
    and the stage visits alone, so its cost follows the activity, not the number of leads."""

    __tablename__ = "activity_log"

    record_id: Mapped[str] = mapped_column(String(18), primary_key=True)
    rep_at: Mapped[dt.datetime | None]
    ours: Mapped[list[Any]] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime]


class EndedLink(Base):
    """A link a delete ended, kept while the deleted record can still come back (Salesforce's
    Recycle Bin keeps it 15 days, HubSpot's 90): restored within that time, it is linked to
    its counterpart again (``restores``). ``rule`` is the pair's delete rule that applied."""

    __tablename__ = "ended_links"
    __table_args__ = (Index("ix_ended_links_deleted", "deleted_in", "deleted_id"),
                      Index("ix_ended_links_open", "restored_at", "expires_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair: Mapped[str] = mapped_column(String(64))
    deleted_in: Mapped[str] = mapped_column(String(16))
    deleted_id: Mapped[str] = mapped_column(String(32))
    counterpart_id: Mapped[str] = mapped_column(String(32))
    rule: Mapped[str] = mapped_column(String(32))
    ended_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    restored_at: Mapped[dt.datetime | None]


class ActivityTask(Base):
    """One HubSpot engagement (call, meeting, logged email) the activities setting looked at:
    the Salesforce Task written for it (its id, WhoId, a digest of what was sent, the
    engagement's change time, so the same engagement read again writes nothing), or why it
    waits: on contacts none of which is linked yet (``contacts``), or a meeting still to come
    (``due_at``), since ``waiting_since``. Waiting rows are looked at every cycle from here,
    with no call to HubSpot until one is ready."""

    __tablename__ = "activity_tasks"
    __table_args__ = (Index("ix_activity_tasks_waiting", "waiting_since"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # "calls:123"
    kind: Mapped[str] = mapped_column(String(16))
    hs_id: Mapped[str] = mapped_column(String(32))
    task_id: Mapped[str | None] = mapped_column(String(18))
    who_id: Mapped[str | None] = mapped_column(String(18))
    digest: Mapped[str | None] = mapped_column(String(64))
    cursor: Mapped[dt.datetime | None]
    contacts: Mapped[list[Any]] = mapped_column(JSON)
    waiting_since: Mapped[dt.datetime | None]
    due_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime]


class ContactRoleRow(Base):
    """One Salesforce contact role (OpportunityContactRole) a ``contact_roles`` setting looked
    at, by ``<role id>#<setting>``: what Salesforce says (its parent and target records and
    its role) and what was written to HubSpot for it (the deal, the contact and the label,
    null: unlabeled), so the same role read again writes nothing, and a role deleted (its id
    is all the delete read says) still knows which label to take off. ``waiting``: its
    records are not both linked yet; waiting rows are looked at every cycle from here, with
    no call until their links exist."""

    __tablename__ = "contact_roles"
    __table_args__ = (Index("ix_contact_roles_waiting", "waiting"),)

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    parent_id: Mapped[str] = mapped_column(String(18))
    target_id: Mapped[str | None] = mapped_column(String(18))
    role: Mapped[str | None] = mapped_column(String(255))
    written_from: Mapped[str | None] = mapped_column(String(32))
    written_to: Mapped[str | None] = mapped_column(String(32))
    written_label: Mapped[str | None] = mapped_column(String(255))
    waiting: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[dt.datetime]
