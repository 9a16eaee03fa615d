"""Creating a HubSpot property through the properties API (``POST /crm/v3/properties/
{objectType}``, hubspot-api-client's ``crm.properties.core_api.create``).

Only ``stagesync init --create-fields`` creates properties, after the admin confirmed the plan:
a sync never changes the portal's schema. The call needs the object's
``crm.schemas.{objectType}.write`` scope, which a running agent does not; a token without it
gets HubSpot's 403 ``MISSING_SCOPES``, raised as a ``ConfigurationError`` naming the scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from connectors.errors import DataError
from connectors.schema_cache import DESCRIBE

if TYPE_CHECKING:
    from connectors.hubspot import HubSpotConnector


@dataclass(frozen=True)
class Created:
    object: str
    name: str
    outcome: Literal["created", "exists"]


def create_property(hs: HubSpotConnector, object_type: str, body: dict[str, Any]) -> Created:
    """Create the property ``body`` describes (``name``, ``label``, ``type``, ``field_type``,
    ``group_name``, ``description``, ``options``) on ``object_type``. A 409 (the name is taken:
    made meanwhile, or by an earlier run) is ``exists``; any other refusal is raised. The
    object's describe is forgotten, so the next one sees the property."""
    from hubspot.crm.properties import OptionInput, PropertyCreate

    create = PropertyCreate(
        name=body["name"], label=body["label"], type=body["type"],
        field_type=body["field_type"], group_name=body["group_name"],
        description=body.get("description"),
        options=[OptionInput(**option) for option in body.get("options") or []])
    name = hs._object(object_type)
    try:
        # not retried blindly: a create sent twice is answered 409 the second time
        hs._call("properties.create", lambda: hs.properties_api.create(
            object_type=name, property_create=create), idempotent=False)
        outcome: Literal["created", "exists"] = "created"
    except DataError as exc:
        if exc.code != "CONFLICT":
            raise
        outcome = "exists"
    finally:
        hs.schemas.forget(DESCRIBE, name)
    return Created(name, body["name"], outcome)
