"""Central's tables (SQLAlchemy Core), one schema for SQLite and PostgreSQL.

Alembic migrations in `cloud_relay/central/migrations` create exactly these; a test compares them.
`ledger_entries` is append-only: (store_id, epoch, seq) is its permanent key, and nothing updates
or deletes a row.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

stores = Table(
    "stores",
    metadata,
    Column("store_id", String(64), primary_key=True),
    Column("key_hash", String(64), nullable=False),
    Column("secret_enc", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("last_batch_at", String(32)),
    Column("halted_reason", Text),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("store_id", String(64), nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("at", String(32), nullable=False),
    Column("type", String(64), nullable=False),
    Column("actor", String(64)),
    Column("device", String(64)),
    Column("cmd", String(128)),
    Column("data", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("received_at", String(32), nullable=False),
    PrimaryKeyConstraint("store_id", "epoch", "seq", name="ledger_entries_pk"),
)

store_heads = Table(
    "store_heads",
    metadata,
    Column("store_id", String(64), nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("last_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    PrimaryKeyConstraint("store_id", "epoch", name="store_heads_pk"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("store_id", String(64), nullable=False),
    Column("received_at", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("epoch", Integer),
    Column("first_seq", BigInteger),
    Column("last_seq", BigInteger),
    Column("fork", Boolean, nullable=False, default=False),
    Column("body", LargeBinary, nullable=False),
)
