"""Timestamps in the two vendors' wire formats."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    """The current time in UTC, truncated to milliseconds (both vendors keep milliseconds)."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def sf_format(value: dt.datetime) -> str:
    """Salesforce REST datetime: ``2024-10-31T03:49:13.000+0000``."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{value.microsecond // 1000:03d}+0000"
    )


def hs_format(value: dt.datetime) -> str:
    """HubSpot datetime: ``2025-11-04T12:10:35.352Z``."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{value.microsecond // 1000:03d}Z"
    )


def parse_iso(text: str) -> dt.datetime:
    """Parse the ISO-8601 forms both APIs accept (``Z``, ``+0000``, ``+00:00``, dates)."""
    cleaned = text.strip()
    if cleaned.endswith("Z"):
        cleaned = cleaned[:-1] + "+00:00"
    if len(cleaned) > 5 and cleaned[-5] in "+-" and cleaned[-3] != ":" and "T" in cleaned:
        cleaned = cleaned[:-2] + ":" + cleaned[-2:]
    value = dt.datetime.fromisoformat(cleaned)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def epoch_ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)
