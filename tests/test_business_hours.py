"""SLA clocks count business hours only."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mapping.model import BusinessHours
from sync_agent.business_hours import deadline

UTC_9_TO_5 = BusinessHours()


def counted_minutes(start: dt.datetime, end: dt.datetime) -> int:
    """Business minutes between two moments, counted one minute at a time (UTC, Mon-Fri
    09:00-17:00): an oracle that shares no code with the module under test."""
    minute = start.replace(second=0, microsecond=0)
    total = 0
    while minute < end:
        if minute.weekday() < 5 and 9 <= minute.hour < 17:
            total += 1
        minute += dt.timedelta(minutes=1)
    return total


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def test_friday_afternoon_runs_into_monday() -> None:
    # 2026-11-20 is a Friday: 1 hour left that day, 3 more on Monday from 09:00
    assert deadline(at("2026-11-20T16:00:00+00:00"), 4, UTC_9_TO_5) == at(
        "2026-11-23T12:00:00+00:00")


def test_a_weekend_arrival_starts_on_monday_morning() -> None:
    assert deadline(at("2026-11-21T10:00:00+00:00"), 2, UTC_9_TO_5) == at(
        "2026-11-23T11:00:00+00:00")


def test_the_time_zone_and_daylight_saving() -> None:
    berlin = BusinessHours(start=9, end=17, timezone="Europe/Berlin")
    # Friday 2026-10-23 16:00 Berlin (CEST, UTC+2); Monday 10-26 is CET (UTC+1) after the change
    start = dt.datetime(2026, 10, 23, 14, 0, tzinfo=dt.UTC)
    assert deadline(start, 4, berlin) == dt.datetime(2026, 10, 26, 11, 0, tzinfo=dt.UTC)


def test_bad_business_hours_are_refused() -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        BusinessHours(timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="must be after start"):
        BusinessHours(start=17, end=9)
    with pytest.raises(ValidationError):
        BusinessHours(days=[])


@settings(max_examples=200, deadline=None)
@given(start=st.datetimes(min_value=dt.datetime(2026, 1, 1),  # noqa: DTZ001 (naive bounds)
                          max_value=dt.datetime(2027, 12, 31),  # noqa: DTZ001
                          timezones=st.just(dt.UTC)),
       hours=st.floats(min_value=0.25, max_value=60, allow_nan=False))
def test_the_deadline_is_that_many_business_hours_away(start: dt.datetime,
                                                       hours: float) -> None:
    due = deadline(start, hours, UTC_9_TO_5)
    assert due > start
    assert counted_minutes(start, due) == pytest.approx(hours * 60, abs=2)
    assert due.weekday() < 5
    assert dt.time(9) <= due.time() <= dt.time(17)
