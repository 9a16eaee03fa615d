"""pydantic models of the mapping file (``version: 1``).

Everything an admin writes is data: rules are named precedences like the native HubSpot
connector's, transforms are a closed list of kinds, never code. ``extra="forbid"`` everywhere so a
typo is an error (with a "did you mean"), not a silently ignored key.
"""

from __future__ import annotations

import datetime as dt
import string
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(StrEnum):
    """Which system's value a field takes, the precedences admins know from HubSpot's own
    Salesforce connector."""

    TWO_WAY = "two_way"  # the latest change wins
    PREFER_SALESFORCE_UNLESS_BLANK = "prefer_salesforce_unless_blank"
    PREFER_HUBSPOT_UNLESS_BLANK = "prefer_hubspot_unless_blank"
    ALWAYS_SALESFORCE = "always_salesforce"
    ALWAYS_HUBSPOT = "always_hubspot"
    NONE = "none"  # mapped for reference only: never written

    def writes(self, side: Literal["salesforce", "hubspot"]) -> bool:
        """Whether this rule may write the field on ``side``: the one place that says so."""
        never = Rule.ALWAYS_SALESFORCE if side == "salesforce" else Rule.ALWAYS_HUBSPOT
        return self is not Rule.NONE and self is not never


class Trim(Strict):
    kind: Literal["trim"]


class Case(Strict):
    kind: Literal["case"]
    to: Literal["lower", "upper", "title"]


class ValueMap(Strict):
    """Picklist values: Salesforce value -> HubSpot value. The reverse is derived; values that
    several map onto need ``reverse`` entries saying which one comes back."""

    kind: Literal["value_map"]
    values: dict[str, str]
    reverse: dict[str, str] = Field(default_factory=dict)
    # Values with no counterpart on the other side, left out on purpose: never carried across
    # (the other side keeps its value; the plan says so), and not reported by validate --live.
    ignore_salesforce: list[str] = Field(default_factory=list)
    ignore_hubspot: list[str] = Field(default_factory=list)


class Coerce(Strict):
    """Convert to a type: HubSpot gets strings, Salesforce gets the typed value."""

    kind: Literal["coerce"]
    to: Literal["number", "integer", "boolean", "date", "datetime", "string"]


class Truncate(Strict):
    """Cut text to ``length`` characters (with a warning in the plan)."""

    kind: Literal["truncate"]
    length: int = Field(gt=0)


class Default(Strict):
    """The value to write when the source is blank."""

    kind: Literal["default"]
    value: str


Transform = Annotated[Trim | Case | ValueMap | Coerce | Truncate | Default,
                      Field(discriminator="kind")]


class FieldRule(Strict):
    salesforce: str
    hubspot: str
    rule: Rule = Rule.TWO_WAY
    transforms: list[Transform] = Field(default_factory=list)
    stage_map: str | None = Field(None, description="name of a stage map translating values")


class CreateRule(Strict):
    """Whether one side may create records in the other, and which (an inclusion filter like
    HubSpot's inclusion lists: field -> allowed values; all must match)."""

    enabled: bool = False
    only_when: dict[str, list[str]] = Field(default_factory=dict)


class Conversion(Strict):
    """Salesforce Lead conversion: the link moves from the Lead to the converted Contact."""

    to_pair: str
    converted_field: str = "IsConverted"
    contact_field: str = "ConvertedContactId"


class MatchPart(Strict):
    """One more field pair a composite match key needs equal (compared as the pair's field
    rule carries the Salesforce value across: a date as a date, an amount as a number)."""

    salesforce: str
    hubspot: str


class MatchKey(Strict):
    """Records pair up when this key is equal on both sides, as HubSpot's own connector
    pairs them: ``email`` trimmed and lower-cased; ``domain`` a website or domain with its
    scheme, ``www.``, port, path and case removed (Account.Website ↔ company domain);
    ``text`` trimmed and lower-cased. ``also``: further field pairs that must all be equal
    too (a composite key, for pairs like deals). A key two records share on one side is a
    ``duplicate_match`` gap, never a guess."""

    salesforce: str
    hubspot: str
    normalize: Literal["email", "domain", "text"] = "email"
    also: list[MatchPart] = Field(default_factory=list)

    def upserts_on(self) -> bool:
        """Whether HubSpot can upsert on the key (a unique property: a contact's email)."""
        return self.normalize == "email" and not self.also


class DeleteRule(StrEnum):
    """What a record deleted on one side does to its linked counterpart."""

    GAP = "gap"  # a missing_in_* gap: a person decides (the default)
    DELETE_COUNTERPART = "delete_counterpart"  # delete it too (HubSpot: archive)
    RECREATE = "recreate"  # make the deleted record again from its counterpart


class OnDelete(Strict):
    """Per side, what a delete does, as HubSpot's own connector's deletion settings (which
    delete a deal when its Opportunity is deleted). ``salesforce``: a Salesforce record
    deleted (to its Recycle Bin); ``hubspot``: a HubSpot record archived (deleted).
    ``delete_counterpart`` deletes the linked record on the other side (a HubSpot delete is an
    archive, restorable for 90 days; a Salesforce delete goes to the Recycle Bin for 15);
    ``recreate`` creates the deleted record again from its counterpart, under the pair's create
    rule for that side. A merge is never a delete. A deleted record restored within those days
    (Salesforce undelete, HubSpot restore) is linked again to its counterpart."""

    salesforce: DeleteRule = DeleteRule.GAP
    hubspot: DeleteRule = DeleteRule.GAP


def _slug_name(value: str) -> str:
    """A name other sections refer to: letters, digits and underscores."""
    if not value.replace("_", "").isalnum():
        raise ValueError("use letters, digits and underscores")
    return value


class ObjectPair(Strict):
    name: str
    salesforce: str
    hubspot: str
    match: MatchKey | None = None
    create_in_hubspot: CreateRule = Field(default_factory=CreateRule)
    create_in_salesforce: CreateRule = Field(default_factory=CreateRule)
    conversion: Conversion | None = None
    fields: list[FieldRule] = Field(default_factory=list)
    on_delete: OnDelete = Field(default_factory=OnDelete)

    _slug = field_validator("name")(_slug_name)


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


# One stage, or several: the file may say either, the code always sees a list.
Stages = Annotated[list[str], BeforeValidator(_listify), WithJsonSchema({"anyOf": [
    {"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]})]


class StagePair(Strict):
    """Stages that mean the same thing. The first value on each side is the one written."""

    salesforce: Stages
    hubspot: Stages


class Recycle(Strict):
    """Move a record that reaches ``from_stage`` back to ``to_stage`` (for example Closed Lost
    back to nurturing)."""

    side: Literal["salesforce", "hubspot"]
    from_stage: str = Field(alias="from")
    to_stage: str = Field(alias="to")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StageMap(Strict):
    """Stages of one Salesforce field and one HubSpot field, in funnel order (earliest first),
    so the engine can tell a forward move from a backward one."""

    salesforce_field: str = Field(description="Object.Field, e.g. Lead.Status")
    hubspot_field: str = Field(description="object.property, e.g. contacts.lifecyclestage")
    stages: list[StagePair]
    ignore_salesforce: list[str] = Field(default_factory=list)
    ignore_hubspot: list[str] = Field(default_factory=list)
    recycle: list[Recycle] = Field(default_factory=list)

    def position(self, side: Literal["salesforce", "hubspot"], stage: str) -> int | None:
        """The stage's place in the funnel (0 earliest), to tell forward from backward moves."""
        for index, pair in enumerate(self.stages):
            if stage in getattr(pair, side):
                return index
        return None


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WORKING_DAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")


class BusinessHours(Strict):
    """When the SLA clock runs: ``start`` to ``end`` o'clock on ``days``, in ``timezone``."""

    start: int = Field(9, ge=0, le=23)
    end: int = Field(17, ge=1, le=24)
    days: list[Weekday] = Field(default_factory=lambda: list(WORKING_DAYS), min_length=1)
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as "
                             "Europe/Berlin") from None
        return value

    @model_validator(mode="after")
    def _opens_before_closing(self) -> BusinessHours:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        return self


class CreateTask(Strict):
    kind: Literal["create_task"]
    subject: str = "Follow up: lead went cold"
    priority: Literal["High", "Normal", "Low"] = "High"


class SetProperty(Strict):
    kind: Literal["set_hubspot_property"]
    property: str
    value: str


class Reroute(Strict):
    kind: Literal["reroute"]
    owner_email: str = Field(description="the queue's or user's email")


class RecycleToNurture(Strict):
    kind: Literal["recycle"]
    salesforce_stage: str
    hubspot_stage: str | None = None


Action = Annotated[CreateTask | SetProperty | Reroute | RecycleToNurture,
                   Field(discriminator="kind")]


class SlaRule(Strict):
    """A lead is cold when it sits at ``stage`` with no status change or activity in
    Salesforce for ``within_business_hours``."""

    name: str
    pair: str
    stage_map: str
    stage: str
    within_business_hours: float = Field(gt=0)
    actions: list[Action] = Field(default_factory=list)


class Owners(Strict):
    """Salesforce users and HubSpot owners are the same people when their emails match.

    A Lead (or Task) may be owned by a queue (a Salesforce Group, id prefix ``00G``) rather
    than a user. A queue has no HubSpot owner, so a queue-owned record's HubSpot owner is left
    as it is (``queues: leave_hubspot_owner``, the plan says why), and Salesforce's queue is
    never overwritten from HubSpot. A queue cannot own Tasks, so the SLA's follow-up Task for a
    queue-owned lead goes to ``queue_task_owner`` (a Salesforce user's email); without one the
    Task is not created and the cold lead's gap says why."""

    match_by: Literal["email"] = "email"
    salesforce_field: str = "OwnerId"
    hubspot_property: str = "hubspot_owner_id"
    sync: Rule = Rule.PREFER_SALESFORCE_UNLESS_BLANK
    queues: Literal["leave_hubspot_owner"] = "leave_hubspot_owner"
    queue_task_owner: str | None = Field(
        None, description="email of the Salesforce user who gets tasks for queue-owned records")


class PipelineRoute(Strict):
    """One HubSpot deal pipeline (its internal id, often a number) and the stage map that
    translates Opportunity stages into that pipeline's stage ids."""

    pipeline: str
    stage_map: str


class DealPipelines(Strict):
    """Which HubSpot pipeline a pair's deals go to, per Salesforce record type (by developer
    name), as HubSpot's own Salesforce connector does. Opportunities of an unlisted record type
    (or of none) go to ``default``. A deal cannot be created without a pipeline, and its stage
    must be one of that pipeline's stages."""

    pair: str = "opportunities"
    record_type_field: str = "RecordTypeId"
    default: PipelineRoute
    record_types: dict[str, PipelineRoute] = Field(default_factory=dict)

    def routes(self) -> list[tuple[str, PipelineRoute]]:
        """Every route with where it is written (``default`` or a record type's name)."""
        return [("default", self.default), *self.record_types.items()]


class LeadScore(Strict):
    """HubSpot's score written to a Salesforce field."""

    hubspot_property: str = "hubspotscore"
    salesforce_field: str
    pairs: list[str]


class Safety(Strict):
    """Guards against a runaway cycle. An incremental cycle that would create counterparts
    for more old records (ones that existed at the last sync, so the change set does not
    explain them as new) than ``max_create_share`` of a pair's links plus ``create_floor``
    creates none of them and opens a ``create_guard`` gap: a lost link table or a mapping
    change that suddenly admits thousands of records is for a person to confirm."""

    max_create_share: float = Field(0.1, ge=0)
    create_floor: int = Field(100, ge=0)


class SalesforceOptions(Strict):
    """How the agent writes to Salesforce."""

    duplicate_rules: Literal["respect", "allow_save"] = Field(
        "respect", description="respect: a create or update the org's duplicate rules refuse "
        "becomes a duplicate_match gap naming the matching records, for a person to decide; "
        "allow_save: send Sforce-Duplicate-Rule-Header allowSave=true, saving past rules that "
        "only alert (rules set to Block still refuse)")


class Association(Strict):
    """A reference between two pairs' records, kept the same on both sides, as HubSpot's own
    connector keeps a contact's company: on Salesforce a lookup field of ``from_pair``'s
    object (Contact.AccountId, Opportunity.AccountId, Opportunity.ContactId, the primary
    contact role), in HubSpot an association of ``from_pair``'s object to ``to_pair``'s with
    ``hubspot_label`` (``Primary``) or the unlabeled one (null). Ids are translated through
    the links of ``to_pair``: a reference to a record not linked yet waits for its link
    (nothing dangling is written) and says so in an ``association_waiting`` gap. ``rule``
    decides which side's reference wins, as for fields; ``two_way`` takes the side that
    changed since the last sync (both: the later modified record)."""

    name: str
    from_pair: str = Field(alias="from")
    to_pair: str = Field(alias="to")
    salesforce_field: str = Field(description="the lookup field on from's Salesforce object")
    hubspot_label: str | None = Field(
        None, description="the association label in HubSpot (Primary); null: unlabeled")
    rule: Rule = Rule.PREFER_SALESFORCE_UNLESS_BLANK

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    _slug = field_validator("name")(_slug_name)


class ContactRoles(Strict):
    """Salesforce's contact roles of ``from_pair``'s records (OpportunityContactRole: one row
    per Contact on an Opportunity, with a ``Role``) as HubSpot associations of ``from``'s
    records with ``to``'s, each role written as the association label ``labels`` maps it to.
    A role with no label here (or whose label the portal lacks) is written unlabeled: the
    contact is on the deal either way. Salesforce decides (``always_salesforce``): a role
    removed or deleted takes its label off, the contact stays associated, and HubSpot's other
    associations stay. A role on records not linked yet waits for their links."""

    name: str
    from_pair: str = Field("opportunities", alias="from")
    to_pair: str = Field("contacts", alias="to")
    salesforce_object: str = "OpportunityContactRole"
    parent_field: str = Field("OpportunityId", description="the role's lookup to from's object")
    target_field: str = Field("ContactId", description="the role's lookup to to's object")
    role_field: str = Field("Role", description="the picklist that names the role")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Salesforce role -> HubSpot association label")
    rule: Literal["always_salesforce"] = "always_salesforce"

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    _slug = field_validator("name")(_slug_name)

    @field_validator("labels")
    @classmethod
    def _labels_named(cls, value: dict[str, str]) -> dict[str, str]:
        if any(not role.strip() or not label.strip() for role, label in value.items()):
            raise ValueError("each role and each label needs a name")
        return value


class FollowStage(Strict):
    """One Salesforce stage (or several) of the followed records and the HubSpot stage it
    lifts the following record to."""

    salesforce: Stages
    hubspot: str


class StageFollow(Strict):
    """A stage of one pair's HubSpot records that follows the stages of records associated
    with them, as a contact's lifecycle follows its opportunities: every record of
    ``source_pair`` associated (by ``association``) with a record of ``pair`` lifts it to
    the HubSpot stage its ``salesforce_field`` maps to; the furthest wins, and a stage only
    moves forward (in the property's own option order)."""

    name: str
    pair: str = Field(description="the pair whose HubSpot records follow, e.g. contacts")
    hubspot_property: str = "lifecyclestage"
    association: str = Field(description="the association naming the followed records")
    salesforce_field: str = Field("StageName", description="the followed records' stage")
    stages: list[FollowStage]


EngagementType = Literal["calls", "meetings", "emails"]
EmailDirection = Literal["EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL"]


def _all_engagements() -> list[EngagementType]:
    return ["calls", "meetings", "emails"]


def _logged_emails() -> list[EmailDirection]:
    return ["EMAIL"]  # sent from the CRM or logged to it by the rep


SUBJECT_FIELDS = ("type", "title")  # what a Task's subject format may name


class ActivityTasks(Strict):
    """HubSpot calls, meetings and logged emails written to Salesforce as completed Tasks on
    the linked Lead or Contact, once each, as HubSpot's own connector syncs activities: so a
    rep's history is whole in the CRM. Off unless ``enabled``.

    Each engagement is upserted on ``external_id_field`` (a unique external id text field on
    Task the admin adds), so a Task is never written twice whatever crashed before; an edited
    engagement updates its Task. Only engagements on a contact linked in one of ``pairs``
    are written (WhoId: the linked Lead or Contact); one on a contact not linked yet waits up
    to ``wait_days`` for the link, then a gap says it was not written. Only emails whose
    direction is in ``email_directions`` count: ``EMAIL`` is an email sent from the CRM or
    logged to it by the rep (HubSpot's marketing emails are not engagements at all)."""

    enabled: bool = False
    types: list[EngagementType] = Field(default_factory=_all_engagements, min_length=1)
    pairs: list[str] = Field(default_factory=lambda: ["leads", "contacts"], min_length=1,
                             description="the pairs of HubSpot contacts and Salesforce "
                             "Leads or Contacts whose links give a Task its WhoId, in order")
    external_id_field: str = Field("HubSpot_Activity_Id__c", description="a unique external "
                                   "id text field on Task that holds the engagement's id")
    email_directions: list[EmailDirection] = Field(default_factory=_logged_emails,
                                                   min_length=1)
    subject: str = Field("{type}: {title}", description="the Task's Subject: {type} is Call, "
                         "Meeting or Email, {title} the engagement's title or subject")
    status: str = "Completed"
    priority: str = "Normal"
    since: dt.date | None = Field(None, description="the first time this is on, engagements "
                                  "changed from this date are written (default: from then on)")
    wait_days: int = Field(30, ge=1, le=365, description="how long an engagement on a contact "
                           "not linked yet waits for the link")

    @field_validator("subject")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        try:
            named = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
        except ValueError as exc:
            raise ValueError(f"{exc}: write literal braces as {{{{ and }}}}") from None
        unknown = [name for name in named if name not in SUBJECT_FIELDS]
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}: use "
                             f"{', '.join('{' + f + '}' for f in SUBJECT_FIELDS)}")
        return value

    @field_validator("types", "pairs", "email_directions")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        twice = sorted({v for v in value if value.count(v) > 1})
        if twice:
            raise ValueError(f"{twice[0]!r} is listed twice")
        return value


class MappingFile(Strict):
    version: Literal[1]
    objects: list[ObjectPair]
    stage_maps: dict[str, StageMap] = Field(default_factory=dict)
    sla: list[SlaRule] = Field(default_factory=list)
    business_hours: BusinessHours = Field(default_factory=BusinessHours)
    owners: Owners = Field(default_factory=Owners)
    lead_score: LeadScore | None = None
    safety: Safety = Field(default_factory=Safety)
    salesforce: SalesforceOptions = Field(default_factory=SalesforceOptions)
    deal_pipelines: DealPipelines | None = None
    associations: list[Association] = Field(default_factory=list)
    contact_roles: list[ContactRoles] = Field(default_factory=list)
    stage_follows: list[StageFollow] = Field(default_factory=list)
    activities: ActivityTasks = Field(default_factory=ActivityTasks)
