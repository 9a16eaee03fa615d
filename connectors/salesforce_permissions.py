"""Which Salesforce permissions stagesync needs, and how ``stagesync check`` verifies them.

- System permissions of the integration user, from ``UserPermissionAccess`` (one row: "the
  permissions accessibility for a current user", Salesforce field reference):
  ``PermissionsApiEnabled`` (API Enabled; without it no REST call succeeds at all) and
  ``PermissionsTransferAnyLead`` (Transfer Leads, for owner reroutes).
- Object access, from each synced object's describe: ``queryable`` (read) everywhere;
  ``createable`` and ``updateable`` on the objects the mapping writes; ``createable`` on Task
  (SLA tasks); read on Task and Event (the SLA clock's activity). Field-level read access
  shows as presence in describe, which ``stagesync mapping validate --live`` checks for every
  mapped field.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simple_salesforce.api import Salesforce

    from connectors.salesforce import SalesforceConnector

USER_PERMISSIONS = {"PermissionsApiEnabled": "API Enabled",
                    "PermissionsTransferAnyLead": "Transfer Leads"}
OBJECT_NEEDS: dict[str, tuple[str, ...]] = {
    "Lead": ("read", "create", "edit"), "Contact": ("read", "create", "edit"),
    "Account": ("read", "create", "edit"), "Opportunity": ("read", "create", "edit"),
    "Task": ("read", "create"), "Event": ("read",), "User": ("read",),
}
FLAGS = {"read": "queryable", "create": "createable", "edit": "updateable"}
# a constant query: no value from outside goes into it
PERMISSION_QUERY = ("SELECT PermissionsApiEnabled, PermissionsTransferAnyLead "
                    "FROM UserPermissionAccess")


def permissions_lacking(sf: SalesforceConnector) -> list[str]:
    """Each needed permission the integration user lacks, as ``permission Transfer Leads`` or
    ``create on Task``; empty when all are there."""
    missing: list[str] = []
    rows: Any = sf._call(lambda client: client.query(PERMISSION_QUERY)).get("records") or [{}]
    for field, label in USER_PERMISSIONS.items():
        if not rows[0].get(field):
            missing.append(f"permission {label} ({field})")
    for name, needs in OBJECT_NEEDS.items():
        body: Any = sf._call(partial(_describe, name=name))
        missing += [f"{need} on {name}" for need in needs if not body.get(FLAGS[need])]
    return missing


def _describe(client: Salesforce, name: str) -> Any:
    return getattr(client, name).describe()
