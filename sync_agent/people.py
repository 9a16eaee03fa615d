"""Who an owner id is, from the state store alone: the Salesforce users and HubSpot owners the
connectors last listed are kept in the schema cache (``schema_cache``), so a gap list or a
record's story names people without calling either system. An id the lists do not know
(a queue, a user made since) stays an id."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.records import Person
from connectors.schema_cache import PEOPLE, load_people
from sync_agent.tables import SchemaCacheEntry

QUEUE_PREFIX = "00G"  # Salesforce's key prefix of Group ids: a queue owns the record


@dataclass(frozen=True)
class People:
    by_system: dict[str, dict[str, Person]] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session) -> People:
        found: dict[str, dict[str, Person]] = {}
        for system, body in session.execute(select(
                SchemaCacheEntry.system, SchemaCacheEntry.body).where(
                SchemaCacheEntry.kind == PEOPLE)):
            for person in load_people(body) or []:
                found.setdefault(system, {})[person.id] = person
        return cls(found)

    def person(self, person_id: str | None, system: str | None = None) -> Person | None:
        """The user or owner with this id (on ``system``, else on either side)."""
        if not person_id:
            return None
        systems = [system] if system else list(self.by_system)
        for name in systems:
            found = self.by_system.get(name, {}).get(person_id)
            if found is not None:
                return found
        return None

    def label(self, person_id: str | None, system: str | None = None) -> str:
        """"Name <email>", else the id (saying a queue is one), else ``(no owner)``."""
        if not person_id:
            return "(no owner)"
        found = self.person(person_id, system)
        if found is None:
            return f"{person_id} (a queue)" if person_id.startswith(QUEUE_PREFIX) else person_id
        return f"{found.name} <{found.email}>" if found.email else found.name

    def matching(self, text: str) -> set[str]:
        """Ids of everyone whose id, name or email is ``text`` (case-insensitive), on either
        side: a Salesforce user and the HubSpot owner with the same email are one person."""
        wanted = text.strip().lower()
        ids = {wanted}
        emails: set[str] = set()
        for people in self.by_system.values():
            for person in people.values():
                if wanted in (person.id.lower(), person.name.lower(),
                              (person.email or "").lower()):
                    ids.add(person.id.lower())
                    if person.email:
                        emails.add(person.email.lower())
        for people in self.by_system.values():  # the same person on the other side
            for person in people.values():
                if person.email and person.email.lower() in emails:
                    ids.add(person.id.lower())
        return ids
