"""One-off backfills of a Salesforce object through Bulk API 2.0, resumable after a kill.

The job id and the locator of the next unapplied results page live in the state store and
move in the same transaction as the page's links, ledger and gaps. A backfill killed anywhere
restarts at the first page whose effects were not committed; re-applying that page cannot
duplicate records (contacts upsert on email, companies and deals are looked up by the
Salesforce id they carry) and finds the writes that did land already in sync.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from connectors.contract import Connector
from connectors.errors import BulkJobError, ConnectorError
from connectors.salesforce import SalesforceConnector
from mapping.model import MappingFile
from sync_agent import failpoints, state, write_ahead
from sync_agent.context import CycleReport, Run, Setup, calls_now, calls_since, fields_of, prepare
from sync_agent.cycle import apply_records
from sync_agent.stages import StageBook
from sync_agent.store import Store
from sync_agent.tables import Backfill

PAGE = 2000  # the REST page size: a page is one commit
JOB_TIMEOUT = dt.timedelta(hours=2)

Progress = Callable[[int, int | None], None]  # (records done, records in all)


class BackfillError(Exception):
    pass


@dataclass
class BackfillResult:
    object: str
    job_id: str
    resumed: bool
    total: int | None
    done: int
    pages: int
    report: CycleReport


def _open_job(store: Store, obj: str, since: dt.datetime | None) -> tuple[int, bool]:
    """The unfinished backfill of ``obj`` with the same ``since``, or a new one."""
    with store.session() as session, session.begin():
        for row in session.scalars(select(Backfill).where(
                Backfill.system == "salesforce", Backfill.object == obj,
                Backfill.status == "running").order_by(Backfill.id.desc())):
            if (state._aware(row.since) if row.since else None) == since:
                return row.id, True
        row = Backfill(system="salesforce", object=obj, since=since, job_id=None, locator=None,
                       total=None, done=0, status="running", started_at=state.now())
        session.add(row)
        session.flush()
        return row.id, False


def _wait(sf: SalesforceConnector, job_id: str) -> int | None:
    try:
        return sf.bulk_wait(job_id, JOB_TIMEOUT)
    except BulkJobError as exc:  # the job failed or never finished: say which
        raise BackfillError(exc.message) from exc


def _decide_held(store: Store, setup: Setup, report: CycleReport, obj: str,
                 progress: Progress | None, after: Run | None) -> None:
    """Creates held because a killed run may have made them already: once HubSpot search can
    be trusted to show such a record (the search lookback has passed since the create was
    first planned), the held records are synced again, which links or creates each once."""
    pairs = {p.name for p in setup.mapping.objects if p.salesforce == obj}
    with store.session() as session:
        held = {key: at for key, at in write_ahead.load_pending_creates(session).items()
                if key[0] in pairs and key[1] == "hubspot"}
    if not held:
        return
    wait = (max(held.values()) + setup.hs.lookback - dt.datetime.now(dt.UTC)).total_seconds()
    if wait > 0:
        if progress:
            print(f"waiting {wait:.0f} s for HubSpot search to show what the interrupted run "
                  f"may have created ({len(held)} held)", flush=True)
        time.sleep(wait)
    ids = sorted({source for _, _, source in held})
    records = setup.sf.read_by_ids(obj, ids, fields_of(setup, "salesforce", obj))
    before = calls_now(setup.sf, setup.hs)
    with store.session() as session:
        run = state.start_run(session, "backfill")
        held_report = CycleReport()
        apply_records(session, setup, held_report, StageBook(), "salesforce", obj, records,
                      run.id, after=after)
        state.finish_run(session, run, "ok", _counts(held_report, len(records)),
                         calls_since(before, setup.sf, setup.hs))
        session.commit()
    _add(report, held_report)


def _counts(page: CycleReport, read: int) -> dict[str, Any]:
    """A page's own counts for its run row (``stagesync status`` adds them up per run)."""
    return {"read": read, "written": dict(page.written), "created": dict(page.created),
            "linked": page.linked, "failed": page.failed, "gaps": dict(page.gaps)}


def _add(total: CycleReport, page: CycleReport) -> None:
    """Add a page's counts to the job's."""
    total.read.update(page.read)
    total.written.update(page.written)
    total.created.update(page.created)
    total.gaps.update(page.gaps)
    total.linked += page.linked
    total.failed += page.failed
    total.in_sync += page.in_sync
    total.held += page.held


def run_backfill(store: Store, mapping: MappingFile, sf: SalesforceConnector,
                 hs: Connector, obj: str, since: dt.datetime | None = None,
                 page_size: int = PAGE, progress: Progress | None = None) -> BackfillResult:
    """Bring every ``obj`` record (changed since ``since``) across, page by page."""
    if not any(p.salesforce == obj for p in mapping.objects):
        known = sorted({p.salesforce for p in mapping.objects})
        raise BackfillError(f"no object pair syncs Salesforce {obj!r}; the mapping pairs "
                            f"{', '.join(known)}")
    setup = prepare(mapping, sf, hs)
    report = CycleReport()
    page: Run | None = None
    backfill_id, resumed = _open_job(store, obj, since)
    with store.session() as session:
        row = session.get(Backfill, backfill_id)
        assert row is not None
        job_id, locator, done = row.job_id, row.locator, row.done
    total: int | None = None
    if job_id is not None:
        try:
            total = _wait(sf, job_id)
        except ConnectorError:  # the job's results expired (Salesforce keeps them 7 days)
            job_id = None
    if job_id is None:
        job_id = sf.bulk_start(obj, fields_of(setup, "salesforce", obj), since)
        locator, done = None, 0
        total = _wait(sf, job_id)
    with store.session() as session, session.begin():
        row = session.get(Backfill, backfill_id)
        assert row is not None
        row.job_id, row.total, row.locator, row.done = job_id, total, locator, done
    if progress:
        progress(done, total)
    pages = 0
    while True:
        before = calls_now(sf, hs)
        records, following = sf.bulk_page(obj, job_id, locator, page_size)
        with store.session() as session:
            run = state.start_run(session, "backfill")
            page_report = CycleReport()  # this page's counts; ``report`` sums the job's
            page = apply_records(session, setup, page_report, StageBook(), "salesforce", obj,
                                 records, run.id, after=page)
            row = session.get(Backfill, backfill_id)
            assert row is not None
            row.locator, row.done = following, row.done + len(records)
            if following is None:
                row.status, row.finished_at = "finished", state.now()
            state.finish_run(session, run, "ok", _counts(page_report, len(records)),
                             calls_since(before, sf, hs))
            _add(report, page_report)
            failpoints.hit("backfill.commit")
            session.commit()
            done = row.done
        pages += 1
        locator = following
        if progress:
            progress(done, total)
        if following is None:
            break
    _decide_held(store, setup, report, obj, progress, page)
    return BackfillResult(obj, job_id, resumed, total, done, pages, report)
