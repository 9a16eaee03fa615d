"""synced values: one document a link instead of a row a field

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 03:00:00

What both sides held after the last sync was a row per field pair (13 a lead), each value
its own JSON: a first sync of 200,000 leads inserted millions of rows, and a steady cycle
decoded 26 JSON values for every changed pair it planned. Now each link has one row holding
every field pair (``{"FirstName>firstname": [sf, hs], ...}``). The rows move across in link
order, a few thousand links at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = "0007"
branch_labels = None
depends_on = None

CHUNK = 5000  # links a statement

_fields = sa.table("synced_fields", sa.column("link_id", sa.Integer),
                   sa.column("field_key", sa.String), sa.column("sf_value", sa.JSON),
                   sa.column("hs_value", sa.JSON),
                   sa.column("synced_at", sa.DateTime(timezone=True)))
_values = sa.table("synced_values", sa.column("link_id", sa.Integer),
                   sa.column("fields", sa.JSON),
                   sa.column("synced_at", sa.DateTime(timezone=True)))


def _by_link(rows: Any) -> Iterator[dict[str, Any]]:
    """Field rows in link order, as one document a link."""
    current: dict[str, Any] | None = None
    for link_id, key, sf_value, hs_value, synced_at in rows:
        if current is None or current["link_id"] != link_id:
            if current is not None:
                yield current
            current = {"link_id": link_id, "fields": {}, "synced_at": synced_at}
        current["fields"][key] = [sf_value, hs_value]
        current["synced_at"] = max(current["synced_at"], synced_at)
    if current is not None:
        yield current


def upgrade() -> None:
    op.create_table('synced_values',
    sa.Column('link_id', sa.Integer(), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['link_id'], ['links.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('link_id')
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(_fields.c.link_id, _fields.c.field_key, _fields.c.sf_value,
                                  _fields.c.hs_value, _fields.c.synced_at)
                        .order_by(_fields.c.link_id, _fields.c.field_key)
                        .execution_options(stream_results=True, yield_per=CHUNK * 20))
    chunk: list[dict[str, Any]] = []
    for document in _by_link(rows):
        chunk.append(document)
        if len(chunk) == CHUNK:
            bind.execute(sa.insert(_values), chunk)
            chunk = []
    if chunk:
        bind.execute(sa.insert(_values), chunk)
    op.drop_table('synced_fields')


def downgrade() -> None:
    op.create_table('synced_fields',
    sa.Column('link_id', sa.Integer(), nullable=False),
    sa.Column('field_key', sa.String(length=200), nullable=False),
    sa.Column('sf_value', sa.JSON(), nullable=True),
    sa.Column('hs_value', sa.JSON(), nullable=True),
    sa.Column('synced_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['link_id'], ['links.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('link_id', 'field_key')
    )
    bind = op.get_bind()
    chunk: list[dict[str, Any]] = []
    for link_id, fields, synced_at in bind.execute(sa.select(
            _values.c.link_id, _values.c.fields, _values.c.synced_at).execution_options(
            stream_results=True, yield_per=CHUNK)):
        chunk += [{"link_id": link_id, "field_key": key, "sf_value": pair[0],
                   "hs_value": pair[1], "synced_at": synced_at} for key, pair in fields.items()]
        if len(chunk) >= CHUNK:
            bind.execute(sa.insert(_fields), chunk)
            chunk = []
    if chunk:
        bind.execute(sa.insert(_fields), chunk)
    op.drop_table('synced_values')
