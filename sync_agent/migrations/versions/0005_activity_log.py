"""activity log: sales activity per lead or contact, read by change, for the SLA clock

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('activity_log',
    sa.Column('record_id', sa.String(length=18), nullable=False),
    sa.Column('rep_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ours', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('record_id')
    )


def downgrade() -> None:
    op.drop_table('activity_log')
