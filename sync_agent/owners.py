"""Record owners: a Salesforce user and a HubSpot owner are one person when their emails match
(trimmed, case-insensitive), as in HubSpot's own connector.

The directory turns that into a value map the field planner uses like any picklist, so owner
sync follows the mapping's rule (``owners.sync``) and an owner without a counterpart is
reported in the plan's warnings, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.contract import Connector
from connectors.records import Person
from mapping.model import FieldRule, MappingFile, ObjectPair, ValueMap


def _key(email: str | None) -> str | None:
    return email.strip().lower() if email and email.strip() else None


@dataclass(frozen=True)
class OwnerDirectory:
    users: dict[str, Person]  # Salesforce user id -> user
    owners: dict[str, Person]  # HubSpot owner id -> owner

    @classmethod
    def load(cls, salesforce: Connector, hubspot: Connector) -> OwnerDirectory:
        return cls({p.id: p for p in salesforce.people()}, {p.id: p for p in hubspot.people()})

    def user_by_email(self, email: str) -> Person | None:
        wanted = _key(email)
        return next((u for u in self.users.values() if u.active and _key(u.email) == wanted),
                    None)

    def owner_by_email(self, email: str) -> Person | None:
        wanted = _key(email)
        return next((o for o in self.owners.values() if o.active and _key(o.email) == wanted),
                    None)

    def value_map(self) -> ValueMap:
        """User id -> owner id for every email both sides know. An inactive user still maps
        (records keep their owner's history); where two users share an email the active one
        is the one HubSpot's owner maps back to."""
        owner_of = {_key(o.email): o.id for o in self.owners.values() if _key(o.email)}
        values: dict[str, str] = {}
        reverse: dict[str, str] = {}
        for user in sorted(self.users.values(), key=lambda u: (not u.active, u.id)):
            owner = owner_of.get(_key(user.email))
            if owner is None:
                continue
            values[user.id] = owner
            reverse.setdefault(owner, user.id)
        return ValueMap(kind="value_map", values=values, reverse=reverse)

    def name(self, system: str, person_id: str | None) -> str:
        """Who a user or owner id is, for reports: their email, else the id."""
        if not person_id:
            return "(no owner)"
        people = self.users if system == "salesforce" else self.owners
        person = people.get(person_id)
        return (person.email or person.name) if person else person_id


def owner_rule(mapping: MappingFile, pair: ObjectPair, directory: OwnerDirectory,
               salesforce: Connector, hubspot: Connector) -> FieldRule | None:
    """The owner field pair for ``pair``, when both of its objects have an owner field and the
    pair does not map owners itself."""
    owners = mapping.owners
    if any(f.salesforce == owners.salesforce_field or f.hubspot == owners.hubspot_property
           for f in pair.fields):
        return None
    if (owners.salesforce_field not in salesforce.describe(pair.salesforce).fields
            or owners.hubspot_property not in hubspot.describe(pair.hubspot).fields):
        return None
    return FieldRule(salesforce=owners.salesforce_field, hubspot=owners.hubspot_property,
                     rule=owners.sync, transforms=[directory.value_map()])


# Salesforce's key prefix of Group ids: a record owned by one is owned by a queue.
QUEUE_PREFIX = "00G"


def is_queue(owner_id: str | None) -> bool:
    return bool(owner_id) and str(owner_id).startswith(QUEUE_PREFIX)


def deal_record_types(mapping: MappingFile, pair: ObjectPair, salesforce: Connector
                      ) -> dict[str, str]:
    """Record type id -> developer name of the pair ``deal_pipelines`` routes (else none)."""
    routing = mapping.deal_pipelines
    if routing is None or routing.pair != pair.name:
        return {}
    return dict(salesforce.describe(pair.salesforce).record_types)

