"""The simulated dinner service (what `make demo` plays) against a real hub through its real broker."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from devices.sim.service import DinnerService, Employee
from hub.config import load_config
from tests.hubproc import STAFF, HubProcess, storehub, write_config

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    process = HubProcess(write_config(tmp_path_factory.mktemp("service"))).start()
    try:
        yield process
    finally:
        process.stop()


def employee(who: str) -> Employee:
    employee_id, pin = STAFF[who]
    return Employee(employee_id, who, pin)


def test_a_service_seats_fires_and_settles_every_party_and_the_books_verify(hub: HubProcess) -> None:
    loaded = load_config(hub.config)
    tablets = [hub.add_device(f"tab-svc-{i}") for i in range(3)]
    lines: list[str] = []
    service = DinnerService(
        store_id=hub.store_id,
        port=hub.port,
        tablets=tablets,
        manager=employee("mgr"),
        servers=[employee("server")],
        menu=loaded.menu,
        tables=[t.id for t in loaded.config.tables],
        pace=0.01,
        seed=7,
        narrate=lines.append,
    )
    stats = service.run(parties=10)

    assert stats.parties + stats.takeouts == 10, lines
    assert stats.tickets_paid == 10, lines
    assert stats.voids == 1, "the manager's tablet voids one fired line with approval"
    assert stats.lines_fired > 10
    assert set(stats.refused) <= {"item_unavailable"}, (stats.refused, lines)

    watcher = hub.tablet("tab-svc-check")
    try:
        token = watcher.login(*STAFF["mgr"])
        snapshot = watcher.call("sync", {}, auth=token)["result"]["snapshot"]
        report = watcher.call("shift.report", {"kind": "x"}, auth=token)["result"]
    finally:
        watcher.close()
    assert snapshot["tickets"] == [], "every party paid and left: no ticket is still open"
    assert all(t["status"] == "free" for t in snapshot["tables"]), "and every table was cleared"
    assert report["tickets_closed"] == 10
    assert report["total"] == stats.sales, "the X report holds exactly what the tablets took"
    assert report["refunds"]["count"] == stats.refunds
    assert report["voids"]["count"] == stats.voids
    verify = json.loads(storehub("ledger", "verify", "--config", str(hub.config)).stdout)
    assert verify["ok"]
    replay = json.loads(storehub("replay", "--config", str(hub.config)).stdout)
    assert replay["equal"], replay
