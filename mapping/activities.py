"""What a HubSpot engagement becomes in Salesforce: a completed Task. Pure functions of the
engagement's properties and the mapping's ``activities`` setting, so what a cycle writes can be
read (and tested) without a system in sight.

An engagement is written when it happened: a call still ringing, an email scheduled or
bounced, a canceled meeting are not a rep's history, and a meeting still to come is written
once its start has passed. Properties as HubSpot's engagement guides name them
(developers.hubspot.com/docs/api/crm/calls, .../email, .../meetings): a call's duration comes
in milliseconds, an email's direction says who wrote it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from mapping.model import ActivityTasks

# type -> (the Task's label for it, its title property, its body property)
KINDS: dict[str, tuple[str, str, str]] = {
    "calls": ("Call", "hs_call_title", "hs_call_body"),
    "meetings": ("Meeting", "hs_meeting_title", "hs_meeting_body"),
    "emails": ("Email", "hs_email_subject", "hs_email_text"),
}
# What each type is read with.
PROPERTIES: dict[str, list[str]] = {
    "calls": ["hs_timestamp", "hs_call_title", "hs_call_body", "hubspot_owner_id",
              "hs_call_duration", "hs_call_direction", "hs_call_status"],
    "meetings": ["hs_timestamp", "hs_meeting_title", "hs_meeting_body", "hubspot_owner_id",
                 "hs_meeting_start_time", "hs_meeting_outcome"],
    "emails": ["hs_timestamp", "hs_email_subject", "hs_email_text", "hubspot_owner_id",
               "hs_email_direction", "hs_email_status"],
}
# Values that mean it has not happened (yet): never written as a completed Task.
NOT_HAPPENED: dict[str, tuple[str, frozenset[str]]] = {
    "calls": ("hs_call_status", frozenset({"QUEUED", "RINGING", "CONNECTING",
                                           "CALLING_CRM_USER", "IN_PROGRESS", "CANCELED"})),
    "meetings": ("hs_meeting_outcome", frozenset({"CANCELED", "RESCHEDULED"})),
    "emails": ("hs_email_status", frozenset({"SCHEDULED", "SENDING", "FAILED", "BOUNCED"})),
}
# Task fields written only where the org has them with the value among the picklist's:
# TaskSubtype (set on create only: Salesforce refuses it on an update), Type, CallType.
SUBTYPE = {"calls": "Call", "emails": "Email"}
TYPE = {"calls": "Call", "meetings": "Meeting", "emails": "Email"}
CALL_TYPE = {"INBOUND": "Inbound", "OUTBOUND": "Outbound"}
SUBJECT_LENGTH = 255
DESCRIPTION_LENGTH = 32000
_TAG = re.compile(r"<(br|/p|/div|/li)\b[^>]*>|<[^>]+>", re.IGNORECASE)


@dataclass(frozen=True)
class Verdict:
    """Whether an engagement is written now, later (``due``), or never (``reason``)."""

    write: bool
    reason: str = ""
    due: dt.datetime | None = None


def key_of(kind: str, hs_id: str) -> str:
    """The engagement's value in the Task's external id field: its type and HubSpot id."""
    return f"{kind}:{hs_id}"


def verdict(settings: ActivityTasks, kind: str, values: dict[str, Any],
            now: dt.datetime) -> Verdict:
    """Whether the engagement is a rep's history to write now."""
    if kind == "emails" and values.get("hs_email_direction") not in settings.email_directions:
        return Verdict(False, f"email direction {values.get('hs_email_direction')!r} is not "
                       f"among {settings.email_directions}")
    prop, values_not = NOT_HAPPENED[kind]
    if str(values.get(prop) or "") in values_not:
        return Verdict(False, f"{prop} is {values.get(prop)}")
    if kind == "meetings":
        start = parse_time(values.get("hs_meeting_start_time") or values.get("hs_timestamp"))
        if start is not None and start > now:
            return Verdict(False, "the meeting is still to come", due=start)
    if parse_time(values.get("hs_timestamp")) is None:
        return Verdict(False, "it has no activity date (hs_timestamp)")
    return Verdict(True)


def task_values(settings: ActivityTasks, kind: str, values: dict[str, Any], who_id: str,
                owner_id: str | None, zone: str) -> dict[str, Any]:
    """The Task's fields (the optional ones filtered later against the org's describe)."""
    label, title_prop, body_prop = KINDS[kind]
    title = " ".join(str(values.get(title_prop) or "").split()) or f"(no {label.lower()} title)"
    happened = parse_time(values.get("hs_timestamp"))
    assert happened is not None  # ``verdict`` says no without one
    task: dict[str, Any] = {
        "Subject": settings.subject.format(type=label, title=title)[:SUBJECT_LENGTH],
        "Status": settings.status, "Priority": settings.priority,
        "ActivityDate": happened.astimezone(ZoneInfo(zone)).date().isoformat(),
        "Description": plain_text(values.get(body_prop))[:DESCRIPTION_LENGTH] or None,
        "WhoId": who_id, "Type": TYPE[kind]}
    if owner_id:
        task["OwnerId"] = owner_id
    if kind == "calls":
        duration = values.get("hs_call_duration")
        if duration not in (None, ""):
            task["CallDurationInSeconds"] = round(float(duration) / 1000)
        direction = CALL_TYPE.get(str(values.get("hs_call_direction") or ""))
        if direction:
            task["CallType"] = direction
    return task


def digest(values: dict[str, Any]) -> str:
    """A fingerprint of what a Task was sent: the same engagement read again writes nothing."""
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def plain_text(value: Any) -> str:
    """HubSpot bodies are rich text (HTML); a Task's Description is plain."""
    if value in (None, ""):
        return ""
    text = _TAG.sub(lambda m: "\n" if m.group(1) else "", str(value))
    lines = [" ".join(line.split()) for line in html.unescape(text).splitlines()]
    return "\n".join(line for line in lines if line).strip()


def parse_time(value: Any) -> dt.datetime | None:
    """A HubSpot time: ISO text, or epoch milliseconds (both are accepted on write)."""
    if value in (None, ""):
        return None
    text = str(value)
    try:
        if text.isdigit():
            return dt.datetime.fromtimestamp(int(text) / 1000, dt.UTC)
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return None
