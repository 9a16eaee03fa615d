"""dead letter schedule: when a letter was last tried, and when its record changed since

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-08 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Letters made before this revision keep tried_at NULL: the code works it out from their
    # backoff (state.last_tried).
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tried_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('source_changed_at', sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_column('source_changed_at')
        batch_op.drop_column('tried_at')
