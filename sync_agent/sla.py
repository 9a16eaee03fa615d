"""Cold leads: SLA rules over the stage visits, and the actions they trigger.

A lead is cold when it has sat at the rule's stage for more than ``within_business_hours``
(counted in business hours) with no sales activity (a Salesforce Task or Event on it) since it
arrived. Activity the agent itself created (its own follow-up Task) does not count. The gap
closes when the lead leaves the stage or someone acts on it; a property the rule set in
HubSpot is cleared then, so HubSpot lists show only leads that are cold now.

Activity is read by change (``sla_activity``: the Tasks and Events changed since the last
read, one query each) into the state store's activity log, and ``find_cold`` decides from the
store alone: a cycle's cost follows the activity, never the number of leads at a stage.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session

from connectors.records import Activity
from mapping.model import (
    CreateTask,
    MappingFile,
    ObjectPair,
    RecycleToNurture,
    Reroute,
    SetProperty,
    SlaRule,
    StageMap,
)
from mapping.rules import FieldChange, Side
from sync_agent import activity, gap_notes, state
from sync_agent.business_hours import deadline
from sync_agent.owners import OwnerDirectory, is_queue
from sync_agent.tables import Gap, Link, StageVisit

KIND = "cold_lead"
MARK = "stagesync SLA"  # starts the description of every Task the agent creates
SYSTEM = "salesforce"
ACTIVITY_OBJECTS = ("Task", "Event")  # what counts as a rep acting on a lead or contact


@dataclass
class ColdLead:
    rule: SlaRule
    sf_id: str
    hs_id: str | None
    stage: str | None
    owner: str | None
    entered_at: dt.datetime
    due_at: dt.datetime
    owner_name: str | None = None  # the owner's email, for reports
    tasks: list[str] = field(default_factory=list)  # the agent's own Tasks on it already

    def detail(self) -> dict[str, Any]:
        return {"rule": self.rule.name, "stage": self.stage, "owner": self.owner,
                "tasks": self.tasks,
                "owner_name": self.owner_name,
                "hubspot_id": self.hs_id, "entered_at": self.entered_at.isoformat(),
                "due_at": self.due_at.isoformat()}


@dataclass
class ActionWrite:
    """One write an action needs, in the shape the cycle's writer takes."""

    system: Side
    object: str
    record_id: str | None  # None creates
    values: dict[str, Any]
    changes: list[FieldChange]
    lead: ColdLead
    kind: str


@dataclass
class SlaOutcome:
    opened: list[ColdLead] = field(default_factory=list)
    closed: list[Gap] = field(default_factory=list)
    # Open gaps whose lead had no HubSpot record when they opened and has one now: their
    # HubSpot-side actions are carried out now (a create held or delayed must not lose them).
    linked_since: list[ColdLead] = field(default_factory=list)


def aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def sla_position(smap: StageMap, stage: str) -> int | None:
    """The rule's stage may be named by either side's value."""
    found = smap.position("hubspot", stage)
    return found if found is not None else smap.position("salesforce", stage)


def at_stage(mapping: MappingFile, rule: SlaRule
              ) -> tuple[ObjectPair, ColumnElement[bool]] | None:
    """The rule's pair, and the condition on stage visits of its leads at its stage now."""
    smap = mapping.stage_maps.get(rule.stage_map)
    pair = next((p for p in mapping.objects if p.name == rule.pair), None)
    if smap is None or pair is None:
        return None  # validation refuses this; a hand-built mapping might not
    where = sla_position(smap, rule.stage)
    if where is None:
        return None
    return pair, and_(StageVisit.system == SYSTEM, StageVisit.object == pair.salesforce,
                      StageVisit.stage_map == rule.stage_map, StageVisit.position == where,
                      StageVisit.left_at.is_(None))


def find_cold(session: Session, mapping: MappingFile, now: dt.datetime
              ) -> dict[str, ColdLead]:
    """Leads past their SLA with no activity since they reached the stage, by Salesforce id.

    From the state store alone (stage visits, their links, the activity log that
    ``sla_activity`` keeps): no API call, and a few queries per rule however many leads wait.
    """
    cold: dict[str, ColdLead] = {}
    for rule in mapping.sla:
        found = at_stage(mapping, rule)
        if found is None:
            continue
        pair, condition = found
        due: list[ColdLead] = []
        for visit, hs_id in session.execute(
                select(StageVisit, Link.hs_id).where(condition).outerjoin(Link, and_(
                    Link.pair == pair.name, Link.sf_id == StageVisit.record_id))):
            entered = aware(visit.entered_at)
            at = deadline(entered, rule.within_business_hours, mapping.business_hours)
            if at <= now and visit.record_id not in cold:
                due.append(ColdLead(rule, visit.record_id, hs_id, visit.stage, visit.owner,
                                    entered, at))
        logged = activity.logged_for(session, [c.sf_id for c in due])
        for lead in due:
            seen = logged.get(lead.sf_id, activity.Logged(None))
            if seen.rep_at is not None and seen.rep_at >= lead.entered_at:
                continue  # someone acted on it since it arrived
            lead.tasks = [i for i, at in seen.ours if at >= lead.entered_at]
            cold[lead.sf_id] = lead
    return cold


def new_cold(session: Session, mapping: MappingFile, cold: dict[str, ColdLead]) -> bool:
    """Whether any of these cold leads has no open gap yet: declaring it cold (and carrying
    out the actions) waits for a fresh read of its activity."""
    for pair in {r.pair for r in mapping.sla}:
        open_keys = set(session.scalars(select(Gap.key).where(
            Gap.kind == KIND, Gap.pair == pair, Gap.closed_at.is_(None))))
        if any(lead.rule.pair == pair and key not in open_keys for key, lead in cold.items()):
            return True
    return False


def _open_gaps(session: Session, leads: Iterable[tuple[str, str]]
               ) -> dict[tuple[str, str], Gap]:
    """The open cold-lead gaps of these (pair, lead id)s, a page of leads a query."""
    wanted: dict[str, set[str]] = {}
    for pair, key in leads:
        wanted.setdefault(pair, set()).add(key)
    gaps: dict[tuple[str, str], Gap] = {}
    for pair, keys in wanted.items():
        ordered = sorted(keys)
        for start in range(0, len(ordered), 500):
            for gap in session.scalars(select(Gap).where(
                    Gap.kind == KIND, Gap.pair == pair, Gap.closed_at.is_(None),
                    Gap.key.in_(ordered[start:start + 500]))):
                gaps[(pair, gap.key)] = gap
    return gaps


def note_not_done(session: Session, skipped: list[tuple[ColdLead, str]]) -> None:
    """Say on each cold lead's gap which of its actions could not be carried out, and why,
    the gaps read a page of leads a query (a first sync may find thousands cold)."""
    gaps = _open_gaps(session, {(lead.rule.pair, lead.sf_id) for lead, _ in skipped})
    for lead, why in skipped:
        gap = gaps.get((lead.rule.pair, lead.sf_id))
        if gap is None:  # closed meanwhile: opened again saying so, as before
            state.open_gap(session, KIND, lead.rule.pair, lead.sf_id, {"not_done": [why]})
            continue
        gap.detail = {**gap.detail, "not_done": [*gap.detail.get("not_done", []), why]}
        gap.last_seen_at = state.now()


def record_done(session: Session, done: list[tuple[ActionWrite, str | None]],
                at: dt.datetime) -> None:
    """Note on each cold lead's gap the actions whose writes landed (and the Tasks they made),
    the gaps read a page of leads a query: a burst of new cold leads costs no query each.
    The Tasks go in the activity log as the agent's own at once (made ``at``), so the log
    knows them before the next activity poll reads them back."""
    activity.record_activity(session, [], [
        Activity(record_id=write.lead.sf_id, id=made, at=at, note=MARK)
        for write, made in done if write.kind == "create_task" and made])
    gaps = _open_gaps(session, {(write.lead.rule.pair, write.lead.sf_id) for write, _ in done
                                if write.kind != "clear_property"})
    for write, made in done:
        if write.kind == "clear_property":
            continue
        key = (write.lead.rule.pair, write.lead.sf_id)
        known = dict(gaps[key].detail) if key in gaps else {}
        extra: dict[str, Any] = {"done": [*known.get("done", []), *write.kind.split("+")]}
        if write.kind == "create_task" and made:
            extra["tasks"] = [*known.get("tasks", []), made]
        if key in gaps:
            gaps[key].detail = {**known, **extra}
            gaps[key].last_seen_at = state.now()
        else:  # its gap closed meanwhile: opened again with what was done, as before
            state.open_gap(session, KIND, key[0], key[1], extra)
            session.flush()
            reopened = session.scalars(select(Gap).where(
                Gap.kind == KIND, Gap.pair == key[0], Gap.key == key[1],
                Gap.closed_at.is_(None))).first()
            if reopened is not None:
                gaps[key] = reopened


def reconcile(session: Session, mapping: MappingFile, cold: dict[str, ColdLead]
              ) -> SlaOutcome:
    """Open gaps for new cold leads, touch the known ones, close those no longer cold.

    The open gaps are read once per pair, so leads that stay cold cost no query each: a quiet
    cycle's work follows what changed, not how many leads wait."""
    outcome = SlaOutcome()
    known: set[tuple[str, str]] = set()
    for pair in {r.pair for r in mapping.sla}:
        for gap in session.scalars(select(Gap).where(Gap.kind == KIND, Gap.pair == pair,
                                                     Gap.closed_at.is_(None))):
            if gap.key in cold and cold[gap.key].rule.pair == pair:
                lead = cold[gap.key]
                if not gap.detail.get("hubspot_id") and lead.hs_id is not None:
                    outcome.linked_since.append(lead)
                gap.detail = {**gap.detail, **lead.detail()}  # keep what was known
                gap.last_seen_at = state.now()
                known.add((pair, gap.key))
            else:
                gap.closed_at = state.now()
                outcome.closed.append(gap)
    _decided(session, cold, known, outcome)
    stamp = state.now()
    for lead in cold.values():  # every open gap of the kind was read above: these have none
        if (lead.rule.pair, lead.sf_id) not in known:
            session.add(Gap(kind=KIND, pair=lead.rule.pair, key=lead.sf_id,
                            detail=lead.detail(), opened_at=stamp, last_seen_at=stamp))
            outcome.opened.append(lead)
    return outcome


def _decided(session: Session, cold: dict[str, ColdLead], known: set[tuple[str, str]],
             outcome: SlaOutcome) -> None:
    """Cold leads a person closed (``gap_notes``): one they ignored stays closed while it is
    cold as it was (its actions are not carried out again); one they resolved, or one that
    changed, opens again like any cold lead; one no longer cold has what its actions set in
    HubSpot undone, as a gap the engine closes does. Either way the decision is then spent."""
    for (_, pair, key), decision in gap_notes.active_decisions(session, KIND).items():
        lead = cold.get(key)
        if lead is not None and lead.rule.pair == pair:
            if (pair, key) not in known and gap_notes.holds(decision, lead.detail()):
                known.add((pair, key))  # left alone, as the person decided
                continue
        else:
            outcome.closed.append(decision.gap)
        decision.note.active = False


def action_writes(mapping: MappingFile, outcome: SlaOutcome, directory: OwnerDirectory,
                  today: dt.date) -> tuple[list[ActionWrite], list[tuple[ColdLead, str]]]:
    """The writes the opened gaps' actions need, plus undoing ``set_hubspot_property`` for the
    closed ones; and the actions that could not be carried out, with why."""
    writes: list[ActionWrite] = []
    skipped: list[tuple[ColdLead, str]] = []
    pairs = {p.name: p for p in mapping.objects}
    for lead in outcome.opened:
        pair = pairs[lead.rule.pair]
        smap = mapping.stage_maps[lead.rule.stage_map]
        reason = (f"cold lead: at {lead.stage} since {lead.entered_at:%Y-%m-%d %H:%M} UTC, "
                  f"due {lead.due_at:%Y-%m-%d %H:%M} UTC")
        tag = f"sla:{lead.rule.name}"

        def change(side: Side, name: str, new: Any, reason: str = reason,
                   tag: str = tag) -> FieldChange:
            return FieldChange(side, name, None, new, tag, reason, f"sla>{name}")

        for action in lead.rule.actions:
            if isinstance(action, CreateTask):
                if lead.tasks:  # created before a crash: the follow-up exists already
                    continue
                values: dict[str, Any] = {
                    "Subject": action.subject, "Priority": action.priority,
                    "Status": "Not Started", "WhoId": lead.sf_id,
                    "ActivityDate": today.isoformat(),
                    "Description": f"{MARK} {lead.rule.name}: {reason}."}
                assignee = _task_owner(mapping, directory, lead.owner)
                if isinstance(assignee, Skip):
                    skipped.append((lead, f"{action.kind}: {assignee.reason}"))
                    continue
                if assignee:
                    values["OwnerId"] = assignee
                writes.append(ActionWrite("salesforce", "Task", None, values,
                                          [change("salesforce", "Subject", action.subject)],
                                          lead, action.kind))
            elif isinstance(action, SetProperty):
                if lead.hs_id is None:
                    skipped.append((lead, f"{action.kind}: the lead has no HubSpot record"))
                    continue
                writes.append(ActionWrite("hubspot", pair.hubspot, lead.hs_id,
                                          {action.property: action.value},
                                          [change("hubspot", action.property, action.value)],
                                          lead, action.kind))
            elif isinstance(action, Reroute):
                user = directory.user_by_email(action.owner_email)
                owner = directory.owner_by_email(action.owner_email)
                if user is None:
                    skipped.append((lead, f"reroute: no active Salesforce user has the email "
                                          f"{action.owner_email}"))
                else:
                    writes.append(ActionWrite(
                        "salesforce", pair.salesforce, lead.sf_id, {"OwnerId": user.id},
                        [change("salesforce", "OwnerId", user.id)], lead, action.kind))
                if owner is not None and lead.hs_id is not None:
                    writes.append(ActionWrite(
                        "hubspot", pair.hubspot, lead.hs_id,
                        {mapping.owners.hubspot_property: owner.id},
                        [change("hubspot", mapping.owners.hubspot_property, owner.id)], lead,
                        action.kind))
            elif isinstance(action, RecycleToNurture):
                sf_field = smap.salesforce_field.partition(".")[2]
                hs_field = smap.hubspot_field.partition(".")[2]
                to_hs = action.hubspot_stage or _counterpart(smap, action.salesforce_stage)
                writes.append(ActionWrite(
                    "salesforce", pair.salesforce, lead.sf_id, {sf_field: action.salesforce_stage},
                    [change("salesforce", sf_field, action.salesforce_stage)], lead, action.kind))
                if to_hs and lead.hs_id is not None:
                    writes.append(ActionWrite(
                        "hubspot", pair.hubspot, lead.hs_id, {hs_field: to_hs},
                        [change("hubspot", hs_field, to_hs)], lead, action.kind))
    for lead in outcome.linked_since:
        for action in lead.rule.actions:
            if isinstance(action, SetProperty) and lead.hs_id is not None:
                writes.append(ActionWrite(
                    "hubspot", pairs[lead.rule.pair].hubspot, lead.hs_id,
                    {action.property: action.value},
                    [FieldChange("hubspot", action.property, None, action.value,
                                 f"sla:{lead.rule.name}", "cold lead, now in HubSpot",
                                 f"sla>{action.property}")], lead, action.kind))
    writes = _merged(writes)
    for gap in outcome.closed:
        rule = next((r for r in mapping.sla if r.name == gap.detail.get("rule")), None)
        hs_id = gap.detail.get("hubspot_id")
        if rule is None or not hs_id:
            continue
        for action in rule.actions:
            if isinstance(action, SetProperty):
                lead = ColdLead(rule, gap.key, hs_id, gap.detail.get("stage"), None,
                                state.now(), state.now())
                writes.append(ActionWrite(
                    "hubspot", pairs[rule.pair].hubspot, hs_id, {action.property: ""},
                    [FieldChange("hubspot", action.property, action.value, "",
                                 f"sla:{rule.name}", "no longer cold",
                                 f"sla>{action.property}")], lead, "clear_property"))
    return writes, skipped


@dataclass(frozen=True)
class Skip:
    reason: str


def _task_owner(mapping: MappingFile, directory: OwnerDirectory, owner: str | None
                ) -> str | Skip | None:
    """Who the follow-up Task is assigned to: the lead's owner, or for a lead a queue owns
    (a queue cannot own Tasks) the mapping's ``owners.queue_task_owner``."""
    if not is_queue(owner):
        return owner
    email = mapping.owners.queue_task_owner
    if not email:
        return Skip(f"the lead is owned by the queue {owner}, which cannot own tasks; name a "
                    "user in owners.queue_task_owner")
    user = directory.user_by_email(email)
    if user is None:
        return Skip(f"owners.queue_task_owner {email} is no active Salesforce user's email")
    return user.id


def _merged(writes: list[ActionWrite]) -> list[ActionWrite]:
    """One write per record: Salesforce refuses a batch naming a record twice, and two actions
    (reroute and recycle) may touch the same lead."""
    out: list[ActionWrite] = []
    by_record: dict[tuple[str, str, str], ActionWrite] = {}
    for write in writes:
        if write.record_id is None:
            out.append(write)
            continue
        key = (write.system, write.object, write.record_id)
        first = by_record.get(key)
        if first is None:
            by_record[key] = write
            out.append(write)
            continue
        first.values.update(write.values)
        first.changes.extend(write.changes)
        first.kind = f"{first.kind}+{write.kind}"
    return out


def _counterpart(smap: StageMap, salesforce_stage: str) -> str | None:
    where = smap.position("salesforce", salesforce_stage)
    return smap.stages[where].hubspot[0] if where is not None else None
