"""How each missing field or property is added: a HubSpot property through the properties API,
a Salesforce field by the admin in Setup.

Salesforce fields are not created through the API here. The Tooling API's ``CustomField``
create would need the integration user to hold Customize Application (more than syncing
needs), and a field made that way is visible to no one until field-level security is granted
separately (``FieldPermissions`` on a permission set, a second API), so the steps an admin
follows in Setup, field-level security included, are printed instead.
"""

from __future__ import annotations

from typing import Any

from mapping.needs import FieldNeed, hubspot_type, salesforce_type

# The property group each object's own properties are in (as HubSpot's property lists have
# them: contactinformation, companyinformation, dealinformation).
HUBSPOT_GROUPS = {"contacts": "contactinformation", "companies": "companyinformation",
                  "deals": "dealinformation"}
BOOLEAN_OPTIONS = (("true", "Yes"), ("false", "No"))


def hubspot_property(need: FieldNeed) -> dict[str, Any]:
    """The ``PropertyCreate`` body of a needed HubSpot property."""
    kind, field_type = hubspot_type(need)
    options = (BOOLEAN_OPTIONS if kind == "bool" else
               tuple((v, v) for v in need.options) if kind == "enumeration" else ())
    return {"name": need.name, "label": need.label, "type": kind, "field_type": field_type,
            "group_name": HUBSPOT_GROUPS.get(need.object, f"{need.object}information"),
            "description": f"Kept by stagesync ({need.why})",
            "options": [{"label": label, "value": value, "hidden": False,
                         "display_order": index}
                        for index, (value, label) in enumerate(options)]}


def salesforce_steps(need: FieldNeed) -> str:
    """What an admin does in Setup so the integration user sees (and may write) the field."""
    where = f"Setup > Object Manager > {need.object} > Fields & Relationships"
    access = ("Field-Level Security: tick Visible (leave Read-Only unticked) for the "
              "integration user's profile, or grant Read and Edit in its permission set")
    if not need.custom:  # a standard field missing from describe is hidden from the user
        return f"{where} > {need.name} > Set Field-Level Security: {access.split(': ', 1)[1]}"
    kind = salesforce_type(need)
    word = {"text": "Text", "number": "Number", "integer": "Number", "boolean": "Checkbox",
            "date": "Date", "datetime": "Date/Time", "picklist": "Picklist",
            "lookup": "Lookup Relationship"}[need.kind]
    details = [f"Field Label: {need.label}", f"Field Name: {need.name.removesuffix('__c')}"]
    if need.kind == "text":
        details.append(f"Length: {kind.split('(')[1].split(')')[0]}")
    if need.kind in ("number", "integer"):
        details.append("Length: 18, Decimal Places: 0" if need.kind == "integer"
                       else "Length: 16, Decimal Places: 2")
    if need.kind == "picklist":
        details.append(f"Values: {', '.join(need.options)}")
    if need.kind == "lookup":
        details.append(f"Related To: {need.reference_to}")
    if need.external_id:
        details.append("tick Unique and External ID")
    return (f"{where} > New > {word}; {'; '.join(details)}; Next > {access}; Next > Save")
