"""Each store's clock (time zone, business-day cut-off) and the local hour a ticket closed.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add stores.timezone, stores.day_starts_at and proj_tickets.closed_hour."""
    with op.batch_alter_table("stores") as batch:
        batch.add_column(sa.Column("timezone", sa.String(64)))
        batch.add_column(sa.Column("day_starts_at", sa.String(5)))
    with op.batch_alter_table("proj_tickets") as batch:
        batch.add_column(sa.Column("closed_hour", sa.Integer))


def downgrade() -> None:
    """Drop the columns."""
    with op.batch_alter_table("proj_tickets") as batch:
        batch.drop_column("closed_hour")
    with op.batch_alter_table("stores") as batch:
        batch.drop_column("day_starts_at")
        batch.drop_column("timezone")
