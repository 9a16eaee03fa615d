"""gap notes: a person's decision (resolved, ignored) on a gap, with a note and who decided

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-09 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gap_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('gap_id', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('by', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['gap_id'], ['gaps.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_gap_notes_active', 'gap_notes', ['active'])
    op.create_index('ix_gap_notes_gap', 'gap_notes', ['gap_id'])


def downgrade() -> None:
    op.drop_index('ix_gap_notes_gap', table_name='gap_notes')
    op.drop_index('ix_gap_notes_active', table_name='gap_notes')
    op.drop_table('gap_notes')
