"""ended links: links a delete ended, kept while the deleted record can be restored

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ended_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pair', sa.String(length=64), nullable=False),
    sa.Column('deleted_in', sa.String(length=16), nullable=False),
    sa.Column('deleted_id', sa.String(length=32), nullable=False),
    sa.Column('counterpart_id', sa.String(length=32), nullable=False),
    sa.Column('rule', sa.String(length=32), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('restored_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_ended_links_deleted', 'ended_links', ['deleted_in', 'deleted_id'])
    op.create_index('ix_ended_links_open', 'ended_links', ['restored_at', 'expires_at'])


def downgrade() -> None:
    op.drop_index('ix_ended_links_open', table_name='ended_links')
    op.drop_index('ix_ended_links_deleted', table_name='ended_links')
    op.drop_table('ended_links')
