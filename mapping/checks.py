"""Offline and live validation in one run: every problem a mapping has, listed together.

The offline pass reports each part's own problems; the live pass checks the parts that parsed
(``mapping.lenient``) against both systems' schemas, so a typo in one key neither hides the
live problems of the rest nor adds false ones about the part it broke.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mapping.live import Describe, Labels, check_live
from mapping.loader import Located
from mapping.model import MappingFile
from mapping.problems import Problem
from mapping.validate import check_all


@dataclass
class Report:
    """Every problem found, the mapping when none is an error, and what was checked."""

    mapping: MappingFile | None
    problems: list[Problem]
    live: bool  # whether the live pass ran (not when the file's frame is broken)

    @property
    def errors(self) -> int:
        return sum(1 for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> int:
        return len(self.problems) - self.errors


def check_everything(located: Located, salesforce: Describe | None = None,
                     hubspot: Describe | None = None, labels: Labels | None = None,
                     refresh: Callable[[], None] | None = None) -> Report:
    """Offline problems, then (with both describes) live ones, sorted by line. ``refresh``
    makes the describes live again: when cached schemas find errors they are confirmed
    against fresh ones before anything is refused (a field added since the cache was filled
    is no error)."""
    checked = check_all(located)
    problems = list(checked.problems)
    model = checked.lenient
    live = model is not None and salesforce is not None and hubspot is not None
    if model is not None and salesforce is not None and hubspot is not None:
        found = check_live(model, checked.located, salesforce, hubspot, labels)
        if refresh is not None and any(p.severity == "error" for p in found):
            refresh()
            found = check_live(model, checked.located, salesforce, hubspot, labels)
        problems += found
    problems.sort(key=lambda p: (p.line, p.column))
    has_error = any(p.severity == "error" for p in problems)
    return Report(checked.strict if not has_error else None, problems, live)
