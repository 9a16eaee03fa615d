"""Connectors: the only code that talks to Salesforce and HubSpot.

Each system has one module built on its real client library. Both implement the small contract
in ``connectors.contract``; the engine owns all state, connectors persist nothing.
"""
