"""The whole store printing: a hub process, its Mosquitto, tablets, and virtual printers over TCP."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from PIL import Image

from devices.drawers.mqtt import kick_job
from devices.sim.drawer import SimDrawerController, VirtualSerialDrawer
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


def start_hub(
    tmp_path: Path, farm: PrintFarm, entries: list[dict[str, Any]], failover: float = 1.0, *, discovery: bool = False
) -> HubProcess:
    config = write_config(tmp_path / "store")
    add_printers(config, farm, entries, failover, discovery=discovery)
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
        farm.add(name, advertise=name == "grill-1")
    farm.add("spare-1", advertise=True)
    hub = start_hub(
        tmp_path,
        farm,
        [
            {"id": "grill-1", "stations": ["grill", "cold"], "backup": "front-1"},
            {"id": "bar-1", "stations": ["bar"], "paper_mm": 58},
            {"id": "front-1", "receipts": True, "drawer_pins": [2, 5]},
        ],
        discovery=True,
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

        check = ok(tab.call("ticket.print", {"ticket_id": "tk-a", "kind": "check"}, auth=server))
        farm.wait(lambda: len(printed(hub)) == 4, 30, "the check printed")
        assert "CHECK #" in farm.call(front.text)
        png = tmp_path / "check.png"
        storehub("printers", "preview", "--config", str(hub.config), check["print_job_id"], "--output", str(png))
        with Image.open(png) as image:
            assert image.width == 576
            assert image.height > 400
        args = ("printers", "preview", "--config", str(hub.config), "job-none", "--output", str(png))
        missing = storehub(*args, check=False)
        assert missing.returncode == 2
        assert "No print job" in missing.stderr

        listing = json.loads(storehub("printers", "list", "--config", str(hub.config)).stdout)
        by_id = {p["printer"]: p for p in listing["printers"]}
        assert by_id["grill-1"]["online"]
        assert by_id["grill-1"]["queue_depth"] == 0
        found = {d["name"]: d for d in listing["discovered"]}
        assert found["grill-1"]["assigned"] == "grill-1"
        assert found["spare-1"]["assigned"] is None, "discovered, not assigned"
    finally:
        tab.close()
        hub.stop()


def paper_ok(farm: PrintFarm, jobs: dict[str, dict[str, Any]]) -> dict[str, list[tuple[str, list[str]]]]:
    """Every queued job came out; returns where and with which banners."""
    where: dict[str, list[tuple[str, list[str]]]] = {}
    for printer, job_id, banners in farm.jobs():
        where.setdefault(job_id, []).append((printer, banners))
    missing = sorted(set(jobs) - set(where))
    assert not missing, f"jobs never printed: {missing}"
    return where


def test_printer_off_during_a_burst_holds_or_fails_over_and_nothing_is_lost_or_doubled(tmp_path, farm):
    for name in ("grill-1", "grill-2", "bar-1"):
        farm.add(name)
    hub = start_hub(
        tmp_path,
        farm,
        [
            {"id": "grill-1", "stations": ["grill"], "backup": "grill-2"},
            {"id": "grill-2"},
            {"id": "bar-1", "stations": ["bar"]},
        ],
        failover=1.0,
    )
    tab = hub.tablet("tab-02")
    try:
        _mgr, server, _cashier = open_shift(tab)
        for i in range(50):
            if i == 10:
                farm.run(farm.printers["grill-1"].power_off())
                farm.run(farm.printers["bar-1"].power_off())
            fire(tab, server, f"tk-b{i}", [("escargots", 1), ("biere", 1)])
        jobs = queued(hub)
        assert len(jobs) == 100
        farm.wait(lambda: len(ledger(hub, "print.rerouted")) > 0, 30, "grill-1's held chits to fail over")
        farm.run(farm.printers["bar-1"].power_on())  # bar-1 has no backup: its chits waited for it
        farm.wait(lambda: len(printed(hub)) == 100, 60, "every chit confirmed printed")
        farm.run(farm.printers["grill-1"].power_on())
        where = paper_ok(farm, jobs)
        rerouted = {d["job_id"]: d for d in ledger(hub, "print.rerouted")}
        for job_id, job in jobs.items():
            copies = where[job_id]
            plain = [c for c in copies if "REPRINT" not in c[1]]
            assert len(plain) <= 1, f"{job_id} printed twice: {copies}"
            if job_id in rerouted:
                assert rerouted[job_id]["from"] == "grill-1"
                assert [c[0] for c in copies][-1] == "grill-2"
                assert "ROUTED FROM grill-1" in copies[-1][1]
            else:
                assert {c[0] for c in copies} == {job["printer"]}
            assert len(printed(hub)[job_id]) == 1, "one print.printed per job"
        bar = [j for j, d in jobs.items() if d["printer"] == "bar-1"]
        assert all(where[j][0][0] == "bar-1" for j in bar), "no backup: bar chits held until bar-1 came back"
        assert all(d["to"] == "grill-2" for d in rerouted.values())
        statuses = ledger(hub, "printer.status")
        assert any(s["printer"] == "bar-1" and not s["online"] for s in statuses)
    finally:
        tab.close()
        hub.stop()


def test_power_lost_mid_job_reprints_that_job_with_a_banner_and_nothing_else_twice(tmp_path, farm):
    grill = farm.add("grill-1")
    hub = start_hub(tmp_path, farm, [{"id": "grill-1", "stations": ["grill"]}])
    tab = hub.tablet("tab-03")
    try:
        _mgr, server, _cashier = open_shift(tab)
        fire(tab, server, "tk-c0", [("escargots", 1)])
        fire(tab, server, "tk-c1", [("escargots", 1)])
        farm.wait(lambda: len(printed(hub)) == 2, 30, "the first two chits")
        farm.call(grill.power_loss_after, 80)
        fire(tab, server, "tk-c2", [("escargots", 3)])
        cut = next(j for j, d in queued(hub).items() if d["ticket_id"] == "tk-c2")
        fire(tab, server, "tk-c3", [("escargots", 1)])
        farm.wait(lambda: not farm.call(lambda: grill.status.online), 30, "the power cut")
        farm.run(grill.power_on())
        farm.wait(lambda: len(printed(hub)) == 4, 30, "every chit after the power came back")
        jobs = queued(hub)
        where = paper_ok(farm, jobs)
        for job_id in jobs:
            assert len(where[job_id]) == 1, f"{job_id}: {where[job_id]}"
        assert where[cut][0][1] == ["REPRINT"]
        assert printed(hub)[cut][0]["reprint"] is True
        assert all(not printed(hub)[j][0]["reprint"] for j in jobs if j != cut)
        assert farm.call(grill.text).count("GRILL") == 5, "the cut-off start of the job is on paper too"
    finally:
        tab.close()
        hub.stop()


def test_paper_end_cover_open_and_single_session_each_hold_only_their_own_printer(tmp_path, farm):
    grill = farm.add("grill-1")
    bar = farm.add("bar-1")
    pastry = farm.add("pastry-1", single_session=True)
    farm.add("cold-1")
    hub = start_hub(
        tmp_path,
        farm,
        [
            {"id": "grill-1", "stations": ["grill"]},
            {"id": "bar-1", "stations": ["bar"]},
            {"id": "pastry-1", "stations": ["pastry"]},
            {"id": "cold-1", "stations": ["cold"]},
        ],
        failover=60,
    )
    tab = hub.tablet("tab-04")
    other_pos = None
    try:
        _mgr, server, _cashier = open_shift(tab)
        farm.call(grill.paper_end_after, 6)
        farm.call(bar.open_cover)
        other_pos = farm.run(_hold_connection(pastry))
        fire(tab, server, "tk-d0", [("escargots", 4), ("biere", 1), ("tarte-tatin", 1), ("oeufs-mayo", 1)])
        jobs = queued(hub)
        by_printer = {d["printer"]: j for j, d in jobs.items()}
        farm.wait(lambda: by_printer["cold-1"] in printed(hub), 30, "the healthy printer to print at once")
        farm.wait(lambda: _state(hub, "grill-1").get("paper") == "end", 30, "paper end reported")
        farm.wait(lambda: _state(hub, "bar-1").get("cover_open") is True, 30, "cover open reported")
        assert set(printed(hub)) == {by_printer["cold-1"]}, "held printers confirm nothing"
        assert _state(hub, "bar-1")["queue_depth"] == 1
        assert farm.count(by_printer["grill-1"]) == 0
        farm.call(grill.load_paper)
        farm.call(bar.close_cover)
        farm.run(_release(other_pos))
        other_pos = None
        farm.wait(lambda: len(printed(hub)) == 4, 30, "all four after the faults cleared")
        where = paper_ok(farm, jobs)
        for job_id, job in jobs.items():
            assert where[job_id] == [(job["printer"], [])], f"{job_id} printed once, no banner"
        def covers() -> list[dict[str, Any]]:
            return [s for s in ledger(hub, "printer.status") if s["printer"] == "bar-1"]

        assert any(s["cover_open"] for s in covers())
        farm.wait(lambda: not covers()[-1]["cover_open"], 30, "the closed cover ledgered")
        assert farm.call(pastry.text).count("JOB ") == 1
    finally:
        if other_pos is not None:
            farm.run(_release(other_pos))
        tab.close()
        hub.stop()


def test_hub_killed_with_jobs_queued_prints_each_exactly_once_after_restart(tmp_path, farm):
    grill = farm.add("grill-1")
    hub = start_hub(tmp_path, farm, [{"id": "grill-1", "stations": ["grill"]}])
    creds = hub.add_device("tab-05")
    tab = hub.tablet("tab-05", creds=creds)
    try:
        _mgr, server, _cashier = open_shift(tab)
        farm.run(grill.power_off())
        for i in range(10):
            fire(tab, server, f"tk-e{i}", [("escargots", 1)])
    finally:
        tab.close()
    hub.kill9()
    assert len(queued(hub)) == 10
    assert not printed(hub)
    farm.run(grill.power_on())
    hub.start()
    try:
        farm.wait(lambda: len(printed(hub)) == 10, 60, "the queued chits printed after the restart")
        jobs = queued(hub)
        where = paper_ok(farm, jobs)
        for job_id in jobs:
            assert where[job_id] == [("grill-1", [])]
    finally:
        hub.stop()


def _state(hub: HubProcess, printer: str) -> dict[str, Any]:
    listing = json.loads(storehub("printers", "list", "--config", str(hub.config)).stdout)
    return next(p for p in listing["printers"] if p["printer"] == printer)


async def _hold_connection(printer: Any) -> Any:
    reader, writer = await asyncio.open_connection(printer.host, printer.port)
    await asyncio.sleep(0.1)
    return reader, writer


async def _release(conn: Any) -> None:
    _reader, writer = conn
    writer.close()
    await writer.wait_closed()


def test_drawers_pop_at_once_for_cash_and_no_sale_and_every_open_is_ledgered(tmp_path, farm):
    serial_drawer = VirtualSerialDrawer()
    farm.call(serial_drawer.start)
    try:
        config = write_config(tmp_path / "store")
        add_printers(config, farm, [])
        with config.open("a", encoding="utf-8") as handle:
            handle.write(
                f'\n[[drawers]]\nid = "till-1"\nkind = "serial"\npath = "{serial_drawer.path}"\n'
                'receipt_devices = ["tab-07"]\n'
                '\n[[drawers]]\nid = "till-2"\nkind = "mqtt"\ndevice = "drawer-2"\nreceipt_devices = ["tab-06"]\n'
            )
        hub = HubProcess(config).start()
        controller = SimDrawerController(hub.store_id, hub.add_device("drawer-2", kind="drawer"), port=hub.port)
        controller.connect()
        tab6 = hub.tablet("tab-06")
        tab7 = hub.tablet("tab-07")
        try:
            mgr, server, cashier = open_shift(tab6)
            fire(tab6, server, "tk-f1", [("biere", 1)])
            cash = {"kind": "cash", "amount": 500, "tendered": 500}
            ok(tab6.call("ticket.pay", {"ticket_id": "tk-f1", "tenders": [cash]}, auth=cashier))
            farm.wait(lambda: len(controller.opened) == 1, 30, "the MQTT drawer to get its kick")
            job = controller.opened[0]
            assert job.body["reason"] == "sale"
            assert job.body["employee_id"] == STAFF["cashier"][0]

            server7 = tab7.login(*STAFF["server"])
            cashier7 = tab7.login(*STAFF["cashier"])
            fire(tab7, server7, "tk-f2", [("biere", 1)])
            ext = {"kind": "external", "amount": 500}
            ok(tab7.call("ticket.pay", {"ticket_id": "tk-f2", "tenders": [ext]}, auth=cashier7))
            mgr7 = tab7.login(*STAFF["mgr"])
            ok(tab7.call("drawer.open", {"reason": "change for the float"}, auth=mgr7))
            farm.wait(lambda: len(ledger(hub, "drawer.kicked")) == 2, 30, "both opens ledgered")
            assert len(farm.call(lambda: serial_drawer.opens)) == 1, "a card/external payment opens nothing"
            kicks = ledger(hub, "drawer.kicked")
            assert {(k["drawer"], k["reason"], k["employee_id"], k["ok"]) for k in kicks} == {
                ("till-2", "sale", STAFF["cashier"][0], True),
                ("till-1", "change for the float", STAFF["mgr"][0], True),
            }
            del mgr
        finally:
            tab6.close()
            tab7.close()
            controller.close()
            hub.stop()
    finally:
        farm.call(serial_drawer.stop)


def test_a_drawer_controller_refuses_an_expired_kick():
    late = kick_job({"reason": "sale"}, now=datetime.now(UTC) - timedelta(seconds=11))
    assert late.expired(datetime.now(UTC))
    fresh = kick_job({"reason": "sale"})
    assert not fresh.expired(datetime.now(UTC))
    assert not fresh.expired(datetime.now(UTC) + timedelta(seconds=9))
    assert fresh.expired(datetime.now(UTC) + timedelta(seconds=10))


def test_hub_killed_mid_job_prints_that_job_again_with_reprint_and_never_silently_twice(tmp_path, farm):
    farm.add("grill-1", bytes_per_second=400)  # a slow printer: the kill lands mid-job
    hub = start_hub(tmp_path, farm, [{"id": "grill-1", "stations": ["grill"]}])
    creds = hub.add_device("tab-08")
    tab = hub.tablet("tab-08", creds=creds)
    try:
        _mgr, server, _cashier = open_shift(tab)
        fire(tab, server, "tk-g1", [("escargots", 6)])
        job_id = next(iter(queued(hub)))

        def state() -> str:
            with sqlite3.connect(f"file:{hub.data_dir / 'hub.db'}?mode=ro", uri=True) as conn:
                return str(conn.execute("SELECT state FROM print_jobs WHERE job_id = ?", (job_id,)).fetchone()[0])

        farm.wait(lambda: state() == "printing", 30, "the job's bytes to start going out")
    finally:
        tab.close()
    hub.kill9()
    assert not printed(hub)
    hub.start()
    try:
        farm.wait(lambda: job_id in printed(hub), 60, "the job confirmed after the restart")
        assert printed(hub)[job_id] == [
            {"job_id": job_id, "printer": "grill-1", "reprint": True, "confirmation": "process_id"}
        ]
        copies = [banners for _printer, j, banners in farm.jobs() if j == job_id]
        assert copies[-1] == ["REPRINT"]
        assert [c for c in copies if "REPRINT" not in c] in ([], [[]]), "at most one plain copy"
    finally:
        hub.stop()
