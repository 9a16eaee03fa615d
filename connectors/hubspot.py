"""HubSpot connector on hubspot-api-client.

Every attribute access such as ``client.crm.contacts.search_api`` builds a new ApiClient and
connection pool, so each API object is built once and kept. Each sub-package raises its own
``ApiException`` class with no shared base, so errors are classified by ``.status``.
"""

from __future__ import annotations

import logging
from typing import Any

import hubspot
from hubspot.crm.contacts import PublicObjectSearchRequest

from connectors.config import HubSpotSettings
from connectors.contract import CheckReport, ObjectSummary
from connectors.errors import ConfigurationError, ConnectorError, RetriableError

SYSTEM = "hubspot"
OBJECT_TYPES = ("contacts", "companies", "deals")

# The generated client logs whole request and response bodies (personal data) at DEBUG.
for _name in ("hubspot", "urllib3"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def classify(exc: Exception) -> ConnectorError:
    status = int(getattr(exc, "status", 0) or 0)
    reason = str(getattr(exc, "reason", "") or type(exc).__name__)
    if status == 429 or status >= 500 or status == 0:
        return RetriableError(SYSTEM, f"{status} {reason}")
    return ConfigurationError(SYSTEM, f"{status} {reason}")


class HubSpotConnector:
    system = SYSTEM

    def __init__(self, settings: HubSpotSettings) -> None:
        self.settings = settings
        self.client = hubspot.Client.create(
            access_token=settings.access_token.get_secret_value(), host=settings.host)
        crm = self.client.crm
        self.search_apis: dict[str, Any] = {
            "contacts": crm.contacts.search_api, "companies": crm.companies.search_api,
            "deals": crm.deals.search_api}
        self.properties_api = crm.properties.core_api
        self.pipelines_api = crm.pipelines.pipelines_api
        self.owners_api = crm.owners.owners_api
        self.calls = 0

    def check(self) -> CheckReport:
        try:
            objects = []
            for object_type in OBJECT_TYPES:
                props = self.properties_api.get_all(object_type=object_type)
                found = self.search_apis[object_type].do_search(
                    public_object_search_request=PublicObjectSearchRequest(limit=1))
                self.calls += 2
                objects.append(ObjectSummary(name=object_type, label=object_type.title(),
                                             records=int(found.total),
                                             fields=len(props.results)))
            owners = self.owners_api.get_page(limit=100)
            pipelines = self.pipelines_api.get_all(object_type="deals")
            self.calls += 2
        except Exception as exc:
            if hasattr(exc, "status"):
                raise classify(exc) from None
            raise
        stages = sum(len(p.stages) for p in pipelines.results)
        return CheckReport(
            system=SYSTEM, endpoint=self.settings.host, api_version="CRM v3",
            identity=f"private app; {len(owners.results)} owners, "
            f"{len(pipelines.results)} deal pipeline(s) with {stages} stages",
            objects=objects, calls=self.calls,
        )
