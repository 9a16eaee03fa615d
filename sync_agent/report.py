"""The funnel both tools share, from the state store (no API calls): records per stage on each
side, conversion between stages, SLA compliance and cold leads by owner.

Everything comes from the stage visits the cycles record, so the report describes what the
agent has seen: run a cycle first. A stage map lists its stages in funnel order, so a record
seen at a stage has reached every stage before it (a lead first seen Qualified was Working
once, whether or not a cycle saw it there), as in HubSpot's cumulative funnels; a first sync,
which sees each record once, already gives real conversion rates. The map's last stage is
where records leave the funnel (Unqualified, Closed Lost, Churned in the default maps): a
record there counts for the stages it was seen at before, never for the ones it may have
skipped, since a lead is disqualified at any stage. "To next" is the share of the records
that reached a stage that reached the next one too.
"""

from __future__ import annotations

import datetime as dt
import html
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mapping.model import MappingFile
from sync_agent.private_files import write_private_text
from sync_agent.sla import KIND as COLD
from sync_agent.sla import sla_position
from sync_agent.tables import Gap, StageVisit

SIDES = ("salesforce", "hubspot")


@dataclass
class StageRow:
    label: str  # the stage pair, "Working / marketingqualifiedlead"
    counts: dict[str, int]  # side -> records there now
    conversion: dict[str, float | None]  # side -> share that moved on to the next stage
    reached: dict[str, int] = field(default_factory=dict)  # side -> records that reached it


@dataclass
class FunnelReport:
    stage_map: str
    rows: list[StageRow]
    unmapped: dict[str, Counter[str]]  # side -> stage values not in the map -> records


@dataclass
class SlaReport:
    rule: str
    reached: int  # leads seen at the SLA stage
    breached: int  # of them, ever cold
    open_now: int
    by_owner: Counter[str] = field(default_factory=Counter)

    @property
    def compliance(self) -> float | None:
        return None if self.reached == 0 else 1 - self.breached / self.reached


@dataclass
class Report:
    generated_at: dt.datetime
    funnels: list[FunnelReport]
    slas: list[SlaReport]


def build_report(session: Session, mapping: MappingFile) -> Report:
    funnels = [_funnel(session, name, mapping) for name in mapping.stage_maps]
    return Report(dt.datetime.now(dt.UTC), funnels, [_sla(session, mapping, r.name)
                                                      for r in mapping.sla])


def _funnel(session: Session, name: str, mapping: MappingFile) -> FunnelReport:
    smap = mapping.stage_maps[name]
    size = len(smap.stages)
    now: dict[str, Counter[int]] = {side: Counter() for side in SIDES}
    unmapped: dict[str, Counter[str]] = {side: Counter() for side in SIDES}
    visited: dict[str, dict[str, set[int]]] = {side: defaultdict(set) for side in SIDES}
    for system, record_id, stage, position, left in session.execute(select(
            StageVisit.system, StageVisit.record_id, StageVisit.stage, StageVisit.position,
            StageVisit.left_at).where(StageVisit.stage_map == name)):
        if position is not None:
            visited[system][record_id].add(position)
        if left is None:
            if position is not None:
                now[system][position] += 1
            elif stage is not None:
                unmapped[system][stage] += 1
    reached = {side: _reached(visited[side], size) for side in SIDES}
    rows = []
    for index, pair in enumerate(smap.stages):
        conversion: dict[str, float | None] = {}
        for side in SIDES:
            here = reached[side][index]
            nxt = reached[side][index + 1] if index + 1 < size else set()
            conversion[side] = (len(here & nxt) / len(here)) if here and index + 1 < size \
                else None
        rows.append(StageRow(f"{' | '.join(pair.salesforce)} / {' | '.join(pair.hubspot)}",
                             {side: now[side][index] for side in SIDES}, conversion,
                             {side: len(reached[side][index]) for side in SIDES}))
    return FunnelReport(name, rows, unmapped)


def _reached(visited: dict[str, set[int]], size: int) -> list[set[str]]:
    """Per stage, the records that reached it: seen there or at any later stage but the last
    (the exit, which counts only where it was seen)."""
    last = size - 1
    reached: list[set[str]] = [set() for _ in range(size)]
    for record_id, positions in visited.items():
        furthest = max((p for p in positions if p != last), default=None)
        for index in range(furthest + 1 if furthest is not None else 0):
            reached[index].add(record_id)
        if last in positions and size > 0:
            reached[last].add(record_id)
    return reached


def _sla(session: Session, mapping: MappingFile, rule_name: str) -> SlaReport:
    rule = next(r for r in mapping.sla if r.name == rule_name)
    smap = mapping.stage_maps.get(rule.stage_map)
    pair = next((p for p in mapping.objects if p.name == rule.pair), None)
    where = sla_position(smap, rule.stage) if smap is not None else None
    if where is None or pair is None:
        return SlaReport(rule.name, 0, 0, 0)
    reached = set(session.scalars(select(StageVisit.record_id).where(
        StageVisit.system == "salesforce", StageVisit.object == pair.salesforce,
        StageVisit.stage_map == rule.stage_map, StageVisit.position == where)))
    breached: set[str] = set()
    open_now = 0
    by_owner: Counter[str] = Counter()
    for gap in session.scalars(select(Gap).where(Gap.kind == COLD, Gap.pair == rule.pair)):
        if gap.detail.get("rule") != rule.name:
            continue
        breached.add(gap.key)
        if gap.closed_at is None:
            open_now += 1
            by_owner[str(gap.detail.get("owner_name") or gap.detail.get("owner")
                         or "(no owner)")] += 1
    return SlaReport(rule.name, len(reached | breached), len(breached), open_now, by_owner)


def report_json(report: Report) -> dict[str, Any]:
    """The report as JSON-able data (shares as fractions, null where there is none)."""
    return {
        "generated_at": report.generated_at.isoformat(),
        "funnels": [{"stage_map": f.stage_map,
                     "stages": [{"label": r.label, "now": dict(r.counts),
                                 "reached": dict(r.reached), "to_next": dict(r.conversion)}
                                for r in f.rows],
                     "not_in_the_map": {side: dict(values) for side, values in
                                        f.unmapped.items()}} for f in report.funnels],
        "slas": [{"rule": s.rule, "reached": s.reached, "breached": s.breached,
                  "cold_now": s.open_now, "compliance": s.compliance,
                  "cold_by_owner": dict(s.by_owner)} for s in report.slas]}


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


# -- HTML ---------------------------------------------------------------------------------------
def _bars(title: str, rows: list[tuple[str, list[tuple[str, float, str]]]]) -> str:
    """A horizontal bar chart as inline SVG: rows of (label, [(series, value, colour)])."""
    peak = max((v for _, series in rows for _, v, _ in series), default=0) or 1
    bar, gap, label_width, width = 14, 8, 260, 420
    lines = [f"<h3>{html.escape(title)}</h3>"]
    height = sum(len(series) * bar + gap for _, series in rows) + gap
    lines.append(f'<svg role="img" aria-label="{html.escape(title)}" '
                 f'width="{label_width + width + 80}" height="{height}" '
                 'xmlns="http://www.w3.org/2000/svg">')
    y = gap
    for label, series in rows:
        lines.append(f'<text x="0" y="{y + bar - 3}" font-size="12">{html.escape(label)}</text>')
        for name, value, colour in series:
            length = int(width * value / peak)
            lines.append(f'<rect x="{label_width}" y="{y}" width="{length}" height="{bar - 2}" '
                         f'fill="{colour}"><title>{html.escape(name)}: {value:g}</title></rect>')
            lines.append(f'<text x="{label_width + length + 4}" y="{y + bar - 3}" '
                         f'font-size="11">{value:g}</text>')
            y += bar
        y += gap
    lines.append("</svg>")
    return "\n".join(lines)


COLOURS = {"salesforce": "#1b96ff", "hubspot": "#ff7a59"}


def render_html(report: Report) -> str:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>stagesync funnel report"
             "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:"
             "collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
             "td:first-child,th:first-child{text-align:left}</style></head><body>",
             "<h1>stagesync funnel report</h1>",
             f"<p>Generated {report.generated_at:%Y-%m-%d %H:%M} UTC from the state store. "
             "<span style='color:#1b96ff'>&#9632; Salesforce</span> "
             "<span style='color:#ff7a59'>&#9632; HubSpot</span></p>"]
    for funnel in report.funnels:
        parts.append(f"<h2>Stage map {html.escape(funnel.stage_map)}</h2>")
        parts.append(_bars("Records per stage now", [
            (row.label, [(side, row.counts[side], COLOURS[side]) for side in SIDES])
            for row in funnel.rows]))
        parts.append("<table><tr><th>stage (Salesforce / HubSpot)</th><th>Salesforce</th>"
                     "<th>HubSpot</th><th>to next (SF)</th><th>to next (HS)</th></tr>")
        for row in funnel.rows:
            parts.append(f"<tr><td>{html.escape(row.label)}</td>"
                         f"<td>{row.counts['salesforce']}</td><td>{row.counts['hubspot']}</td>"
                         f"<td>{_percent(row.conversion['salesforce'])}</td>"
                         f"<td>{_percent(row.conversion['hubspot'])}</td></tr>")
        parts.append("</table>")
        for side in SIDES:
            if funnel.unmapped[side]:
                values = ", ".join(f"{html.escape(k)} ({v})"
                                   for k, v in funnel.unmapped[side].most_common())
                parts.append(f"<p>Not in the stage map ({side}): {values}</p>")
    for sla in report.slas:
        parts.append(f"<h2>SLA {html.escape(sla.rule)}</h2>")
        parts.append(f"<p>Compliance {_percent(sla.compliance)}: {sla.reached} lead(s) reached "
                     f"the stage, {sla.breached} went cold, {sla.open_now} cold now.</p>")
        if sla.by_owner:
            parts.append(_bars("Cold leads by owner", [
                (owner, [("cold leads", count, "#7f56d9")])
                for owner, count in sla.by_owner.most_common()]))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(report: Report, path: Path) -> str | None:
    """Write the report 0600 (it names owners and leads); the warning when an existing file
    at ``path`` was open to others and has been tightened."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_private_text(path, render_html(report), "holds names and emails")
