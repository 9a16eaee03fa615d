"""HubSpot's limits as the connector meets them: the daily limit's 429, the search request
caps, and the 403 that names missing scopes.

- A 429 with ``policyName: DAILY`` will not clear within seconds: HubSpot's daily limit resets
  at midnight in the account's time zone (developers.hubspot.com/apisbytier: "The daily limits
  reset at midnight based on the time zone setting of the HubSpot account"), so the connector
  stops calling until then instead of retrying. The time zone is a setting; when the stop ends
  and HubSpot still refuses (a wrong setting), it tries again hourly rather than a day later.
- A search request body may hold at most 3,000 characters, 5 filter groups, 10 filters per
  group and 25 in all (HubSpot CRM search docs, "Limitations"; changelog "Expanded filtering
  capabilities", August 2024). Requests are sized before they are sent.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

from connectors.errors import ConfigurationError, DailyLimitError

SYSTEM = "hubspot"
SEARCH_BODY_CHARACTERS = 3_000
MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS = 25
RETRY_AFTER_WRONG_RESET = dt.timedelta(hours=1)


def body_size(request: dict[str, Any]) -> int:
    """Characters of a search body as hubspot-api-client sends it (``json.dumps`` defaults)."""
    return len(json.dumps(request))


def check_search_request(request: dict[str, Any]) -> None:
    """Refuse, before sending, a search HubSpot would answer with 400: too long or too many
    filters. The connector builds its searches to fit, so this guards against a bug."""
    groups = request.get("filterGroups") or []
    sizes = [len(g.get("filters") or []) for g in groups]
    if len(groups) > MAX_FILTER_GROUPS or any(n > MAX_FILTERS_PER_GROUP for n in sizes) \
            or sum(sizes) > MAX_FILTERS:
        raise ConfigurationError(SYSTEM, f"a search with {len(groups)} filter groups and "
                                 f"{sum(sizes)} filters is past HubSpot's caps (5 groups, 10 "
                                 "per group, 25 in all)")
    if body_size(request) > SEARCH_BODY_CHARACTERS:
        raise ConfigurationError(SYSTEM, f"a search body of {body_size(request)} characters is "
                                 f"past HubSpot's {SEARCH_BODY_CHARACTERS}")


def value_chunks(values: list[str], fits: Any, most: int) -> list[list[str]]:
    """``values`` in consecutive chunks of at most ``most``, each as long as ``fits(chunk)``
    allows (at least one value per chunk)."""
    chunks: list[list[str]] = []
    current: list[str] = []
    for value in values:
        if current and (len(current) >= most or not fits([*current, value])):
            chunks.append(current)
            current = []
        current.append(value)
    if current:
        chunks.append(current)
    return chunks


def next_reset(now: dt.datetime, time_zone: str) -> dt.datetime:
    """The next midnight in ``time_zone`` after ``now``, in UTC."""
    zone = ZoneInfo(time_zone)
    local = now.astimezone(zone)
    midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), zone)
    return midnight.astimezone(dt.UTC)


def daily_limit_error(body: dict[str, Any], now: dt.datetime, time_zone: str,
                      last_resume: dt.datetime | None) -> DailyLimitError | None:
    """The stop for a 429 whose body says ``policyName: DAILY``; None for other 429s.

    ``last_resume`` is when the previous daily stop ended: refused again within a day of it,
    the reset evidently is not where ``time_zone`` puts it, so look again in an hour."""
    if str(body.get("policyName") or "").upper() != "DAILY":
        return None
    resume = next_reset(now, time_zone)
    where = f"midnight {time_zone}"
    if last_resume is not None and now - last_resume < dt.timedelta(days=1):
        resume = min(resume, now + RETRY_AFTER_WRONG_RESET)
        where = (f"checking hourly: the reset did not come at midnight {time_zone}; set "
                 "STAGESYNC_HUBSPOT__ACCOUNT_TIME_ZONE to the account's time zone")
    return DailyLimitError(SYSTEM, "429 DAILY: HubSpot's daily API limit is reached; HubSpot "
                           f"work stops until {resume:%Y-%m-%d %H:%M} UTC ({where})",
                           resume_at=resume)


def stopped_error(stop: DailyLimitError) -> DailyLimitError:
    """The same stop, raised without a call while it lasts."""
    return DailyLimitError(SYSTEM, stop.message, resume_at=stop.resume_at)


def missing_scopes(body: dict[str, Any]) -> list[str] | None:
    """The scopes a 403 ``MISSING_SCOPES`` names (``context.requiredGranularScopes``)."""
    if body.get("category") != "MISSING_SCOPES":
        return None
    context = body.get("context") or {}
    scopes = context.get("requiredGranularScopes") or context.get("requiredScopes") or []
    return [str(s) for s in scopes]
