"""How ``stagesync explain``, ``gaps`` and ``status`` print: rich tables sized to the
terminal, whose cells wrap and never cut (an id, an email or a vendor's message is read
whole at any width). The data comes shaped from ``explain``, ``gap_list`` and ``run_status``;
nothing here reads the store."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sync_agent.explain import Explanation
from sync_agent.gap_list import COLD, GapView
from sync_agent.run_status import StatusView

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def screen() -> Console:
    """A console for one command: its width is the terminal's now (``COLUMNS`` when set,
    80 when the output is not a terminal)."""
    return Console(highlight=False)


# Short columns (counts, durations) that keep their width while text columns wrap; times wrap
# between the date and the hour.
TIGHT = {"gap", "run", "seconds", "status", "calls", "behind now", "open for", "id",
         "attempts"}


# Columns that wrap only between words (a time between its date and hour).
WIDE = {"started (UTC)": 10}


def table(title: str, *columns: str) -> Table:
    out = Table(title=title, title_justify="left")
    for column in columns:  # every cell wraps (or folds) at the width left, never cut
        out.add_column(column, overflow="fold", no_wrap=column in TIGHT,
                       min_width=WIDE.get(column))
    return out


def parse_span(text: str) -> dt.timedelta | None:
    """``90m``, ``2h``, ``3d``, ``1w``, ``1d12h``: a span, or None when it is not one."""
    cleaned = text.strip().lower()
    parts = SPAN.findall(cleaned)
    if not parts or SPAN.sub("", cleaned).strip():
        return None
    return dt.timedelta(seconds=sum(float(n) * UNITS[u] for n, u in parts))


def span(value: dt.timedelta | None) -> str:
    """A duration as a person says it: 3d 4h, 2h 5m, 40s."""
    if value is None:
        return "-"
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)}s"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"


def when(value: dt.datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def shown(value: Any) -> str:
    """A field value as ``--dry-run`` prints it."""
    return repr(value)


# -- gaps ---------------------------------------------------------------------------------------
def print_gaps(console: Console, views: list[GapView], limit: int) -> None:
    """A summary by kind, then the cold leads (the longest waiting first), then every other
    kind, up to ``limit`` rows a kind (0: all)."""
    counts = Counter((v.kind, v.pair) for v in views)
    gaps = Counter[tuple[str, str]]()
    for v in views:
        gaps[(v.kind, v.pair)] += len(v.ids)
    summary = table("open gaps", "kind", "pair", "rows", "gaps")
    for (kind, pair), count in sorted(counts.items()):
        summary.add_row(kind, pair, str(count), str(gaps[(kind, pair)]))
    console.print(summary)
    by_kind: dict[str, list[GapView]] = {}
    for view in views:
        by_kind.setdefault(view.kind, []).append(view)
    for kind, rows in by_kind.items():
        shown_rows = rows if limit <= 0 else rows[:limit]
        more = len(rows) - len(shown_rows)
        title = (f"{kind}: {len(rows)}" + (f" (the first {len(shown_rows)}; --limit 0 shows "
                                            "all)" if more else ""))
        if kind == COLD:
            out = table(title + ", the longest waiting first", "gap", "lead", "stage",
                        "at stage (since, UTC)", "owner", "HubSpot", "done")
            for v in shown_rows:
                done = ", ".join(str(d) for d in v.detail.get("done") or [])
                if v.detail.get("not_done"):
                    done += (" " if done else "") + "not done: " + "; ".join(
                        str(d) for d in v.detail["not_done"])
                out.add_row(str(v.id), v.key, escape(v.stage or "-"),
                            f"{span(v.age)} (since {when(v.arrived_at)})", escape(v.owner),
                            str(v.detail.get("hubspot_id") or "-"), escape(done or "-"))
        else:
            out = table(title, "gap", "pair", "records", "detail", "owner", "open for")
            for v in shown_rows:
                gap_ids = ", ".join(str(i) for i in v.ids)
                out.add_row(gap_ids, v.pair, "\n".join(v.records) or v.key, escape(v.text),
                            escape(v.owner), span(v.age))
        console.print(out)


# -- explain ------------------------------------------------------------------------------------
def print_explanation(console: Console, e: Explanation) -> None:
    names = ", ".join(f"{r.system} {r.object or ''} {r.id}".replace("  ", " ")
                      for r in e.records)
    console.print(f"{escape(e.ref)}: {escape(names) or 'no record in the store'}")
    links = table("links", "pair", "Salesforce", "HubSpot", "match key", "linked (UTC)")
    for x in e.links:
        links.add_row(x.pair, f"{x.sf_object} {x.sf_id}", f"{x.hs_object} {x.hs_id}",
                      escape(x.match_key or "-"), when(x.linked_at))
    console.print(links if e.links else "links: none (the record is not linked)")
    now = table("stage now", "system", "record", "stage map", "stage", "since (UTC)", "owner")
    for s in e.current:
        now.add_row(s.system, f"{s.object} {s.record_id}", s.stage_map, escape(s.stage or "-"),
                    when(s.entered_at), escape(s.owner))
    console.print(now if e.current else "stage now: not seen at any mapped stage")
    history = table("stage history (oldest first)", "system", "record", "stage map", "stage",
                    "arrived (UTC)", "left (UTC)", "owner")
    for s in e.history:
        history.add_row(s.system, f"{s.object} {s.record_id}", s.stage_map,
                        escape(s.stage or "-"), when(s.entered_at), when(s.left_at),
                        escape(s.owner))
    if e.history:
        console.print(history)
    writes = table("writes (oldest first)", "when (UTC)", "run", "written to", "field",
                   "old -> new", "rule", "reason")
    for w in e.writes:
        target = f"{w.system} {w.object} {w.record_id}"
        if w.because:
            target += f" ({w.because})"
        writes.add_row(when(w.at), str(w.run_id or "-"), escape(target), escape(w.field),
                       escape(f"{shown(w.old)} -> {shown(w.new)}"), escape(w.rule),
                       escape(w.reason))
    console.print(writes if e.writes else "writes: none recorded")
    gaps = table("gaps (open, then closed in the last 30 days)", "gap", "kind", "state",
                 "opened (UTC)", "detail")
    for g in e.gaps:
        state = "open" if g.outcome is None else f"{g.outcome} {when(g.closed_at)}"
        if g.note:
            state += f" by {g.decided_by}: {g.note}"
        gaps.add_row(str(g.id), g.kind, escape(state), when(g.opened_at), escape(g.text))
    console.print(gaps if e.gaps else "gaps: none")
    letters = table("dead letters", "id", "written to", "operation", "refused", "message",
                    "attempts", "state")
    for d in e.dead_letters:
        state = (f"resolved {when(d.resolved_at)}" if d.resolved_at
                 else f"next retry {when(d.next_retry_at)}")
        letters.add_row(str(d.id), f"{d.system} {d.object} {d.record_id or '(new record)'}",
                        d.operation, escape(d.code + (f" ({d.field})" if d.field else "")),
                        escape(d.message), str(d.attempts), state)
    console.print(letters if e.dead_letters else "dead letters: none")


# -- status -------------------------------------------------------------------------------------
def print_status(console: Console, view: StatusView) -> None:
    runs = table("recent runs", "run", "kind", "started (UTC)", "seconds", "status", "written",
                 "refused", "calls")
    for r in view.runs:
        runs.add_row(str(r.id), r.kind, r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                     f"{r.seconds:.1f}" + (" so far" if r.status == "running" else ""),
                     r.status, str(r.written), str(r.refused), str(r.calls))
    console.print(runs)
    reads = table("read up to", "system", "object", "last change read (UTC)",
                  "read up to (UTC)", "behind now", "note")
    for m in view.reads:
        last = m.last_change.strftime("%Y-%m-%d %H:%M:%S") if m.last_change else "-"
        until = m.read_until.strftime("%Y-%m-%d %H:%M:%S") if m.read_until else "-"
        name = m.object if m.purpose == "changes" else f"{m.object} ({m.purpose})"
        reads.add_row(m.system, name, last, until, span(m.behind), escape(m.note))
    console.print(reads)
    if view.checks:
        checks = table("scheduled checks", "system", "object", "check", "last done (UTC)")
        for m in view.checks:
            checks.add_row(m.system, m.object, escape(m.note), when(m.last_done))
        console.print(checks)
    if view.salesforce_api:
        used, limit = view.salesforce_api
        console.print(f"Salesforce API requests today: {used:,} of {limit:,} "
                      f"({used / limit:.1%}), as of the last cycle")
    if view.last_error:  # why the agent is waiting
        console.print(f"last run failed: {escape(view.last_error)}")
    console.print(f"dead letters waiting for retry: {view.dead_letters_waiting}")
