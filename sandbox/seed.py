"""Deterministic, realistic and deliberately messy data for both emulators.

The same seed always yields the same records. The mess is what real orgs have and what the
product must cope with: leads sharing one email, emails with odd casing and stray whitespace,
blank emails and phones, stages that disagree between the two systems, people who exist in one
system only, and owners who match by email (one with different casing, one HubSpot-only).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from sandbox.hubspot.portal import Portal
from sandbox.hubspot.schema import DEAL_STAGES, RENEWALS_PIPELINE
from sandbox.salesforce.org import Org
from sandbox.salesforce.schema import (
    INDUSTRY,
    OBJECTS,
    OPPORTUNITY_RECORD_TYPES,
    OPPORTUNITY_STAGE,
    STAGE_PROBABILITY,
    record_type_id,
)
from sandbox.timeutil import hs_format

FIRST = ["Ada", "Bertha", "Carlos", "Dmitri", "Elena", "Farah", "Gustavo", "Hana", "Ivan",
         "Jia", "Kofi", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven",
         "Tomás", "Uma", "Viktor", "Wen", "Ximena", "Yusuf", "Zoë", "Patricia", "Johnnie"]
LAST = ["Abara", "Becker", "Chen", "Dubois", "Eriksen", "Fischer", "García", "Haddad", "Ito",
        "Jansen", "Kowalski", "López", "Müller", "Nakamura", "O'Brien", "Petrov", "Quispe",
        "Rossi", "Schmidt", "Tanaka", "Usman", "Varga", "Weber", "Xu", "Yilmaz", "Zhang"]
COMPANY_WORDS = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Tyrell", "Cyberdyne",
                 "Soylent", "Hooli", "Vandelay", "Wonka", "Gringotts", "Oscorp", "Massive"]
COMPANY_SUFFIX = ["Inc", "GmbH", "Ltd", "Labs", "Group", "Systems", "Partners", "& Co"]
# Cities for the company names of a large seed (see ``_Maker``).
CITIES = ["Austin", "Berlin", "Cairo", "Denver", "Essen", "Fresno", "Geneva", "Hanoi", "Izmir",
          "Jakarta", "Kyoto", "Lima", "Madrid", "Nairobi", "Oslo", "Porto", "Quito", "Riga",
          "Seoul", "Turin", "Utrecht", "Vienna", "Warsaw", "Xiamen", "York", "Zagreb"]
SPREAD_FROM = 5000  # leads: from this size on, names and companies are drawn from wider pools
DOMAINS = ["example.com", "example.org", "example.net", "mail.test", "corp.test"]
LEAD_STATUS_WEIGHTS = [("New", 30), ("Working", 25), ("Nurturing", 20), ("Unqualified", 10),
                       ("Qualified", 0)]
# The stage HubSpot would usually show for a Salesforce lead status (drift is added on top).
STATUS_TO_LIFECYCLE = {"New": "lead", "Working": "marketingqualifiedlead",
                       "Nurturing": "lead", "Unqualified": "other"}
STATUS_TO_HS_LEAD = {"New": "NEW", "Working": "IN_PROGRESS", "Nurturing": "OPEN",
                     "Unqualified": "UNQUALIFIED"}
SF_TO_HS_STAGE = {
    "Prospecting": "appointmentscheduled", "Qualification": "qualifiedtobuy",
    "Needs Analysis": "qualifiedtobuy", "Value Proposition": "presentationscheduled",
    "Id. Decision Makers": "decisionmakerboughtin", "Perception Analysis": "decisionmakerboughtin",
    "Proposal/Price Quote": "contractsent", "Negotiation/Review": "contractsent",
    "Closed Won": "closedwon", "Closed Lost": "closedlost",
}
# Renewal deals live in the portal's second pipeline, whose stage ids are numbers.
RENEWAL_STAGE = {"appointmentscheduled": "1033186541", "qualifiedtobuy": "1033186541",
                 "presentationscheduled": "1033186541", "decisionmakerboughtin": "1033186542",
                 "contractsent": "1033186542", "closedwon": "1033186543",
                 "closedlost": "1033186544"}
# Why a Closed Lost opportunity was lost (the org's custom Loss_Reason__c; HubSpot's
# closed_lost_reason on its deal). Some lost ones have none: reps skip the field.
LOSS_REASONS = ("Lost to a competitor on price", "No budget this year",
                "Building it in-house instead", "Went quiet after the demo",
                "Timing: revisit next quarter")
LOST_WITH_REASON = 0.8  # share of Closed Lost opportunities whose rep gave a reason
HS_ONLY_REASON = 0.5  # of lost deals whose opportunity has none: the reason typed in HubSpot
LOST_DEAL_STAGES = frozenset({"closedlost", RENEWALS_PIPELINE.stages[-1][0]})  # Churned too
# Queues that own leads (a Group of Type Queue supporting Lead): leads routed to a team.
QUEUES = (("Inbound_Leads", "Inbound Leads"), ("EMEA_Leads", "EMEA Leads"))
QUEUED_LEAD_SHARE = 20  # one lead in this many is owned by a queue


@dataclass(frozen=True)
class SeedSizes:
    leads: int = 300
    contacts: int = 150
    accounts: int = 60
    opportunities: int = 80
    hubspot_only_contacts: int = 40
    users: int = 8

    @property
    def total(self) -> int:
        return (self.leads + self.contacts + self.accounts + self.opportunities
                + self.hubspot_only_contacts + self.users)


def scaled(total: int) -> SeedSizes:
    """Sizes in the default proportions adding up to about ``total`` records."""
    base = SeedSizes()
    factor = total / base.total
    return SeedSizes(leads=round(base.leads * factor), contacts=round(base.contacts * factor),
                     accounts=max(1, round(base.accounts * factor)),
                     opportunities=round(base.opportunities * factor),
                     hubspot_only_contacts=round(base.hubspot_only_contacts * factor),
                     users=base.users)


class _Maker:
    """Draws the seed's values. A large seed (``spread``) draws double-barrelled last names
    and companies with a city and a branch number: the small pools hold 728 names and 120
    companies, so at 200k leads nearly every new record would be a twin of another under the
    standard duplicate rules (first + last name + company), which no real org looks like."""

    def __init__(self, rng: random.Random, now: dt.datetime, spread: bool = False) -> None:
        self.rng = rng
        self.now = now
        self.spread = spread

    def person(self) -> tuple[str, str]:
        first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
        if self.spread:
            last = f"{last}-{self.rng.choice(LAST)}"
        return first, last

    def company(self) -> str:
        word, suffix = self.rng.choice(COMPANY_WORDS), self.rng.choice(COMPANY_SUFFIX)
        if self.spread:
            return f"{word} {self.rng.choice(CITIES)} {self.rng.randint(1, 99)} {suffix}"
        return f"{word} {suffix}"

    def email(self, first: str, last: str, n: int) -> str:
        local = f"{first}.{last}".lower().replace("'", "").replace(" ", "")
        local = local.encode("ascii", "ignore").decode() or "person"
        return f"{local}{n}@{self.rng.choice(DOMAINS)}"

    def messy(self, email: str) -> str:
        roll = self.rng.random()
        if roll < 0.04:
            return f"  {email.upper()} "
        if roll < 0.08:
            local, _, domain = email.partition("@")
            return f"{local.capitalize()}@{domain.upper()}"
        return email

    def phone(self) -> str | None:
        if self.rng.random() < 0.25:
            return None
        return f"+1 {self.rng.randint(200, 999)}-{self.rng.randint(200, 999)}-" \
               f"{self.rng.randint(1000, 9999)}"

    def moment(self, days_back: int = 90) -> dt.datetime:
        delta = dt.timedelta(seconds=self.rng.randint(3600, days_back * 86400))
        return (self.now - delta).replace(microsecond=0)

    def weighted(self, pairs: list[tuple[str, int]]) -> str:
        values = [p[0] for p in pairs]
        weights = [p[1] for p in pairs]
        return self.rng.choices(values, weights)[0]


def _sf_insert(org: Org, sobject: str, values: dict[str, Any], stamp: dt.datetime,
               user_id: str) -> str:
    rec: dict[str, Any] = dict.fromkeys(OBJECTS[sobject].fields)
    rec.update({"IsDeleted": False, "CreatedDate": stamp, "LastModifiedDate": stamp,
                "SystemModstamp": stamp, "CreatedById": user_id, "LastModifiedById": user_id})
    rec.update(values)
    for fld in OBJECTS[sobject].fields.values():
        if fld.type == "boolean" and rec.get(fld.name) is None:
            rec[fld.name] = False
    org._derive(sobject, rec)
    return org.commit_create(sobject, rec)


def seed(org: Org, portal: Portal, seed_value: int, sizes: SeedSizes) -> dict[str, int]:
    """Fill both emulators; returns the counts created per object."""
    rng = random.Random(seed_value)
    # Draws added later (industries, queues) come from their own stream, so the records the
    # main stream makes stay as they were for a given seed.
    extra = random.Random(f"{seed_value}:schemas")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    make = _Maker(rng, now, spread=sizes.leads >= SPREAD_FROM)
    org_start = now - dt.timedelta(days=400)
    org.created_at = org_start

    users = []
    integration = _sf_insert(org, "User", {
        "Username": "integration@stagesync.sandbox", "Email": "integration@stagesync.sandbox",
        "FirstName": "Integration", "LastName": "User", "Alias": "integ", "IsActive": True,
    }, org_start, "")
    org.records["User"][integration]["CreatedById"] = integration
    org.records["User"][integration]["LastModifiedById"] = integration
    org.integration_user_id = integration
    for n in range(sizes.users):
        first, last = make.person()
        user_email = f"{first.lower()}.{n}@sales.example.com".encode("ascii", "ignore").decode()
        uid = _sf_insert(org, "User", {
            "Username": user_email, "Email": user_email, "FirstName": first, "LastName": last,
            "Alias": (first[:4] + str(n)).lower(), "IsActive": n != sizes.users - 1,
        }, org_start, integration)
        users.append((uid, user_email, first, last))

    owners: list[dict[str, Any]] = []
    for n, (_uid, email, first, last) in enumerate(users[: max(1, sizes.users - 2)]):
        owner_email = email.upper() if n == 1 else email  # one owner's email differs in case
        owners.append({
            "id": str(31000000 + n), "email": owner_email, "type": "PERSON",
            "firstName": first, "lastName": last, "userId": 9100000 + n,
            "userIdIncludingInactive": 9100000 + n, "createdAt": hs_format(org_start),
            "updatedAt": hs_format(org_start), "archived": False,
        })
    owners.append({"id": "31999999", "email": "marketing.only@example.com", "type": "PERSON",
                   "firstName": "Marketing", "lastName": "Only", "userId": 9199999,
                   "userIdIncludingInactive": 9199999, "createdAt": hs_format(org_start),
                   "updatedAt": hs_format(org_start), "archived": False})
    portal.owners = owners
    portal.deal_pipelines.append(RENEWALS_PIPELINE)
    record_types = {}
    for index, (developer_name, label) in enumerate(OPPORTUNITY_RECORD_TYPES, start=1):
        rid = _sf_insert(org, "RecordType", {"Name": label, "DeveloperName": developer_name,
                                             "SobjectType": "Opportunity", "IsActive": True},
                         org_start, integration)
        assert rid == record_type_id(index), "record types must be the org's first"
        record_types[developer_name] = rid
    queues = []
    for developer_name, label in QUEUES:
        qid = _sf_insert(org, "Group", {"Name": label, "DeveloperName": developer_name,
                                        "Type": "Queue"}, org_start, integration)
        org.queue_objects[qid] = frozenset({"Lead"})
        queues.append(qid)
    owner_by_user: dict[str, str] = {users[i][0]: str(owners[i]["id"])
                                     for i in range(len(owners) - 1)}

    counts = {"User": len(users) + 1}
    accounts = []
    for _ in range(sizes.accounts):
        stamp = make.moment()
        owner = rng.choice(users)[0]
        name = make.company()
        rng.randrange(12)  # the draw of the industry before it had its own stream
        account_values: dict[str, Any] = {
            "Name": name, "Website": f"https://www.{_slug(name)}.example.com/",
            "Industry": extra.choice(INDUSTRY.values),
            "OwnerId": owner, "NumberOfEmployees": rng.randint(5, 5000)}
        aid = _sf_insert(org, "Account", account_values, stamp, integration)
        accounts.append((aid, name, owner))
    counts["Account"] = len(accounts)

    hs_contacts = 0
    email_number = 0
    previous_emails: list[str] = []
    lead_ids: list[str] = []
    for _ in range(sizes.leads):
        first, last = make.person()
        email_number += 1
        lead_email: str | None = make.email(first, last, email_number)
        if previous_emails and rng.random() < 0.03:
            lead_email = rng.choice(previous_emails)  # two leads sharing one email
        elif rng.random() < 0.05:
            lead_email = None
        status = make.weighted(LEAD_STATUS_WEIGHTS)
        owner = rng.choice(users)[0]
        stamp = make.moment()
        lead: dict[str, Any] = {
            "FirstName": first if rng.random() > 0.05 else None, "LastName": last,
            "Company": make.company(), "Email": make.messy(lead_email) if lead_email else None,
            "Phone": make.phone(), "Status": status, "OwnerId": owner,
            "LeadSource": rng.choice(["Web", "Partner Referral", "Trade Show", "Other", None]),
            "Title": rng.choice(["CTO", "VP Marketing", "Head of Ops", None])}
        lead_ids.append(_sf_insert(org, "Lead", lead, stamp, integration))
        if lead_email:
            previous_emails.append(lead_email)
        if lead_email and rng.random() < 0.6:
            lifecycle = STATUS_TO_LIFECYCLE[status]
            if rng.random() < 0.15:  # drift: marketing moved on, sales did not
                lifecycle = rng.choice(["marketingqualifiedlead", "salesqualifiedlead",
                                        "subscriber"])
            if portal.email_owner(lead_email) is None:
                _hs_contact(portal, rng, make, first, last, lead_email, lifecycle,
                            STATUS_TO_HS_LEAD[status], owner_by_user.get(owner))
                hs_contacts += 1
    counts["Lead"] = sizes.leads
    # Leads an assignment rule routed to a queue after their contact reached HubSpot.
    for lead_id in extra.sample(lead_ids, k=len(lead_ids) // QUEUED_LEAD_SHARE):
        org.records["Lead"][lead_id]["OwnerId"] = extra.choice(queues)
    counts["Group"] = len(queues)

    contacts = []
    for _ in range(sizes.contacts):
        first, last = make.person()
        email_number += 1
        email = make.email(first, last, email_number)
        account = rng.choice(accounts) if accounts else None
        stamp = make.moment()
        values: dict[str, Any] = {"FirstName": first, "LastName": last,
                                  "Email": make.messy(email),
                  "Phone": make.phone(), "AccountId": account[0] if account else None,
                  "OwnerId": account[2] if account else rng.choice(users)[0]}
        cid = _sf_insert(org, "Contact", values, stamp, integration)
        contacts.append((cid, account))
        if rng.random() < 0.7 and portal.email_owner(email) is None:
            _hs_contact(portal, rng, make, first, last, email,
                        rng.choice(["salesqualifiedlead", "opportunity", "customer"]), "CONNECTED",
                        owner_by_user.get(str(values["OwnerId"])))
            hs_contacts += 1
    counts["Contact"] = len(contacts)

    for n in range(sizes.hubspot_only_contacts):
        first, last = make.person()
        email_number += 1
        email = make.email(first, last, email_number)
        _hs_contact(portal, rng, make, first, last, email,
                    rng.choice(["subscriber", "lead", "marketingqualifiedlead"]),
                    rng.choice(["NEW", "OPEN", "ATTEMPTED_TO_CONTACT"]),
                    str(rng.choice(owners)["id"]) if n % 3 else None)
        hs_contacts += 1
    counts["hubspot.contacts"] = hs_contacts

    companies = 0
    for _aid, name, owner in accounts:
        if rng.random() < 0.6:
            portal.create("companies", {"name": name,
                                        "domain": f"{_slug(name)}.example.com",
                                        "hubspot_owner_id": owner_by_user.get(owner) or ""},
                          make.moment())
            companies += 1
    counts["hubspot.companies"] = companies

    deals = 0
    stages = list(OPPORTUNITY_STAGE.values)
    for n in range(sizes.opportunities):
        account = rng.choice(accounts) if accounts else None
        stage = rng.choice(stages)
        stamp = make.moment()
        close = (now + dt.timedelta(days=rng.randint(-60, 120))).date()
        kind = rng.choice(["Renewal", "Expansion", "New"])
        name = f"{account[1] if account else 'Direct'} - {kind} {n}"
        amount = float(rng.randint(5, 500) * 100)
        # drawn from the extra stream, so the records the main stream makes stay as they were
        reason = (extra.choice(LOSS_REASONS) if stage == "Closed Lost"
                  and extra.random() < LOST_WITH_REASON else None)
        _sf_insert(org, "Opportunity", {
            "Name": name, "AccountId": account[0] if account else None, "StageName": stage,
            "CloseDate": close, "Amount": amount, "Probability": STAGE_PROBABILITY[stage],
            "OwnerId": account[2] if account else rng.choice(users)[0],
            "RecordTypeId": record_types["Renewal" if kind == "Renewal" else "New_Business"],
            "Loss_Reason__c": reason,
        }, stamp, integration)
        if rng.random() < 0.5:
            hs_stage = SF_TO_HS_STAGE[stage]
            if rng.random() < 0.1:
                hs_stage = rng.choice([s[0] for s in DEAL_STAGES])
            pipeline = "default"
            if kind == "Renewal":
                hs_stage, pipeline = RENEWAL_STAGE[hs_stage], RENEWALS_PIPELINE.id
            deal = {"dealname": name, "amount": str(int(amount)), "dealstage": hs_stage,
                    "pipeline": pipeline, "closedate": f"{close.isoformat()}T00:00:00.000Z"}
            if stage == "Closed Lost" and hs_stage in LOST_DEAL_STAGES:
                hs_reason = reason or (extra.choice(LOSS_REASONS)
                                       if extra.random() < HS_ONLY_REASON else None)
                if hs_reason:
                    deal["closed_lost_reason"] = hs_reason
            portal.create("deals", deal, stamp)
            deals += 1
    counts["Opportunity"] = sizes.opportunities
    counts["hubspot.deals"] = deals
    return counts


def _hs_contact(portal: Portal, rng: random.Random, make: _Maker, first: str, last: str,
                email: str, lifecycle: str, lead_status: str, owner: str | None) -> None:
    values = {"email": email.strip().lower(), "firstname": first, "lastname": last,
              "lifecyclestage": lifecycle, "hs_lead_status": lead_status,
              "hubspotscore": str(rng.randint(0, 100)), "phone": make.phone() or ""}
    if owner:
        values["hubspot_owner_id"] = owner
    portal.create("contacts", values, make.moment())


def _slug(name: str) -> str:
    """A company's name as the host of its website (``Globex GmbH``: ``globex-gmbh``)."""
    return "-".join("".join(c for c in word.lower() if c.isalnum()) for word in name.split())
