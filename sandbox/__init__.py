"""Local emulators of the Salesforce REST and HubSpot CRM v3 APIs.

The real client libraries (simple-salesforce, hubspot-api-client) talk to these over real
HTTP(S), so the connectors are exercised exactly as they would be against a live org or
portal. See ``sandbox/README.md`` for the routes and the vendor behaviour reproduced.
"""
