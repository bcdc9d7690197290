"""Projections and reports at central, from a real service sold by the hub's engine and relayed over HTTP."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import TYPE_CHECKING, Any

import httpx

from cloud_relay.relay import Relay
from cloud_relay.sample import service
from tests.cloud_relay.helpers import Central, hub_entries, load_relay, relay_config, storehub
from tests.hubproc import write_config

if TYPE_CHECKING:
    from pathlib import Path


def _get(central: Central, path: str, **params: str) -> Any:
    answer = httpx.get(
        central.url + path, params=params, headers={"Authorization": f"Bearer {central.token}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_reports_from_a_relayed_service_reconcile_with_the_hub(tmp_path: Path, database_url: str) -> None:
    store_id = "rep-" + secrets.token_hex(3)
    store = write_config(tmp_path / "store", store_id=store_id)
    head = asyncio.run(service(store))
    central = Central(tmp_path / "central", database_url).start()
    central.token = central.hq_token()
    try:
        relay = Relay(load_relay(relay_config(store, central.url, central.add_store(store_id), batch_entries=7)))
        assert asyncio.run(relay.drain()) == head
        deadline = time.monotonic() + 60
        while not _get(central, "/v1/reports/shifts", store=store_id):
            assert time.monotonic() < deadline, "projections did not catch up"
            time.sleep(0.1)
        reports = {
            name: _get(central, f"/v1/reports/{name}", store=store_id)
            for name in ("shifts", "item-mix", "tenders", "exceptions", "speed")
        }
        reports["sales"] = _get(central, "/v1/reports/sales", store=store_id, by="store")

        [shift] = reports["shifts"]
        assert shift["equal"] is True, shift
        assert shift["hub_z"]["tenders"] == {"cash": 1350 + 850 + 850, "external": 1250}
        assert shift["hub_z"]["refunds"] == 450
        assert shift["hub_z"]["no_sales"] == 1

        mix = {row["menu_item_id"]: row["qty"] for row in reports["item-mix"]}
        assert mix == {"escargots": 1, "biere": 3, "creme-brulee": 2}, "voided lines and split shares left out"
        tenders = {row["kind"]: (row["amount"], row["tips"]) for row in reports["tenders"]}
        assert tenders == {"cash": (3050, 0), "external": (1250, 200)}
        kinds = [(e["kind"], e["amount"], e["actor"], e["approver"]) for e in reports["exceptions"]]
        assert kinds == [
            ("item_void", 1500, "emp-claire", None),
            ("discount", 150, "emp-hugo", "emp-claire"),  # a server's discount, approved by the manager
            ("refund", 450, "emp-claire", None),
            ("no_sale", 0, "emp-claire", None),
        ]
        assert [(s["station"], s["lines"]) for s in reports["speed"]] == [("grill", 1)]
        [sales] = reports["sales"]
        assert (sales["tickets"], sales["total"], sales["tips"]) == (4, 4300, 200)
        [link] = [c for c in _get(central, "/v1/reports/connectivity") if c["store_id"] == store_id]
        assert link["last_seq"] == hub_entries(store)[0]

        assert httpx.get(central.url + "/v1/reports/tenders").status_code == 401
        rebuilt = storehub("central", "rebuild", "--config", str(central.config))
        assert json.loads(rebuilt.stdout)["rebuilt"] is True
        again = {
            name: _get(central, f"/v1/reports/{name}", store=store_id)
            for name in ("shifts", "item-mix", "tenders", "exceptions", "speed")
        }
        assert again == {k: v for k, v in reports.items() if k != "sales"}, "a rebuild gives the same reports"
    finally:
        central.stop()
