"""Fault injection: make chosen endpoints fail at a rate, or a set number of times.

A spec is a list of rules separated by ``;`` or ``,``::

    ENDPOINT_GLOB=KIND@RATE        fail that share of matching requests (0..1)
    ENDPOINT_GLOB=KIND#COUNT       fail the next COUNT matching requests

``KIND`` is one of ``429``, ``500``, ``503``, ``reset`` (the TCP connection is reset),
``slow:SECONDS`` (the response is delayed, then served), ``expired`` (Salesforce answers
401 ``INVALID_SESSION_ID`` as for an expired session), or ``concurrent`` (Salesforce answers
403 ``REQUEST_LIMIT_EXCEEDED`` "ConcurrentPerOrgLongTxn Limit exceeded.", its concurrent
long-running request limit; HubSpot answers it as a 500). Endpoint names are the ones the request
log shows, e.g. ``hubspot.contacts.search`` or ``salesforce.query``; globs use ``*``.

Example: ``salesforce.query=expired#1;hubspot.*=429@0.05;*=slow:0.5@0.01``.
The random choices come from a seeded generator, so a run is repeatable.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import dataclass

KINDS = ("429", "500", "503", "reset", "slow", "expired", "concurrent")


class FaultSpecError(ValueError):
    """The fault spec could not be parsed; the message says which rule and why."""


@dataclass
class FaultRule:
    pattern: str
    kind: str
    rate: float | None = None
    remaining: int | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Fault:
    """The fault chosen for one request."""

    kind: str
    delay: float = 0.0


def parse_fault_spec(spec: str) -> list[FaultRule]:
    """Parse a spec (see the module docstring) into rules, refusing anything unclear."""
    rules: list[FaultRule] = []
    for raw in spec.replace(",", ";").split(";"):
        item = raw.strip()
        if not item:
            continue
        pattern, sep, action = item.partition("=")
        if not sep or not pattern.strip():
            raise FaultSpecError(f"fault rule {item!r}: expected ENDPOINT=KIND@RATE or KIND#COUNT")
        if "@" in action:
            kind_text, _, amount = action.partition("@")
        elif "#" in action:
            kind_text, _, amount = action.partition("#")
        else:
            raise FaultSpecError(f"fault rule {item!r}: add @RATE (0..1) or #COUNT")
        kind, _, arg = kind_text.strip().partition(":")
        if kind not in KINDS:
            raise FaultSpecError(f"fault rule {item!r}: kind {kind!r} is not one of {KINDS}")
        delay = 0.0
        if kind == "slow":
            try:
                delay = float(arg)
            except ValueError as exc:
                raise FaultSpecError(f"fault rule {item!r}: write slow:SECONDS") from exc
        rule = FaultRule(pattern=pattern.strip(), kind=kind, delay=delay)
        try:
            if "@" in action:
                rule.rate = float(amount)
                if not 0.0 <= rule.rate <= 1.0:
                    raise ValueError(amount)
            else:
                rule.remaining = int(amount)
        except ValueError as exc:
            raise FaultSpecError(f"fault rule {item!r}: {amount!r} is not a rate or count") from exc
        rules.append(rule)
    return rules


class FaultInjector:
    """Decides, per request, whether a fault applies. Thread-safe; seeded for repeatability."""

    def __init__(self, spec: str = "", seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)  # noqa: S311 - test traffic, not cryptography
        self._rules = parse_fault_spec(spec)

    def configure(self, spec: str) -> None:
        rules = parse_fault_spec(spec)
        with self._lock:
            self._rules = rules

    def pick(self, endpoint: str) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if not fnmatch.fnmatchcase(endpoint, rule.pattern):
                    continue
                if rule.remaining is not None:
                    if rule.remaining <= 0:
                        continue
                    rule.remaining -= 1
                    return Fault(rule.kind, rule.delay)
                if rule.rate is not None and self._random.random() < rule.rate:
                    return Fault(rule.kind, rule.delay)
        return None
