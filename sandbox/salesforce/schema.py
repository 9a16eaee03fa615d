"""The emulated org's objects and fields, and their describe bodies.

Field types, lengths and flags follow a standard Sales Cloud org; custom fields end in ``__c``.
``Lead.Status`` and ``Opportunity.StageName`` are restricted picklists, as the product must
learn from describe rather than assume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.salesforce.ids import make_id

API_VERSIONS = ("59.0", "60.0", "61.0", "62.0")
LATEST_VERSION = API_VERSIONS[-1]


@dataclass(frozen=True)
class Picklist:
    values: tuple[str, ...]
    restricted: bool = False
    default: str | None = None
    converted: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    label: str
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    calculated: bool = False
    external_id: bool = False
    unique: bool = False
    picklist: Picklist | None = None
    reference_to: tuple[str, ...] = ()
    precision: int = 0
    scale: int = 0
    custom: bool = False
    default_on_create: bool = False

    @property
    def required_on_create(self) -> bool:
        """Salesforce's rule: not nillable, createable, and not defaulted by the server."""
        return not self.nillable and self.createable and not self.default_on_create


@dataclass(frozen=True)
class SObject:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: dict[str, Field] = field(default_factory=dict)
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    mergeable: bool = False

    def field_ci(self, name: str) -> Field | None:
        """Field lookup as Salesforce does it: case-insensitive."""
        found = self.fields.get(name)
        if found is not None:
            return found
        lowered = name.lower()
        for candidate in self.fields.values():
            if candidate.name.lower() == lowered:
                return candidate
        return None


def _system_fields(prefix_label: str) -> list[Field]:
    def stamp(name: str, type_: str, label: str, length: int = 0, **extra: Any) -> Field:
        return Field(name, type_, label, length, nillable=False, createable=False,
                     updateable=False, default_on_create=True, **extra)

    return [
        stamp("Id", "id", f"{prefix_label} ID", 18),
        stamp("IsDeleted", "boolean", "Deleted"),
        stamp("CreatedDate", "datetime", "Created Date"),
        stamp("CreatedById", "reference", "Created By ID", 18, reference_to=("User",)),
        stamp("LastModifiedDate", "datetime", "Last Modified Date"),
        stamp("LastModifiedById", "reference", "Last Modified By ID", 18,
              reference_to=("User",)),
        stamp("SystemModstamp", "datetime", "System Modstamp"),
    ]


def _owner(queues: bool = False) -> Field:
    """OwnerId: a User, or for objects queues can hold, a Group (a queue), as Lead.OwnerId
    and the recorded Task describe (``referenceTo: [Group, User]``) say."""
    return Field("OwnerId", "reference", "Owner ID", 18, nillable=False, default_on_create=True,
                 reference_to=("Group", "User") if queues else ("User",))


def _master() -> Field:
    return Field("MasterRecordId", "reference", "Master Record ID", 18, createable=False,
                 updateable=False, reference_to=())


def _ro(name: str, type_: str, label: str, length: int = 0, **extra: Any) -> Field:
    return Field(name, type_, label, length, createable=False, updateable=False, **extra)


LEAD_STATUS = Picklist(
    ("New", "Working", "Nurturing", "Qualified", "Unqualified"),
    restricted=True,
    default="New",
    converted=frozenset({"Qualified"}),
)
# OpportunityContactRole.Role's standard values (Setup > Contact Roles on Opportunities), in
# their order; unrestricted, as the field reference's picklist is.
CONTACT_ROLE = Picklist(("Business User", "Decision Maker", "Economic Buyer",
                         "Economic Decision Maker", "Evaluator", "Executive Sponsor",
                         "Influencer", "Technical Buyer", "Other"))
LEAD_SOURCE = Picklist(("Web", "Phone Inquiry", "Partner Referral", "Purchased List",
                        "Advertisement", "Trade Show", "Other"))
# The 32 values of Account.Industry, in their recorded order
# (../shared/reference/salesforce/nango-describe-account.test.json).
INDUSTRY = Picklist((
    "Agriculture", "Apparel", "Banking", "Biotechnology", "Chemicals", "Communications",
    "Construction", "Consulting", "Education", "Electronics", "Energy", "Engineering",
    "Entertainment", "Environmental", "Finance", "Food & Beverage", "Government", "Healthcare",
    "Hospitality", "Insurance", "Machinery", "Manufacturing", "Media", "Not For Profit",
    "Recreation", "Retail", "Shipping", "Technology", "Telecommunications", "Transportation",
    "Utilities", "Other"))
# Opportunity record types (developer name, label); the ids are the first RecordType ids the
# org hands out, so the seed creates them first and in this order.
OPPORTUNITY_RECORD_TYPES = (("New_Business", "New Business"), ("Renewal", "Renewal"))
# Queues can own only some objects (Lead, Case, custom objects; never Account, Contact,
# Opportunity or Task), whatever describe's referenceTo lists.
QUEUE_TYPES = Picklist(("Regular", "Queue", "Role", "RoleAndSubordinates", "Organization"))
OPPORTUNITY_STAGE = Picklist(
    ("Prospecting", "Qualification", "Needs Analysis", "Value Proposition",
     "Id. Decision Makers", "Perception Analysis", "Proposal/Price Quote",
     "Negotiation/Review", "Closed Won", "Closed Lost"),
    restricted=True,
)
STAGE_PROBABILITY = {
    "Prospecting": 10, "Qualification": 10, "Needs Analysis": 20, "Value Proposition": 50,
    "Id. Decision Makers": 60, "Perception Analysis": 70, "Proposal/Price Quote": 75,
    "Negotiation/Review": 90, "Closed Won": 100, "Closed Lost": 0,
}
TASK_STATUS = Picklist(("Not Started", "In Progress", "Completed", "Waiting on someone else",
                        "Deferred"), restricted=True, default="Not Started")
TASK_PRIORITY = Picklist(("High", "Normal", "Low"), restricted=True, default="Normal")


def _contactish(with_company: bool) -> list[Field]:
    fields = [
        Field("FirstName", "string", "First Name", 40),
        Field("LastName", "string", "Last Name", 80, nillable=False),
        _ro("Name", "string", "Full Name", 121),
        Field("Email", "email", "Email", 80),
        Field("Phone", "phone", "Phone", 40),
        Field("Title", "string", "Title", 128),
        Field("LeadSource", "picklist", "Lead Source", 255, picklist=LEAD_SOURCE),
        Field("Description", "textarea", "Description", 32000),
        Field("HasOptedOutOfEmail", "boolean", "Email Opt Out", nillable=False,
              default_on_create=True),
        Field("Lead_Score__c", "double", "Lead Score", precision=18, scale=0, custom=True),
        Field("HubSpot_Contact_Id__c", "string", "HubSpot Contact ID", 40, external_id=True,
              unique=True, custom=True),
        _owner(),
        _master(),
    ]
    if with_company:
        fields += [
            Field("Company", "string", "Company", 255, nillable=False),
            Field("Status", "picklist", "Lead Status", 255, nillable=False,
                  default_on_create=True, picklist=LEAD_STATUS),
            Field("Rating", "picklist", "Rating", 255, picklist=Picklist(("Hot", "Warm", "Cold"))),
            Field("Industry", "picklist", "Industry", 255, picklist=INDUSTRY),
            Field("Website", "url", "Website", 255),
            Field("City", "string", "City", 40),
            Field("State", "string", "State/Province", 80),
            Field("Country", "string", "Country", 80),
            Field("NumberOfEmployees", "int", "Employees", precision=8),
            Field("AnnualRevenue", "currency", "Annual Revenue", precision=18, scale=0),
            _ro("IsConverted", "boolean", "Converted", nillable=False, default_on_create=True),
            _ro("ConvertedDate", "date", "Converted Date"),
            _ro("ConvertedAccountId", "reference", "Converted Account ID", 18,
                reference_to=("Account",)),
            _ro("ConvertedContactId", "reference", "Converted Contact ID", 18,
                reference_to=("Contact",)),
            _ro("ConvertedOpportunityId", "reference", "Converted Opportunity ID", 18,
                reference_to=("Opportunity",)),
            _ro("Days_Since_Created__c", "double", "Days Since Created", calculated=True,
                custom=True, precision=18),
        ]
        fields[fields.index(_owner())] = _owner(queues=True)
    else:
        fields += [
            Field("AccountId", "reference", "Account ID", 18, reference_to=("Account",)),
            Field("MailingCity", "string", "Mailing City", 40),
            Field("MailingState", "string", "Mailing State/Province", 80),
            Field("MailingCountry", "string", "Mailing Country", 80),
        ]
    return fields


def _build(name: str, label: str, plural: str, prefix: str, fields: list[Field],
           **flags: bool) -> SObject:
    all_fields = _system_fields(label) + fields
    return SObject(name, label, plural, prefix, {f.name: f for f in all_fields}, **flags)


OBJECTS: dict[str, SObject] = {
    "Lead": _build("Lead", "Lead", "Leads", "00Q", _contactish(with_company=True),
                   mergeable=True),
    "Contact": _build("Contact", "Contact", "Contacts", "003", _contactish(with_company=False),
                      mergeable=True),
    "Account": _build("Account", "Account", "Accounts", "001", [
        Field("Name", "string", "Account Name", 255, nillable=False),
        Field("Website", "url", "Website", 255),
        Field("Phone", "phone", "Account Phone", 40),
        Field("Industry", "picklist", "Industry", 255, picklist=INDUSTRY),
        Field("Type", "picklist", "Account Type", 255, picklist=Picklist(
            ("Prospect", "Customer - Direct", "Customer - Channel", "Channel Partner / Reseller",
             "Installation Partner", "Technology Partner", "Other"))),
        Field("NumberOfEmployees", "int", "Employees", precision=8),
        Field("AnnualRevenue", "currency", "Annual Revenue", precision=18, scale=0),
        Field("BillingCity", "string", "Billing City", 40),
        Field("BillingState", "string", "Billing State/Province", 80),
        Field("BillingCountry", "string", "Billing Country", 80),
        Field("Description", "textarea", "Account Description", 32000),
        Field("HubSpot_Company_Id__c", "string", "HubSpot Company ID", 40, external_id=True,
              unique=True, custom=True),
        _owner(),
        _master(),
    ], mergeable=True),
    "Opportunity": _build("Opportunity", "Opportunity", "Opportunities", "006", [
        Field("Name", "string", "Name", 120, nillable=False),
        Field("AccountId", "reference", "Account ID", 18, reference_to=("Account",)),
        Field("ContactId", "reference", "Contact ID", 18, reference_to=("Contact",)),
        Field("StageName", "picklist", "Stage", 255, nillable=False, picklist=OPPORTUNITY_STAGE),
        Field("Amount", "currency", "Amount", precision=18, scale=2),
        Field("CloseDate", "date", "Close Date", nillable=False),
        Field("Probability", "percent", "Probability (%)", precision=3, default_on_create=True),
        _ro("IsClosed", "boolean", "Closed", nillable=False, default_on_create=True),
        _ro("IsWon", "boolean", "Won", nillable=False, default_on_create=True),
        Field("LeadSource", "picklist", "Lead Source", 255, picklist=LEAD_SOURCE),
        Field("Type", "picklist", "Opportunity Type", 255,
              picklist=Picklist(("New Business", "Existing Business"))),
        Field("Description", "textarea", "Description", 32000),
        Field("HubSpot_Deal_Id__c", "string", "HubSpot Deal ID", 40, external_id=True,
              unique=True, custom=True),
        # Opportunity has no standard loss reason: orgs add a custom field. A Text(255) one,
        # the type `stagesync check` asks an admin to create for HubSpot's free-text
        # closed_lost_reason (a custom string field's describe: SLASerialNumber__c in the
        # recorded Account describe, nango-describe-account.test.json).
        Field("Loss_Reason__c", "string", "Loss Reason", 255, custom=True),
        Field("RecordTypeId", "reference", "Record Type ID", 18, reference_to=("RecordType",)),
        _owner(),
    ]),
    "Task": _build("Task", "Task", "Tasks", "00T", [
        Field("Subject", "combobox", "Subject", 255),
        Field("Status", "picklist", "Status", 255, nillable=False, default_on_create=True,
              picklist=TASK_STATUS),
        Field("Priority", "picklist", "Priority", 255, nillable=False, default_on_create=True,
              picklist=TASK_PRIORITY),
        Field("WhoId", "reference", "Name ID", 18, reference_to=("Contact", "Lead")),
        Field("WhatId", "reference", "Related To ID", 18,
              reference_to=("Account", "Opportunity")),
        Field("ActivityDate", "date", "Due Date Only"),
        Field("Description", "textarea", "Description", 32000),
        Field("Type", "picklist", "Type", 255, picklist=Picklist(("Call", "Email", "Meeting",
                                                                   "Other"))),
        _ro("IsClosed", "boolean", "Closed", nillable=False, default_on_create=True),
        # As the recorded Task describe has them (nango-describe-task.response.json): the
        # subtype is set on create only (createable, not updateable: an update naming it is
        # refused INVALID_FIELD_FOR_INSERT_UPDATE), a restricted picklist as CallType is.
        Field("TaskSubtype", "picklist", "Task Subtype", 40, updateable=False,
              picklist=Picklist(("Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn"),
                                restricted=True)),
        Field("CallDurationInSeconds", "int", "Call Duration", precision=9),
        Field("CallType", "picklist", "Call Type", 40,
              picklist=Picklist(("Internal", "Inbound", "Outbound"), restricted=True)),
        # The external id the agent upserts HubSpot calls, meetings and emails on (custom, as
        # HubSpot_Contact_Id__c is), so each engagement is one Task whatever crashed before.
        Field("HubSpot_Activity_Id__c", "string", "HubSpot Activity ID", 40, external_id=True,
              unique=True, custom=True),
        _owner(queues=True),
    ]),
    # Event as the field reference lists it (developer.salesforce.com, Salesforce Field
    # Reference, Event; object reference "Event"): a start kept as StartDateTime and
    # ActivityDateTime alike (its date in ActivityDate), an end as EndDateTime and
    # DurationInMinutes alike; an all-day event needs only its date. Owned by users only.
    "Event": _build("Event", "Event", "Events", "00U", [
        Field("Subject", "combobox", "Subject", 255),
        Field("WhoId", "reference", "Name ID", 18, reference_to=("Contact", "Lead")),
        Field("WhatId", "reference", "Related To ID", 18,
              reference_to=("Account", "Opportunity")),
        Field("ActivityDate", "date", "Due Date Only"),
        Field("ActivityDateTime", "datetime", "Due Date Time"),
        Field("StartDateTime", "datetime", "Start Date Time"),
        Field("EndDateTime", "datetime", "End Date Time"),
        Field("DurationInMinutes", "int", "Duration", precision=8),
        Field("IsAllDayEvent", "boolean", "All-Day Event", nillable=False,
              default_on_create=True),
        Field("Location", "string", "Location", 255),
        Field("Description", "textarea", "Description", 32000),
        Field("Type", "picklist", "Type", 255, picklist=Picklist(("Call", "Email", "Meeting",
                                                                   "Other"))),
        _owner(),
    ]),
    # OpportunityContactRole as the object reference lists it (developer.salesforce.com,
    # Object Reference, OpportunityContactRole; field reference for types and lengths): the
    # role a Contact plays on an Opportunity. OpportunityId is required and set on create only;
    # IsPrimary is defaulted (false), and an Opportunity has one primary contact (``org``
    # demotes the other). Not ownable: no OwnerId.
    "OpportunityContactRole": _build(
        "OpportunityContactRole", "Contact Role", "Contact Roles", "00K", [
            Field("OpportunityId", "reference", "Opportunity ID", 18, nillable=False,
                  updateable=False, reference_to=("Opportunity",)),
            Field("ContactId", "reference", "Contact ID", 18, nillable=False,
                  reference_to=("Contact",)),
            Field("Role", "picklist", "Role", 255, picklist=CONTACT_ROLE),
            Field("IsPrimary", "boolean", "Primary", nillable=False, default_on_create=True),
        ]),
    "RecordType": _build("RecordType", "Record Type", "Record Types", "012", [
        Field("Name", "string", "Record Type Name", 80, nillable=False),
        Field("DeveloperName", "string", "Record Type Name", 80, nillable=False),
        Field("SobjectType", "picklist", "Sobject Type Name", 40, nillable=False),
        Field("IsActive", "boolean", "Active", nillable=False, default_on_create=True),
    ], createable=False, updateable=False, deletable=False),
    "Group": _build("Group", "Group", "Groups", "00G", [
        Field("Name", "string", "Name", 40, nillable=False),
        Field("DeveloperName", "string", "Developer Name", 80, nillable=False),
        Field("Type", "picklist", "Type", 40, nillable=False, picklist=QUEUE_TYPES),
        Field("Email", "email", "Email", 255),
    ], createable=False, updateable=False, deletable=False),
    "User": _build("User", "User", "Users", "005", [
        Field("Username", "string", "Username", 80, nillable=False),
        Field("Email", "email", "Email", 128, nillable=False),
        Field("FirstName", "string", "First Name", 40),
        Field("LastName", "string", "Last Name", 80, nillable=False),
        _ro("Name", "string", "Full Name", 121),
        Field("Alias", "string", "Alias", 8, nillable=False),
        Field("IsActive", "boolean", "Active", nillable=False, default_on_create=True),
    ], createable=False, updateable=False, deletable=False),
}


# Field history, as Salesforce keeps it for an object whose fields an admin tracks
# (Salesforce Object Reference: LeadHistory, ContactHistory, AccountHistory and
# OpportunityFieldHistory; OpportunityHistory is the stage history, another object). A row is
# written when a tracked field changes (``Field`` its API name, ``created`` for the record's
# creation), at the change's time, and rows are read-only. Standard objects' history objects
# answer a query whether or not any field is tracked.
HISTORY_OF: dict[str, tuple[str, str]] = {
    "Lead": ("LeadHistory", "LeadId"), "Contact": ("ContactHistory", "ContactId"),
    "Account": ("AccountHistory", "AccountId"),
    "Opportunity": ("OpportunityFieldHistory", "OpportunityId")}


def _history(name: str, parent: str, parent_field: str) -> SObject:
    fields = [
        Field("Id", "id", f"{name} ID", 18, nillable=False, createable=False,
              updateable=False),
        Field("IsDeleted", "boolean", "Deleted", nillable=False, createable=False,
              updateable=False),
        Field(parent_field, "reference", f"{parent} ID", 18, nillable=False, createable=False,
              updateable=False, reference_to=(parent,)),
        Field("CreatedById", "reference", "Created By ID", 18, nillable=False,
              createable=False, updateable=False, reference_to=("User",)),
        Field("CreatedDate", "datetime", "Created Date", nillable=False, createable=False,
              updateable=False),
        Field("Field", "picklist", "Changed Field", 255, nillable=False, createable=False,
              updateable=False, picklist=Picklist(())),
        Field("DataType", "string", "Data Type", 40, createable=False, updateable=False),
        Field("OldValue", "anyType", "Old Value", 255, createable=False, updateable=False),
        Field("NewValue", "anyType", "New Value", 255, createable=False, updateable=False),
    ]
    return SObject(name, f"{parent} History", f"{parent} History", "017",
                   {f.name: f for f in fields}, createable=False, updateable=False,
                   deletable=False)


OBJECTS.update({name: _history(name, parent, parent_field)
                for parent, (name, parent_field) in HISTORY_OF.items()})


def soap_type(type_: str) -> str:
    return {
        "id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int",
        "double": "xsd:double", "currency": "xsd:double", "percent": "xsd:double",
        "date": "xsd:date", "datetime": "xsd:dateTime",
    }.get(type_, "xsd:string")


def describe_field(f: Field) -> dict[str, Any]:
    """A field as the describe call returns it (the keys of a recorded Task describe)."""
    picklist_values = []
    if f.picklist is not None:
        picklist_values = [
            {"active": True, "defaultValue": value == f.picklist.default, "label": value,
             "validFor": None, "value": value}
            for value in f.picklist.values
        ]
    numeric = f.type in ("double", "currency", "percent")
    return {
        "aggregatable": f.type not in ("textarea",), "aiPredictionField": False,
        "autoNumber": False, "byteLength": f.length * 3 if f.length else 0,
        "calculated": f.calculated,
        "calculatedFormula": "TODAY() - DATEVALUE(CreatedDate)" if f.calculated else None,
        "cascadeDelete": False, "caseSensitive": False,
        "compoundFieldName": _compound_of(f.name),
        "controllerName": None, "createable": f.createable, "custom": f.custom,
        "defaultValue": _default_value(f), "defaultValueFormula": None,
        "defaultedOnCreate": f.default_on_create, "dependentPicklist": False,
        "deprecatedAndHidden": False, "digits": f.precision if f.type == "int" else 0,
        "displayLocationInDecimal": False, "encrypted": False, "externalId": f.external_id,
        "extraTypeInfo": "plaintextarea" if f.type == "textarea" else None,
        "filterable": f.type != "textarea",
        "filteredLookupInfo": None, "formulaTreatNullNumberAsZero": False,
        "groupable": f.type not in ("textarea", "double", "currency", "percent", "datetime"),
        "highScaleNumber": False, "htmlFormatted": False, "idLookup": f.type == "id"
        or f.external_id or f.name == "Email",
        "inlineHelpText": None, "label": f.label, "length": f.length, "mask": None,
        "maskType": None, "name": f.name, "nameField": f.name in ("Name",),
        "namePointing": f.name in ("WhoId", "WhatId"), "nillable": f.nillable,
        "permissionable": f.nillable and f.createable, "picklistValues": picklist_values,
        "polymorphicForeignKey": len(f.reference_to) > 1,
        "precision": f.precision if numeric else 0, "queryByDistance": False,
        "referenceTargetField": None, "referenceTo": list(f.reference_to),
        "relationshipName": (f.name[:-2] if f.type == "reference" and f.name.endswith("Id")
                             else None),
        "relationshipOrder": None, "restrictedDelete": False,
        "restrictedPicklist": bool(f.picklist and f.picklist.restricted),
        "scale": f.scale if numeric else 0, "searchPrefilterable": False,
        "soapType": soap_type(f.type), "sortable": f.type != "textarea",
        "type": f.type, "unique": f.unique, "updateable": f.updateable,
        "writeRequiresMasterRead": False,
    }


_ADDRESS_PARTS = ("Street", "City", "State", "PostalCode", "Country", "Latitude",
                  "Longitude", "GeocodeAccuracy", "StateCode", "CountryCode")


def _compound_of(name: str) -> str | None:
    """The compound field an address part belongs to: ``BillingCity`` is part of
    ``BillingAddress`` and a Lead's ``City`` of ``Address`` (recorded Account describe)."""
    for part in _ADDRESS_PARTS:
        if name.endswith(part):
            prefix = name[:-len(part)]
            if prefix in ("", "Billing", "Shipping", "Mailing", "Other"):
                return prefix + "Address"
    return None


def _default_value(f: Field) -> Any:
    """A picklist's default value, and false for checkboxes (recorded Task describe:
    ``Status`` "Not Started", ``IsClosed`` false); null otherwise."""
    if f.picklist is not None and f.picklist.default is not None:
        return f.picklist.default
    return False if f.type == "boolean" else None


def record_type_id(index: int) -> str:
    """The id of the org's ``index``-th record type (1-based)."""
    return make_id("012", index)


def _record_type_infos(obj: SObject, base: str) -> list[dict[str, Any]]:
    master = "012000000000000AAA"
    own = ([(record_type_id(i + 1), dev, label)
            for i, (dev, label) in enumerate(OPPORTUNITY_RECORD_TYPES)]
           if obj.name == "Opportunity" else [])
    return [*({"active": True, "available": True, "defaultRecordTypeMapping": i == 0,
               "developerName": dev, "master": False, "name": label, "recordTypeId": rid,
               "urls": {"layout": f"{base}/describe/layouts/{rid}"}}
              for i, (rid, dev, label) in enumerate(own)),
            {"active": True, "available": not own, "defaultRecordTypeMapping": not own,
             "developerName": "Master", "master": True, "name": "Master",
             "recordTypeId": master, "urls": {"layout": f"{base}/describe/layouts/{master}"}}]


def describe_object(obj: SObject, version: str, instance: str = "") -> dict[str, Any]:
    """The body of ``GET /sobjects/{name}/describe`` (``instance``: the org's URL, which the
    recorded describes name in their ``ui*`` links)."""
    base = f"/services/data/v{version}/sobjects/{obj.name}"
    body = _describe_body(obj, version, base)
    body["urls"] |= {"uiDetailTemplate": f"{instance}/{{ID}}",
                     "uiEditTemplate": f"{instance}/{{ID}}/e",
                     "uiNewRecord": f"{instance}/{obj.key_prefix}/e"}
    if obj.name in ("Account", "Contact", "Lead", "Opportunity"):  # Task has neither
        body["urls"] |= {"approvalLayouts": f"{base}/describe/approvalLayouts",
                         "listviews": f"{base}/listviews"}
    if obj.name == "Account":  # a recorded org with person accounts: Name is switchable
        for field in body["fields"]:
            if field["name"] == "Name":
                field |= {"compoundFieldName": "Name", "extraTypeInfo": "switchablepersonname"}
    return body


def _describe_body(obj: SObject, version: str, base: str) -> dict[str, Any]:
    return {
        "actionOverrides": [], "activateable": False, "associateEntityType": None,
        "associateParentEntity": None, "childRelationships": [], "compactLayoutable": True,
        "createable": obj.createable, "custom": False, "customSetting": False,
        "deepCloneable": False, "defaultImplementation": None, "deletable": obj.deletable,
        "deprecatedAndHidden": False, "extendedBy": None, "extendsInterfaces": None,
        "feedEnabled": True, "fields": [describe_field(f) for f in obj.fields.values()],
        "hasSubtypes": False, "implementedBy": None, "implementsInterfaces": None,
        "isInterface": False, "isSubtype": False, "keyPrefix": obj.key_prefix,
        "label": obj.label, "labelPlural": obj.label_plural, "layoutable": True,
        "listviewable": None, "lookupLayoutable": None, "mergeable": obj.mergeable,
        "mruEnabled": True, "name": obj.name, "namedLayoutInfos": [],
        "networkScopeFieldName": None, "queryable": True,
        "recordTypeInfos": _record_type_infos(obj, base),
        "replicateable": True, "retrieveable": True, "searchLayoutable": True,
        "searchable": True, "sobjectDescribeOption": "FULL", "supportedScopes": [],
        "triggerable": True, "undeletable": obj.deletable, "updateable": obj.updateable,
        "urls": {
            "compactLayouts": f"{base}/describe/compactLayouts", "rowTemplate": f"{base}/{{ID}}",
            "describe": f"{base}/describe", "sobject": base,
            "layouts": f"{base}/describe/layouts", "quickActions": f"{base}/quickActions",
            "uiDetailTemplate": None, "uiEditTemplate": None, "uiNewRecord": None,
        },
    }


def describe_global_entry(obj: SObject, version: str) -> dict[str, Any]:
    base = f"/services/data/v{version}/sobjects/{obj.name}"
    return {
        "activateable": False, "createable": obj.createable, "custom": False,
        "customSetting": False, "deepCloneable": False, "deletable": obj.deletable,
        "deprecatedAndHidden": False, "feedEnabled": True, "hasSubtypes": False,
        "isInterface": False, "isSubtype": False, "keyPrefix": obj.key_prefix,
        "label": obj.label, "labelPlural": obj.label_plural, "layoutable": True,
        "mergeable": obj.mergeable, "mruEnabled": True, "name": obj.name, "queryable": True,
        "replicateable": True, "retrieveable": True, "searchable": True, "triggerable": True,
        "undeletable": obj.deletable, "updateable": obj.updateable,
        "urls": {"rowTemplate": f"{base}/{{ID}}", "describe": f"{base}/describe",
                 "sobject": base},
    }
