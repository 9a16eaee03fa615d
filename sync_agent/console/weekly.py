"""The weekly review: the page sales and marketing open together in their weekly meeting.

This week's MQLs and where each went, and SLA compliance per owner, from the state store:

- An MQL of the week is a HubSpot contact whose lifecycle stage arrived at an SLA rule's stage
  (``marketingqualifiedlead`` in the default mapping) during the week. HubSpot's contact is
  followed, not Salesforce's lead: it stays one record through the lead's conversion, and its
  lifecycle stage follows the contact's opportunities (the mapping's ``stage_follows``).
- Where it went: the furthest lifecycle stage it reached since (SQL, opportunity, customer =
  won, other = disqualified), and its deals (Opportunity.ContactId, as the
  ``@<association>`` value synced beside each deal's link) at their current Salesforce stage;
  a lost deal shows its loss reason when a deals pair syncs HubSpot's ``closed_lost_reason``
  (the default mapping does, with the Opportunity's custom ``Loss_Reason__c``), Salesforce's
  side first, as the default rule prefers it.
- SLA compliance per owner: of the owner's MQLs of the week, how many went cold (a
  ``cold_lead`` gap of the rule was opened on the lead), by the contact's HubSpot owner.

Weeks start on Monday at midnight in the business hours' time zone of the mapping.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from mapping.model import MappingFile, SlaRule
from sync_agent import state
from sync_agent.sla import KIND as COLD
from sync_agent.sla import sla_position
from sync_agent.tables import Gap, Link, SchemaCacheEntry, StageVisit, SyncedValues

# HubSpot's default lifecycle stages after MQL, as the review names them.
OUTCOMES = {"salesqualifiedlead": "SQL", "opportunity": "opportunity", "customer": "won",
            "evangelist": "won", "other": "disqualified"}
OUTCOME_ORDER = ["MQL", "SQL", "opportunity", "won", "lost", "disqualified"]
LOSS_REASON = "closed_lost_reason"  # HubSpot's standard deal property


@dataclass
class Deal:
    sf_id: str
    name: str | None
    stage: str | None
    outcome: str  # open | won | lost
    loss_reason: str | None


@dataclass
class Mql:
    hs_id: str
    email: str | None
    owner: str
    arrived_at: dt.datetime
    furthest: str  # the furthest lifecycle stage since (its HubSpot value)
    outcome: str  # one of OUTCOME_ORDER
    went_cold: bool
    deals: list[Deal] = field(default_factory=list)


@dataclass
class OwnerSla:
    owner: str
    mqls: int
    cold: int

    @property
    def compliance(self) -> float | None:
        return None if self.mqls == 0 else 1 - self.cold / self.mqls


@dataclass
class WeeklyReview:
    rule: str
    start: dt.datetime
    end: dt.datetime
    mqls: list[Mql]
    outcomes: dict[str, int]
    owners: list[OwnerSla]
    loss_reason_mapped: bool


def week_of(day: dt.date | None, zone: str, now: dt.datetime | None = None
            ) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the week holding ``day`` (today when None), Monday to Monday."""
    tz = ZoneInfo(zone)
    today = day or (now or state.now()).astimezone(tz).date()
    monday = today - dt.timedelta(days=today.weekday())
    start = dt.datetime.combine(monday, dt.time(0), tz)
    return start, start + dt.timedelta(days=7)


def build_weekly(session: Session, mapping: MappingFile, day: dt.date | None = None,
                 now: dt.datetime | None = None) -> list[WeeklyReview]:
    start, end = week_of(day, mapping.business_hours.timezone, now)
    return [_review(session, mapping, rule, start, end) for rule in mapping.sla]


def _review(session: Session, mapping: MappingFile, rule: SlaRule, start: dt.datetime,
            end: dt.datetime) -> WeeklyReview:
    smap = mapping.stage_maps.get(rule.stage_map)
    pair = next((p for p in mapping.objects if p.name == rule.pair), None)
    where = sla_position(smap, rule.stage) if smap is not None else None
    if smap is None or pair is None or where is None:
        return WeeklyReview(rule.name, start, end, [], {}, [], False)
    arrivals: dict[str, StageVisit] = {}
    for visit in session.scalars(select(StageVisit).where(
            StageVisit.system == "hubspot", StageVisit.object == pair.hubspot,
            StageVisit.stage_map == rule.stage_map, StageVisit.position == where,
            StageVisit.entered_at >= start, StageVisit.entered_at < end)
            .order_by(StageVisit.entered_at)):
        arrivals.setdefault(visit.record_id, visit)
    ids = list(arrivals)
    later: dict[str, list[StageVisit]] = defaultdict(list)
    for chunk in _chunks(ids):
        for visit in session.scalars(select(StageVisit).where(
                StageVisit.system == "hubspot", StageVisit.stage_map == rule.stage_map,
                StageVisit.record_id.in_(chunk))):
            later[visit.record_id].append(visit)
    emails = _emails(session, ids)
    cold = _cold(session, rule)
    owners = _owner_names(session)
    deals, mapped = _deals_of(session, mapping, ids)
    mqls: list[Mql] = []
    for hs_id, visit in arrivals.items():
        arrived = state._aware(visit.entered_at)
        since = [v for v in later[hs_id] if state._aware(v.entered_at) >= arrived]
        furthest = max(since, key=lambda v: (v.position if v.position is not None else -1,
                                             state._aware(v.entered_at)))
        value = furthest.stage or ""
        outcome = OUTCOMES.get(value, "MQL")
        found = deals.get(hs_id, [])
        if any(d.outcome == "won" for d in found):
            outcome = "won"
        elif found and all(d.outcome == "lost" for d in found) and outcome != "won":
            outcome = "lost"
        elif found and outcome in ("MQL", "SQL"):
            outcome = "opportunity"
        owner = owners.get(visit.owner or "", visit.owner or "(no owner)")
        mqls.append(Mql(hs_id, emails.get(hs_id), owner, arrived, value, outcome,
                        hs_id in cold, found))
    counts = {name: sum(1 for m in mqls if m.outcome == name) for name in OUTCOME_ORDER}
    per_owner: dict[str, list[Mql]] = defaultdict(list)
    for mql in mqls:
        per_owner[mql.owner].append(mql)
    table = sorted((OwnerSla(owner, len(group), sum(m.went_cold for m in group))
                    for owner, group in per_owner.items()),
                   key=lambda o: (-(o.cold), o.owner))
    return WeeklyReview(rule.name, start, end, mqls, counts, table, mapped)


def _chunks(ids: list[str], size: int = 500) -> list[list[str]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]


def _emails(session: Session, hs_ids: list[str]) -> dict[str, str]:
    """A contact's email, as its link's match key (trimmed, lower-cased) holds it."""
    found: dict[str, str] = {}
    for chunk in _chunks(hs_ids):
        for hs_id, key in session.execute(select(Link.hs_id, Link.match_key).where(
                Link.hs_id.in_(chunk), Link.match_key.is_not(None))):
            if key and "@" in key:
                found.setdefault(hs_id, key)
    return found


def _cold(session: Session, rule: SlaRule) -> set[str]:
    """HubSpot ids of the rule's leads that ever went cold."""
    out: set[str] = set()
    for gap in session.scalars(select(Gap).where(Gap.kind == COLD, Gap.pair == rule.pair)):
        detail: dict[str, Any] = gap.detail or {}
        if detail.get("rule") == rule.name and detail.get("hubspot_id"):
            out.add(str(detail["hubspot_id"]))
    return out


def _owner_names(session: Session) -> dict[str, str]:
    """Owner id (Salesforce user or HubSpot owner) -> a name, from the people the agent
    cached (no API call)."""
    names: dict[str, str] = {}
    for body in session.scalars(select(SchemaCacheEntry.body).where(
            SchemaCacheEntry.kind == "people")):
        for person in (body or {}).get("value") or []:
            if isinstance(person, dict) and person.get("id"):
                names[str(person["id"])] = str(person.get("name") or person.get("email")
                                               or person["id"])
    return names


def _deals_of(session: Session, mapping: MappingFile, hs_ids: list[str]
              ) -> tuple[dict[str, list[Deal]], bool]:
    """The deals of each HubSpot contact, through the associations from a deal pair to a
    pair on HubSpot contacts, and whether any deal pair syncs the loss reason."""
    wanted = set(hs_ids)
    deal_pairs = {p.name: p for p in mapping.objects if p.hubspot == "deals"}
    contact_pairs = {p.name for p in mapping.objects if p.hubspot == "contacts"}
    names = [a.name for a in mapping.associations
             if a.from_pair in deal_pairs and a.to_pair in contact_pairs]
    reason_keys = {f"{f.salesforce}>{f.hubspot}" for p in deal_pairs.values()
                   for f in p.fields if f.hubspot == LOSS_REASON}
    out: dict[str, list[Deal]] = defaultdict(list)
    if not names or not wanted:
        return out, bool(reason_keys)
    sf_to_hs = dict(session.execute(select(Link.sf_id, Link.hs_id).where(
        Link.pair.in_(contact_pairs))).all())
    rows = session.execute(select(Link.sf_id, SyncedValues.fields).join(
        SyncedValues, SyncedValues.link_id == Link.id).where(Link.pair.in_(deal_pairs)))
    for sf_id, fields in rows:
        contacts: set[str] = set()
        for name in names:
            sf_value, hs_value = (fields.get(f"@{name}") or [None, None])[:2]
            if sf_value and str(sf_value) in sf_to_hs:
                contacts.add(str(sf_to_hs[str(sf_value)]))
            for hs in hs_value if isinstance(hs_value, list) else [hs_value]:
                if hs:
                    contacts.add(str(hs))
        contacts &= wanted
        if not contacts:
            continue
        stage = _pick(fields, "StageName>")
        outcome = ("won" if stage and "won" in stage.lower() else
                   "lost" if stage and "lost" in stage.lower() else "open")
        reason = next((_value(fields[k]) for k in reason_keys if k in fields), None)
        deal = Deal(sf_id, _pick(fields, "Name>"), stage, outcome,
                    reason if outcome == "lost" else None)
        for hs_id in contacts:
            out[hs_id].append(deal)
    return out, bool(reason_keys)


def _pick(fields: dict[str, Any], prefix: str) -> str | None:
    for key, pair in fields.items():
        if key.startswith(prefix) and isinstance(pair, list) and pair:
            return _value(pair)
    return None


def _value(pair: Any) -> str | None:
    """The synced value of a field pair, Salesforce's side first."""
    for side in pair if isinstance(pair, list) else [pair]:
        if side not in (None, "", []):
            return str(side)
    return None
