"""`storehub demo`: the hub with its managed broker and a scripted tablet playing a short service.

The demo keeps its data in `var/demo/` beside the repository (wiped at each start: demo data is
throwaway), whatever `hub.data_dir` the config names, so it never touches a real store's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from devices.sim.tablet import Credentials, SimTablet
from hub.app import Hub
from hub.config import load_config
from hub.logs import setup_logging

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = Path(os.environ.get("STOREHUB_DEMO_DIR", REPO / "var" / "demo"))


def run_demo(config: Path, *, once: bool = False) -> int:
    """Run the demo until Ctrl-C (or, with `once`, until the scripted service is done)."""
    loaded = load_config(config)
    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    hub_section = loaded.config.hub.model_copy(update={"data_dir": DEMO_DIR})
    loaded = loaded.model_copy(update={"config": loaded.config.model_copy(update={"hub": hub_section})})
    setup_logging("WARNING", store=loaded.config.store.id)
    return asyncio.run(_demo(loaded, once=once))


async def _demo(loaded: Any, *, once: bool) -> int:
    hub = Hub(loaded)
    ready = asyncio.Event()
    task = asyncio.create_task(hub.run(on_ready=ready.set))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, hub.request_stop)
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        await task
        return 2
    assert hub.engine is not None  # noqa: S101 - ready
    cfg = loaded.config
    tablet = await _device(hub, "tab-demo", "tablet")
    watch = await _device(hub, "watch", "display")
    root = hub.engine.topics.root
    print(
        "\nStoreHub demo is running.\n"
        f"  store {cfg.store.id} ({cfg.store.name}), broker 127.0.0.1:{cfg.broker.port}, data in {DEMO_DIR}\n"
        "  Watch every event, reply and state change with:\n"
        f"    mosquitto_sub -h 127.0.0.1 -p {cfg.broker.port} -u watch -P '{watch.password}' -t '{root}#' -v\n"
        "  Add your own tablet with:\n"
        f"    STOREHUB_HUB__DATA_DIR={DEMO_DIR} .venv/bin/storehub device add tab-01 --kind tablet \\\n"
        f"      --config {loaded.path}\n",
        flush=True,
    )
    try:
        await asyncio.to_thread(play_service, cfg.store.id, tablet, cfg.broker.port, loaded)
    except Exception as exc:  # noqa: BLE001 - the demo reports and keeps the hub up
        print(f"scripted tablet stopped: {exc}", flush=True)
    if once:
        hub.request_stop()
    else:
        print("Scripted service done; the hub keeps running. Ctrl-C to stop.", flush=True)
    await task
    return 0


async def _device(hub: Hub, device_id: str, kind: str) -> Credentials:
    assert hub.engine is not None  # noqa: S101 - ready
    reply = await hub.engine.admin("device.add", {"device_id": device_id, "kind": kind, "stations": []})
    if not reply.ok or not isinstance(reply.result, dict):
        raise RuntimeError(f"could not register {device_id}: {reply.error}")
    return Credentials(device_id, device_id, str(reply.result["password"]))


def play_service(store_id: str, creds: Credentials, port: int, loaded: Any) -> None:
    """A short dinner service through the contract, narrated on stdout."""
    staff = {s.role: s for s in loaded.config.staff}
    manager, server = staff["manager"], staff.get("server", staff["manager"])
    tab = SimTablet(store_id, creds, port=port).connect()
    try:
        mgr = tab.login(manager.id, manager.pin)
        srv = tab.login(server.id, server.pin)
        _step(tab, "open the shift with a 200.00 float", "shift.open", {"opening_float": 20000}, mgr)
        _step(tab, "seat table 3 with 2 guests", "table.seat", {"table_id": "t3", "guests": 2}, srv)
        opened = _step(
            tab, "open a dine-in ticket", "ticket.open", {"table_id": "t3", "guests": 2, "channel": "dine_in"}, srv
        )
        ticket = opened["ticket_id"]
        items = [
            {"line_id": "l1", "menu_item_id": "soupe-oignon", "qty": 1, "course": 1, "seat": 1},
            {"line_id": "l2", "menu_item_id": "escargots", "qty": 1, "course": 1, "seat": 2},
            {
                "line_id": "l3",
                "menu_item_id": "steak-frites",
                "qty": 1,
                "modifiers": ["saignant", "gratin"],
                "course": 2,
                "seat": 1,
                "allergy": "no peanuts",
            },
            {"line_id": "l4", "menu_item_id": "confit-canard", "qty": 1, "modifiers": ["salade"], "course": 2},
            {"line_id": "l5", "menu_item_id": "vin-rouge", "qty": 2, "modifiers": ["glass-12"]},
        ]
        _step(tab, "add starters, mains and wine", "ticket.add_items", {"ticket_id": ticket, "items": items}, srv)
        _step(tab, "fire course 1", "ticket.fire", {"ticket_id": ticket, "course": 1}, srv)
        _step(tab, "fire course 2", "ticket.fire", {"ticket_id": ticket, "course": 2}, srv)
        _step(tab, "fire the drinks", "ticket.fire", {"ticket_id": ticket}, srv)
        result = _step(tab, "look at the balance", "sync", {}, srv)
        balance = next(t for t in result["snapshot"]["tickets"] if t["ticket_id"] == ticket)["totals"]["balance"]
        half = balance // 2
        tenders = [
            {"kind": "cash", "amount": half, "tendered": half + 500},
            {"kind": "external", "amount": balance - half, "reference": "terminal-0042"},
        ]
        pay = {"ticket_id": ticket, "tenders": tenders}
        _step(tab, "pay half cash, half on the card terminal", "ticket.pay", pay, mgr)
        _step(tab, "clear table 3", "table.clear", {"table_id": "t3"}, srv)
        takeout = _step(tab, "open a takeout for Martin", "ticket.open", {"channel": "takeout", "name": "Martin"}, srv)
        lines = [{"line_id": "m1", "menu_item_id": "croque-monsieur", "qty": 2, "modifiers": ["extra-cheese"]}]
        body = {"ticket_id": takeout["ticket_id"], "items": lines}
        added = _step(tab, "two croques, extra cheese", "ticket.add_items", body, srv)
        _step(tab, "fire it", "ticket.fire", {"ticket_id": takeout["ticket_id"]}, srv)
        total = added["totals"]["balance"]
        cash = [{"kind": "cash", "amount": total, "tendered": total + 2000 - total % 1000}]
        _step(tab, "Martin pays cash", "ticket.pay", {"ticket_id": takeout["ticket_id"], "tenders": cash}, mgr)
        report = _step(tab, "X report (the count stays blind)", "shift.report", {"kind": "x"}, mgr)
        print(
            f"  X report: {report['tickets_closed']} tickets, net sales {report['net_sales'] / 100:.2f}, "
            f"tax {report['tax'] / 100:.2f} {loaded.config.store.currency}",
            flush=True,
        )
    finally:
        tab.close()


def _step(tab: SimTablet, what: str, type_: str, body: dict[str, Any], auth: str) -> dict[str, Any]:
    reply = tab.call(type_, body, auth=auth)
    status = "ok" if reply.get("ok") else f"refused: {reply.get('error')}"
    print(f"  tablet: {what:<45} {type_:<18} seq {reply.get('seq')} {status}", flush=True)
    result = reply.get("result") or {}
    with contextlib.suppress(AttributeError):
        result = dict(result)
    return result
