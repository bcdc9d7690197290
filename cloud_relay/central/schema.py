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
    # The store's clock for reports (hub `[store] timezone`, `business_day_starts_at`); NULL: UTC, 04:00.
    Column("timezone", String(64)),
    Column("day_starts_at", String(5)),
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


# -- projections (rebuildable from ledger_entries with `storehub central rebuild`) --------------
proj_cursor = Table(
    "proj_cursor",
    metadata,
    Column("store_id", String(64), primary_key=True),
    Column("epoch", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
)

proj_tickets = Table(
    "proj_tickets",
    metadata,
    Column("store_id", String(64), nullable=False),
    Column("ticket_id", String(64), nullable=False),
    Column("number", Integer),
    Column("business_day", String(10)),
    Column("shift_id", String(64)),
    Column("channel", String(16)),
    Column("server", String(64)),
    Column("opened_at", String(32)),
    Column("closed_at", String(32)),
    Column("status", String(16), nullable=False),
    Column("total", BigInteger, nullable=False, default=0),
    Column("discount", BigInteger, nullable=False, default=0),
    Column("tax", BigInteger, nullable=False, default=0),
    Column("tip", BigInteger, nullable=False, default=0),
    Column("split_from", String(64)),
    Column("closed_hour", Integer),  # hour of closing on the store's clock (0-23)
    PrimaryKeyConstraint("store_id", "ticket_id", name="proj_tickets_pk"),
)

proj_lines = Table(
    "proj_lines",
    metadata,
    Column("store_id", String(64), nullable=False),
    Column("ticket_id", String(64), nullable=False),
    Column("line_id", String(64), nullable=False),
    Column("menu_item_id", String(64), nullable=False),
    Column("name", Text, nullable=False),
    Column("qty", Integer, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("voided", Boolean, nullable=False, default=False),
    PrimaryKeyConstraint("store_id", "ticket_id", "line_id", name="proj_lines_pk"),
)

proj_payments = Table(
    "proj_payments",
    metadata,
    Column("store_id", String(64), nullable=False),
    Column("payment_id", String(64), nullable=False),
    Column("ticket_id", String(64), nullable=False),
    Column("shift_id", String(64)),
    Column("business_day", String(10)),
    Column("at", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("tip", BigInteger, nullable=False),
    # Card taken while the store could not reach the payments API: pending, then authorised or declined.
    Column("auth", String(16)),
    Column("auth_at", String(32)),
    PrimaryKeyConstraint("store_id", "payment_id", name="proj_payments_pk"),
)

proj_exceptions = Table(
    "proj_exceptions",
    metadata,
    Column("store_id", String(64), nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("at", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("shift_id", String(64)),
    Column("business_day", String(10)),
    Column("ticket_id", String(64)),
    Column("amount", BigInteger, nullable=False),
    Column("actor", String(64)),
    Column("approver", String(64)),
    Column("reason", Text),
    PrimaryKeyConstraint("store_id", "epoch", "seq", name="proj_exceptions_pk"),
)

proj_shifts = Table(
    "proj_shifts",
    metadata,
    Column("store_id", String(64), nullable=False),
    Column("shift_id", String(64), nullable=False),
    Column("business_day", String(10)),
    Column("opened_at", String(32)),
    Column("closed_at", String(32)),
    Column("z", Text),
    PrimaryKeyConstraint("store_id", "shift_id", name="proj_shifts_pk"),
)

proj_prep = Table(
    "proj_prep",
    metadata,
    Column("store_id", String(64), nullable=False),
    Column("ticket_id", String(64), nullable=False),
    Column("line_id", String(64), nullable=False),
    Column("station", String(64), nullable=False),
    Column("started_at", String(32)),
    Column("ready_at", String(32)),
    Column("prep_s", Integer),
    PrimaryKeyConstraint("store_id", "ticket_id", "line_id", "station", name="proj_prep_pk"),
)

hq_users = Table(
    "hq_users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
)

hq_tokens = Table(
    "hq_tokens",
    metadata,
    Column("token_id", String(32), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", String(32), nullable=False),
    Column("revoked_at", String(32)),
)

menus = Table(
    "menus",
    metadata,
    Column("store_id", String(64), nullable=False),
    Column("version", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
    PrimaryKeyConstraint("store_id", "version", name="menus_pk"),
)

menu_current = Table(
    "menu_current",
    metadata,
    Column("store_id", String(64), primary_key=True),
    Column("version", String(64), nullable=False),
    Column("publication", Integer, nullable=False),
    Column("updated_at", String(32), nullable=False),
)
