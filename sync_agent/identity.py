"""Who is who across the two systems: the normalised match key, and what to do with a record
that has no link yet (link it, create its counterpart, or report a gap — never guess)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mapping.model import CreateRule


def match_key(value: Any) -> str | None:
    """Emails compare trimmed and lower-cased; blanks match nothing."""
    if not isinstance(value, str):
        return None
    cleaned = value.strip().lower()
    return cleaned or None


def passes(rule: CreateRule, values: Mapping[str, Any]) -> bool:
    """A create rule's inclusion filter: every listed field holds one of its allowed values."""
    if not rule.enabled:
        return False
    return all(str(values.get(name)) in allowed for name, allowed in rule.only_when.items())


def group_by_key(records: Iterable[Any], field: str) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = {}
    for record in records:
        key = match_key(record.values.get(field))
        if key is not None:
            groups.setdefault(key, []).append(record)
    return groups
