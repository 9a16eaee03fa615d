"""Salesforce REST API (v59+) emulator: OAuth, SOQL, sObjects, Collections, describe, Bulk 2.0."""
