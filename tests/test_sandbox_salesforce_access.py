"""The Salesforce emulator shows the integration user's permissions as Salesforce does:
``UserPermissionAccess`` (one row, the current user's system permissions) and describe's
``queryable``/``createable``/``updateable`` flags, with fields lacking read access left out."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest

from tests.conftest import salesforce_client


def test_user_permission_access_has_one_row_of_the_current_users_permissions(
        make_sandbox: Any) -> None:
    box = make_sandbox(salesforce_user_permissions={"PermissionsApiEnabled": True,
                                                    "PermissionsTransferAnyLead": False})
    sf = salesforce_client(box)
    answer = sf.query("SELECT PermissionsApiEnabled, PermissionsTransferAnyLead "
                      "FROM UserPermissionAccess")
    assert answer["totalSize"] == 1
    row = answer["records"][0]
    assert row["attributes"]["type"] == "UserPermissionAccess"
    assert row["PermissionsApiEnabled"] is True
    assert row["PermissionsTransferAnyLead"] is False
    with pytest.raises(SalesforceMalformedRequest) as bad:
        sf.query("SELECT PermissionsNope FROM UserPermissionAccess")
    assert bad.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_describe_shows_denied_object_and_field_access(make_sandbox: Any) -> None:
    box = make_sandbox(salesforce_denied=("Task:create", "Lead:edit", "Lead.Phone:read",
                                          "Lead.Status:edit"))
    sf = salesforce_client(box)
    task = sf.Task.describe()
    assert (task["queryable"], task["createable"]) == (True, False)
    lead = sf.Lead.describe()
    assert lead["updateable"] is False
    fields = {f["name"]: f for f in lead["fields"]}
    assert "Phone" not in fields  # no field-level read access: absent from describe
    assert fields["Status"]["updateable"] is False
    contact = sf.Contact.describe()
    assert (contact["createable"], contact["updateable"]) == (True, True)
