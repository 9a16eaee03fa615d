"""Salesforce record ids: 15 case-sensitive characters plus a 3-character case-safe suffix."""

from __future__ import annotations

import re

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
ID_PATTERN = re.compile(r"^[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?$")


def checksum_suffix(id15: str) -> str:
    """The suffix Salesforce appends to make an id case-insensitively unique."""
    out = []
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5:chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(_SUFFIX[bits])
    return "".join(out)


def make_id(prefix: str, number: int, pod: str = "5g") -> str:
    """An 18-character id for the ``number``-th record of an object with ``prefix``."""
    digits = []
    value = number
    for _ in range(10 - len(pod)):
        digits.append(_BASE62[value % 62])
        value //= 62
    id15 = prefix + pod + "00" + "".join(reversed(digits))
    id15 = id15[:15]
    return id15 + checksum_suffix(id15)


def to18(value: str) -> str | None:
    """Normalise a 15- or 18-character id to 18 characters; None if it is not an id."""
    if not ID_PATTERN.match(value):
        return None
    if len(value) == 18:
        return value[:15] + checksum_suffix(value[:15]) if value[15:].upper() == checksum_suffix(
            value[:15]) else None
    return value + checksum_suffix(value)
