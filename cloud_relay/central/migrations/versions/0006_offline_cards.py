"""Offline card payments: the authorisation state of a card taken while the payments API was out of reach.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add proj_payments.auth and proj_payments.auth_at."""
    with op.batch_alter_table("proj_payments") as batch:
        batch.add_column(sa.Column("auth", sa.String(16)))
        batch.add_column(sa.Column("auth_at", sa.String(32)))


def downgrade() -> None:
    """Drop the columns."""
    with op.batch_alter_table("proj_payments") as batch:
        batch.drop_column("auth_at")
        batch.drop_column("auth")
