"""HQ reports over the projections (money in minor units; days and hours on each store's own clock).

Ledger times stay UTC (`at`); a business day is the hub's, and an hour is the store-time hour
(`[store] timezone` as central knows it: `storehub central store add/clock --timezone`, or the hub's
`store.configured` entry).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select

from cloud_relay.central.schema import (
    proj_exceptions,
    proj_lines,
    proj_payments,
    proj_prep,
    proj_shifts,
    proj_tickets,
    store_heads,
    stores,
)

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Table

    from cloud_relay.central.repository import Repository


@dataclass(frozen=True, slots=True)
class Filters:
    """Which stores and business days a report covers (None: all)."""

    store: str | None = None
    day_from: str | None = None
    day_to: str | None = None

    def where(self, table: Table) -> list[ColumnElement[bool]]:
        """The WHERE clauses for a projection table with store_id and business_day columns."""
        out: list[ColumnElement[bool]] = []
        if self.store:
            out.append(table.c.store_id == self.store)
        if self.day_from:
            out.append(table.c.business_day >= self.day_from)
        if self.day_to:
            out.append(table.c.business_day <= self.day_to)
        return out


async def _rows(repo: Repository, query: Any) -> list[dict[str, Any]]:
    async with repo.engine.connect() as conn:
        return [dict(row._mapping) for row in await conn.execute(query)]  # noqa: SLF001 - SQLAlchemy's row API


async def sales(repo: Repository, f: Filters, by: str) -> list[dict[str, Any]]:
    """Closed tickets' totals by `store`, `day` (business day) or `hour` (store-time hour of closing)."""
    t = proj_tickets
    hour = t.c.closed_hour
    keys: list[Any] = [t.c.store_id]
    if by in ("day", "hour"):
        keys.append(t.c.business_day)
    if by == "hour":
        keys.append(hour.label("hour"))
    query = (
        select(
            *keys,
            func.count().label("tickets"),
            func.sum(t.c.total).label("total"),
            func.sum(t.c.tax).label("tax"),
            func.sum(t.c.discount).label("discount"),
            func.sum(t.c.tip).label("tips"),
        )
        .where(t.c.status == "closed", *f.where(t))
        .group_by(*keys)
        .order_by(*keys)
    )
    rows = _ints(await _rows(repo, query), "tickets", "total", "tax", "discount", "tips")
    for row in rows:
        if "hour" in row:
            row["hour"] = "--" if row["hour"] is None else f"{int(row['hour']):02d}"
    return rows


async def item_mix(repo: Repository, f: Filters) -> list[dict[str, Any]]:
    """Quantities and amounts per menu item (tickets split off another are left out: their lines repeat)."""
    t, line = proj_tickets, proj_lines
    query = (
        select(
            line.c.menu_item_id,
            func.max(line.c.name).label("name"),
            func.sum(line.c.qty).label("qty"),
            func.sum(line.c.total).label("amount"),
        )
        .select_from(line.join(t, (t.c.store_id == line.c.store_id) & (t.c.ticket_id == line.c.ticket_id)))
        .where(t.c.split_from.is_(None), line.c.voided.is_(False), t.c.status != "voided", *f.where(t))
        .group_by(line.c.menu_item_id)
        .order_by(func.sum(line.c.total).desc(), line.c.menu_item_id)
    )
    return _ints(await _rows(repo, query), "qty", "amount")


async def tender_mix(repo: Repository, f: Filters) -> list[dict[str, Any]]:
    """Payments by tender kind."""
    p = proj_payments
    query = (
        select(
            p.c.kind,
            func.count().label("count"),
            func.sum(p.c.amount).label("amount"),
            func.sum(p.c.tip).label("tips"),
        )
        .where(*f.where(p))
        .group_by(p.c.kind)
        .order_by(p.c.kind)
    )
    return _ints(await _rows(repo, query), "count", "amount", "tips")


async def offline_card_exposure(repo: Repository, f: Filters, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per store: card payments taken offline whose authorisation is still pending (count, amount, oldest, by day).

    `amount` is what the cards were charged, tips included; declined offline cards are counted apart.
    """
    now = now or datetime.now(UTC)
    p = proj_payments
    charged = func.sum(p.c.amount + p.c.tip)
    days = await _rows(
        repo,
        select(
            p.c.store_id,
            p.c.business_day,
            func.count().label("count"),
            charged.label("amount"),
            func.min(p.c.at).label("oldest_at"),
        )
        .where(p.c.auth == "pending", *f.where(p))
        .group_by(p.c.store_id, p.c.business_day)
        .order_by(p.c.store_id, p.c.business_day),
    )
    declined = {
        r["store_id"]: r
        for r in await _rows(
            repo,
            select(p.c.store_id, func.count().label("count"), charged.label("amount"))
            .where(p.c.auth == "declined", *f.where(p))
            .group_by(p.c.store_id),
        )
    }
    out: dict[str, dict[str, Any]] = {}
    for day in _ints(days, "count", "amount"):
        store = out.setdefault(
            day["store_id"],
            {"store_id": day["store_id"], "count": 0, "amount": 0, "oldest_at": None, "by_day": []},
        )
        store["count"] += day["count"]
        store["amount"] += day["amount"]
        if store["oldest_at"] is None or day["oldest_at"] < store["oldest_at"]:
            store["oldest_at"] = day["oldest_at"]
        store["by_day"].append({k: day[k] for k in ("business_day", "count", "amount", "oldest_at")})
    for store_id in declined:
        out.setdefault(store_id, {"store_id": store_id, "count": 0, "amount": 0, "oldest_at": None, "by_day": []})
    rows = [out[k] for k in sorted(out)]
    for row in rows:
        row["oldest_age_s"] = _age(row["oldest_at"], now)
        gone = declined.get(row["store_id"]) or {}
        row["declined_count"] = int(gone.get("count") or 0)
        row["declined_amount"] = int(gone.get("amount") or 0)
    return rows


async def exceptions(repo: Repository, f: Filters) -> list[dict[str, Any]]:
    """Voids, discounts, refunds and no-sales, each with who did it and who approved it."""
    e = proj_exceptions
    query = (
        select(e.c.store_id, e.c.at, e.c.kind, e.c.ticket_id, e.c.amount, e.c.actor, e.c.approver, e.c.reason)
        .where(*f.where(e))
        .order_by(e.c.store_id, e.c.at, e.c.seq)
    )
    return _ints(await _rows(repo, query), "amount")


async def shift_reconciliation(repo: Repository, f: Filters) -> list[dict[str, Any]]:
    """Each closed shift: the hub's Z totals next to central's own sums from the ledger; `equal` must be true."""
    s = proj_shifts
    shifts = await _rows(repo, select(s).where(s.c.z.is_not(None), *f.where(s)).order_by(s.c.store_id, s.c.closed_at))
    out = []
    for shift in shifts:
        z = json.loads(shift["z"])
        central = await _central_totals(repo, shift["store_id"], shift["shift_id"])
        hub = {
            "tenders": {k: int(v.get("amount", 0)) for k, v in (z.get("tenders") or {}).items()},
            "tips": int(z.get("tips", 0)),
            "refunds": int((z.get("refunds") or {}).get("amount", 0)),
            "discounts": int(z.get("discounts", 0)),
            "voids": int((z.get("voids") or {}).get("amount", 0)),
            "ticket_voids": int((z.get("ticket_voids") or {}).get("amount", 0)),
            "no_sales": int(z.get("no_sales", 0)),
        }
        out.append(
            {
                "store_id": shift["store_id"],
                "shift_id": shift["shift_id"],
                "business_day": shift["business_day"],
                "closed_at": shift["closed_at"],
                "hub_z": hub,
                "central": central,
                "equal": hub == central,
            }
        )
    return out


async def _central_totals(repo: Repository, store: str, shift_id: str) -> dict[str, Any]:
    p, e = proj_payments, proj_exceptions
    tenders = await _rows(
        repo,
        select(p.c.kind, func.sum(p.c.amount).label("amount"), func.sum(p.c.tip).label("tip"))
        .where(p.c.store_id == store, p.c.shift_id == shift_id)
        .group_by(p.c.kind),
    )
    by_kind = await _rows(
        repo,
        select(e.c.kind, func.sum(e.c.amount).label("amount"), func.count().label("count"))
        .where(e.c.store_id == store, e.c.shift_id == shift_id)
        .group_by(e.c.kind),
    )
    ex = {r["kind"]: r for r in by_kind}
    return {
        "tenders": {r["kind"]: int(r["amount"]) for r in tenders},
        "tips": sum(int(r["tip"]) for r in tenders),
        "refunds": int((ex.get("refund") or {}).get("amount", 0)),
        "discounts": int((ex.get("discount") or {}).get("amount", 0)),
        "voids": int((ex.get("item_void") or {}).get("amount", 0)),
        "ticket_voids": int((ex.get("ticket_void") or {}).get("amount", 0)),
        "no_sales": int((ex.get("no_sale") or {}).get("count", 0)),
    }


async def speed_of_service(repo: Repository, f: Filters) -> list[dict[str, Any]]:
    """Fired-to-ready seconds per store and station (as the hub measured them)."""
    k = proj_prep
    where: list[ColumnElement[bool]] = [k.c.prep_s.is_not(None)]
    if f.store:
        where.append(k.c.store_id == f.store)
    query = (
        select(
            k.c.store_id,
            k.c.station,
            func.count().label("lines"),
            func.avg(k.c.prep_s).label("avg_s"),
            func.max(k.c.prep_s).label("max_s"),
            func.sum(case((k.c.prep_s > 600, 1), else_=0)).label("over_10_min"),  # noqa: PLR2004
        )
        .where(*where)
        .group_by(k.c.store_id, k.c.station)
        .order_by(k.c.store_id, k.c.station)
    )
    rows = await _rows(repo, query)
    for row in rows:
        row["avg_s"] = round(float(row["avg_s"] or 0), 1)
    return _ints(rows, "lines", "max_s", "over_10_min")


async def connectivity(repo: Repository, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every registered store: last batch received, newest entry held, and how long ago that was."""
    now = now or datetime.now(UTC)
    h = store_heads
    heads = select(h.c.store_id, func.max(h.c.last_seq).label("last_seq"), func.max(h.c.last_at).label("last_at"))
    heads_q = heads.group_by(h.c.store_id).subquery()
    query = (
        select(stores.c.store_id, stores.c.last_batch_at, heads_q.c.last_seq, heads_q.c.last_at)
        .select_from(stores.outerjoin(heads_q, heads_q.c.store_id == stores.c.store_id))
        .order_by(stores.c.store_id)
    )
    rows = await _rows(repo, query)
    for row in rows:
        row["last_seq"] = int(row["last_seq"] or 0)
        row["since_last_batch_s"] = _age(row["last_batch_at"], now)
        row["behind_s"] = _age(row["last_at"], now)
    return rows


def _age(stamp: str | None, now: datetime) -> float | None:
    if not stamp:
        return None
    then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return round((now - then).total_seconds(), 1)


def _ints(rows: list[dict[str, Any]], *names: str) -> list[dict[str, Any]]:
    for row in rows:
        for name in names:
            row[name] = int(row[name] or 0)
    return rows
