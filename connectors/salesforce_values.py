"""Salesforce values in one form whichever API they came through.

REST returns JSON (booleans, numbers, ``2024-01-01T00:00:00.000+0000``); Bulk API 2.0 returns CSV
text (``true``, ``12.5``, ``2024-01-01T00:00:00.000Z``, empty for null). Both become the REST
form, so a record read by a backfill equals the same record read incrementally.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from connectors.records import FieldInfo

NUMBER_TYPES = {"double", "currency", "percent"}
_REST_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?[+-]\d{4}$")


def parse_datetime(text: str) -> dt.datetime:
    """Parse any datetime Salesforce sends (``+0000``, ``Z``, ``+00:00``) to aware UTC."""
    cleaned = text.strip().replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", cleaned):
        cleaned = cleaned[:-2] + ":" + cleaned[-2:]
    return dt.datetime.fromisoformat(cleaned).astimezone(dt.UTC)


def format_datetime(value: dt.datetime) -> str:
    value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def from_csv(field: FieldInfo | None, text: str) -> Any:
    """A Bulk 2.0 CSV cell as the REST API would have sent it."""
    if text == "":
        return None
    kind = field.type if field is not None else "string"
    if kind == "boolean":
        return text.lower() == "true"
    if kind == "int":
        return int(float(text))
    if kind in NUMBER_TYPES:
        return float(text)
    if kind == "datetime":
        return text if _REST_DATETIME.match(text) else format_datetime(parse_datetime(text))
    return text
