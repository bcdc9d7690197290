"""Per-user HQ API tokens (kept as SHA-256 hashes, revocable).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create hq_tokens."""
    op.create_table(
        "hq_tokens",
        sa.Column("token_id", sa.String(32), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("revoked_at", sa.String(32)),
    )


def downgrade() -> None:
    """Drop hq_tokens."""
    op.drop_table("hq_tokens")
