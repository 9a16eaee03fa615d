"""Business-hours arithmetic for SLA rules: "4 business hours after this lead became an MQL".

Counted in the mapping's time zone, on its working days, between its opening and closing hours,
so a lead that turns MQL on Friday at 16:00 with a 4-hour SLA is due on Monday at 12:00. Moments
are converted to UTC before adding, so a daylight-saving change never adds or loses an hour.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from mapping.model import BusinessHours

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_DAYS = 3700  # ten years of calendar: a deadline further away means no working days


def _opening(day: dt.date, hours: BusinessHours, zone: ZoneInfo) -> tuple[dt.datetime,
                                                                           dt.datetime] | None:
    if DAY_NAMES[day.weekday()] not in hours.days or hours.end <= hours.start:
        return None
    opens = dt.datetime.combine(day, dt.time(hours.start), zone)
    closes = (dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), zone)
              if hours.end == 24 else dt.datetime.combine(day, dt.time(hours.end), zone))
    return opens.astimezone(dt.UTC), closes.astimezone(dt.UTC)


def deadline(start: dt.datetime, within: float, hours: BusinessHours) -> dt.datetime:
    """The moment ``within`` business hours after ``start`` (UTC)."""
    zone = ZoneInfo(hours.timezone)
    remaining = dt.timedelta(hours=within)
    moment = start.astimezone(dt.UTC)
    day = moment.astimezone(zone).date()
    for _ in range(MAX_DAYS):
        window = _opening(day, hours, zone)
        if window is not None:
            begin = max(moment, window[0])
            if begin < window[1]:
                available = window[1] - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
        day += dt.timedelta(days=1)
    raise ValueError(f"no business hours in {MAX_DAYS} days: check business_hours.days")
