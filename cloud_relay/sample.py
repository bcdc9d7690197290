"""Real hub ledgers for tests, benchmarks and demos: the hub's own engine sells tickets.

Nothing here writes ledger rows by hand: every entry comes from `hub.engine.Engine` executing
contract commands, so its hash chain and event shapes are exactly a real store's.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Any

from hub.app import bootstrap, open_engine
from hub.config import load_config
from hub.contract.envelopes import encode_command

if TYPE_CHECKING:
    from pathlib import Path

    from hub.engine import Engine

DEVICE = "till-sample"
KDS = "kds-sample"
_ITEMS = (("biere", 2), ("oeufs-mayo", 1), ("creme-brulee", 1))


class SampleError(Exception):
    """The hub refused a scripted command (the script or the config is wrong)."""


async def sell(config_path: Path, *, tickets: int, concurrency: int = 16, close_shift: bool = False) -> int:
    """Open a shift (if none) and sell `tickets` takeout tickets, paid in cash; returns the ledger head."""
    loaded = load_config(config_path)
    async with open_engine(loaded) as engine:
        await bootstrap(engine, loaded)
        if DEVICE not in engine.state.devices:
            reply = await engine.admin("device.add", {"device_id": DEVICE, "kind": "tablet", "stations": []})
            if not reply.ok:
                raise SampleError(f"device.add: {reply.error}")
        runner = _Runner(engine, loaded.config.staff)
        manager = await runner.login("manager")
        if engine.state.current_shift is None:
            await runner.ok("shift.open", {"opening_float": 10000}, manager)
        pending = list(range(tickets))
        while pending:
            chunk, pending = pending[:concurrency], pending[concurrency:]
            await asyncio.gather(*(runner.ticket(manager) for _ in chunk))
        if close_shift:
            await runner.ok("shift.close", {"counted_cash": runner.cash + 10000}, manager)
        return int(engine.head.seq)


async def service(config_path: Path, *, close_shift: bool = True) -> int:
    """A small service with every kind of money event; returns the ledger head.

    Discounts, a void after firing, a refund, a no-sale, an even split, external and cash tenders
    with a tip, and a kitchen screen starting and bumping a line.
    """
    loaded = load_config(config_path)
    async with open_engine(loaded) as engine:
        await bootstrap(engine, loaded)
        for device, kind, stations in ((DEVICE, "tablet", []), (KDS, "kds", ["grill", "cold", "bar", "pastry"])):
            if device not in engine.state.devices:
                reply = await engine.admin("device.add", {"device_id": device, "kind": kind, "stations": stations})
                if not reply.ok:
                    raise SampleError(f"device.add: {reply.error}")
        r = _Runner(engine, loaded.config.staff)
        mgr = await r.login("manager")
        if engine.state.current_shift is None:
            await r.ok("shift.open", {"opening_float": 20000}, mgr)
        # 1: two lines, one voided after firing (needs the manager), kitchen starts and bumps the other
        await r.ok("ticket.open", {"ticket_id": "svc-1", "channel": "dine_in"}, mgr)
        lines = [
            {"line_id": "svc-1-a", "menu_item_id": "escargots", "qty": 1},
            {"line_id": "svc-1-b", "menu_item_id": "oeufs-mayo", "qty": 2},
        ]
        await r.ok("ticket.add_items", {"ticket_id": "svc-1", "items": lines}, mgr)
        await r.ok("ticket.fire", {"ticket_id": "svc-1"}, mgr)
        await r.kds("kds.start", {"ticket_id": "svc-1", "station": "grill"})
        await r.kds("kds.bump", {"ticket_id": "svc-1", "station": "grill"})
        await r.ok("ticket.void_item", {"ticket_id": "svc-1", "line_id": "svc-1-b", "reason": "dropped"}, mgr)
        await r.pay("svc-1", mgr, kind="external", tip=200)
        # 2: a 10 % discount, paid in cash, then one line refunded
        await r.ok("ticket.open", {"ticket_id": "svc-2", "channel": "takeout"}, mgr)
        two = [{"line_id": "svc-2-a", "menu_item_id": "biere", "qty": 3}]
        await r.ok("ticket.add_items", {"ticket_id": "svc-2", "items": two}, mgr)
        server = await r.login("server")
        manager = next(s for s in loaded.config.staff if s.role == "manager")
        approval = {"employee_id": manager.id, "pin": manager.pin}
        discount = {"ticket_id": "svc-2", "kind": "percent", "value": 10, "reason": "regular"}
        await r.ok("ticket.discount", discount, server, approve=approval)
        await r.pay("svc-2", mgr, kind="cash")
        refund = {"ticket_id": "svc-2", "lines": [{"line_id": "svc-2-a", "qty": 1}], "tender": "cash", "reason": "flat"}
        await r.ok("ticket.refund", refund, mgr)
        # 3: split evenly in two, each share paid on its own
        await r.ok("ticket.open", {"ticket_id": "svc-3", "channel": "dine_in"}, mgr)
        three = [{"line_id": "svc-3-a", "menu_item_id": "creme-brulee", "qty": 2}]
        await r.ok("ticket.add_items", {"ticket_id": "svc-3", "items": three}, mgr)
        split = await r.ok("ticket.split", {"ticket_id": "svc-3", "even": 2}, mgr)
        for ticket_id in _split_ids(split, "svc-3"):
            await r.pay(ticket_id, mgr, kind="cash")
        # 4: a no-sale
        await r.ok("drawer.open", {"reason": "change for the float"}, mgr)
        if close_shift:
            await r.ok("shift.close", {"counted_cash": 20000 + r.cash}, mgr)
        return int(engine.head.seq)


def _split_ids(result: dict[str, Any], original: str) -> list[str]:
    ids = result.get("ticket_ids") or result.get("new_ticket_ids") or []
    return [original, *[str(i) for i in ids if i != original]]


class _Runner:
    def __init__(self, engine: Engine, staff: list[Any]) -> None:
        self.engine = engine
        self.staff = staff
        self.ids = itertools.count(1)
        self.prefix = f"s{id(self):x}-"
        self.cash = 0

    def _id(self) -> str:
        return f"{self.prefix}{next(self.ids)}"

    async def ok(
        self, type_: str, body: dict[str, Any], auth: str | None, approve: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        reply = await self.engine.execute(DEVICE, encode_command(self._id(), type_, body, auth=auth, approve=approve))
        if not reply.ok:
            raise SampleError(f"{type_}: {reply.error}")
        return dict(reply.result or {})

    async def kds(self, type_: str, body: dict[str, Any]) -> dict[str, Any]:
        reply = await self.engine.execute(KDS, encode_command(self._id(), type_, body))
        if not reply.ok:
            raise SampleError(f"{type_}: {reply.error}")
        return dict(reply.result or {})

    async def pay(self, ticket_id: str, auth: str, *, kind: str, tip: int = 0) -> None:
        ticket = self.engine.state.tickets[ticket_id]
        balance = int(ticket.totals.balance)
        tender: dict[str, Any] = {"kind": kind, "amount": balance, "tip": tip}
        if kind == "cash":
            tender["tendered"] = balance
            self.cash += balance
        await self.ok("ticket.pay", {"ticket_id": ticket_id, "tenders": [tender]}, auth)

    async def login(self, role: str) -> str:
        person = next((s for s in self.staff if s.role == role), None)
        if person is None:
            raise SampleError(f"the config has no {role} in [[staff]]")
        result = await self.ok("staff.login", {"employee_id": person.id, "pin": person.pin}, None)
        return str(result["token"])

    async def ticket(self, auth: str) -> None:
        ticket_id = self._id()
        await self.ok("ticket.open", {"ticket_id": ticket_id, "channel": "takeout"}, auth)
        n = next(self.ids)
        item, qty = _ITEMS[n % len(_ITEMS)]
        lines = [{"line_id": f"{ticket_id}-a", "menu_item_id": item, "qty": qty}]
        added = await self.ok("ticket.add_items", {"ticket_id": ticket_id, "items": lines}, auth)
        await self.ok("ticket.fire", {"ticket_id": ticket_id}, auth)
        total = int(added["totals"]["balance"])
        tender = {"kind": "cash", "amount": total, "tendered": total}
        await self.ok("ticket.pay", {"ticket_id": ticket_id, "tenders": [tender]}, auth)
        self.cash += total
