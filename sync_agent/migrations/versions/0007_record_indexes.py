"""a record's open gaps and current stage visits found by index

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 02:00:00

A record's open gaps were looked up by (pair, key) with only ``(kind, closed_at)`` indexed,
so each lookup scanned every open gap: a first sync that opens gaps slice after slice and
looks them up record by record grew with the square of the records.
"""

from __future__ import annotations

from alembic import op

revision = '0007'
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('gaps', schema=None) as batch_op:
        batch_op.create_index('ix_gaps_record', ['pair', 'key', 'closed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('gaps', schema=None) as batch_op:
        batch_op.drop_index('ix_gaps_record')
