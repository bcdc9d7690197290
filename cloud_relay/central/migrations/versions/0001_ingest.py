"""Store registry, append-only ledger entries, per-epoch heads and the quarantine.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the ingest tables."""
    op.create_table(
        "stores",
        sa.Column("store_id", sa.String(64), primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("secret_enc", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("last_batch_at", sa.String(32)),
        sa.Column("halted_reason", sa.Text),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(64)),
        sa.Column("device", sa.String(64)),
        sa.Column("cmd", sa.String(128)),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("received_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "epoch", "seq", name="ledger_entries_pk"),
    )
    op.create_table(
        "store_heads",
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("last_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "epoch", name="store_heads_pk"),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("received_at", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("epoch", sa.Integer),
        sa.Column("first_seq", sa.BigInteger),
        sa.Column("last_seq", sa.BigInteger),
        sa.Column("fork", sa.Boolean, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    """Central's ledger is never dropped by a migration."""
    raise RuntimeError("the ingest schema cannot be downgraded: it holds the stores' books")
