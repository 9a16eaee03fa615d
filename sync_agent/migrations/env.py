"""Alembic environment: migrations run in-process on the store's own connection."""

from __future__ import annotations

from alembic import context

from sync_agent.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through sync_agent.store.migrate()")
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
