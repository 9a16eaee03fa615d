"""Which HubSpot scopes stagesync needs, and how ``stagesync check`` verifies them.

An OAuth access token describes itself: ``GET /oauth/v1/access-tokens/{token}`` returns its
``scopes``. A private app token has no such endpoint, so each scope is probed with the
cheapest call that needs it and changes nothing: one-record list (``crm.objects.*.read``), a
batch update with no inputs (``crm.objects.*.write``), one property definition
(``crm.schemas.*.read``), one owner (``crm.objects.owners.read``). A probe refused with 403
``MISSING_SCOPES`` marks its scope missing; a 400 (HubSpot refusing the empty batch) counts as
granted, on the reading that HubSpot checks scopes before it validates a body; any other
refusal is raised as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from connectors.errors import ConfigurationError, DataError

if TYPE_CHECKING:
    from connectors.hubspot import HubSpotConnector

OBJECTS = ("contacts", "companies", "deals")
REQUIRED_SCOPES: tuple[str, ...] = (
    *(f"crm.objects.{o}.{level}" for o in OBJECTS for level in ("read", "write")),
    *(f"crm.schemas.{o}.read" for o in OBJECTS),
    "crm.objects.owners.read",
)
CURSOR = {"contacts": "lastmodifieddate", "companies": "hs_lastmodifieddate",
          "deals": "hs_lastmodifieddate"}


def _probes(hs: HubSpotConnector) -> list[tuple[str, str, Callable[[], Any]]]:
    """(scope, endpoint, call) for every required scope."""
    out: list[tuple[str, str, Callable[[], Any]]] = []
    for name in OBJECTS:
        out.append((f"crm.objects.{name}.read", f"{name}.list", partial(
            hs.basic[name].get_page, limit=1, properties=["hs_object_id"])))
        out.append((f"crm.objects.{name}.write", f"{name}.batch.update", partial(
            hs.batch[name].update, batch_input_simple_public_object_batch_input={"inputs": []})))
        out.append((f"crm.schemas.{name}.read", "properties.get", partial(
            hs.properties_api.get_by_name, object_type=name, property_name=CURSOR[name])))
    out.append(("crm.objects.owners.read", "owners.list", partial(
        hs.owners_api.get_page, limit=1)))
    return out


def scopes_lacking(hs: HubSpotConnector) -> tuple[str, list[str]]:
    """(how the scopes were verified, the required scopes the token lacks)."""
    if hs.tokens.oauth:
        token = hs.tokens.current()
        api = hs.client.oauth.access_tokens_api
        info = hs._call("oauth.tokenInfo", partial(api.get, token))
        granted = {str(s) for s in info.scopes or []}
        return "the OAuth token's metadata", [s for s in REQUIRED_SCOPES if s not in granted]
    missing = []
    for scope, endpoint, probe in _probes(hs):
        try:
            hs._call(endpoint, probe)
        except DataError:
            pass  # a 400 on the empty body: HubSpot checks scopes before it reads the body
        except ConfigurationError as exc:
            if "MISSING_SCOPES" not in exc.message:
                raise
            missing.append(scope)
    return "one harmless call per scope", missing
