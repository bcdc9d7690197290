"""Menus published by HQ, per store, versioned; `menu_current` says which one each store should run.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create menus and menu_current."""
    op.create_table(
        "menus",
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "version", name="menus_pk"),
    )
    op.create_table(
        "menu_current",
        sa.Column("store_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("publication", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    """Drop the menu tables."""
    op.drop_table("menu_current")
    op.drop_table("menus")
