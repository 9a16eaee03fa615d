"""Properties, pipelines and association types of the emulated portal.

Property definitions follow the recorded ``/crm/v3/properties`` bodies; the option sets of
``lifecyclestage`` and ``hs_lead_status`` are HubSpot's defaults. Every value travels as a
string (numbers too), which is a HubSpot quirk the connectors must handle.

As recorded (``../shared/reference/hubspot/nango-properties-companies.test.json``,
``nango-properties-deals.response.json``, ``amp-properties-deals-sampled.json``):
``industry`` has 148 options and no ``OTHER``; ``lifecyclestage``, ``dealstage``, ``pipeline``
and ``hubspot_owner_id`` have ``externalOptions: true``; ``dealstage`` and ``pipeline`` list no
options at all, so their valid values are only in ``/crm/v3/pipelines/deals``, and the valid
lifecycle stages are the stages of the lifecycle pipeline
(``amp-pipelines-contacts-lifecycle.json``), which include any stage the portal defined itself.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

# Engagements (activities a rep logs), with their object type ids and their association
# type ids to and from contacts, from HubSpot's object and association type references.
ENGAGEMENTS: dict[str, tuple[str, str, int, int]] = {  # type -> (singular, id, to, from)
    "calls": ("call", "0-48", 194, 193), "emails": ("email", "0-49", 198, 197),
    "meetings": ("meeting", "0-47", 200, 199), "notes": ("note", "0-46", 202, 201),
    "tasks": ("task", "0-27", 204, 203)}
OBJECT_TYPE_IDS = {"contacts": "0-1", "companies": "0-2", "deals": "0-3",
                   **{name: spec[1] for name, spec in ENGAGEMENTS.items()}}
SINGULAR = {"contacts": "contact", "companies": "company", "deals": "deal",
            **{name: spec[0] for name, spec in ENGAGEMENTS.items()}}
ALIASES = {
    "contacts": "contacts", "contact": "contacts", "0-1": "contacts",
    "companies": "companies", "company": "companies", "0-2": "companies",
    "deals": "deals", "deal": "deals", "0-3": "deals",
    **{alias: name for name, spec in ENGAGEMENTS.items() for alias in (name, *spec[:2])},
}
LAST_MODIFIED = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate",
                 "deals": "hs_lastmodifieddate",
                 **{name: "hs_lastmodifieddate" for name in ENGAGEMENTS}}
DEFAULT_PROPERTIES = {
    "contacts": ["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate",
                 "lastname"],
    "companies": ["createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"],
    "deals": ["amount", "closedate", "createdate", "dealname", "dealstage",
              "hs_lastmodifieddate", "hs_object_id", "pipeline"],
    **{name: ["hs_createdate", "hs_lastmodifieddate", "hs_object_id", "hs_timestamp"]
       for name in ENGAGEMENTS},
}
LIFECYCLE_STAGES = [
    ("subscriber", "Subscriber"), ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"), ("opportunity", "Opportunity"),
    ("customer", "Customer"), ("evangelist", "Evangelist"), ("other", "Other"),
]
LIFECYCLE_ORDER = {value: index for index, (value, _) in enumerate(LIFECYCLE_STAGES)}
# The lifecycle pipeline marks "other" closed (amp-pipelines-contacts-lifecycle.json).
CLOSED_LIFECYCLE_STAGES = frozenset({"other"})
# Properties whose options live elsewhere (pipelines, owners): recorded externalOptions: true.
EXTERNAL_OPTIONS = frozenset({"lifecyclestage", "dealstage", "pipeline", "hubspot_owner_id"})
# HubSpot's Objects guide: a deal needs these when it is created.
DEAL_REQUIRED = ("dealname", "dealstage", "pipeline")
LEAD_STATUSES = [
    ("NEW", "New"), ("OPEN", "Open"), ("IN_PROGRESS", "In Progress"),
    ("OPEN_DEAL", "Open Deal"), ("UNQUALIFIED", "Unqualified"),
    ("ATTEMPTED_TO_CONTACT", "Attempted to Contact"), ("CONNECTED", "Connected"),
    ("BAD_TIMING", "Bad Timing"),
]
# (stage id, label, probability, closed) of the default "Sales Pipeline", as recorded.
DEAL_STAGES = [
    ("appointmentscheduled", "Appointment Scheduled", "0.2", "false"),
    ("qualifiedtobuy", "Qualified To Buy", "0.4", "false"),
    ("presentationscheduled", "Presentation Scheduled", "0.6", "false"),
    ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", "false"),
    ("contractsent", "Contract Sent", "0.9", "false"),
    ("closedwon", "Closed Won", "1.0", "true"),
    ("closedlost", "Closed Lost", "0.0", "true"),
]


@dataclass(frozen=True)
class Pipeline:
    """A deal pipeline: its id and its stages (id, label, probability, closed)."""

    id: str
    label: str
    stages: tuple[tuple[str, str, str, str], ...]


DEFAULT_PIPELINE = Pipeline("default", "Sales Pipeline", tuple(DEAL_STAGES))
# A pipeline a portal adds itself: HubSpot gives it and its stages numeric ids.
RENEWALS_PIPELINE = Pipeline("705209413", "Renewals", (
    ("1033186541", "Renewal Due", "0.3", "false"),
    ("1033186542", "Renewal Quoted", "0.6", "false"),
    ("1033186543", "Renewed", "1.0", "true"),
    ("1033186544", "Churned", "0.0", "true"),
))
# The 148 options of companies' `industry`, in their recorded order (there is no OTHER).
INDUSTRIES = [
    ("ACCOUNTING", "Accounting"), ("AIRLINES_AVIATION", "Airlines/Aviation"),
    ("ALTERNATIVE_DISPUTE_RESOLUTION", "Alternative Dispute Resolution"),
    ("ALTERNATIVE_MEDICINE", "Alternative Medicine"), ("ANIMATION", "Animation"),
    ("APPAREL_FASHION", "Apparel & Fashion"), ("ARCHITECTURE_PLANNING", "Architecture & Planning"),
    ("ARTS_AND_CRAFTS", "Arts and Crafts"), ("AUTOMOTIVE", "Automotive"),
    ("AVIATION_AEROSPACE", "Aviation & Aerospace"), ("BANKING", "Banking"),
    ("BIOTECHNOLOGY", "Biotechnology"), ("BROADCAST_MEDIA", "Broadcast Media"),
    ("BUILDING_MATERIALS", "Building Materials"),
    ("BUSINESS_SUPPLIES_AND_EQUIPMENT", "Business Supplies and Equipment"),
    ("CAPITAL_MARKETS", "Capital Markets"), ("CHEMICALS", "Chemicals"),
    ("CIVIC_SOCIAL_ORGANIZATION", "Civic & Social Organization"),
    ("CIVIL_ENGINEERING", "Civil Engineering"),
    ("COMMERCIAL_REAL_ESTATE", "Commercial Real Estate"),
    ("COMPUTER_NETWORK_SECURITY", "Computer & Network Security"),
    ("COMPUTER_GAMES", "Computer Games"), ("COMPUTER_HARDWARE", "Computer Hardware"),
    ("COMPUTER_NETWORKING", "Computer Networking"), ("COMPUTER_SOFTWARE", "Computer Software"),
    ("INTERNET", "Internet"), ("CONSTRUCTION", "Construction"),
    ("CONSUMER_ELECTRONICS", "Consumer Electronics"), ("CONSUMER_GOODS", "Consumer Goods"),
    ("CONSUMER_SERVICES", "Consumer Services"), ("COSMETICS", "Cosmetics"), ("DAIRY", "Dairy"),
    ("DEFENSE_SPACE", "Defense & Space"), ("DESIGN", "Design"),
    ("EDUCATION_MANAGEMENT", "Education Management"), ("E_LEARNING", "E-Learning"),
    ("ELECTRICAL_ELECTRONIC_MANUFACTURING", "Electrical/Electronic Manufacturing"),
    ("ENTERTAINMENT", "Entertainment"), ("ENVIRONMENTAL_SERVICES", "Environmental Services"),
    ("EVENTS_SERVICES", "Events Services"), ("EXECUTIVE_OFFICE", "Executive Office"),
    ("FACILITIES_SERVICES", "Facilities Services"), ("FARMING", "Farming"),
    ("FINANCIAL_SERVICES", "Financial Services"), ("FINE_ART", "Fine Art"), ("FISHERY", "Fishery"),
    ("FOOD_BEVERAGES", "Food & Beverages"), ("FOOD_PRODUCTION", "Food Production"),
    ("FUND_RAISING", "Fund-Raising"), ("FURNITURE", "Furniture"),
    ("GAMBLING_CASINOS", "Gambling & Casinos"),
    ("GLASS_CERAMICS_CONCRETE", "Glass, Ceramics & Concrete"),
    ("GOVERNMENT_ADMINISTRATION", "Government Administration"),
    ("GOVERNMENT_RELATIONS", "Government Relations"), ("GRAPHIC_DESIGN", "Graphic Design"),
    ("HEALTH_WELLNESS_AND_FITNESS", "Health, Wellness and Fitness"),
    ("HIGHER_EDUCATION", "Higher Education"), ("HOSPITAL_HEALTH_CARE", "Hospital & Health Care"),
    ("HOSPITALITY", "Hospitality"), ("HUMAN_RESOURCES", "Human Resources"),
    ("IMPORT_AND_EXPORT", "Import and Export"),
    ("INDIVIDUAL_FAMILY_SERVICES", "Individual & Family Services"),
    ("INDUSTRIAL_AUTOMATION", "Industrial Automation"),
    ("INFORMATION_SERVICES", "Information Services"),
    ("INFORMATION_TECHNOLOGY_AND_SERVICES", "Information Technology and Services"),
    ("INSURANCE", "Insurance"), ("INTERNATIONAL_AFFAIRS", "International Affairs"),
    ("INTERNATIONAL_TRADE_AND_DEVELOPMENT", "International Trade and Development"),
    ("INVESTMENT_BANKING", "Investment Banking"),
    ("INVESTMENT_MANAGEMENT", "Investment Management"), ("JUDICIARY", "Judiciary"),
    ("LAW_ENFORCEMENT", "Law Enforcement"), ("LAW_PRACTICE", "Law Practice"),
    ("LEGAL_SERVICES", "Legal Services"), ("LEGISLATIVE_OFFICE", "Legislative Office"),
    ("LEISURE_TRAVEL_TOURISM", "Leisure, Travel & Tourism"), ("LIBRARIES", "Libraries"),
    ("LOGISTICS_AND_SUPPLY_CHAIN", "Logistics and Supply Chain"),
    ("LUXURY_GOODS_JEWELRY", "Luxury Goods & Jewelry"), ("MACHINERY", "Machinery"),
    ("MANAGEMENT_CONSULTING", "Management Consulting"), ("MARITIME", "Maritime"),
    ("MARKET_RESEARCH", "Market Research"),
    ("MARKETING_AND_ADVERTISING", "Marketing and Advertising"),
    ("MECHANICAL_OR_INDUSTRIAL_ENGINEERING", "Mechanical or Industrial Engineering"),
    ("MEDIA_PRODUCTION", "Media Production"), ("MEDICAL_DEVICES", "Medical Devices"),
    ("MEDICAL_PRACTICE", "Medical Practice"), ("MENTAL_HEALTH_CARE", "Mental Health Care"),
    ("MILITARY", "Military"), ("MINING_METALS", "Mining & Metals"),
    ("MOTION_PICTURES_AND_FILM", "Motion Pictures and Film"),
    ("MUSEUMS_AND_INSTITUTIONS", "Museums and Institutions"), ("MUSIC", "Music"),
    ("NANOTECHNOLOGY", "Nanotechnology"), ("NEWSPAPERS", "Newspapers"),
    ("NON_PROFIT_ORGANIZATION_MANAGEMENT", "Non-Profit Organization Management"),
    ("OIL_ENERGY", "Oil & Energy"), ("ONLINE_MEDIA", "Online Media"),
    ("OUTSOURCING_OFFSHORING", "Outsourcing/Offshoring"),
    ("PACKAGE_FREIGHT_DELIVERY", "Package/Freight Delivery"),
    ("PACKAGING_AND_CONTAINERS", "Packaging and Containers"),
    ("PAPER_FOREST_PRODUCTS", "Paper & Forest Products"), ("PERFORMING_ARTS", "Performing Arts"),
    ("PHARMACEUTICALS", "Pharmaceuticals"), ("PHILANTHROPY", "Philanthropy"),
    ("PHOTOGRAPHY", "Photography"), ("PLASTICS", "Plastics"),
    ("POLITICAL_ORGANIZATION", "Political Organization"),
    ("PRIMARY_SECONDARY_EDUCATION", "Primary/Secondary Education"), ("PRINTING", "Printing"),
    ("PROFESSIONAL_TRAINING_COACHING", "Professional Training & Coaching"),
    ("PROGRAM_DEVELOPMENT", "Program Development"), ("PUBLIC_POLICY", "Public Policy"),
    ("PUBLIC_RELATIONS_AND_COMMUNICATIONS", "Public Relations and Communications"),
    ("PUBLIC_SAFETY", "Public Safety"), ("PUBLISHING", "Publishing"),
    ("RAILROAD_MANUFACTURE", "Railroad Manufacture"), ("RANCHING", "Ranching"),
    ("REAL_ESTATE", "Real Estate"),
    ("RECREATIONAL_FACILITIES_AND_SERVICES", "Recreational Facilities and Services"),
    ("RELIGIOUS_INSTITUTIONS", "Religious Institutions"),
    ("RENEWABLES_ENVIRONMENT", "Renewables & Environment"), ("RESEARCH", "Research"),
    ("RESTAURANTS", "Restaurants"), ("RETAIL", "Retail"),
    ("SECURITY_AND_INVESTIGATIONS", "Security and Investigations"),
    ("SEMICONDUCTORS", "Semiconductors"), ("SHIPBUILDING", "Shipbuilding"),
    ("SPORTING_GOODS", "Sporting Goods"), ("SPORTS", "Sports"),
    ("STAFFING_AND_RECRUITING", "Staffing and Recruiting"), ("SUPERMARKETS", "Supermarkets"),
    ("TELECOMMUNICATIONS", "Telecommunications"), ("TEXTILES", "Textiles"),
    ("THINK_TANKS", "Think Tanks"), ("TOBACCO", "Tobacco"),
    ("TRANSLATION_AND_LOCALIZATION", "Translation and Localization"),
    ("TRANSPORTATION_TRUCKING_RAILROAD", "Transportation/Trucking/Railroad"),
    ("UTILITIES", "Utilities"),
    ("VENTURE_CAPITAL_PRIVATE_EQUITY", "Venture Capital & Private Equity"),
    ("VETERINARY", "Veterinary"), ("WAREHOUSING", "Warehousing"), ("WHOLESALE", "Wholesale"),
    ("WINE_AND_SPIRITS", "Wine and Spirits"), ("WIRELESS", "Wireless"),
    ("WRITING_AND_EDITING", "Writing and Editing"), ("MOBILE_GAMES", "Mobile Games"),
]


@dataclass(frozen=True)
class Prop:
    name: str
    label: str
    type: str
    field_type: str
    group: str
    options: tuple[tuple[str, str], ...] = ()
    read_only: bool = False
    calculated: bool = False
    unique: bool = False
    hubspot_defined: bool = True
    referenced: str | None = None  # the object a record id refers to (referencedObjectType)


def _p(name: str, label: str, type_: str = "string", field_type: str = "text",
       group: str = "contactinformation", **extra: Any) -> Prop:
    return Prop(name, label, type_, field_type, group, **extra)


def _enum(name: str, label: str, options: list[tuple[str, str]], group: str,
          **extra: Any) -> Prop:
    return Prop(name, label, "enumeration", "select", group, tuple(options), **extra)


_LIFECYCLE = [(v, label) for v, label in LIFECYCLE_STAGES]
_COMMON = [
    _p("createdate", "Create Date", "datetime", "date", read_only=True),
    _p("hs_object_id", "Record ID", "number", "number", read_only=True),
    _p("hubspot_owner_id", "Owner", "enumeration", "select"),
    _p("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", read_only=True),
    # Set by HubSpot on the record a merge makes: the ids merged into it, ";"-separated.
    _p("hs_merged_object_ids", "Merged record IDs", "enumeration", "checkbox",
       read_only=True),
    # A calculated property HubSpot fills in on its own after a create (original source).
    _p("hs_analytics_source_data_1", "Original Source Drill-Down 1", read_only=True,
       calculated=True),
]


def _with(group: str, props: list[Prop]) -> dict[str, Prop]:
    common = [Prop(p.name, p.label, p.type, p.field_type, group, p.options, p.read_only,
                   p.calculated, p.unique) for p in _COMMON]  # (no references among them)
    return {p.name: p for p in common + props}


PROPERTIES: dict[str, dict[str, Prop]] = {
    "contacts": _with("contactinformation", [
        _p("email", "Email", unique=True),
        _p("firstname", "First Name"),
        _p("lastname", "Last Name"),
        _p("phone", "Phone Number", field_type="phonenumber"),
        _p("mobilephone", "Mobile Phone Number", field_type="phonenumber"),
        _p("company", "Company Name"),
        _p("jobtitle", "Job Title"),
        _p("website", "Website URL"),
        _p("city", "City"),
        _p("state", "State/Region"),
        _p("country", "Country/Region"),
        _p("lastmodifieddate", "Last Modified Date", "datetime", "date", read_only=True),
        _enum("lifecyclestage", "Lifecycle Stage", _LIFECYCLE, "contactinformation"),
        _enum("hs_lead_status", "Lead Status", LEAD_STATUSES, "sales_properties"),
        _p("hubspotscore", "HubSpot Score", "number", "number", read_only=True,
           calculated=True),
        _p("hs_analytics_source", "Original Source", "enumeration", "select",
           options=(("ORGANIC_SEARCH", "Organic Search"), ("PAID_SEARCH", "Paid Search"),
                    ("EMAIL_MARKETING", "Email Marketing"), ("SOCIAL_MEDIA", "Organic Social"),
                    ("REFERRALS", "Referrals"), ("DIRECT_TRAFFIC", "Direct Traffic"),
                    ("OFFLINE", "Offline Sources"))),
        _p("notes_last_updated", "Last Activity Date", "datetime", "date", read_only=True),
        # the primary company's id, writable and hidden, as in the recorded property list
        _p("associatedcompanyid", "Primary Associated Company ID", "number", "number",
           referenced="COMPANY"),
        _p("num_associated_deals", "Number of Associated Deals", "number", "number",
           read_only=True, calculated=True),
        _p("salesforceleadid", "Salesforce Lead ID", hubspot_defined=False),
        _p("salesforcecontactid", "Salesforce Contact ID", hubspot_defined=False),
        _p("stagesync_cold_lead", "Cold lead (stagesync)", "bool", "booleancheckbox",
           options=(("true", "Yes"), ("false", "No")), hubspot_defined=False),
    ]),
    "companies": _with("companyinformation", [
        _p("num_associated_contacts", "Number of Associated Contacts", "number", "number",
           group="companyinformation", read_only=True, calculated=True),
        _p("num_associated_deals", "Number of Associated Deals", "number", "number",
           group="companyinformation", read_only=True, calculated=True),
        _p("name", "Company name", group="companyinformation"),
        _p("domain", "Company Domain Name", group="companyinformation", unique=False),
        _p("phone", "Phone Number", field_type="phonenumber", group="companyinformation"),
        _enum("industry", "Industry", INDUSTRIES, "companyinformation"),
        _p("city", "City", group="companyinformation"),
        _p("state", "State/Region", group="companyinformation"),
        _p("country", "Country/Region", group="companyinformation"),
        _p("numberofemployees", "Number of Employees", "number", "number",
           group="companyinformation"),
        _p("annualrevenue", "Annual Revenue", "number", "number", group="companyinformation"),
        _enum("lifecyclestage", "Lifecycle Stage", _LIFECYCLE, "companyinformation"),
        _p("salesforceaccountid", "Salesforce Account ID", group="companyinformation",
           hubspot_defined=False),
    ]),
    "deals": _with("dealinformation", [
        _p("num_associated_contacts", "Number of Associated Contacts", "number", "number",
           group="dealinformation", read_only=True, calculated=True),
        _p("dealname", "Deal Name", group="dealinformation"),
        _p("amount", "Amount", "number", "number", group="dealinformation"),
        _p("dealstage", "Deal Stage", "enumeration", "radio", group="dealinformation"),
        _p("pipeline", "Pipeline", "enumeration", "select", group="dealinformation"),
        _p("closedate", "Close Date", "datetime", "date", group="dealinformation"),
        _p("hs_is_closed", "Is Deal Closed?", "bool", "booleancheckbox",
           group="dealinformation", read_only=True, calculated=True,
           options=(("true", "True"), ("false", "False"))),
        _p("dealtype", "Deal Type", "enumeration", "radio", group="dealinformation",
           options=(("newbusiness", "New Business"), ("existingbusiness", "Existing Business"))),
        _p("salesforceopportunityid", "Salesforce Opportunity ID", group="dealinformation",
           hubspot_defined=False),
        # HubSpot's own reason properties, free text a rep fills in when a deal closes
        # (recorded in nango-properties-deals.response.json; see _RECORDED_AS).
        _p("closed_lost_reason", "Closed Lost Reason", field_type="textarea",
           group="deal_activity"),
        _p("closed_won_reason", "Closed Won Reason", field_type="textarea",
           group="deal_activity"),
    ]),
}

# Association type ids (HUBSPOT_DEFINED), from HubSpot's association type reference.
ASSOCIATION_TYPES: dict[tuple[str, str], list[tuple[int, str | None]]] = {
    ("contacts", "companies"): [(279, None), (1, "Primary")],
    ("companies", "contacts"): [(280, None), (2, "Primary")],
    ("deals", "contacts"): [(3, None)],
    ("contacts", "deals"): [(4, None)],
    ("deals", "companies"): [(341, None), (5, "Primary")],
    ("companies", "deals"): [(342, None), (6, "Primary")],
    **{(name, "contacts"): [(spec[2], None)] for name, spec in ENGAGEMENTS.items()},
    **{("contacts", name): [(spec[3], None)] for name, spec in ENGAGEMENTS.items()},
}
# What an engagement holds here: when it happened (``hs_timestamp``, which the contact's last
# activity date follows) and its text.
_ENGAGEMENT_TEXT = {"calls": ("hs_call_title", "hs_call_body"),
                    "emails": ("hs_email_subject", "hs_email_text"),
                    "meetings": ("hs_meeting_title", "hs_meeting_body"),
                    "notes": ("hs_note_body",), "tasks": ("hs_task_subject", "hs_task_body")}
# What each type says about how it went, as HubSpot's engagement guides list them
# (developers.hubspot.com/docs/api/crm/calls, /email, /meetings): a call's duration in
# milliseconds, direction and status; an email's direction (EMAIL: sent from or logged to the
# CRM; INCOMING_EMAIL: a reply; FORWARDED_EMAIL) and send status; a meeting's times and outcome.
_ENGAGEMENT_STATE = {
    "calls": [_p("hs_call_duration", "Call duration", "number", "number", group="engagement"),
              _enum("hs_call_direction", "Call direction", [("INBOUND", "Inbound"),
                    ("OUTBOUND", "Outbound")], "engagement"),
              _enum("hs_call_status", "Call status", [(v, v.title()) for v in (
                  "BUSY", "CALLING_CRM_USER", "CANCELED", "COMPLETED", "CONNECTING",
                  "FAILED", "IN_PROGRESS", "NO_ANSWER", "QUEUED", "RINGING")], "engagement")],
    "emails": [_enum("hs_email_direction", "Email direction", [
                   ("EMAIL", "Sent or logged"), ("INCOMING_EMAIL", "Reply"),
                   ("FORWARDED_EMAIL", "Forwarded")], "engagement"),
               _enum("hs_email_status", "Email send status", [(v, v.title()) for v in (
                   "BOUNCED", "FAILED", "SCHEDULED", "SENDING", "SENT")], "engagement")],
    "meetings": [_p("hs_meeting_start_time", "Start time", "datetime", "date",
                    group="engagement"),
                 _p("hs_meeting_end_time", "End time", "datetime", "date", group="engagement"),
                 _enum("hs_meeting_outcome", "Outcome", [(v, v.title()) for v in (
                     "SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED")],
                     "engagement")],
}
for _name, _texts in _ENGAGEMENT_TEXT.items():
    PROPERTIES[_name] = _with("engagement", [
        _p("hs_timestamp", "Activity date", "datetime", "date", group="engagement"),
        _p("hs_createdate", "Create date", "datetime", "date", group="engagement",
           read_only=True),
        *(_p(t, t, group="engagement") for t in _texts),
        *_ENGAGEMENT_STATE.get(_name, [])])

# The counts HubSpot keeps of a record's associations (property -> associated object).
ROLLUP_COUNTS: dict[str, tuple[tuple[str, str], ...]] = {
    "contacts": (("num_associated_deals", "deals"),),
    "companies": (("num_associated_contacts", "contacts"), ("num_associated_deals", "deals")),
    "deals": (("num_associated_contacts", "contacts"),),
}
EPOCH = "1970-01-01T00:00:00Z"


def property_body(prop: Prop, owners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A property as ``GET /crm/v3/properties/{objectType}`` returns it."""
    options = list(prop.options)
    if prop.name == "hubspot_owner_id" and owners:
        options = [(o["id"], f"{o['firstName']} {o['lastName']}") for o in owners]
    return _as_recorded({
        "updatedAt": "2024-09-12T14:22:56.844Z", "createdAt": "2019-08-06T02:41:08.304Z",
        "name": prop.name, "label": prop.label, "type": prop.type,
        "fieldType": prop.field_type, "description": "", "groupName": prop.group,
        "options": [{"label": label, "value": value, "displayOrder": index, "hidden": False}
                    for index, (value, label) in enumerate(options)],
        "displayOrder": -1, "calculated": prop.calculated, "externalOptions":
        prop.name in EXTERNAL_OPTIONS, "hasUniqueValue": prop.unique, "hidden": False,
        "hubspotDefined": prop.hubspot_defined,
        "modificationMetadata": {"archivable": True,  # true on most recorded properties
                                 "readOnlyDefinition": prop.hubspot_defined,
                                 "readOnlyValue": prop.read_only},
        "formField": not prop.read_only, "dataSensitivity": "non_sensitive",
    } | _recorded_extras(prop) | (
        {"referencedObjectType": prop.referenced} if prop.referenced else {}), prop)


# Per-property keys the recorded property lists carry (nango-properties-deals,
# nango-properties-companies, amp-properties-contacts-sampled): present on some properties,
# absent on others, so the sandbox gives each only where the recordings show it.
_CURRENCY = {"amount", "annualrevenue"}
_READ_ONLY_OPTIONS = {"dealstage": False, "dealtype": False, "industry": False,
                      "hs_lead_status": False, "hs_analytics_source": True}
_FORMULAS = {"hs_is_closed": "(pipeline_probability(string(dealstage)) <= 0 or "
                             "pipeline_probability(string(dealstage)) >= 1)"}
_NO_DATES = {"hs_object_id"}  # recorded without createdAt/updatedAt
_EPOCH_CREATED = {"hs_merged_object_ids"}  # recorded created 1970-01-01T00:00:00Z
_CREATOR = "76070032"
# Properties whose recorded definition differs from the defaults above, as recorded
# (nango-properties-deals.response.json): the reason properties are HubSpot's own yet not
# archivable, their definition editable, not on forms, with a description.
_RECORDED_AS: dict[str, dict[str, Any]] = {
    "closed_lost_reason": {
        "updatedAt": "2023-06-20T22:32:28.368Z", "createdAt": "2020-06-30T15:57:38.315Z",
        "description": "Reason why this deal was lost", "displayOrder": 11,
        "formField": False, "modificationMetadata": {
            "archivable": False, "readOnlyDefinition": False, "readOnlyValue": False}},
    "closed_won_reason": {
        "updatedAt": "2023-06-20T22:30:05.213Z", "createdAt": "2020-06-30T15:57:38.269Z",
        "description": "Reason why this deal was won", "displayOrder": 12,
        "formField": False, "modificationMetadata": {
            "archivable": False, "readOnlyDefinition": False, "readOnlyValue": False}},
}


def _recorded_extras(prop: Prop) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if prop.name in _CURRENCY:
        extras["showCurrencySymbol"] = True
    if prop.name in _FORMULAS:
        extras |= {"showCurrencySymbol": False, "calculationFormula": _FORMULAS[prop.name]}
    if prop.name == "hubspot_owner_id":
        extras["referencedObjectType"] = "OWNER"
    return extras


def _as_recorded(body: dict[str, Any], prop: Prop) -> dict[str, Any]:
    """Keys the recordings show missing: a custom property has no ``hubspotDefined`` but names
    its creator and says ``archived``; some have no dates; ``readOnlyOptions`` only on some."""
    if prop.name in _READ_ONLY_OPTIONS:
        body["modificationMetadata"]["readOnlyOptions"] = _READ_ONLY_OPTIONS[prop.name]
    if prop.name in _NO_DATES:
        body.pop("createdAt")
        body.pop("updatedAt")
    if prop.name in _EPOCH_CREATED:
        body["createdAt"] = EPOCH
    if prop.hubspot_defined and prop.name in _RECORDED_AS:
        body |= copy.deepcopy(_RECORDED_AS[prop.name])
    if not prop.hubspot_defined:
        del body["hubspotDefined"]
        body |= {"createdUserId": _CREATOR, "updatedUserId": _CREATOR, "archived": False}
    return body


def _stage(index: int, sid: str, label: str, metadata: dict[str, str]) -> dict[str, Any]:
    return {"label": label, "displayOrder": index, "metadata": metadata, "id": sid,
            "createdAt": EPOCH, "updatedAt": EPOCH,
            "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT", "archived": False}


def pipelines_body(object_type: str, deal_pipelines: list[Pipeline] | None = None,
                   lifecycle: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """Deal pipelines, and the contacts' (companies') lifecycle stages shown as a pipeline,
    in the recorded shapes (amp-pipelines-deals.json, amp-pipelines-contacts-lifecycle.json)."""
    if object_type == "deals":
        return [{"label": p.label, "displayOrder": n, "id": p.id,
                 "stages": [_stage(i, sid, label, {"isClosed": closed, "probability": prob})
                            for i, (sid, label, prob, closed) in enumerate(p.stages)],
                 "createdAt": EPOCH, "updatedAt": EPOCH, "archived": False}
                for n, p in enumerate(deal_pipelines or [DEFAULT_PIPELINE])]
    if object_type in ("contacts", "companies"):
        stages = [_stage(i, value, label, {"isClosed": "true", "state": "CLOSED"}
                         if value in CLOSED_LIFECYCLE_STAGES
                         else {"isClosed": "false", "state": "OPEN"})
                  for i, (value, label) in enumerate(lifecycle or LIFECYCLE_STAGES)]
        return [{"label": "Lifecycle Stage Pipeline", "displayOrder": 0,
                 "id": f"{object_type}-lifecycle-pipeline", "stages": stages,
                 "createdAt": EPOCH, "updatedAt": EPOCH, "archived": False}]
    return []
