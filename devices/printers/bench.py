"""`storehub bench print`: printing figures on this machine, as JSON.

Everything real except MQTT (not what is measured here): the hub's engine on an fsync'd SQLite file,
its print service with one worker per printer, and virtual printers over TCP on 127.0.0.1.

- `latency`: a fire → its chit confirmed printed (the `print.printed` commit), p50/p99, on a printer
  at unlimited speed and at 9600 baud (960 bytes/s);
- `burst`: 10 printers x 100 chits fired concurrently, two printers faulted — one switched off for
  good (its jobs fail over to its backup), one losing power mid-job and coming back: counts of
  `lost` and `doubled` (both must be 0), `reprinted_after_fault` (REPRINT-bannered copies), the
  drain time, and the failover time (first chit waiting on the dead printer → first chit rerouted to
  its backup; target ≤ timeout + 1 s).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from devices.sim.printer import VirtualPrinter
from hub.contract.envelopes import encode_command

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hub.engine import Engine
    from hub.printing import PrintService
    from hub.store.db import Database, Writes
    from hub.store.ledger import LedgerEntry

REPO: Final = Path(__file__).resolve().parent.parent.parent
FAILOVER_S: Final = 2.0
CONFIG: Final = """
[store]
id = "bench-print"
name = "Bench Bistro"
currency = "EUR"
timezone = "UTC"
tax_rates = [{{ id = "food", rate_bp = 1000, inclusive = true }},
             {{ id = "alcohol", rate_bp = 2000, inclusive = true }},
             {{ id = "soft", rate_bp = 550, inclusive = true }}]

[hub]
data_dir = "{data_dir}"
menu_file = "{menu}"

[printing]
failover_after_s = {failover}
confirm_timeout_s = 10
connect_timeout_s = 1
status_timeout_s = 2
poll_interval_s = 0.02
backoff_initial_s = 0.05
backoff_max_s = 0.5
probe_interval_s = 5
discovery = false

[[staff]]
id = "emp-claire"
name = "Claire"
role = "manager"
pin = "7410"

[[staff]]
id = "emp-hugo"
name = "Hugo"
role = "server"
pin = "2580"
"""


async def run_bench(*, quick: bool = False) -> dict[str, Any]:
    """Run every phase; the default finishes well under 50 s, `quick` in a few seconds."""
    started = time.perf_counter()
    unlimited = await _latency(samples=8 if quick else 40, bytes_per_second=None)
    baud = await _latency(samples=3 if quick else 8, bytes_per_second=960.0)
    burst = await _burst(printers=4 if quick else 10, chits=10 if quick else 100)
    return {
        "suite": "print",
        "quick": quick,
        "latency_fire_to_printed_ms": {"unlimited": unlimited, "9600_baud": baud},
        "burst": burst,
        "lost": burst["lost"],
        "doubled": burst["doubled"],
        "reprinted_after_fault": burst["reprinted_after_fault"],
        "failover_s": burst["failover_s"],
        "failover_target_s": FAILOVER_S + 1.0,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


class _Watch:
    """A commit hook that timestamps print events as they become durable."""

    def __init__(self) -> None:
        self.queued: dict[str, tuple[float, str]] = {}
        self.printed: dict[str, float] = {}
        self.rerouted: dict[str, float] = {}
        self.changed = asyncio.Event()

    def writes(self, entries: Sequence[LedgerEntry]) -> Writes:
        del entries
        return []

    def committed(self, entries: Sequence[LedgerEntry]) -> None:
        now = time.perf_counter()
        for e in entries:
            if e.type == "print.queued":
                self.queued[e.data["print_job_id"]] = (now, e.data["printer"])
            elif e.type == "print.printed":
                self.printed.setdefault(e.data["job_id"], now)
            elif e.type == "print.rerouted":
                self.rerouted.setdefault(e.data["job_id"], now)
        self.changed.set()

    async def until(self, predicate: Any, timeout: float) -> None:  # noqa: ASYNC109 - a deadline for the whole wait
        deadline = time.perf_counter() + timeout
        while not predicate():
            self.changed.clear()
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError("the bench timed out waiting for printing")
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                continue


class _Store:
    """An engine, its print service and a logged-in tablet, in a temporary directory."""

    def __init__(self, printers: list[VirtualPrinter], entries: list[dict[str, Any]]) -> None:
        self.printers = printers
        self.entries = entries
        self.tmp = tempfile.TemporaryDirectory(prefix="storehub-bench-print-")
        self.watch = _Watch()
        self.ids = itertools.count(1)
        self.token = ""
        self.engine: Engine
        self.db: Database
        self.service: PrintService

    async def __aenter__(self) -> _Store:  # noqa: PYI034 - a private helper
        from hub.app import bootstrap, start_printing, store_settings  # noqa: PLC0415 - hub wiring
        from hub.config import load_config  # noqa: PLC0415
        from hub.engine import Engine  # noqa: PLC0415
        from hub.store.db import Database  # noqa: PLC0415

        directory = Path(self.tmp.name)
        menu = REPO / "config" / "menu.example.toml"
        text = CONFIG.format(data_dir=directory / "data", menu=menu, failover=FAILOVER_S)
        for entry, printer in zip(self.entries, self.printers, strict=True):
            text += f'\n[[printers]]\naddress = "tcp://127.0.0.1:{printer.port}"\n'
            for key, value in entry.items():
                rendered = f'"{value}"' if isinstance(value, str) else repr(value).replace("'", '"')
                text += f"{key} = {rendered}\n"
        (directory / "store.toml").write_text(text, encoding="utf-8")
        loaded = load_config(directory / "store.toml")
        self.db = await Database.open(loaded.data_dir / "hub.db")
        self.engine = Engine(self.db, store_settings(loaded))
        await self.engine.load()
        self.engine.start()
        await bootstrap(self.engine, loaded)
        await self._ok(await self.engine.admin("device.add", {"device_id": "tab-bench", "kind": "tablet"}))
        self.engine.hooks.append(self.watch)
        self.service = await start_printing(self.engine, loaded)
        manager = await self.call("staff.login", {"employee_id": "emp-claire", "pin": "7410"})
        await self.call("shift.open", {"opening_float": 0}, auth=str(manager["token"]))
        server = await self.call("staff.login", {"employee_id": "emp-hugo", "pin": "2580"})
        self.token = str(server["token"])
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.service.stop()
        await self.engine.stop()
        await self.db.close()
        self.tmp.cleanup()

    async def call(self, type_: str, body: dict[str, Any], auth: str | None = None) -> dict[str, Any]:
        payload = encode_command(f"b-{next(self.ids)}", type_, body, auth=auth or self.token or None)
        return await self._ok(await self.engine.execute("tab-bench", payload))

    async def fire(self, ticket_id: str, menu_item: str = "escargots") -> None:
        await self.call("ticket.open", {"ticket_id": ticket_id, "channel": "takeout"})
        line = {"line_id": f"{ticket_id}-1", "menu_item_id": menu_item, "qty": 1}
        await self.call("ticket.add_items", {"ticket_id": ticket_id, "items": [line]})
        await self.call("ticket.fire", {"ticket_id": ticket_id})

    @staticmethod
    async def _ok(reply: Any) -> dict[str, Any]:
        if not reply.ok:
            raise RuntimeError(f"bench command refused: {reply.error}")
        return dict(reply.result or {})


async def _latency(samples: int, bytes_per_second: float | None) -> dict[str, Any]:
    printer = VirtualPrinter(name="grill", bytes_per_second=bytes_per_second)
    await printer.start()
    try:
        async with _Store([printer], [{"id": "grill", "stations": ["grill"]}]) as store:
            times: list[float] = []
            for i in range(samples):
                before = set(store.watch.queued)
                t0 = time.perf_counter()
                await store.fire(f"lat-{i}")
                job = next(j for j in store.watch.queued if j not in before)
                await store.watch.until(lambda job=job: job in store.watch.printed, 60)
                times.append((store.watch.printed[job] - t0) * 1000)
    finally:
        await printer.stop()
    return _summary(times) | {"bytes_per_second": bytes_per_second}


async def _burst(printers: int, chits: int) -> dict[str, Any]:
    sims = [VirtualPrinter(name=f"p{i}") for i in range(printers)]
    for sim in sims:
        await sim.start()
    dead, flaky = sims[-2], sims[-1]
    entries: list[dict[str, Any]] = [{"id": f"p{i}", "stations": ["grill"]} for i in range(printers)]
    entries[-2]["backup"] = "p0"
    entries[-1]["backup"] = "p1"
    try:
        async with _Store(sims, entries) as store:
            await dead.power_off()
            flaky.power_loss_after(1500)  # a few chits in, mid-job
            t0 = time.perf_counter()
            await asyncio.gather(*(store.fire(f"burst-{i}") for i in range(chits)))

            async def revive() -> None:
                while flaky.status.online:  # noqa: ASYNC110 - watching a simulated printer's switch
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)
                await flaky.power_on()

            reviver = asyncio.create_task(revive())
            total = printers * chits
            await store.watch.until(lambda: len(store.watch.printed) >= total, 120)
            drain = time.perf_counter() - t0
            await reviver
            rerouted_from_dead = [
                at for job, at in store.watch.rerouted.items() if store.watch.queued[job][1] == dead.name
            ]
            died = min(at for at, printer in store.watch.queued.values() if printer == dead.name)
            counts = _count(sims, list(store.watch.queued))
    finally:
        for sim in sims:
            await sim.stop()
    return {
        "printers": printers,
        "chits_per_printer": chits,
        "jobs": total,
        "faulted": [dead.name + " (off)", flaky.name + " (power loss mid-job)"],
        "drain_s": round(drain, 2),
        "chits_per_s": round(total / drain, 1),
        "rerouted": len(store.watch.rerouted),
        "failover_s": round(min(rerouted_from_dead) - died, 2) if rerouted_from_dead else None,
        **counts,
    }


def _count(sims: list[VirtualPrinter], job_ids: list[str]) -> dict[str, int]:
    seen: dict[str, list[list[str]]] = {}
    for sim in sims:
        for job_id, banners in sim.jobs():
            seen.setdefault(job_id, []).append(banners)
    lost = doubled = reprinted = 0
    for job_id in job_ids:
        copies = seen.get(job_id, [])
        if not copies:
            lost += 1
            continue
        plain = [c for c in copies if "REPRINT" not in c]
        doubled += max(0, len(plain) - 1)
        reprinted += len(copies) - len(plain)
    return {"lost": lost, "doubled": doubled, "reprinted_after_fault": reprinted}


def _summary(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)
    if not ordered:
        return {"samples": 0}
    return {
        "samples": len(ordered),
        "p50": round(statistics.median(ordered), 1),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1),
        "max": round(ordered[-1], 1),
    }
