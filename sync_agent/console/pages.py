"""The Gaps and Record pages, on the shared ``gap_list`` and ``explain`` modules (the same
data ``stagesync gaps`` and ``stagesync explain`` print).

- Gaps: the open gaps by kind, owner and age, cold leads first (the longest waiting first); a
  person marks one resolved or ignored with a note, which ``set_gap_outcome`` keeps in the
  gap's history (a duplicate match closes with the rest of its group).
- Record: ``explain`` as a page, reached by a search on an email or a record id.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sync_agent.explain import explain
from sync_agent.gap_list import GapDecisionError, list_gaps, set_gap_outcome

if TYPE_CHECKING:
    from sync_agent.console.app import Console

AGES = {"": None, "1h": dt.timedelta(hours=1), "4h": dt.timedelta(hours=4),
        "1d": dt.timedelta(days=1), "3d": dt.timedelta(days=3), "7d": dt.timedelta(days=7),
        "30d": dt.timedelta(days=30)}
OUTCOMES = ("resolved", "ignored")
MAX_NOTE = 2000


def routes(console: Console, render: Callable[..., Response],
           back: Callable[[str, str], Response]) -> list[Route]:
    def gaps(request: Request) -> Response:
        mapping = console.mapping()
        kind = request.query_params.get("kind") or None
        owner = (request.query_params.get("owner") or "").strip() or None
        age = request.query_params.get("older_than") or ""
        if age not in AGES:
            age = ""
        with console.store.session() as session:
            rows = list_gaps(session, mapping if not isinstance(mapping, str) else None,
                             kind=kind, owner=owner, older_than=AGES[age])
            every = list_gaps(session, None) if (kind or owner or age) else rows
        kinds = Counter(row.kind for row in every)
        return render(request, "gaps.html", rows=rows, kinds=sorted(kinds.items()),
                      kind=kind or "", owner=owner or "", older_than=age, ages=list(AGES),
                      outcomes=OUTCOMES)

    async def decide(request: Request) -> Response:
        form = await request.form()
        gap_id = int(request.path_params["gap"])
        outcome = str(form.get("outcome") or "")
        note = str(form.get("note") or "")[:MAX_NOTE]
        by = str(form.get("by") or "").strip()[:200] or "console"
        mapping = console.mapping()

        def record() -> str:
            with console.store.session() as session:
                try:
                    view = set_gap_outcome(session, gap_id, outcome, note, by,
                                           mapping if not isinstance(mapping, str) else None)
                except GapDecisionError as exc:
                    return str(exc)
                session.commit()
            count = len(view.ids)
            return (f"gap {gap_id} {outcome}" + (f" with the {count - 1} other(s) of its "
                                                  "group" if count > 1 else "")
                    + f" by {by}: {note.strip()}")

        done = await run_in_threadpool(record)
        kept = [(k, v) for k, v in parse_qsl(str(form.get("return") or ""))
                if k in ("kind", "owner", "older_than")]  # the list as it was filtered
        return back("/gaps?" + urlencode(kept) if kept else "/gaps", done)

    def record_page(request: Request) -> Response:
        ref = (request.query_params.get("q") or "").strip()
        system = request.query_params.get("system") or None
        if system not in (None, "salesforce", "hubspot"):
            system = None
        found: Any = None
        if ref:
            mapping = console.mapping()
            with console.store.session() as session:
                found = explain(session, mapping if not isinstance(mapping, str) else None,
                                ref, system)
        return render(request, "record.html", ref=ref, system=system or "", found=found)

    return [Route("/gaps", gaps), Route("/gaps/{gap:int}/outcome", decide, methods=["POST"]),
            Route("/record", record_page)]
