"""The records Salesforce's standard duplicate rules would match, looked up by the connector.

A Collections answer refusing a save with ``DUPLICATES_DETECTED`` names no records (recorded:
``doc-collections-create-duplicates-detected-*.json`` carry no ``duplicateResult``; only a
single-record answer does). A person deciding a ``duplicate_match`` gap needs the records, so
they are found by the standard matching rules' own keys (Salesforce Help, "Standard Contact
Matching Rule and Standard Lead Matching Rule"): the same email, or the same first and last name
with the same company (a Contact's account name) or phone. Both rules look at Leads and
Contacts. Salesforce's name comparison is fuzzy; this one is exact after trimming and
case-folding, so it may name fewer records than the rule matched, never others. The refusals
of one write call are looked up together: by email (one query per object for each 200
emails), and by name for refused creates no email explains.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from simple_salesforce.format import format_soql

Query = Callable[[str], Iterable[dict[str, Any]]]  # SOQL -> rows
PER_QUERY = 200  # emails per IN list: the query's URL stays well inside REST's limits
NAMES_PER_QUERY = 100  # people per name query (names, companies and phones in one URL)


def _fold(value: Any) -> str | None:
    text = str(value).strip().casefold() if value is not None else ""
    return text or None


def _person(values: dict[str, Any], company: str | None) -> tuple[str | None, ...]:
    return (_fold(values.get("Email")), _fold(values.get("FirstName")),
            _fold(values.get("LastName")), _fold(company), _fold(values.get("Phone")))


def _alike(a: tuple[str | None, ...], b: tuple[str | None, ...]) -> bool:
    email, first, last, company, phone = a
    if email and email == b[0]:
        return True
    return bool(first and last and (first, last) == (b[1], b[2])
                and ((company and company == b[3]) or (phone and phone == b[4])))


def _chunks(values: set[str]) -> list[list[str]]:
    ordered = sorted(values)
    return [ordered[i:i + PER_QUERY] for i in range(0, len(ordered), PER_QUERY)]


def _candidates(query: Query, wheres: dict[str, str]
                ) -> list[tuple[str, tuple[str | None, ...]]]:
    """Live Leads and Contacts matching each object's ``where`` (built with format_soql)."""
    out = []
    for other, select, converted in (
            ("Lead", "Id, Email, FirstName, LastName, Company, Phone", "IsConverted = false AND "),
            ("Contact", "Id, Email, FirstName, LastName, Account.Name, Phone", "")):
        if other not in wheres:
            continue
        for row in query(format_soql(
                "SELECT {:literal} FROM {:literal} WHERE {:literal}({:literal}) ORDER BY Id",
                select, other, converted, wheres[other])):
            company = (row.get("Company") if other == "Lead"
                       else (row.get("Account") or {}).get("Name"))
            out.append((str(row["Id"]), _person(row, company)))
    return out


def _name_wheres(query: Query, people: list[tuple[str | None, ...]]) -> dict[str, str]:
    """Where clauses for the same first and last name with the same company (a Contact's
    account, looked up by name) or phone: the rule's second key, narrow enough to page little.
    SOQL compares text case-insensitively, so the folded values serve."""
    names = format_soql("FirstName IN {} AND LastName IN {}",
                        sorted({str(p[1]) for p in people}), sorted({str(p[2]) for p in people}))
    companies = sorted({str(p[3]) for p in people if p[3]})
    phones = sorted({str(p[4]) for p in people if p[4]})
    accounts = [str(r["Id"]) for r in query(format_soql(
        "SELECT Id FROM Account WHERE Name IN {}", companies))] if companies else []
    lead = [format_soql("Company IN {}", companies)] if companies else []
    contact = [format_soql("AccountId IN {}", accounts)] if accounts else []
    phone = [format_soql("Phone IN {}", phones)] if phones else []
    wheres = {}
    for other, same in (("Lead", lead + phone), ("Contact", contact + phone)):
        if same:
            wheres[other] = f"{names} AND ({' OR '.join(same)})"
    return wheres


def likely_duplicates(query: Query, object_name: str,
                      refused: list[tuple[dict[str, Any], str | None]]) -> list[tuple[str, ...]]:
    """For each refused (values, record id): ids of live Leads and Contacts matching its
    values (a Lead's or Contact's fields, as sent and as last read) by the standard rules'
    keys, the record itself left out."""
    account_names: dict[str, str] = {}
    account_ids = {str(v["AccountId"]) for v, _ in refused
                   if object_name == "Contact" and v.get("AccountId")}
    for chunk in _chunks(account_ids):
        account_names.update({str(r["Id"]): str(r.get("Name") or "") for r in query(
            format_soql("SELECT Id, Name FROM Account WHERE Id IN {}", chunk))})
    people = [_person(v, v.get("Company") if object_name == "Lead"
                      else account_names.get(str(v.get("AccountId"))))
              for v, _ in refused]
    found: list[tuple[str, tuple[str | None, ...]]] = []
    emails = {str(v["Email"]).strip() for v, _ in refused if _fold(v.get("Email"))}
    for chunk in _chunks(emails):
        where = format_soql("Email IN {}", chunk)
        found += _candidates(query, {"Lead": where, "Contact": where})
    holders: dict[str | None, set[str]] = {}
    for hit_id, holder in found:
        holders.setdefault(holder[0], set()).add(hit_id)
    # Names for refused creates no email explains: a refused update's record is in the org
    # already and its gap names it; a name query pages through far more rows.
    named = [p for (_, record_id), p in zip(refused, people, strict=True)
             if record_id is None and p[1] and p[2] and (p[3] or p[4])
             and not holders.get(p[0], set())]
    for at in range(0, len(named), NAMES_PER_QUERY):
        found += _candidates(query, _name_wheres(query, named[at:at + NAMES_PER_QUERY]))
    by_email: dict[str, list[tuple[str, tuple[str | None, ...]]]] = {}
    by_name: dict[tuple[str | None, str | None], list[tuple[str, tuple[str | None, ...]]]] = {}
    for hit in found:  # indexed once: each refusal looks at its own candidates only
        if hit[1][0]:
            by_email.setdefault(str(hit[1][0]), []).append(hit)
        by_name.setdefault((hit[1][1], hit[1][2]), []).append(hit)
    out = []
    for person, (_, record_id) in zip(people, refused, strict=True):
        candidates = by_email.get(str(person[0]), []) + by_name.get((person[1], person[2]), [])
        ids = [i for i, candidate in candidates if i != record_id and _alike(person, candidate)]
        out.append(tuple(dict.fromkeys(ids)))
    return out
