"""The records Salesforce's standard duplicate rules would match, looked up by the connector.

A Collections answer refusing a save with ``DUPLICATES_DETECTED`` names no records (recorded:
``doc-collections-create-duplicates-detected-*.json`` carry no ``duplicateResult``; only a
single-record answer does). A person deciding a ``duplicate_match`` gap needs the records, so
they are found by the standard matching rules' own keys (Salesforce Help, "Standard Contact
Matching Rule and Standard Lead Matching Rule"): the same email, or the same first and last name
with the same company (a Contact's account name) or phone. Both rules look at Leads and
Contacts. Salesforce's name comparison is fuzzy; this one is exact (case-insensitive, as SOQL's
``=`` is), so it may name fewer records than the rule matched, never others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from simple_salesforce.format import format_soql

Query = Callable[[str], Iterable[dict[str, Any]]]  # SOQL -> rows


def _text(values: dict[str, Any], name: str) -> str | None:
    value = values.get(name)
    return str(value).strip() or None if value is not None else None


def likely_duplicates(query: Query, object_name: str, values: dict[str, Any],
                      record_id: str | None = None) -> tuple[str, ...]:
    """Ids of live Leads and Contacts matching ``values`` (a Lead's or a Contact's fields, as
    sent and as last read) by the standard rules' keys, ``record_id`` itself left out. At most
    four queries, and none when nothing identifies the person."""
    email, phone = _text(values, "Email"), _text(values, "Phone")
    first, last = _text(values, "FirstName"), _text(values, "LastName")
    company = _text(values, "Company")
    account_ids: list[str] = []
    if object_name == "Contact" and values.get("AccountId"):
        account_ids = [str(values["AccountId"])]
        company = next((str(r.get("Name")) for r in query(format_soql(
            "SELECT Name FROM Account WHERE Id = {}", account_ids[0]))), None)
    elif company:
        account_ids = [str(r["Id"]) for r in query(format_soql(
            "SELECT Id FROM Account WHERE Name = {}", company))]
    found: list[str] = []
    for other, extra in (("Lead", "IsConverted = false"), ("Contact", None)):
        alike: list[str] = []
        if first and last:
            same = []
            if other == "Lead" and company:
                same.append(format_soql("Company = {}", company))
            if other == "Contact" and account_ids:
                same.append(format_soql("AccountId IN {}", account_ids))
            if phone:
                same.append(format_soql("Phone = {}", phone))
            if same:
                alike.append(format_soql("(FirstName = {} AND LastName = {} AND ({:literal}))",
                                         first, last, " OR ".join(same)))
        if email:
            alike.append(format_soql("Email = {}", email))
        if not alike:
            continue
        where = "(" + " OR ".join(alike) + ")"  # every value above went through format_soql
        if extra:
            where = f"{extra} AND {where}"
        found += [str(r["Id"]) for r in query(format_soql(
            "SELECT Id FROM {:literal} WHERE {:literal} ORDER BY Id", other, where))]
    return tuple(i for i in dict.fromkeys(found) if i != record_id)
