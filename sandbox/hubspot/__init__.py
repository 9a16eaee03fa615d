"""HubSpot CRM v3 emulator: objects, search, batch, properties, pipelines, associations, owners."""
