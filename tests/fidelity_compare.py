"""Key-by-key comparison of a sandbox body with a recorded vendor body, and recording loaders.

Shapes, not values: the same keys (nothing invented, nothing missing), the same JSON types, the
same nulls, and the same formats where a format is part of the contract (datetimes, dates, id
lengths). Values that are data (a Salesforce record's fields, a HubSpot record's
``properties``) may be null on one side: whether a field is empty depends on the record.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

Exchange = tuple[int, Any]  # (HTTP status, body: JSON, text, or None for an empty body)

FORMATS = (
    ("Salesforce datetime (.000+0000)", re.compile(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000")),
    ("ISO datetime with milliseconds and Z", re.compile(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,3}Z")),
    ("ISO datetime with Z", re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")),
    ("ISO datetime with an offset", re.compile(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:?\d\d")),
    ("date", re.compile(r"\d{4}-\d\d-\d\d")),
)
_SALESFORCE_ID = re.compile(r"(?=.*\d)[A-Za-z0-9]{15}([A-Za-z0-9]{3})?")


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def string_format(key: str, value: str) -> str | None:
    """The format class of a string where the format matters, else None."""
    for name, pattern in FORMATS:
        if pattern.fullmatch(value):
            return name
    if key in ("id", "Id") or key.endswith("Id") or key.endswith("ById"):
        if value.isdigit():
            return "numeric id"
        if _SALESFORCE_ID.fullmatch(value):  # the key prefix names the object (001 Account)
            return f"{len(value)}-character Salesforce id of prefix {value[:3]}"
    return None


def _is_data(key: str, value: dict[str, Any]) -> bool:
    return key == "properties" or "attributes" in value


def differences(ours: Any, recorded: Any, where: str = "$", key: str = "",
                data: bool = False, computed: bool = False) -> list[str]:
    """Every way ``ours`` departs from ``recorded``'s shape, as readable lines.

    ``computed``: a write's echoed ``properties`` may lack properties the recorded portal
    computed on write (``hs_object_source``, ``hs_pipeline``, counters...), which depend on the
    portal's settings; a property only the sandbox has is still a difference."""
    if data and (ours is None or recorded is None):
        return []
    kinds = (json_kind(ours), json_kind(recorded))
    if kinds[0] != kinds[1]:
        return [f"{where}: ours is {kinds[0]} {_short(ours)}, recorded is {kinds[1]} "
                f"{_short(recorded)}"]
    if isinstance(recorded, dict):
        problems = []
        extra, missing = sorted(set(ours) - set(recorded)), sorted(set(recorded) - set(ours))
        if computed and key == "properties":
            missing = []
        if extra or missing:
            problems.append(f"{where}: keys differ: only ours {extra}, only recorded {missing}")
        inner = _is_data(key, recorded)
        for k in sorted(set(ours) & set(recorded)):
            problems += differences(ours[k], recorded[k], f"{where}.{k}", k,
                                    inner and k != "attributes", computed)
        return problems
    if isinstance(recorded, list):
        if not ours or not recorded:
            return []
        named = [i for i in recorded if isinstance(i, dict) and "name" in i]
        if len(named) == len(recorded) and all(isinstance(i, dict) and "name" in i
                                               for i in ours):
            by_name = {i["name"]: i for i in ours}
            common = [i for i in recorded if i["name"] in by_name]
            if common:
                return [p for item in common for p in differences(
                    by_name[item["name"]], item, f"{where}[name={item['name']}]", key, data,
                    computed)]
        # Items of one list may differ among themselves (a null label beside a string one,
        # errors of several kinds): each of ours must have the shape of some recorded item.
        problems = []
        for index, item in enumerate(ours[:20]):
            tries = [differences(item, candidate, f"{where}[{index}]", key, data, computed)
                     for candidate in recorded[:50]]
            problems += min(tries, key=len)
        return problems
    if isinstance(recorded, str):
        found = (string_format(key, ours), string_format(key, recorded))
        if found[0] != found[1]:
            return [f"{where}: ours {ours!r} is {found[0] or 'free text'}, recorded "
                    f"{recorded!r} is {found[1] or 'free text'}"]
    return []


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) < 60 else text[:57] + "..."


# -- loading recordings ---------------------------------------------------------------------
def load(root: Path, name: str) -> Any:
    file = root / name
    if file.suffix == ".yml":
        return yaml.safe_load(file.read_text())
    if file.suffix == ".csv":
        return file.read_text()
    return json.loads(file.read_text())


def nango(root: Path, name: str, method: str | None = None, path: str | None = None
          ) -> list[tuple[str, str, Exchange]]:
    """A Nango recording's exchanges as (METHOD, path, (status, response)), in file order."""
    out = []
    for verb, paths in load(root, name)["api"].items():
        for where, exchanges in paths.items():
            for one in exchanges if isinstance(exchanges, list) else [exchanges]:
                if (method is None or verb.upper() == method) and (path is None or
                                                                   path in where):
                    status = int(one.get("status", 200))
                    body = one.get("response")
                    out.append((verb.upper(), unquote(where),
                                (status, None if status == 204 and body == "" else body)))
    return out


def vcr(root: Path, name: str) -> list[tuple[str, str, Exchange]]:
    """A VCR cassette's interactions as (METHOD, uri, (status, parsed body))."""
    out = []
    for item in load(root, name)["http_interactions"]:
        text = item["response"]["body"].get("string") or ""
        try:
            body: Any = json.loads(text) if text else None
        except ValueError:
            body = text
        out.append((item["request"]["method"].upper(), item["request"]["uri"],
                    (int(item["response"]["status"]["code"]), body)))
    return out
