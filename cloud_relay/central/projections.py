"""Projections at central, folded from the stored ledger: idempotent and rebuildable.

Each store has a projection cursor (epoch, seq). `catch_up` applies the entries after it in pages,
each page and the cursor move in one transaction, so a crash never applies an entry twice; every
row is keyed by a natural id (ticket, line, payment, ledger position), so replaying is harmless.
`rebuild` empties every projection and folds the whole ledger again.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from cloud_relay.central.schema import (
    ledger_entries,
    proj_cursor,
    proj_exceptions,
    proj_lines,
    proj_payments,
    proj_prep,
    proj_shifts,
    proj_tickets,
    stores,
)
from cloud_relay.central.storetime import StoreClock

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncConnection

    from cloud_relay.central.repository import Repository

PAGE: Final = 2000
PROJECTION_TABLES: Final = (
    proj_cursor,
    proj_tickets,
    proj_lines,
    proj_payments,
    proj_exceptions,
    proj_shifts,
    proj_prep,
)


class Projector:
    """Keeps the projections of every store up to date with its stored ledger."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._locks: dict[str, asyncio.Lock] = {}
        self._clocks: dict[str, StoreClock] = {}

    async def catch_up(self, store_id: str) -> int:
        """Apply every stored entry after the store's projection cursor; returns how many."""
        lock = self._locks.setdefault(store_id, asyncio.Lock())
        applied = 0
        async with lock:
            while True:
                async with self.repo.writing(), self.repo.engine.begin() as conn:
                    cursor = (
                        await conn.execute(
                            select(proj_cursor.c.epoch, proj_cursor.c.seq).where(proj_cursor.c.store_id == store_id)
                        )
                    ).first()
                    epoch, seq = (int(cursor.epoch), int(cursor.seq)) if cursor else (-1, 0)
                    rows = (
                        await conn.execute(
                            select(ledger_entries)
                            .where(
                                ledger_entries.c.store_id == store_id,
                                or_(
                                    ledger_entries.c.epoch > epoch,
                                    and_(ledger_entries.c.epoch == epoch, ledger_entries.c.seq > seq),
                                ),
                            )
                            .order_by(ledger_entries.c.epoch, ledger_entries.c.seq)
                            .limit(PAGE)
                        )
                    ).all()
                    if not rows:
                        return applied
                    self._clocks[store_id] = await _clock(conn, store_id)
                    for row in rows:
                        await self._apply(conn, store_id, row._mapping)  # noqa: SLF001 - SQLAlchemy's row API
                    last = rows[-1]
                    await self._upsert(
                        conn, proj_cursor, {"store_id": store_id, "epoch": last.epoch, "seq": last.seq}, ["store_id"]
                    )
                    applied += len(rows)

    async def rebuild(self, only: str | None = None) -> int:
        """Empty the projections (of one store, or all) and fold the ledger again; returns entries applied."""
        async with self.repo.writing(), self.repo.engine.begin() as conn:
            for table in PROJECTION_TABLES:
                await conn.execute(delete(table) if only is None else delete(table).where(table.c.store_id == only))
            query = select(stores.c.store_id)
            if only is not None:
                query = query.where(stores.c.store_id == only)
            store_ids = [r[0] for r in await conn.execute(query)]
        total = 0
        for store_id in store_ids:
            total += await self.catch_up(store_id)
        return total

    # -- folding -------------------------------------------------------------------------------
    async def _apply(self, conn: AsyncConnection, store: str, entry: Any) -> None:
        kind = entry["type"]
        d: dict[str, Any] = json.loads(entry["data"])
        at = entry["at"]
        clock = self._clocks.get(store) or StoreClock()
        if not d.get("business_day"):
            # An entry without the hub's business day gets the one of the store's clock.
            d["business_day"] = clock.business_day(at)
        if kind == "ticket.opened":
            await self._upsert(
                conn,
                proj_tickets,
                {
                    "store_id": store,
                    "ticket_id": d["ticket_id"],
                    "number": d.get("number"),
                    "business_day": d.get("business_day"),
                    "shift_id": d.get("shift_id"),
                    "channel": d.get("channel"),
                    "server": d.get("server"),
                    "opened_at": at,
                    "status": "open",
                    "total": 0,
                    "discount": 0,
                    "tax": 0,
                    "tip": 0,
                },
                ["store_id", "ticket_id"],
            )
        elif kind == "ticket.items_added":
            for line in d.get("lines", []):
                amounts = line.get("amounts") or {}
                await self._upsert(
                    conn,
                    proj_lines,
                    {
                        "store_id": store,
                        "ticket_id": d["ticket_id"],
                        "line_id": line["line_id"],
                        "menu_item_id": line["menu_item_id"],
                        "name": line.get("name", ""),
                        "qty": line["qty"],
                        "total": amounts.get("total", 0),
                        "voided": False,
                    },
                    ["store_id", "ticket_id", "line_id"],
                )
        elif kind == "ticket.split":
            for part in d.get("parts", []):
                if part["ticket_id"] != d["ticket_id"]:
                    await self._upsert(
                        conn,
                        proj_tickets,
                        {
                            "store_id": store,
                            "ticket_id": part["ticket_id"],
                            "number": part.get("number"),
                            "business_day": d.get("business_day"),
                            "shift_id": d.get("shift_id"),
                            "opened_at": at,
                            "status": "open",
                            "total": 0,
                            "discount": 0,
                            "tax": 0,
                            "tip": 0,
                            "split_from": d["ticket_id"],
                        },
                        ["store_id", "ticket_id"],
                    )
        elif kind == "ticket.paid":
            for payment in d.get("payments", []):
                await self._upsert(
                    conn,
                    proj_payments,
                    {
                        "store_id": store,
                        "payment_id": payment["payment_id"],
                        "ticket_id": d["ticket_id"],
                        "shift_id": d.get("shift_id"),
                        "business_day": d.get("business_day"),
                        "at": at,
                        "kind": payment["kind"],
                        "amount": payment["amount"],
                        "tip": payment.get("tip") or 0,
                        # docs/contract.md "Offline card payments": pending until payment.authorised/declined
                        "auth": "pending" if payment["kind"] == "card" and payment.get("offline") is True else None,
                    },
                    ["store_id", "payment_id"],
                )
        elif kind in PAYMENT_OUTCOMES:
            await conn.execute(
                proj_payments.update()
                .where(proj_payments.c.store_id == store, proj_payments.c.payment_id == d["payment_id"])
                .values(auth=PAYMENT_OUTCOMES[kind], auth_at=at)
            )
        elif kind == "ticket.closed":
            await self._upsert(
                conn,
                proj_tickets,
                {
                    "store_id": store,
                    "ticket_id": d["ticket_id"],
                    "number": d.get("number"),
                    "business_day": d.get("business_day"),
                    "shift_id": d.get("shift_id"),
                    "server": d.get("server"),
                    "closed_at": at,
                    "closed_hour": clock.hour(at),
                    "status": "closed",
                    "total": d.get("total", 0),
                    "discount": d.get("discount", 0),
                    "tax": d.get("tax", 0),
                    "tip": d.get("tip", 0),
                },
                ["store_id", "ticket_id"],
            )
        elif kind == "ticket.reopened":
            await self._set_status(conn, store, d["ticket_id"], "open")
        elif kind in EXCEPTIONS:
            await self._exception(conn, store, entry, d)
        elif kind == "ticket.item_started":
            for line_id in d.get("line_ids", []):
                await self._upsert(
                    conn,
                    proj_prep,
                    {
                        "store_id": store,
                        "ticket_id": d["ticket_id"],
                        "line_id": line_id,
                        "station": d.get("station", ""),
                        "started_at": at,
                    },
                    ["store_id", "ticket_id", "line_id", "station"],
                )
        elif kind == "ticket.item_ready":
            for line in d.get("lines", []):
                await self._upsert(
                    conn,
                    proj_prep,
                    {
                        "store_id": store,
                        "ticket_id": d["ticket_id"],
                        "line_id": line["line_id"],
                        "station": d.get("station", ""),
                        "ready_at": at,
                        "prep_s": line.get("fired_to_ready_s"),
                    },
                    ["store_id", "ticket_id", "line_id", "station"],
                )
        elif kind == "shift.opened":
            await self._upsert(
                conn,
                proj_shifts,
                {"store_id": store, "shift_id": d["shift_id"], "business_day": d.get("business_day"), "opened_at": at},
                ["store_id", "shift_id"],
            )
        elif kind == "store.configured":
            await self._configured(conn, store, d)
        elif kind == "shift.closed":
            report = d.get("report") or {}
            await self._upsert(
                conn,
                proj_shifts,
                {
                    "store_id": store,
                    "shift_id": d["shift_id"],
                    "business_day": d.get("business_day"),
                    "closed_at": at,
                    "z": json.dumps(report, sort_keys=True),
                },
                ["store_id", "shift_id"],
            )

    async def _configured(self, conn: AsyncConnection, store: str, d: dict[str, Any]) -> None:
        # The hub's own word on its clock wins over what HQ typed in; a bad value is left out, not fatal.
        if "timezone" not in d and "business_day_starts_at" not in d:
            return
        current = self._clocks.get(store) or StoreClock()
        try:
            clock = StoreClock.of(
                str(d.get("timezone") or current.timezone),
                str(d.get("business_day_starts_at") or current.day_starts_at),
            )
        except ValueError:
            return
        self._clocks[store] = clock
        await conn.execute(
            stores.update()
            .where(stores.c.store_id == store)
            .values(timezone=clock.timezone, day_starts_at=clock.day_starts_at)
        )

    async def _exception(self, conn: AsyncConnection, store: str, entry: Any, d: dict[str, Any]) -> None:
        kind = EXCEPTIONS[entry["type"]]
        spec = d.get("discount") or d.get("refund") or {}
        if kind == "item_void":
            await conn.execute(
                proj_lines.update()
                .where(
                    proj_lines.c.store_id == store,
                    proj_lines.c.ticket_id == d["ticket_id"],
                    proj_lines.c.line_id == d["line_id"],
                )
                .values(voided=True)
            )
        if kind == "ticket_void":
            await self._set_status(conn, store, d["ticket_id"], "voided")
        await self._upsert(
            conn,
            proj_exceptions,
            {
                "store_id": store,
                "epoch": entry["epoch"],
                "seq": entry["seq"],
                "at": entry["at"],
                "kind": kind,
                "shift_id": d.get("shift_id"),
                "business_day": d.get("business_day"),
                "ticket_id": d.get("ticket_id"),
                "amount": int(d.get("amount") or 0),
                "actor": entry["actor"],
                "approver": d.get("approved_by") or spec.get("approved_by"),
                "reason": d.get("reason") or spec.get("reason"),
            },
            ["store_id", "epoch", "seq"],
        )

    async def _set_status(self, conn: AsyncConnection, store: str, ticket_id: str, status: str) -> None:
        await conn.execute(
            proj_tickets.update()
            .where(proj_tickets.c.store_id == store, proj_tickets.c.ticket_id == ticket_id)
            .values(status=status)
        )

    async def _upsert(self, conn: AsyncConnection, table: Table, values: dict[str, Any], keys: list[str]) -> None:
        dialect = postgresql if self.repo.dialect == "postgresql" else sqlite
        stmt = dialect.insert(table).values(**values)
        changes = {k: v for k, v in values.items() if k not in keys}
        await conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=changes))


async def _clock(conn: AsyncConnection, store_id: str) -> StoreClock:
    row = (
        await conn.execute(select(stores.c.timezone, stores.c.day_starts_at).where(stores.c.store_id == store_id))
    ).first()
    try:
        return StoreClock.of(row.timezone, row.day_starts_at) if row else StoreClock()
    except ValueError:
        return StoreClock()


PAYMENT_OUTCOMES: Final = {"payment.authorised": "authorised", "payment.declined": "declined"}
EXCEPTIONS: Final = {
    "ticket.item_voided": "item_void",
    "ticket.voided": "ticket_void",
    "ticket.discounted": "discount",
    "ticket.refunded": "refund",
    "drawer.opened": "no_sale",
}
