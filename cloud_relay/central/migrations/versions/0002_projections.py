"""Projections built from the ledger: tickets, lines, payments, exceptions, shifts, KDS prep times.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the projection tables (filled by the projector, rebuildable at any time)."""
    op.create_table(
        "proj_cursor",
        sa.Column("store_id", sa.String(64), primary_key=True),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )

    op.create_table(
        "proj_tickets",
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("number", sa.Integer),
        sa.Column("business_day", sa.String(10)),
        sa.Column("shift_id", sa.String(64)),
        sa.Column("channel", sa.String(16)),
        sa.Column("server", sa.String(64)),
        sa.Column("opened_at", sa.String(32)),
        sa.Column("closed_at", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total", sa.BigInteger, nullable=False),
        sa.Column("discount", sa.BigInteger, nullable=False),
        sa.Column("tax", sa.BigInteger, nullable=False),
        sa.Column("tip", sa.BigInteger, nullable=False),
        sa.Column("split_from", sa.String(64)),
        sa.PrimaryKeyConstraint("store_id", "ticket_id", name="proj_tickets_pk"),
    )

    op.create_table(
        "proj_lines",
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("line_id", sa.String(64), nullable=False),
        sa.Column("menu_item_id", sa.String(64), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("qty", sa.Integer, nullable=False),
        sa.Column("total", sa.BigInteger, nullable=False),
        sa.Column("voided", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("store_id", "ticket_id", "line_id", name="proj_lines_pk"),
    )

    op.create_table(
        "proj_payments",
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("payment_id", sa.String(64), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("shift_id", sa.String(64)),
        sa.Column("business_day", sa.String(10)),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("tip", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("store_id", "payment_id", name="proj_payments_pk"),
    )

    op.create_table(
        "proj_exceptions",
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("shift_id", sa.String(64)),
        sa.Column("business_day", sa.String(10)),
        sa.Column("ticket_id", sa.String(64)),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(64)),
        sa.Column("approver", sa.String(64)),
        sa.Column("reason", sa.Text),
        sa.PrimaryKeyConstraint("store_id", "epoch", "seq", name="proj_exceptions_pk"),
    )

    op.create_table(
        "proj_shifts",
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("shift_id", sa.String(64), nullable=False),
        sa.Column("business_day", sa.String(10)),
        sa.Column("opened_at", sa.String(32)),
        sa.Column("closed_at", sa.String(32)),
        sa.Column("z", sa.Text),
        sa.PrimaryKeyConstraint("store_id", "shift_id", name="proj_shifts_pk"),
    )

    op.create_table(
        "proj_prep",
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("line_id", sa.String(64), nullable=False),
        sa.Column("station", sa.String(64), nullable=False),
        sa.Column("started_at", sa.String(32)),
        sa.Column("ready_at", sa.String(32)),
        sa.Column("prep_s", sa.Integer),
        sa.PrimaryKeyConstraint("store_id", "ticket_id", "line_id", "station", name="proj_prep_pk"),
    )


def downgrade() -> None:
    """Drop the projections (they are rebuilt from the ledger)."""
    for table in (
        "proj_prep",
        "proj_shifts",
        "proj_exceptions",
        "proj_payments",
        "proj_lines",
        "proj_tickets",
        "proj_cursor",
    ):
        op.drop_table(table)
