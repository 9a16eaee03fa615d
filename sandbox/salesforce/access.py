"""What the integration user may do in the Salesforce emulator: system permissions (read
through ``UserPermissionAccess``, which "represents the permissions accessibility for a current
user") and object and field access (as describe shows it: ``queryable``, ``createable``,
``updateable``; a field without read access is absent from describe).

By default the user has every permission a deployment needs. ``denied`` names what it lacks:
``Task:create``, ``Lead:edit``, ``Lead:read``, ``Lead:delete`` (object access) or
``Lead.Status:read``, ``Lead.Status:edit`` (field-level security).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

USER_PERMISSIONS = ("PermissionsApiEnabled", "PermissionsTransferAnyLead", "PermissionsEditTask")
PERMISSION_ROW_ID = "0Ps000000000001AAA"
_PERMISSION_QUERY = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+UserPermissionAccess\b(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL)


@dataclass
class UserAccess:
    permissions: dict[str, bool] = field(
        default_factory=lambda: dict.fromkeys(USER_PERMISSIONS, True))
    denied: set[str] = field(default_factory=set)

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        """A describe body as this user sees it."""
        name = body["name"]
        out = dict(body)
        for flag, need in (("queryable", "read"), ("createable", "create"),
                           ("updateable", "edit"), ("deletable", "delete")):
            if f"{name}:{need}" in self.denied:
                out[flag] = False
        fields = []
        for item in body["fields"]:
            where = f"{name}.{item['name']}"
            if f"{where}:read" in self.denied:
                continue  # no field-level read access: describe leaves the field out
            if f"{where}:edit" in self.denied:
                item = {**item, "createable": False, "updateable": False}
            fields.append(item)
        out["fields"] = fields
        return out

    def may_delete(self, sobject_name: str) -> bool:
        """Whether the user may delete this object's records (a delete it may not make is
        refused with ``INSUFFICIENT_ACCESS_OR_READONLY``, as for objects none may delete)."""
        return f"{sobject_name}:delete" not in self.denied

    def answer_query(self, text: str, version: str) -> tuple[int, Any] | None:
        """(status, body) for a SOQL query on ``UserPermissionAccess``; None for others."""
        found = _PERMISSION_QUERY.match(text)
        if found is None:
            return None
        names = [n.strip() for n in found.group("fields").split(",")]
        record: dict[str, Any] = {"attributes": {
            "type": "UserPermissionAccess",
            "url": f"/services/data/v{version}/sobjects/UserPermissionAccess/"
                   f"{PERMISSION_ROW_ID}"}}
        for name in names:
            known = next((p for p in ("Id", *USER_PERMISSIONS) if p.lower() == name.lower()),
                         None)
            if known is None:
                return 400, [{"errorCode": "INVALID_FIELD", "message": (
                    f"\n{text}\n^\nERROR at Row:1:Column:8\nNo such column '{name}' on entity "
                    "'UserPermissionAccess'. If you are attempting to use a custom field, be "
                    "sure to append the '__c' after the custom field name. Please reference "
                    "your WSDL or the describe call for the appropriate names.")}]
            record[known] = PERMISSION_ROW_ID if known == "Id" else self.permissions.get(
                known, False)
        return 200, {"totalSize": 1, "done": True, "records": [record]}
