"""What a manager does from the page beyond the shift, against a real hub with a virtual ESC/POS printer.

Staff and device administration is ledgered with the manager as actor; a test print goes through the
durable print queue and comes out of a real TCP printer; wrong PINs lock one browser out for one
employee only; browser sessions and pairing codes outlive a hub restart, a deactivated employee's don't.
"""

from __future__ import annotations

import re
from contextlib import closing
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.devices.printfarm import PrintFarm, add_printers
from tests.hubproc import STAFF, HubProcess, write_config
from tests.web.conftest import WebHub, check_screenshot, prelogin_csrf
from tests.web.test_api import eventually

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e
MANAGER = STAFF["mgr"][0]
INES = ("emp-ines", "5820")
"""A second manager, added from the page."""


@pytest.fixture(scope="module")
def farm() -> Iterator[PrintFarm]:
    """The pass printer: a real TCP server on 127.0.0.1 that decodes ESC/POS onto paper."""
    printers = PrintFarm()
    printers.add("pass-1")
    try:
        yield printers
    finally:
        printers.close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, farm: PrintFarm) -> Iterator[WebHub]:
    config = write_config(tmp_path_factory.mktemp("adminhub"))
    add_printers(config, farm, [{"id": "pass-1", "name": "Pass", "stations": ["grill"], "receipts": True}])
    port = int(re.findall(r"web_port = (\d+)", config.read_text(encoding="utf-8"))[0])
    running = WebHub(HubProcess(config).start(), f"http://127.0.0.1:{port}")
    try:
        yield running
    finally:
        running.proc.stop()


def _manager(
    hub: WebHub, employee: tuple[str, str] = STAFF["mgr"], address: str | None = None
) -> tuple[httpx.Client, dict[str, str]]:
    transport = httpx.HTTPTransport(local_address=address) if address else None
    client = httpx.Client(base_url=hub.url, timeout=30, headers={"Accept": "application/json"}, transport=transport)
    csrf = hub.login(client, *employee)
    return client, {"X-CSRF-Token": csrf}


def _ledger(client: httpx.Client) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    while True:
        page = client.get("/api/ledger", params={"after": entries[-1]["seq"] if entries else 0, "limit": 500}).json()
        if not page:
            return entries
        entries.extend(page)


def test_staff_and_device_administration_is_ledgered_with_the_manager_as_actor(hub: WebHub) -> None:
    client, headers = _manager(hub)
    with closing(client):
        added = client.post(
            "/api/staff",
            json={"employee_id": INES[0], "name": "Inès", "role": "server", "pin": "1111"},
            headers=headers,
        )
        assert added.status_code == 200, added.text
        assert client.post(f"/api/staff/{INES[0]}/role", json={"role": "manager"}, headers=headers).status_code == 200
        assert client.post(f"/api/staff/{INES[0]}/pin", json={"pin": INES[1]}, headers=headers).status_code == 200
        temp = {"employee_id": "emp-temp", "name": "Temp", "role": "kitchen", "pin": "2468"}
        assert client.post("/api/staff", json=temp, headers=headers).status_code == 200
        assert client.post("/api/staff/emp-temp/deactivate", headers=headers).status_code == 200
        code = client.post("/api/devices/pair-code", json={"kind": "tablet"}, headers=headers).json()["code"]
        paired = httpx.post(hub.url + "/api/pair", json={"code": code, "device_id": "tab-adm", "kind": "tablet"})
        assert paired.status_code == 201, paired.text
        assert client.post("/api/devices/tab-adm/revoke", headers=headers).status_code == 200

        ours = {INES[0], "emp-temp", "tab-adm"}
        entries = [
            e
            for e in _ledger(client)
            if (e["data"].get("employee_id") in ours or e["data"].get("device_id") in ours)
            and e["type"].startswith(("staff.", "device."))
        ]
        assert [e["type"] for e in entries] == [
            "staff.added",
            "staff.role_changed",
            "staff.pin_reset",
            "staff.added",
            "staff.deactivated",
            "device.paired",
            "device.revoked",
        ]
        assert {e["actor"] for e in entries} == {MANAGER}  # the manager, never the operator
        assert {e["device"] for e in entries} == {"admin"}
        assert all("actor" not in e["data"] for e in entries)
        # No PIN reaches the ledger: no field named like one, and no PIN among the events' data.
        # (Hashes and command ids are hex: any four digits turn up in them now and then.)
        assert all("pin" not in key for e in entries for key in e["data"])
        data = str([e["data"] for e in entries])
        for pin in ("1111", INES[1], temp["pin"]):
            assert pin not in data


def test_a_test_print_from_the_printers_page_comes_out_of_the_printer(
    hub: WebHub, farm: PrintFarm, browser: Any
) -> None:
    context = browser.new_context(viewport={"width": 1024, "height": 768}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(hub.url + "/login")
        page.select_option("#employee", MANAGER)
        page.fill("#pin", STAFF["mgr"][1])
        page.click("button[type=submit]")
        page.wait_for_url(hub.url + "/")
        page.goto(hub.url + "/printers")
        check_screenshot(page, "Printers", "Pass", "Test print")
        page.click('button[data-post="/api/printers/pass-1/test"]')
        page.wait_for_selector("#flash:has-text('Test page queued on Pass')")

        printer = farm.printers["pass-1"]
        farm.wait(lambda: "StoreHub test page" in farm.call(printer.text), 30, "the test page came out")
        printed = farm.call(printer.text)
        assert "Pass: test page asked by Claire" in printed
        job_id = next(job for job, _ in farm.call(printer.jobs))
        assert farm.count(job_id) == 1

        with hub.client() as client:
            hub.login(client, *STAFF["mgr"])

            def printed_job() -> dict[str, Any] | None:
                jobs = client.get("/api/printers").json()["jobs"]
                return next((j for j in jobs if j["job_id"] == job_id and j["state"] == "printed"), None)

            job = eventually(printed_job, "the test page ledgered as printed")
            assert (job["kind"], job["printer"]) == ("test", "pass-1")
            entries = _ledger(client)
            queued = next(e for e in entries if e["type"] == "print.queued" and e["data"]["print_job_id"] == job_id)
            assert queued["actor"] == MANAGER
            assert any(e["type"] == "print.printed" and e["data"]["job_id"] == job_id for e in entries)
            png = client.get(f"/api/printers/jobs/{job_id}/preview.png")
            assert png.content.startswith(b"\x89PNG")
            headers = {"X-CSRF-Token": client.get("/api/me").json()["csrf"]}
            unknown = client.post("/api/printers/nope-9/test", headers=headers)
            assert unknown.status_code == 404
            assert "No printer 'nope-9'" in unknown.json()["error"]["message"]
        page.reload()
        check_screenshot(page, "Printers", "Test print", "printed")
    finally:
        context.close()


def test_wrong_pins_lock_out_one_browser_for_one_employee_not_the_page(hub: WebHub) -> None:
    cashier = STAFF["cashier"][0]
    with hub.client() as client:
        pre = {"X-CSRF-Token": prelogin_csrf(client)}
        codes = [
            client.post("/api/login", json={"employee_id": cashier, "pin": "0000"}, headers=pre).status_code
            for _ in range(5)
        ]
        assert codes == [401] * 5
        locked = client.post("/api/login", json={"employee_id": cashier, "pin": STAFF["cashier"][1]}, headers=pre)
        assert locked.status_code == 429
        message = locked.json()["error"]["message"]
        assert f"Too many wrong PINs for {cashier} from this browser; try again in" in message
        assert int(locked.headers["Retry-After"]) > 0
        # Another manager at the very same browser still logs in: the page itself is never locked.
        mine = client.post("/api/login", json={"employee_id": MANAGER, "pin": STAFF["mgr"][1]}, headers=pre)
        assert mine.status_code == 200, mine.text
    ines, _ = _manager(hub, INES, address="127.0.0.2")  # and another one from another computer
    with closing(ines):
        assert ines.get("/api/me").json()["employee_id"] == INES[0]
    with hub.client() as tablet_rule:  # the engine's own per-employee lockout still holds the cashier
        pre = {"X-CSRF-Token": prelogin_csrf(tablet_rule)}
        tablet_rule.headers["X-Forwarded-For"] = "10.9.9.9"  # ignored: the address is the socket's
        again = tablet_rule.post("/api/login", json={"employee_id": cashier, "pin": STAFF["cashier"][1]}, headers=pre)
        assert again.status_code == 429


def test_a_restart_keeps_sessions_and_pairing_codes_but_not_a_deactivated_managers(hub: WebHub) -> None:
    claire, headers = _manager(hub)
    ines, ines_headers = _manager(hub, INES)
    again, _ = _manager(hub)  # Claire on a second computer: both of her sessions live
    with closing(claire), closing(ines), closing(again):
        code = claire.post("/api/devices/pair-code", json={"kind": "tablet"}, headers=headers).json()["code"]
        assert again.get("/api/me").status_code == 200
        hub.proc.stop()
        hub.proc.start()
        for client in (claire, ines, again):
            assert client.get("/api/me").status_code == 200  # nobody logged out
        assert claire.post("/api/ledger/verify", headers=headers).json()["ok"] is True  # the same CSRF token
        open_codes = claire.get("/api/devices").json()["codes"]
        assert [(c["code"], c["kind"]) for c in open_codes] == [("", "tablet")]  # kept by hash, digits not stored
        paired = httpx.post(hub.url + "/api/pair", json={"code": code, "device_id": "tab-late", "kind": "tablet"})
        assert paired.status_code == 201, paired.text
        reuse = httpx.post(hub.url + "/api/pair", json={"code": code, "device_id": "tab-late2", "kind": "tablet"})
        assert reuse.status_code == 403
        assert ines.post("/api/ledger/verify", headers=ines_headers).status_code == 200
        hers = ines.post("/api/devices/pair-code", json={"kind": "tablet"}, headers=ines_headers).json()["code"]
        assert claire.post(f"/api/staff/{INES[0]}/deactivate", headers=headers).status_code == 200
        assert ines.get("/api/me").status_code == 401  # her sessions die at once
        orphan = httpx.post(hub.url + "/api/pair", json={"code": hers, "device_id": "tab-orphan", "kind": "tablet"})
        assert orphan.status_code == 403  # and so does the authority of the codes she showed
        assert "ask for a new code" in orphan.json()["error"]["message"]
        hub.proc.stop()
        hub.proc.start()
        assert ines.get("/api/me").status_code == 401  # and stay dead
        assert claire.get("/api/me").status_code == 200
        entry = next(e for e in reversed(_ledger(claire)) if e["type"] == "device.paired")
        assert (entry["data"]["device_id"], entry["actor"]) == ("tab-late", MANAGER)
