"""Build both connectors from settings. Typed as the contract, so mypy proves that each
connector implements every method the engine relies on."""

from __future__ import annotations

from connectors.config import ConnectionSettings
from connectors.contract import Connector
from connectors.hubspot import HubSpotConnector
from connectors.salesforce import SalesforceConnector


def build_connectors(settings: ConnectionSettings) -> tuple[Connector, Connector]:
    """(Salesforce, HubSpot)."""
    return SalesforceConnector(settings.salesforce), HubSpotConnector(settings.hubspot)
