"""What the Mapping page shows: the file in use with its lines numbered, its validation
problems (each at its line, from ``mapping.validate``), and ``mapping diff`` against a proposed
file pasted or uploaded. Read-only: the file on disk is the source of truth, and a proposed
file is only read, never saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from connectors.files import NotReadable, read_regular_file
from mapping.diff import diff
from mapping.limits import MAX_BYTES
from mapping.model import MappingFile
from mapping.problems import Problem
from mapping.validate import check_file, check_text


@dataclass
class Line:
    number: int
    text: str
    problems: list[Problem] = field(default_factory=list)


@dataclass
class MappingView:
    path: Path
    lines: list[Line]
    problems: list[Problem]
    valid: bool
    unreadable: str | None = None  # why the file could not be shown
    stale: list[str] | None = None  # how the file differs from the mapping the agent runs


@dataclass
class DiffView:
    source: str  # "pasted text" or the uploaded file's name
    changes: list[str]  # mapping diff's lines; empty when the proposal has errors
    problems: list[Problem]  # the proposed file's problems
    current_valid: bool


def _numbered(text: str, problems: list[Problem]) -> list[Line]:
    lines = [Line(i, t) for i, t in enumerate(text.splitlines() or [""], start=1)]
    for problem in problems:
        if 1 <= problem.line <= len(lines):
            lines[problem.line - 1].problems.append(problem)
    return lines


def build_mapping(path: Path, in_force: MappingFile | None = None) -> MappingView:
    """``in_force``: the mapping a running agent loaded at its start, to tell whether the file
    on disk changed since (the agent reads it only when it starts)."""
    parsed, problems = check_file(path)
    try:
        raw = read_regular_file(path, MAX_BYTES)
        text = raw.decode("utf-8-sig", errors="replace")
    except NotReadable as exc:
        return MappingView(path, [], problems, False, f"{exc.reason} (fix: {exc.fix})")
    stale = None
    if in_force is not None and parsed is not None:
        stale = diff(in_force, parsed)
    return MappingView(path, _numbered(text, problems), problems, parsed is not None,
                       stale=stale)


def build_diff(path: Path, proposed: str, source: str) -> DiffView:
    """``mapping diff <path> <proposed>``: its lines, or the proposal's problems."""
    current, _ = check_file(path)
    new, problems = check_text(proposed, source)
    if current is None or new is None:
        return DiffView(source, [], problems, current is not None)
    return DiffView(source, diff(current, new) or ["no change in meaning"], problems, True)
