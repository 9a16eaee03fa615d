"""contact roles: Salesforce contact roles and the HubSpot association labels written for them

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contact_roles',
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('parent_id', sa.String(length=18), nullable=False),
    sa.Column('target_id', sa.String(length=18), nullable=True),
    sa.Column('role', sa.String(length=255), nullable=True),
    sa.Column('written_from', sa.String(length=32), nullable=True),
    sa.Column('written_to', sa.String(length=32), nullable=True),
    sa.Column('written_label', sa.String(length=255), nullable=True),
    sa.Column('waiting', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_index('ix_contact_roles_waiting', 'contact_roles', ['waiting'])


def downgrade() -> None:
    op.drop_index('ix_contact_roles_waiting', table_name='contact_roles')
    op.drop_table('contact_roles')
