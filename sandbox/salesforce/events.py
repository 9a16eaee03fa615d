"""Server-side rules of the emulated Event object (Salesforce object reference, "Event").

An Event's start is kept twice, as ``StartDateTime`` and ``ActivityDateTime`` (its date also
in ``ActivityDate``), and its end twice, as ``EndDateTime`` and ``DurationInMinutes``: a
write giving one fills in the other. A timed event needs a start and an end or duration; an
all-day one (``IsAllDayEvent``) needs only its date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any


def missing_times(rec: dict[str, Any]) -> list[str]:
    """The fields an Event being created lacks to place it in the calendar."""
    start = rec.get("StartDateTime") or rec.get("ActivityDateTime")
    if rec.get("IsAllDayEvent"):
        return [] if start is not None or rec.get("ActivityDate") else ["ActivityDate"]
    missing = [] if start is not None else ["ActivityDateTime"]
    if rec.get("DurationInMinutes") is None and rec.get("EndDateTime") is None:
        missing.append("DurationInMinutes")
    return missing


def derive_times(rec: dict[str, Any], given: Collection[str]) -> None:
    """Fill each pair of start and end fields from the one this write gave (``given``)."""
    if "ActivityDateTime" in given and "StartDateTime" not in given:
        rec["StartDateTime"] = rec["ActivityDateTime"]
    start: dt.datetime | None = rec.get("StartDateTime") or rec.get("ActivityDateTime")
    if start is None and rec.get("ActivityDate") is not None:  # all-day: midnight UTC
        day: dt.date = rec["ActivityDate"]
        start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    if start is None:
        return
    rec["StartDateTime"] = rec["ActivityDateTime"] = start
    rec["ActivityDate"] = start.date()
    end: dt.datetime | None = rec.get("EndDateTime")
    minutes = rec.get("DurationInMinutes")
    if end is not None and ("EndDateTime" in given or minutes is None):
        rec["DurationInMinutes"] = int((end - start).total_seconds() // 60)
    elif minutes is not None:
        rec["EndDateTime"] = start + dt.timedelta(minutes=int(minutes))
    elif rec.get("IsAllDayEvent"):
        rec["DurationInMinutes"] = 24 * 60  # "If both fields are null, the duration
        rec["EndDateTime"] = start + dt.timedelta(days=1)  # defaults to one day"
