"""Salesforce's standard duplicate rules on Lead and Contact, as an org has them out of the box.

Sources (see the fidelity table in ``sandbox/README.md``):

- Salesforce Help, "Standard Contact Matching Rule and Standard Lead Matching Rule": both are
  active by default; their equation is, among other groupings, (First Name AND Last Name AND
  Email) OR (First Name AND Last Name AND Company/Account Name AND ...) OR (First Name AND Last
  Name AND Phone); blank fields never match.
- The standard duplicate rules alert rather than block (``duplicateResult.allowSave`` is true in
  captured REST bodies), and through the API an alert is a refusal unless the request sends
  ``Sforce-Duplicate-Rule-Header: allowSave=true`` (REST API Developer Guide, "Duplicate Rule
  Header"; SOAP API DuplicateRuleHeader: "bypass alerts and save duplicate records").

Readings the sandbox takes, the harsher one where the sources are silent or fuzzy: names,
company and phone compare exactly after trimming and case-folding, and an equal email alone
matches (standing in for the fuzzy name algorithms, which match ``Jon``/``John`` on one email);
each rule checks both Leads and Contacts; a Contact's company is its Account's Name; converted
Leads are not matched; the rules run on create and on update.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.salesforce.org import Org

RULED = ("Lead", "Contact")
MESSAGE = "Use one of these records?"
DUPLICATE_RULE = {"Lead": "Standard_Lead_Duplicate_Rule",
                  "Contact": "Standard_Contact_Duplicate_Rule"}
MATCHING_RULE = {"Lead": "Standard_Lead_Match_Rule_v1_0",
                 "Contact": "Standard_Contact_Match_Rule_v1_1"}
DETAIL_FIELDS = ("FirstName", "LastName", "Email", "Phone")


@dataclass(frozen=True)
class DuplicateHeader:
    """``Sforce-Duplicate-Rule-Header``: every field defaults to false."""

    allow_save: bool = False
    include_record_details: bool = False
    run_as_current_user: bool = False  # the sandbox has no sharing rules: accepted, no effect

    @classmethod
    def parse(cls, value: str | None) -> DuplicateHeader:
        """``allowSave=true; includeRecordDetails=true; runAsCurrentUser=true`` (``;`` or ``,``)."""
        flags: dict[str, bool] = {}
        for part in (value or "").replace(",", ";").split(";"):
            key, _, raw = part.strip().partition("=")
            flags[key.strip().lower()] = raw.strip().lower() == "true"
        return cls(allow_save=flags.get("allowsave", False),
                   include_record_details=flags.get("includerecorddetails", False),
                   run_as_current_user=flags.get("runascurrentuser", False))


def person_name(rec: dict[str, Any]) -> tuple[str, str] | None:
    """(first, last) trimmed and case-folded, for the duplicate rules; None if either is blank
    (matching rules never match blank fields)."""
    first, last = rec.get("FirstName"), rec.get("LastName")
    if not isinstance(first, str) or not isinstance(last, str):
        return None
    parts = (" ".join(first.split()).casefold(), " ".join(last.split()).casefold())
    return parts if all(parts) else None


def _norm(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split()).casefold()
    return text or None


def _company(org: Org, sobject: str, rec: dict[str, Any]) -> str | None:
    if sobject == "Lead":
        return _norm(rec.get("Company"))
    account_id = rec.get("AccountId")
    account = org.live("Account", str(account_id)) if account_id else None
    return _norm(account.get("Name")) if account else None


def _twins(org: Org, sobject: str, rec: dict[str, Any], other: str, hit: dict[str, Any]
           ) -> bool:
    """The equation, exact after folding: an equal email; or an equal first and last name with
    an equal company (a Contact's Account Name) or phone."""
    email = _norm(rec.get("Email"))
    if email is not None and email == _norm(hit.get("Email")):
        return True
    if person_name(rec) is None or person_name(rec) != person_name(hit):
        return False
    company = _company(org, sobject, rec)
    phone = _norm(rec.get("Phone"))
    return ((company is not None and company == _company(org, other, hit))
            or (phone is not None and phone == _norm(hit.get("Phone"))))


def find_duplicates(org: Org, sobject: str, rec: dict[str, Any], own_id: str | None
                    ) -> dict[str, list[dict[str, Any]]]:
    """Live records of each ruled object that the standard rules take for ``rec``'s twins."""
    email = rec.get("Email")
    name = person_name(rec)
    found: dict[str, list[dict[str, Any]]] = {}
    for other in RULED:
        ids = org.ids_with_email(other, email) if isinstance(email, str) else set()
        if name is not None:
            ids |= org.ids_with_name(other, name)
        hits = [org.records[other][i] for i in sorted(ids) if i != own_id]
        hits = [h for h in hits if not h["IsDeleted"] and not h.get("IsConverted")
                and _twins(org, sobject, rec, other, h)]
        if hits:
            found[other] = hits
    return found


def duplicate_error(org: Org, sobject: str, found: dict[str, list[dict[str, Any]]],
                    header: DuplicateHeader, version: str) -> dict[str, Any]:
    """A save result's ``DUPLICATES_DETECTED`` entry with its ``duplicateResult``."""
    results = []
    for other, hits in found.items():
        records = []
        for hit in hits:
            record: dict[str, Any] = {"attributes": {
                "type": other, "url": f"/services/data/v{version}/sobjects/{other}/{hit['Id']}"},
                "Id": hit["Id"]}
            if header.include_record_details:
                record.update({f: hit.get(f) for f in DETAIL_FIELDS})
                record["Company" if other == "Lead" else "AccountId"] = hit.get(
                    "Company" if other == "Lead" else "AccountId")
            records.append({"additionalInformation": [], "fieldDiffs": [],
                            "matchConfidence": 100.0, "record": record})
        results.append({"entityType": other, "errors": [], "matchEngine": "FuzzyMatchEngine",
                        "matchRecords": records, "rule": MATCHING_RULE[other],
                        "size": len(records), "success": True})
    return {"duplicateResult": {
        "allowSave": True, "duplicateRule": DUPLICATE_RULE[sobject],
        "duplicateRuleEntityType": sobject, "errorMessage": MESSAGE, "matchResults": results},
        "statusCode": "DUPLICATES_DETECTED", "message": MESSAGE, "fields": []}
