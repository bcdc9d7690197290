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


class _Runner:
    def __init__(self, engine: Engine, staff: list[Any]) -> None:
        self.engine = engine
        self.staff = staff
        self.ids = itertools.count(1)
        self.prefix = f"s{id(self):x}-"
        self.cash = 0

    def _id(self) -> str:
        return f"{self.prefix}{next(self.ids)}"

    async def ok(self, type_: str, body: dict[str, Any], auth: str | None) -> dict[str, Any]:
        reply = await self.engine.execute(DEVICE, encode_command(self._id(), type_, body, auth=auth))
        if not reply.ok:
            raise SampleError(f"{type_}: {reply.error}")
        return dict(reply.result or {})

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
