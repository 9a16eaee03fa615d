"""A mapping built from the parts of a file that parsed, so one bad key costs one error.

Offline validation reports what is wrong with each part. The checks that need a whole model
(references between sections, and the live checks against both systems' schemas) then run on
this one: the file with each broken part left out, where a part is the smallest unit that
stands on its own: an unknown key alone, a field rule, a pair's match key, create rule,
conversion or delete rules (their defaults stand in), an SLA rule, a stage map, an
association, a top-level section (its default). A pair whose own name or objects are broken is
left out whole. Positions are carried over, so a problem found on the rest still points at
its line and names its key as written (``Located.origin``).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from mapping.loader import Located, PathKey
from mapping.model import MappingFile

# Lists of self-contained parts, and a pair's parts that have defaults.
LISTED = ("objects", "sla", "associations", "contact_roles", "stage_follows")
PAIR_PARTS = ("match", "create_in_hubspot", "create_in_salesforce", "conversion", "on_delete",
              "fields")
UNION_TAGS = frozenset({"trim", "case", "value_map", "coerce", "truncate", "default",
                        "create_task", "set_hubspot_property", "reroute", "recycle"})
MAX_ROUNDS = 20  # leaving a part out can expose another; a file has few nested levels


def is_tag(part: Any) -> bool:
    """pydantic puts union member names (``trim``, ``function-after[...]``) in error paths."""
    return isinstance(part, str) and (part in UNION_TAGS or part.startswith("function-"))


def error_path(loc: tuple[Any, ...]) -> PathKey:
    """A pydantic error location as a path into the file."""
    return tuple(p for p in loc if not is_tag(p))


def part_of(path: PathKey) -> PathKey | None:
    """The smallest self-contained part holding ``path``; None when the file cannot do
    without it (``version``, the list of objects itself)."""
    if not path or path[0] == "version":
        return None
    top = path[0]
    if top == "objects":
        if len(path) >= 4 and path[2] == "fields" and isinstance(path[3], int):
            return path[:4]
        if len(path) >= 3 and path[2] in PAIR_PARTS and isinstance(path[1], int):
            return path[:3]
        return path[:2] if len(path) >= 2 and isinstance(path[1], int) else None
    if top in LISTED or top == "stage_maps":
        return path[:2] if len(path) >= 2 else path[:1]
    return path[:1]


def prune(located: Located, drop: set[PathKey]) -> Located:
    """``located`` without the parts at ``drop``: lists close up, positions follow."""
    moved: dict[PathKey, PathKey] = {}

    def copy(value: Any, old: PathKey, new: PathKey) -> Any:
        moved[old] = new
        if isinstance(value, dict):
            return {k: copy(v, (*old, k), (*new, k)) for k, v in value.items()
                    if (*old, k) not in drop}
        if isinstance(value, list):
            kept = [(i, v) for i, v in enumerate(value) if (*old, i) not in drop]
            return [copy(v, (*old, i), (*new, j)) for j, (i, v) in enumerate(kept)]
        return value

    data = copy(located.data, (), ())
    written = {new: located.original(old) for old, new in moved.items()}
    return Located(data=data, file=located.file,
                   values={moved[p]: at for p, at in located.values.items() if p in moved},
                   keys={moved[p]: at for p, at in located.keys.items() if p in moved},
                   origin={new: old for new, old in written.items() if new != old})


def lenient(located: Located) -> tuple[MappingFile, Located] | None:
    """The mapping without its broken parts, and where the rest stands; None when what is
    broken is the file's frame (not a mapping of keys, no list of objects)."""
    if not isinstance(located.data, dict):
        return None
    current = Located(data={**located.data, "version": 1}, file=located.file,
                      values=located.values, keys=located.keys, origin=located.origin)
    for _ in range(MAX_ROUNDS):
        try:
            return MappingFile.model_validate(current.data), current
        except ValidationError as exc:
            drop: set[PathKey] = set()
            for error in exc.errors():
                path = error_path(error["loc"])
                part = path if error["type"] == "extra_forbidden" else part_of(path)
                if part is None:
                    return None
                drop.add(part)
            current = prune(current, drop)
    return None
