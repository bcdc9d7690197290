"""Central's storage port and its one adapter (SQLAlchemy 2 async Core over SQLite or PostgreSQL).

`ingest` is the heart: in one transaction it checks the batch against what central already holds
for the store (contiguity, chain, forks) and inserts the new entries with ON CONFLICT DO NOTHING
on (store, epoch, seq). It never updates or deletes an entry.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from alembic import command
from alembic.config import Config
from sqlalchemy import event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from cloud_relay.central.schema import (
    hq_tokens,
    hq_users,
    ledger_entries,
    menu_current,
    menus,
    quarantine,
    store_heads,
    stores,
)
from hub.store.ledger import GENESIS_HASH

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from cloud_relay.central.batch import CheckedBatch

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@dataclass(frozen=True, slots=True)
class Acked:
    """Stored (or already stored): central holds the store's ledger up to `seq`."""

    seq: int
    inserted: int


@dataclass(frozen=True, slots=True)
class Gap:
    """The batch does not start where central's copy ends: resend from `expected_seq`."""

    epoch: int
    expected_seq: int


@dataclass(frozen=True, slots=True)
class Fork:
    """The batch contradicts entries central already holds: refused, quarantined, alerted."""

    reason: str


IngestResult = Acked | Gap | Fork


class StorageUnavailableError(Exception):
    """The database failed under a write (answered 503 with Retry-After, like SQLAlchemy's errors)."""


@dataclass(frozen=True, slots=True)
class StoreRecord:
    """A registered store."""

    store_id: str
    key_hash: str
    secret_enc: str


class Repository:
    """Central's database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # SQLite has one writer: serialise writes here rather than meet SQLITE_BUSY.
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None

    @classmethod
    def open(cls, url: str, *, pool_size: int = 5) -> Repository:
        """An engine for `url` (`sqlite+aiosqlite:///…` or `postgresql+asyncpg://…`)."""
        if url.startswith("sqlite"):
            engine = create_async_engine(url)
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        return cls(engine)

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    # -- store registry ------------------------------------------------------------------------
    async def add_store(
        self,
        store_id: str,
        key_hash: str,
        secret_enc: str,
        now: str,
        *,
        timezone: str | None = None,
        day_starts_at: str | None = None,
    ) -> bool:
        """Register a store (with its clock, when HQ knows it); False if the id is taken."""
        async with self._writing(), self.engine.begin() as conn:
            exists = await conn.scalar(select(stores.c.store_id).where(stores.c.store_id == store_id))
            if exists is not None:
                return False
            await conn.execute(
                stores.insert().values(
                    store_id=store_id,
                    key_hash=key_hash,
                    secret_enc=secret_enc,
                    created_at=now,
                    timezone=timezone,
                    day_starts_at=day_starts_at,
                )
            )
        return True

    async def set_store_clock(self, store_id: str, timezone: str | None, day_starts_at: str | None) -> bool:
        """Set a store's time zone and/or business-day start (None: unchanged); False for an unknown store."""
        values = {k: v for k, v in {"timezone": timezone, "day_starts_at": day_starts_at}.items() if v is not None}
        async with self._writing(), self.engine.begin() as conn:
            if await conn.scalar(select(stores.c.store_id).where(stores.c.store_id == store_id)) is None:
                return False
            if values:
                await conn.execute(update(stores).where(stores.c.store_id == store_id).values(**values))
        return True

    async def store_clocks(self) -> dict[str, tuple[str | None, str | None]]:
        """Every store's (timezone, day_starts_at) as central holds them (None: not known)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(stores.c.store_id, stores.c.timezone, stores.c.day_starts_at))
            return {str(r[0]): (r[1], r[2]) for r in rows}

    async def get_store(self, store_id: str) -> StoreRecord | None:
        """A registered store, or None."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(stores.c.store_id, stores.c.key_hash, stores.c.secret_enc).where(
                        stores.c.store_id == store_id
                    )
                )
            ).first()
        return None if row is None else StoreRecord(row.store_id, row.key_hash, row.secret_enc)

    async def list_stores(self) -> list[str]:
        """Every registered store id."""
        async with self.engine.connect() as conn:
            return [str(r[0]) for r in await conn.execute(select(stores.c.store_id).order_by(stores.c.store_id))]

    # -- menus ---------------------------------------------------------------------------------
    async def publish_menu(self, store_id: str, version: str, body: str | None, now: str) -> str | None:
        """Make `version` the store's current menu (storing `body` if new); returns why not, or None.

        Each publication gets a new number, so a rollback to an older version is a new publication.
        A version is immutable: the same version with another body is refused.
        """
        async with self._writing(), self.engine.begin() as conn:
            if await conn.scalar(select(stores.c.store_id).where(stores.c.store_id == store_id)) is None:
                return f"unknown store {store_id!r}"
            stored = await conn.scalar(
                select(menus.c.body).where(menus.c.store_id == store_id, menus.c.version == version)
            )
            if body is None and stored is None:
                return f"store {store_id!r} never had menu version {version!r}"
            if body is not None and stored is not None and stored != body:
                return f"menu version {version!r} of {store_id!r} already exists with other content: use a new version"
            if stored is None:
                await conn.execute(menus.insert().values(store_id=store_id, version=version, body=body, created_at=now))
            last = await conn.scalar(select(menu_current.c.publication).where(menu_current.c.store_id == store_id))
            await conn.execute(menu_current.delete().where(menu_current.c.store_id == store_id))
            await conn.execute(
                menu_current.insert().values(
                    store_id=store_id, version=version, publication=int(last or 0) + 1, updated_at=now
                )
            )
        return None

    async def current_menu(self, store_id: str) -> tuple[str, int, str] | None:
        """(version, publication, body) of the store's current menu, or None."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(menu_current.c.version, menu_current.c.publication, menus.c.body)
                    .select_from(
                        menu_current.join(
                            menus,
                            (menus.c.store_id == menu_current.c.store_id) & (menus.c.version == menu_current.c.version),
                        )
                    )
                    .where(menu_current.c.store_id == store_id)
                )
            ).first()
        return None if row is None else (str(row.version), int(row.publication), str(row.body))

    # -- HQ users ------------------------------------------------------------------------------
    async def put_user(self, username: str, role: str, password_hash: str, now: str) -> None:
        """Create an HQ user or replace its role and password."""
        async with self._writing(), self.engine.begin() as conn:
            await conn.execute(hq_users.delete().where(hq_users.c.username == username))
            await conn.execute(
                hq_users.insert().values(username=username, role=role, password_hash=password_hash, created_at=now)
            )

    async def get_user(self, username: str) -> tuple[str, str] | None:
        """(role, password hash) of an HQ user, or None."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(hq_users.c.role, hq_users.c.password_hash).where(hq_users.c.username == username)
                )
            ).first()
        return None if row is None else (str(row.role), str(row.password_hash))

    async def add_token(self, token_id: str, username: str, token_hash: str, now: str) -> bool:
        """Keep a new API token's hash for an HQ user; False if there is no such user."""
        async with self._writing(), self.engine.begin() as conn:
            if await conn.scalar(select(hq_users.c.username).where(hq_users.c.username == username)) is None:
                return False
            await conn.execute(
                hq_tokens.insert().values(token_id=token_id, username=username, token_hash=token_hash, created_at=now)
            )
        return True

    async def revoke_token(self, token_id: str, now: str) -> bool:
        """Revoke an API token at once; False if there is no such token (revoking twice is harmless)."""
        async with self._writing(), self.engine.begin() as conn:
            if await conn.scalar(select(hq_tokens.c.token_id).where(hq_tokens.c.token_id == token_id)) is None:
                return False
            await conn.execute(
                update(hq_tokens)
                .where(hq_tokens.c.token_id == token_id, hq_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return True

    async def token_owner(self, token_hash: str) -> tuple[str, str, str | None] | None:
        """(user name, role, revoked_at) for a token hash, or None when no token (or its user) exists."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(hq_tokens.c.username, hq_users.c.role, hq_tokens.c.revoked_at)
                    .select_from(hq_tokens.join(hq_users, hq_users.c.username == hq_tokens.c.username))
                    .where(hq_tokens.c.token_hash == token_hash)
                )
            ).first()
        return None if row is None else (str(row.username), str(row.role), row.revoked_at)

    async def tokens(self, username: str) -> list[dict[str, Any]]:
        """An HQ user's API tokens (ids and dates; never the tokens)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(hq_tokens.c.token_id, hq_tokens.c.created_at, hq_tokens.c.revoked_at)
                .where(hq_tokens.c.username == username)
                .order_by(hq_tokens.c.created_at, hq_tokens.c.token_id)
            )
            return [dict(row._mapping) for row in rows]  # noqa: SLF001 - SQLAlchemy's public row API

    # -- ingest --------------------------------------------------------------------------------
    async def ingest(self, batch: CheckedBatch, now: str) -> IngestResult:
        """Store a checked batch in one transaction, or say why not."""
        async with self._writing(), self.engine.begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(select(stores.c.store_id).where(stores.c.store_id == batch.store).with_for_update())
            # Every refusal is decided before the first write, so only an Acked result wrote anything.
            return await self._ingest(conn, batch, now)

    async def _ingest(self, conn: AsyncConnection, batch: CheckedBatch, now: str) -> IngestResult:
        head = (
            await conn.execute(
                select(store_heads.c.last_seq, store_heads.c.last_hash).where(
                    store_heads.c.store_id == batch.store, store_heads.c.epoch == batch.epoch
                )
            )
        ).first()
        if head is not None:
            expected, prev = int(head.last_seq) + 1, str(head.last_hash)
        elif batch.first_seq == 1:
            expected, prev = 1, GENESIS_HASH
        else:
            # A new epoch (restore from backup): it continues from an entry of an earlier epoch.
            pred = await conn.scalar(
                select(ledger_entries.c.hash)
                .where(
                    ledger_entries.c.store_id == batch.store,
                    ledger_entries.c.epoch < batch.epoch,
                    ledger_entries.c.seq == batch.first_seq - 1,
                )
                .order_by(ledger_entries.c.epoch.desc())
                .limit(1)
            )
            if pred is None:
                top = await conn.scalar(
                    select(func.max(store_heads.c.last_seq)).where(
                        store_heads.c.store_id == batch.store, store_heads.c.epoch < batch.epoch
                    )
                )
                return Gap(batch.epoch, min(int(top or 0) + 1, batch.first_seq))
            expected, prev = batch.first_seq, str(pred)
        if batch.first_seq > expected:
            return Gap(batch.epoch, expected)
        overlap = expected - batch.first_seq
        if overlap > 0:
            stored = {
                int(row[0]): str(row[1])
                for row in await conn.execute(
                    select(ledger_entries.c.seq, ledger_entries.c.hash).where(
                        ledger_entries.c.store_id == batch.store,
                        ledger_entries.c.epoch == batch.epoch,
                        ledger_entries.c.seq >= batch.first_seq,
                        ledger_entries.c.seq < expected,
                    )
                )
            }
            for seq, digest in zip(batch.seqs[:overlap], batch.hashes[:overlap], strict=True):
                if stored.get(seq) != digest:
                    return Fork(f"seq {seq} of epoch {batch.epoch} is already stored with another hash (a fork)")
        new_rows = batch.rows[overlap:]
        if not new_rows:
            return Acked(batch.last_seq, 0)
        if new_rows[0]["prev_hash"] != prev:
            return Fork(
                f"seq {new_rows[0]['seq']} of epoch {batch.epoch} does not continue the stored chain "
                f"(its prev_hash differs from the stored hash of seq {expected - 1}: a fork)"
            )
        await self._insert_new(conn, new_rows, now)
        if head is None:
            await conn.execute(
                store_heads.insert().values(
                    store_id=batch.store,
                    epoch=batch.epoch,
                    last_seq=batch.last_seq,
                    last_hash=batch.last_hash,
                    last_at=batch.last_at,
                    updated_at=now,
                )
            )
        else:
            await conn.execute(
                update(store_heads)
                .where(store_heads.c.store_id == batch.store, store_heads.c.epoch == batch.epoch)
                .values(last_seq=batch.last_seq, last_hash=batch.last_hash, last_at=batch.last_at, updated_at=now)
            )
        await conn.execute(update(stores).where(stores.c.store_id == batch.store).values(last_batch_at=now))
        return Acked(batch.last_seq, len(new_rows))

    async def _insert_new(self, conn: AsyncConnection, rows: list[dict[str, Any]], now: str) -> None:
        """Insert entries that are new under this transaction's lock (checked against the head above).

        PostgreSQL: one COPY (binary, one round trip, no per-row statement); the store row is locked
        FOR UPDATE and every seq is above the stored head, so no row can already be there. SQLite:
        executemany with ON CONFLICT DO NOTHING.
        """
        if self.dialect == "postgresql":
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            values = itemgetter(*_COPY_COLUMNS[:-1])
            records = [(*values(row), now) for row in rows]
            import asyncpg  # type: ignore[import-untyped]  # noqa: PLC0415 - only PostgreSQL needs it

            try:
                await driver.copy_records_to_table("ledger_entries", records=records, columns=_COPY_COLUMNS)
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # The raw driver's errors are not SQLAlchemy's: say "storage unavailable" like those do.
                raise StorageUnavailableError(f"COPY into ledger_entries failed: {exc}") from exc
            return
        await conn.execute(self._insert_entries(), [row | {"received_at": now} for row in rows])

    def _insert_entries(self) -> Any:
        if self.dialect == "postgresql":
            return postgresql.insert(ledger_entries).on_conflict_do_nothing(index_elements=["store_id", "epoch", "seq"])
        return sqlite.insert(ledger_entries).on_conflict_do_nothing(index_elements=["store_id", "epoch", "seq"])

    async def add_quarantine(
        self,
        *,
        store_id: str,
        kind: str,
        reason: str,
        body: bytes,
        now: str,
        epoch: int | None = None,
        first_seq: int | None = None,
        last_seq: int | None = None,
        fork: bool = False,
    ) -> int:
        """Keep a refused batch as it came (raw bytes) with the reason; returns its id."""
        async with self._writing(), self.engine.begin() as conn:
            result = await conn.execute(
                quarantine.insert().values(
                    store_id=store_id,
                    received_at=now,
                    kind=kind,
                    reason=reason,
                    epoch=epoch,
                    first_seq=first_seq,
                    last_seq=last_seq,
                    fork=fork,
                    body=body,
                )
            )
            key = result.inserted_primary_key
            return int(key[0]) if key else 0

    # -- reading -------------------------------------------------------------------------------
    async def quarantined(self, store_id: str | None = None) -> list[dict[str, Any]]:
        """Refused batches, newest first (without their bodies)."""
        query = select(
            quarantine.c.id,
            quarantine.c.store_id,
            quarantine.c.received_at,
            quarantine.c.kind,
            quarantine.c.reason,
            quarantine.c.epoch,
            quarantine.c.first_seq,
            quarantine.c.last_seq,
            quarantine.c.fork,
        ).order_by(quarantine.c.id.desc())
        if store_id is not None:
            query = query.where(quarantine.c.store_id == store_id)
        async with self.engine.connect() as conn:
            return [dict(row._mapping) for row in await conn.execute(query)]  # noqa: SLF001 - SQLAlchemy's public row API

    async def heads(self, store_id: str) -> list[dict[str, Any]]:
        """Central's head per epoch for a store."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(store_heads).where(store_heads.c.store_id == store_id).order_by(store_heads.c.epoch)
            )
            return [dict(row._mapping) for row in rows]  # noqa: SLF001

    async def audit(self, store_id: str) -> dict[str, Any]:
        """Entries, duplicates and gaps per store as central holds them, plus the newest hash."""
        async with self.engine.connect() as conn:
            per_epoch = (
                await conn.execute(
                    select(
                        ledger_entries.c.epoch,
                        func.count(),
                        func.min(ledger_entries.c.seq),
                        func.max(ledger_entries.c.seq),
                    )
                    .where(ledger_entries.c.store_id == store_id)
                    .group_by(ledger_entries.c.epoch)
                )
            ).all()
            distinct = await conn.scalar(
                select(func.count()).select_from(
                    select(ledger_entries.c.epoch, ledger_entries.c.seq)
                    .where(ledger_entries.c.store_id == store_id)
                    .distinct()
                    .subquery()
                )
            )
            last = (
                await conn.execute(
                    select(ledger_entries.c.seq, ledger_entries.c.hash)
                    .where(ledger_entries.c.store_id == store_id)
                    .order_by(ledger_entries.c.epoch.desc(), ledger_entries.c.seq.desc())
                    .limit(1)
                )
            ).first()
        count = sum(int(r[1]) for r in per_epoch)
        gaps = sum(int(r[3]) - int(r[2]) + 1 - int(r[1]) for r in per_epoch)
        # Each epoch continues from an entry of the one before, so it starts above 1 only after a restore.
        return {
            "entries": count,
            "duplicates": count - int(distinct or 0),
            "gaps": gaps,
            "last_seq": int(last.seq) if last else 0,
            "last_hash": str(last.hash) if last else GENESIS_HASH,
        }

    async def entries(self, store_id: str, epoch: int | None = None) -> list[dict[str, Any]]:
        """Every entry of a store, in (epoch, seq) order."""
        query = select(ledger_entries).where(ledger_entries.c.store_id == store_id)
        if epoch is not None:
            query = query.where(ledger_entries.c.epoch == epoch)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.order_by(ledger_entries.c.epoch, ledger_entries.c.seq))
            return [dict(row._mapping) for row in rows]  # noqa: SLF001

    def writing(self) -> Any:
        """Hold this around a write transaction (SQLite has one writer; PostgreSQL needs no lock)."""
        return self._writing()

    def _writing(self) -> Any:
        return self._write_lock if self._write_lock is not None else _NoLock()


_COPY_COLUMNS: Final = (
    "store_id", "epoch", "seq", "at", "type", "actor", "device", "cmd", "data", "prev_hash", "hash", "received_at",
)  # fmt: skip


class _NoLock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
