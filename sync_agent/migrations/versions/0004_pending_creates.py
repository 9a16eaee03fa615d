"""pending creates: write-ahead rows for creates, so a crash cannot turn one into two

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pending_creates',
    sa.Column('pair', sa.String(length=64), nullable=False),
    sa.Column('into', sa.String(length=16), nullable=False),
    sa.Column('source_id', sa.String(length=32), nullable=False),
    sa.Column('planned_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('pair', 'into', 'source_id')
    )


def downgrade() -> None:
    op.drop_table('pending_creates')
