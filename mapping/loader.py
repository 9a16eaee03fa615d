"""Read a mapping file safely, remembering where every key and value stands.

Only plain YAML is accepted: ``yaml.SafeLoader`` (no Python tags, nothing executed), no anchors
or aliases (no alias bombs; an admin's file does not need them), no duplicate keys (YAML would
silently keep the last), UTF-8 only, within the bounds of ``mapping.limits`` (size, nesting,
number length; a regular file only). Each refusal is a ``Problem`` with a line. A file refused
before its content could be judged (unreadable, not a regular file, over a bound) raises
``FileRefused``, so the command line can tell a bad path (exit 2) from a bad mapping (exit 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from connectors.files import NotReadable, read_regular_file
from mapping.limits import MAX_BYTES, MAX_DEPTH, MAX_NUMBER_CHARS
from mapping.problems import Problem

PathKey = tuple[str | int, ...]


class LoadError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class FileRefused(LoadError):
    """The file was not read as a mapping at all: a bad path, not a regular file, not UTF-8, or
    past a bound of ``mapping.limits``. An operator's mistake, not an error in a mapping."""


class _Bound(Exception):
    """A bound of ``mapping.limits`` crossed while composing; ``load_text`` names the file."""

    def __init__(self, line: int, column: int, message: str, fix: str) -> None:
        super().__init__(message)
        self.line, self.column, self.message, self.fix = line, column, message, fix


_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


@dataclass
class Located:
    """The parsed data, and the line/column (1-based) of each path's key and value."""

    data: Any
    file: str
    values: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    keys: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    # For data with parts left out (``mapping.lenient``): each path's path in the file, so a
    # problem names the key as the admin wrote it (objects.3, not objects.2).
    origin: dict[PathKey, PathKey] = field(default_factory=dict)

    def original(self, path: PathKey) -> PathKey:
        """``path`` as it stands in the file (its nearest known parent translated)."""
        probe = tuple(path)
        for cut in range(len(probe), 0, -1):
            if probe[:cut] in self.origin:
                return (*self.origin[probe[:cut]], *probe[cut:])
        return probe

    def where(self, path: PathKey, key: bool = False) -> tuple[int, int]:
        """The nearest known position: the path itself, else its closest parent."""
        table = self.keys if key else self.values
        probe = tuple(path)
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return (1, 1)


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader without aliases, that stops composing past ``MAX_DEPTH`` levels (PyYAML
    recurses once a level) and at a number longer than ``MAX_NUMBER_CHARS``."""

    depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) and anchors are not allowed in a mapping file",
                event.start_mark)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _Bound(mark.line + 1, mark.column + 1,
                             f"the file nests deeper than {MAX_DEPTH} levels",
                             "a mapping nests a few levels; remove the extra brackets or "
                             "indentation")
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        if (isinstance(node, ScalarNode) and node.tag in _NUMBER_TAGS
                and len(node.value) > MAX_NUMBER_CHARS):
            raise _Bound(node.start_mark.line + 1, node.start_mark.column + 1,
                         f"a number of {len(node.value):,} characters; at most "
                         f"{MAX_NUMBER_CHARS} are read", "write the number it should be")
        return node


def _problem(file: str, line: int, column: int, message: str, fix: str) -> LoadError:
    return LoadError(Problem(file, line, column, "", message, fix))


def _walk(node: Node, path: PathKey, out: Located) -> None:
    out.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else str(key_node.tag)
            if key in seen:
                raise _problem(out.file, key_node.start_mark.line + 1,
                               key_node.start_mark.column + 1,
                               f"key {key!r} appears twice (first on line {seen[key]})",
                               "keep one of them")
            seen[key] = key_node.start_mark.line + 1
            out.keys[(*path, key)] = (key_node.start_mark.line + 1,
                                      key_node.start_mark.column + 1)
            _walk(value_node, (*path, key), out)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), out)


def load_text(text: str, file: str = "<mapping>") -> Located:
    located = Located(data=None, file=file)
    try:
        loader = _NoAliasLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                raise _problem(file, 1, 1, "the file is empty", "start from `stagesync init`")
            _walk(node, (), located)
            located.data = loader.construct_document(node)
        finally:
            loader.dispose()
    except _Bound as exc:
        raise FileRefused(Problem(file, exc.line, exc.column, "", exc.message, exc.fix)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = exc.problem or str(exc)
        fix = "fix the YAML syntax here (indentation, a missing ':' or closing bracket)"
        if "could not determine a constructor for the tag" in message:
            quoted = message.split("'")
            tag = (quoted[1] if len(quoted) > 2 else message).replace("tag:yaml.org,2002:", "!!")
            message = f"YAML tag {tag} is not allowed: a mapping file is plain data"
            fix = "remove the tag and write the value out"
        elif "aliases" in message:
            fix = "write the repeated value out in full"
        raise _problem(file, line, column, message, fix) from None
    return located


def _refused(file: str, line: int, message: str, fix: str) -> FileRefused:
    return FileRefused(Problem(file, line, 1, "", message, fix))


def load_file(path: Path) -> Located:
    """Read and compose ``path`` within the bounds of ``mapping.limits``."""
    file = str(path)
    try:
        raw = read_regular_file(path, MAX_BYTES)
    except NotReadable as exc:
        fix = ("split out what is not mapping, or remove repetition" if exc.too_large else
               "give the path of a mapping file; `stagesync init` writes one")
        raise _refused(file, 1, exc.reason, fix) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise _refused(file, line, f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} "
                       f"at offset {exc.start})", "save the file as UTF-8") from None
    if "\x00" in text:
        raise _refused(file, 1, "the file holds NUL characters (UTF-16?)",
                       "save the file as UTF-8") from None
    return load_text(text, file)
