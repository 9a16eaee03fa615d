"""Who is who across the two systems: the normalised match key, and what to do with a record
that has no link yet (link it, create its counterpart, or report a gap — never guess)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mapping.model import CreateRule, MatchKey
from mapping.rules import PairPlanner
from mapping.transforms import Unmapped, blank

PART = "\x1f"  # between the parts of a composite key (never in a value a person types)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


def match_key(value: Any) -> str | None:
    """Emails compare trimmed and lower-cased; blanks match nothing."""
    if not isinstance(value, str):
        return None
    cleaned = value.strip().lower()
    return cleaned or None


def domain_key(value: Any) -> str | None:
    """A website or domain as a bare host, the way HubSpot's connector pairs an Account's
    Website with a company's domain: ``https://www.Acme.com/about`` is ``acme.com``."""
    if not isinstance(value, str):
        return None
    host = _SCHEME.sub("", value.strip().lower())
    host = host.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    host = host.rsplit("@", 1)[-1].split(":", 1)[0].rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    return host or None


NORMALIZERS: dict[str, Callable[[Any], str | None]] = {
    "email": match_key, "domain": domain_key, "text": match_key}


def _canonical(value: Any) -> str | None:
    """A carried value as key text: numbers by value (``1200`` is ``1200.0``), text folded."""
    if blank(value) or isinstance(value, Unmapped):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(float(value))
    text = str(value).strip()
    try:
        return repr(float(text))
    except ValueError:
        return text.lower() or None


@dataclass(frozen=True)
class KeyOf:
    """A pair's match key as each side computes it. The first field pair is normalised as
    the mapping says; each ``also`` pair is compared as its field rule carries the
    Salesforce value across (so a date is a date on both sides, an amount a number)."""

    key: MatchKey
    first: Callable[[Any], str | None]
    also: tuple[tuple[str, str, Callable[[Any], Any], Callable[[Any], Any]], ...]

    @property
    def lookup_by_email(self) -> bool:
        return self.key.normalize == "email" and not self.also

    def salesforce(self, values: Mapping[str, Any]) -> str | None:
        parts = [self.first(values.get(self.key.salesforce))]
        parts += [_canonical(to_hs(values.get(sf))) for sf, _, to_hs, _ in self.also]
        return None if None in parts else PART.join(str(p) for p in parts)

    def hubspot(self, values: Mapping[str, Any]) -> str | None:
        parts = [self.first(values.get(self.key.hubspot))]
        for _, hs, to_hs, to_sf in self.also:
            carried = to_sf(values.get(hs))  # there and back: HubSpot's form of the value
            parts.append(_canonical(to_hs(carried)) if not isinstance(carried, Unmapped)
                         else None)
        return None if None in parts else PART.join(str(p) for p in parts)

    def of(self, side: str, values: Mapping[str, Any]) -> str | None:
        return self.salesforce(values) if side == "salesforce" else self.hubspot(values)

    def field(self, side: str) -> str:
        """The key's first field on ``side``: the one a lookup searches by."""
        return self.key.salesforce if side == "salesforce" else self.key.hubspot

    def fields(self, side: str) -> list[str]:
        return [self.field(side), *(sf if side == "salesforce" else hs
                                    for sf, hs, _, _ in self.also)]

    def shown(self, key: str | None) -> str | None:
        """A key as a person reads it in a gap: its parts joined by `` + ``."""
        return None if key is None else " + ".join(key.split(PART))


def key_of(key: MatchKey, planner: PairPlanner) -> KeyOf:
    """The pair's match key, its ``also`` parts carried by the pair's own field rules
    (a part without a field rule compares as text)."""
    also = []
    for part in key.also:
        rule = next((f for f in planner.fields if f.sf == part.salesforce
                     and f.hs == part.hubspot), None)
        also.append((part.salesforce, part.hubspot, rule.to_hs if rule else _same_value,
                     rule.to_sf if rule else _same_value))
    return KeyOf(key, NORMALIZERS[key.normalize], tuple(also))


def lookup_value(key: KeyOf, side: str, values: Mapping[str, Any]) -> str:
    """What the other side's records are looked up by: the key's first field as this side
    holds it, normalised (an email, a bare domain; text as it is, for an exact search)."""
    raw = values.get(key.field(side))
    if key.key.normalize == "text":
        return str(raw).strip() if raw is not None else ""
    return key.first(raw) or ""


def _same_value(value: Any) -> Any:
    return value


def passes(rule: CreateRule, values: Mapping[str, Any]) -> bool:
    """A create rule's inclusion filter: every listed field holds one of its allowed values."""
    if not rule.enabled:
        return False
    return all(str(values.get(name)) in allowed for name, allowed in rule.only_when.items())


def group_by_key(records: Iterable[Any], key: Callable[[Mapping[str, Any]], str | None]
                 ) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = {}
    for record in records:
        value = key(record.values)
        if value is not None:
            groups.setdefault(value, []).append(record)
    return groups
