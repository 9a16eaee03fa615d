"""Value transforms compiled to plain functions, one per direction.

``to_hubspot(v)`` turns a Salesforce value into what HubSpot should hold and ``to_salesforce(v)``
the reverse. A value that cannot be carried over (an unmapped picklist value, text that is not a
number) becomes ``UNMAPPED`` with the reason, so the planner skips that field and says why
rather than writing something wrong.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mapping.model import Case, Coerce, Default, StageMap, Transform, Trim, Truncate, ValueMap


@dataclass(frozen=True)
class Unmapped:
    reason: str


Fn = Callable[[Any], Any]


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _skip_unmapped(fn: Fn) -> Fn:
    def wrapped(value: Any) -> Any:
        if isinstance(value, Unmapped) or value is None:
            return value
        return fn(value)
    return wrapped


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _coerce(to: str, target: str) -> Fn:
    """HubSpot holds strings; Salesforce holds typed values."""
    def number(value: Any) -> Any:
        try:
            parsed = float(value)
        except (TypeError, ValueError):
            return Unmapped(f"{value!r} is not a number")
        if to == "integer":
            if not parsed.is_integer():
                return Unmapped(f"{value!r} is not a whole number")
            return str(int(parsed)) if target == "hubspot" else int(parsed)
        return _to_text(parsed) if target == "hubspot" else parsed

    def boolean(value: Any) -> Any:
        text = str(value).strip().lower()
        if text not in ("true", "false", "1", "0", "yes", "no"):
            return Unmapped(f"{value!r} is not a boolean")
        truth = text in ("true", "1", "yes")
        return ("true" if truth else "false") if target == "hubspot" else truth

    def date(value: Any) -> Any:
        text = str(value).strip()
        try:
            dt.date.fromisoformat(text[:10])
        except ValueError:
            return Unmapped(f"{value!r} is not a date")
        return text[:10]

    def datetime(value: Any) -> Any:
        text = str(value).strip().replace("Z", "+00:00")
        if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
            text = text[:-2] + ":" + text[-2:]
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            return Unmapped(f"{value!r} is not a date and time")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        parsed = parsed.astimezone(dt.UTC)
        millis = f"{parsed.microsecond // 1000:03d}"
        if target == "hubspot":
            return parsed.strftime("%Y-%m-%dT%H:%M:%S.") + millis + "Z"
        return parsed.strftime("%Y-%m-%dT%H:%M:%S.") + millis + "+0000"

    kinds: dict[str, Fn] = {"number": number, "integer": number, "boolean": boolean,
                            "date": date, "datetime": datetime, "string": _to_text}
    return kinds[to]


def _value_map(vmap: ValueMap, target: str) -> Fn:
    if target == "hubspot":
        table = dict(vmap.values)
    else:
        table = {}
        for source, dest in vmap.values.items():
            table.setdefault(dest, source)
        table.update(vmap.reverse)

    ignored = set(vmap.ignore_salesforce if target == "hubspot" else vmap.ignore_hubspot)

    def mapped(value: Any) -> Any:
        key = _to_text(value)
        if key in table:
            return table[key]
        if key in ignored:
            return Unmapped(f"{value!r} is left out of the value map on purpose")
        return Unmapped(f"{value!r} has no entry in the value map")
    return mapped


def stage_translator(smap: StageMap, target: str) -> Fn:
    """Salesforce stage -> the first HubSpot stage of its entry, and back."""
    table: dict[str, str] = {}
    for pair in smap.stages:
        sources, dests = (pair.salesforce, pair.hubspot) if target == "hubspot" else (
            pair.hubspot, pair.salesforce)
        for source in sources:
            table.setdefault(source, dests[0])
    ignored = set(smap.ignore_salesforce if target == "hubspot" else smap.ignore_hubspot)

    def translate(value: Any) -> Any:
        if value in table:
            return table[value]
        if value in ignored:
            return Unmapped(f"stage {value!r} is ignored by the stage map")
        return Unmapped(f"stage {value!r} is not in the stage map")
    return translate


def _case(to: str) -> Fn:
    method = {"lower": str.lower, "upper": str.upper, "title": str.title}[to]

    def change(value: Any) -> Any:
        return method(value) if isinstance(value, str) else value
    return change


def _truncate(limit: int) -> Fn:
    def cut(value: Any) -> Any:
        return value[:limit] if isinstance(value, str) else value
    return cut


def compile_chain(transforms: list[Transform], target: str,
                  stage: StageMap | None) -> tuple[Fn, list[str]]:
    """One function applying ``transforms`` toward ``target``; and warnings it may raise."""
    steps: list[Fn] = []
    default: str | None = None
    for transform in transforms:
        if isinstance(transform, Trim):
            steps.append(_skip_unmapped(lambda v: v.strip() if isinstance(v, str) else v))
        elif isinstance(transform, Case):
            steps.append(_skip_unmapped(_case(transform.to)))
        elif isinstance(transform, ValueMap):
            steps.append(_skip_unmapped(_value_map(transform, target)))
        elif isinstance(transform, Coerce):
            steps.append(_skip_unmapped(_coerce(transform.to, target)))
        elif isinstance(transform, Truncate):
            steps.append(_skip_unmapped(_truncate(transform.length)))
        elif isinstance(transform, Default):
            default = transform.value
    if stage is not None:
        steps.append(_skip_unmapped(stage_translator(stage, target)))
    if target == "hubspot":
        steps.append(_skip_unmapped(_to_text))  # HubSpot takes every value as a string

    def run(value: Any) -> Any:
        if blank(value):
            return default if default is not None else None
        for step in steps:
            value = step(value)
        if blank(value) and default is not None:
            return default
        return value
    return run, []
