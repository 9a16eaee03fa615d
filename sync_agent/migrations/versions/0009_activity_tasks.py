"""activity tasks: HubSpot engagements written to Salesforce as Tasks, or waiting to be

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-20 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('activity_tasks',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('hs_id', sa.String(length=32), nullable=False),
    sa.Column('task_id', sa.String(length=18), nullable=True),
    sa.Column('who_id', sa.String(length=18), nullable=True),
    sa.Column('digest', sa.String(length=64), nullable=True),
    sa.Column('cursor', sa.DateTime(timezone=True), nullable=True),
    sa.Column('contacts', sa.JSON(), nullable=False),
    sa.Column('waiting_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_index('ix_activity_tasks_waiting', 'activity_tasks', ['waiting_since'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_activity_tasks_waiting', table_name='activity_tasks')
    op.drop_table('activity_tasks')
