"""Funnel stages in the engine: where each record sits, drift between the two sides, recycling,
and HubSpot's forward-only lifecycle stage.

- Every record a cycle reads (and every value it writes) is an observation of its stage; the
  ``stage_visits`` table keeps each stay (arrived, left, owner) for SLA clocks and reports.
- Drift: a linked pair whose two stages sit at different funnel positions after the plan
  (an unmapped value, a rule that does not write, a move HubSpot would ignore).
- HubSpot ignores a lifecycle stage earlier than the current one. The native connector does
  not move it back either, so a backward move is held and reported as drift: a person decides.
  Recycling (the stage map's ``recycle`` rules, the SLA ``recycle`` action) is the deliberate
  way back, and may move it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mapping.model import MappingFile, ObjectPair, StageMap
from mapping.rules import FieldChange, Plan, Side
from mapping.transforms import blank
from sync_agent import state
from sync_agent.tables import StageVisit

CHUNK = 500


@dataclass(frozen=True)
class StageField:
    """A stage map as one object pair uses it: which field holds the stage on each side."""

    name: str
    smap: StageMap
    sf_field: str
    hs_field: str
    # For deals routed to pipelines: pipeline id -> (stage map name, map) of that pipeline.
    pipelines: tuple[tuple[str, str, StageMap], ...] = ()

    def for_record(self, hs: Mapping[str, Any]) -> tuple[str, StageMap]:
        """The stage map this record's stages are read with: its deal pipeline's, if any."""
        pipeline = hs.get("pipeline")
        for pid, name, smap in self.pipelines:
            if pid == pipeline:
                return name, smap
        return self.name, self.smap

    def field(self, side: Side) -> str:
        return self.sf_field if side == "salesforce" else self.hs_field


def stage_fields(mapping: MappingFile, pair: ObjectPair) -> list[StageField]:
    from mapping.pipelines import deal_pipelines_of, is_stage_rule

    routing = deal_pipelines_of(mapping, pair.name)
    out: list[StageField] = []
    for rule in pair.fields:
        smap = mapping.stage_maps.get(rule.stage_map) if rule.stage_map else None
        if smap is not None and rule.stage_map is not None:
            routes: tuple[tuple[str, str, StageMap], ...] = ()
            if routing is not None and is_stage_rule(mapping, pair.hubspot, rule):
                routes = tuple((r.pipeline, r.stage_map, mapping.stage_maps[r.stage_map])
                               for _, r in reversed(routing.routes())
                               if r.stage_map in mapping.stage_maps)
            out.append(StageField(rule.stage_map, smap, rule.salesforce, rule.hubspot, routes))
    return out


def maps_on(mapping: MappingFile, system: str, obj: str) -> list[tuple[str, StageMap, str]]:
    """(name, map, field) of every stage map whose field lives on ``system``'s ``obj``."""
    out = []
    for name, smap in mapping.stage_maps.items():
        where = smap.salesforce_field if system == "salesforce" else smap.hubspot_field
        owner_obj, _, field = where.partition(".")
        if owner_obj == obj and field:
            out.append((name, smap, field))
    return out


def position(smap: StageMap, side: Side, value: Any) -> int | None:
    return None if blank(value) else smap.position(side, str(value))


# -- observations -----------------------------------------------------------------------------
@dataclass
class Observation:
    system: str
    object: str
    record_id: str
    stage_map: str
    stage: str | None
    position: int | None
    owner: str | None
    at: dt.datetime  # when the record was last modified (read) or written (by us)


class StageBook:
    """A cycle's stage observations; the last one per record and map wins."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str, str], Observation] = {}
        self.maps: dict[tuple[str, str], list[tuple[str, StageMap, str]]] = {}

    def observe(self, mapping: MappingFile, system: str, obj: str, record_id: str,
                values: Mapping[str, Any], owner_field: str, at: dt.datetime) -> None:
        side: Side = "salesforce" if system == "salesforce" else "hubspot"
        if (system, obj) not in self.maps:  # called for every record read: look up once
            self.maps[(system, obj)] = maps_on(mapping, system, obj)
        for name, smap, field in self.maps[(system, obj)]:
            if field not in values:
                continue
            stage = values.get(field)
            owner = values.get(owner_field)
            self.seen[(system, record_id, name)] = Observation(
                system, obj, record_id, name, None if blank(stage) else str(stage),
                position(smap, side, stage), None if blank(owner) else str(owner), at)

    def flush(self, session: Session, now: dt.datetime) -> int:
        """Record the observations as stage visits; returns how many stays began.

        Current visits are read as rows and changed by bulk statements (a page of records a
        query, one update and one insert per page), not as ORM objects: a cycle observes
        every record it reads or writes, twice for a written pair."""
        started = 0
        items = list(self.seen.values())
        v = StageVisit.__table__.c
        for start in range(0, len(items), CHUNK):
            chunk = items[start:start + CHUNK]
            ids: dict[str, set[str]] = {}
            for o in chunk:
                ids.setdefault(o.system, set()).add(o.record_id)
            current = {(row.system, row.record_id, row.stage_map): row  # one query a system:
                       for system, record_ids in ids.items()  # ix_stage_visits_record
                       for row in session.execute(select(
                           v.id, v.system, v.record_id, v.stage_map, v.stage, v.owner,
                           v.entered_at).where(v.system == system, v.record_id.in_(record_ids),
                                               v.left_at.is_(None)))}
            rows: list[dict[str, Any]] = []
            changed: dict[int, dict[str, Any]] = {}
            for obs in chunk:
                visit = current.get((obs.system, obs.record_id, obs.stage_map))
                if visit is not None and visit.stage == obs.stage:
                    if visit.owner != obs.owner:
                        changed[visit.id] = {"id": visit.id, "owner": obs.owner}
                    continue
                arrived = min(obs.at, now)
                if visit is not None:
                    entered = visit.entered_at if visit.entered_at.tzinfo else (
                        visit.entered_at.replace(tzinfo=dt.UTC))
                    arrived = max(arrived, entered)
                    changed[visit.id] = {"id": visit.id, "left_at": arrived}
                rows.append({"system": obs.system, "object": obs.object,
                             "record_id": obs.record_id, "stage_map": obs.stage_map,
                             "stage": obs.stage, "position": obs.position, "owner": obs.owner,
                             "entered_at": arrived, "left_at": None})
            for keys in ({"id", "owner"}, {"id", "left_at"}):  # one statement per shape
                same = [c for c in changed.values() if set(c) == keys]
                if same:
                    session.execute(update(StageVisit), same)
            state.insert_rows(session, StageVisit, rows)
            started += len(rows)
        self.seen.clear()
        return started


# -- recycling, forward-only holds and drift ----------------------------------------------------
@dataclass(frozen=True)
class Recycled:
    side: Side
    field: str
    old: str
    new: str
    stage_map: str


def recycles(fields: Iterable[StageField], sf: Mapping[str, Any], hs: Mapping[str, Any],
             last: Mapping[str, tuple[Any, Any]]) -> list[Recycled]:
    """The stage map ``recycle`` rules this pair's stages trigger: a record that *moved* to a
    recycled stage since the last sync. Records found there by a first sync stay put; a first
    sync never recycles half a database."""
    out = []
    for sfield in fields:
        seen = last.get(f"{sfield.sf_field}>{sfield.hs_field}")
        if seen is None:
            continue
        for rule in sfield.smap.recycle:
            values = sf if rule.side == "salesforce" else hs
            name = sfield.field(rule.side)
            before = seen[0] if rule.side == "salesforce" else seen[1]
            if values.get(name) == rule.from_stage and before != rule.from_stage:
                out.append(Recycled(rule.side, name, rule.from_stage, rule.to_stage,
                                    sfield.name))
    return out


def current_stages(session: Session, system: str, record_ids: Iterable[str]
                   ) -> dict[str, dict[str, str | None]]:
    """Each record's stage per stage map as last observed (its open visits)."""
    v = StageVisit.__table__.c
    out: dict[str, dict[str, str | None]] = {}
    wanted = sorted(set(record_ids))
    for start in range(0, len(wanted), CHUNK):
        for record_id, stage_map, stage in session.execute(select(
                v.record_id, v.stage_map, v.stage).where(
                v.system == system, v.record_id.in_(wanted[start:start + CHUNK]),
                v.left_at.is_(None))):
            out.setdefault(record_id, {})[stage_map] = stage
    return out


def own_arrivals(fields: Iterable[StageField], last: Mapping[str, tuple[Any, Any]],
                 sf: Mapping[str, Any], hs: Mapping[str, Any],
                 sf_stages: Mapping[str, str | None], hs_stages: Mapping[str, str | None]
                 ) -> dict[str, tuple[Any, Any]]:
    """The base ``recycles`` judges a moved link by (a merge, a conversion): each record's
    own stage as last observed (``*_stages``: stage map -> stage), not the stage of the
    record whose link it took over. A merge survivor already Unqualified did not just become
    Unqualified; a record never observed has no move to judge, so its stage now stands for
    before."""
    base = dict(last)
    for sfield in fields:
        name = sfield.for_record(hs)[0]
        base[f"{sfield.sf_field}>{sfield.hs_field}"] = (
            sf_stages.get(name, sf.get(sfield.sf_field)),
            hs_stages.get(name, hs.get(sfield.hs_field)))
    return base


def hold_backward(plan: Plan, fields: Iterable[StageField], forward_only: set[str],
                  recycled: bool) -> tuple[Plan, dict[str, str]]:
    """Drop HubSpot writes that would move a forward-only stage back (HubSpot would ignore
    them). Returns the plan to apply and, per stage map, why a move was held."""
    if recycled or not forward_only:
        return plan, {}
    by_field = {f.hs_field: f for f in fields if f.hs_field in forward_only}
    held: dict[str, str] = {}
    kept: list[FieldChange] = []
    for change in plan.changes:
        sfield = by_field.get(change.field) if change.side == "hubspot" else None
        if sfield is not None:
            before = position(sfield.smap, "hubspot", change.old)
            after = position(sfield.smap, "hubspot", change.new)
            if before is not None and after is not None and after < before:
                held[sfield.name] = (
                    f"HubSpot moves {change.field} only forward: {change.old!r} was not set "
                    f"back to {change.new!r} ({change.reason}); recycle the record or change "
                    "one side")
                continue
        kept.append(change)
    if not held:
        return plan, {}
    return Plan(changes=kept, warnings=plan.warnings), held


def drift(fields: Iterable[StageField], sf: Mapping[str, Any], hs: Mapping[str, Any],
          held: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Stage maps whose two stages sit at different funnel positions, with the reason."""
    out: dict[str, dict[str, Any]] = {}
    for sfield in fields:
        s, h = sf.get(sfield.sf_field), hs.get(sfield.hs_field)
        if blank(s) and blank(h):
            continue
        name, smap = sfield.for_record(hs)
        if str(s) in smap.ignore_salesforce or str(h) in smap.ignore_hubspot:
            continue
        sp, hp = position(smap, "salesforce", s), position(smap, "hubspot", h)
        if sp == hp:
            continue
        if sfield.name in held:
            reason = held[sfield.name]
        elif sp is None or hp is None:
            side, value = ("Salesforce", s) if sp is None else ("HubSpot", h)
            reason = (f"{side} stage {value!r} is not in stage map {name}"
                      if not blank(value) else f"{side} has no stage")
        else:
            reason = "the field rule does not carry the stage across"
        out[sfield.name] = {"salesforce": s, "hubspot": h, "salesforce_position": sp,
                            "hubspot_position": hp, "reason": reason}
    return out
