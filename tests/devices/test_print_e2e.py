"""The whole store printing: a hub process, its Mosquitto, tablets, and virtual printers over TCP."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

import pytest

from tests.devices.printfarm import PrintFarm, add_printers
from tests.hubproc import STAFF, HubProcess, storehub, write_config

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from devices.sim.tablet import SimTablet

pytestmark = pytest.mark.e2e


def ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["ok"], reply
    return reply.get("result") or {}


@pytest.fixture
def farm() -> Iterator[PrintFarm]:
    farm = PrintFarm()
    try:
        yield farm
    finally:
        farm.close()


def start_hub(tmp_path: Path, farm: PrintFarm, entries: list[dict[str, Any]], failover: float = 1.0) -> HubProcess:
    config = write_config(tmp_path / "store")
    add_printers(config, farm, entries, failover)
    return HubProcess(config).start()


def ledger(hub: HubProcess, type_: str) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{hub.data_dir / 'hub.db'}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT data FROM ledger WHERE type = ? ORDER BY seq", (type_,)).fetchall()
    return [json.loads(r[0]) for r in rows]


def open_shift(tab: SimTablet) -> tuple[str, str, str]:
    mgr = tab.login(*STAFF["mgr"])
    server = tab.login(*STAFF["server"])
    cashier = tab.login(*STAFF["cashier"])
    ok(tab.call("shift.open", {"opening_float": 10000}, auth=mgr))
    return mgr, server, cashier


def fire(tab: SimTablet, server: str, ticket_id: str, items: list[tuple[str, int]]) -> list[str]:
    """Open, add and fire a ticket; the job ids of the chits it queued."""
    ok(tab.call("ticket.open", {"ticket_id": ticket_id, "channel": "takeout"}, auth=server))
    lines = [{"line_id": f"{ticket_id}-{i}", "menu_item_id": m, "qty": q} for i, (m, q) in enumerate(items)]
    ok(tab.call("ticket.add_items", {"ticket_id": ticket_id, "items": lines}, auth=server))
    reply = ok(tab.call("ticket.fire", {"ticket_id": ticket_id}, auth=server))
    assert reply["fired"]
    return []


def queued(hub: HubProcess) -> dict[str, dict[str, Any]]:
    return {d["print_job_id"]: d for d in ledger(hub, "print.queued")}


def printed(hub: HubProcess) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for d in ledger(hub, "print.printed"):
        out.setdefault(d["job_id"], []).append(d)
    return out


def test_fire_prints_a_chit_per_station_and_payment_prints_a_receipt_and_kicks_the_drawer(tmp_path, farm):
    for name in ("grill-1", "bar-1", "front-1"):
        farm.add(name)
    hub = start_hub(
        tmp_path,
        farm,
        [
            {"id": "grill-1", "stations": ["grill", "cold"], "backup": "front-1"},
            {"id": "bar-1", "stations": ["bar"], "paper_mm": 58},
            {"id": "front-1", "receipts": True, "drawer_pins": [2, 5]},
        ],
    )
    tab = hub.tablet("tab-01")
    try:
        _mgr, server, cashier = open_shift(tab)
        fire(tab, server, "tk-a", [("escargots", 2), ("biere", 1)])
        jobs = queued(hub)
        assert {(d["printer"], d["station"]) for d in jobs.values()} == {("grill-1", "grill"), ("bar-1", "bar")}
        farm.wait(lambda: len(printed(hub)) == 2, 30, "both chits confirmed printed")
        for job_id, job in jobs.items():
            assert farm.count(job_id) == 1
            assert farm.call(farm.printers[job["printer"]].job_count, job_id) == 1
        grill = farm.call(farm.printers["grill-1"].text)
        assert "GRILL" in grill
        assert "2 x Snails (6)" in grill

        ticket = ok(tab.call("sync", {}, auth=server))["snapshot"]["tickets"][0]
        total = ticket["totals"]["total"]
        tender = {"kind": "cash", "amount": total, "tendered": total + 500}
        ok(tab.call("ticket.pay", {"ticket_id": "tk-a", "tenders": [tender]}, auth=cashier))
        farm.wait(lambda: len(printed(hub)) == 3, 30, "the receipt confirmed printed")
        front = farm.printers["front-1"]
        text = farm.call(front.text)
        assert "RECEIPT #" in text
        assert "Change" in text
        farm.wait(lambda: len(ledger(hub, "drawer.kicked")) == 1, 30, "the drawer kick ledgered")
        kick = ledger(hub, "drawer.kicked")[0]
        assert kick["ok"]
        assert kick["reason"] == "sale"
        assert kick["employee_id"] == STAFF["cashier"][0]
        assert sorted(k.pin for k in front.paper.kicks) == [2, 5]

        ok(tab.call("ticket.print", {"ticket_id": "tk-a", "kind": "check"}, auth=server))
        farm.wait(lambda: len(printed(hub)) == 4, 30, "the check printed")
        assert "CHECK #" in farm.call(front.text)

        listing = json.loads(storehub("printers", "list", "--config", str(hub.config)).stdout)
        by_id = {p["printer"]: p for p in listing["printers"]}
        assert by_id["grill-1"]["online"]
        assert by_id["grill-1"]["queue_depth"] == 0
    finally:
        tab.close()
        hub.stop()
