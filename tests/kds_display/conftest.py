"""A real hub and broker, real KDS screens (`storehub kds run` processes) and one headless Chromium."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import sync_playwright

from hub.ports import free_port
from kds_display.bench import CHROMIUM, CHROMIUM_ARGS, KdsProcess, add_device
from tests.hubproc import STAFF, HubProcess, write_config

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from devices.sim.tablet import SimTablet


@dataclass
class Store:
    """A running hub with an open shift and a server's tablet that also watches the events."""

    hub: HubProcess
    root: Path
    tablet: SimTablet
    token: str
    screens: dict[str, KdsProcess] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def screen(self, device: str, stations: str, settings: str = "", *, wait: bool = True) -> KdsProcess:
        """Register and start a KDS screen (its stations come from its registration)."""
        password = add_device(self.hub.config, device, "kds", stations)
        path = None
        if settings:
            path = self.root / f"{device}.toml"
            path.write_text(settings, encoding="utf-8")
        kds = KdsProcess(self.hub.config, device, password, free_port(), self.root / device / "state", settings=path)
        self.screens[device] = kds.launch()
        return kds.wait_ready() if wait else kds

    def ticket(self, items: list[dict[str, Any]], *, fire: bool = True, **head: Any) -> tuple[str, int]:
        """Open a ticket with these lines (and fire it); returns (ticket id, number)."""
        tid = f"T{next(self._ids)}"
        body = {"ticket_id": tid, "channel": "dine_in", **head}
        opened = self.tablet.call("ticket.open", body, auth=self.token)
        assert opened["ok"], opened
        lines = [{"line_id": f"{tid}-{i}", "qty": 1, **item} for i, item in enumerate(items)]
        added = self.tablet.call("ticket.add_items", {"ticket_id": tid, "items": lines}, auth=self.token)
        assert added["ok"], added
        if fire:
            fired = self.tablet.call("ticket.fire", {"ticket_id": tid}, auth=self.token)
            assert fired["ok"], fired
        return tid, int(opened["result"]["number"])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One hub per module, a tablet logged in as a server, and the screens the module starts."""
    root: Path = tmp_path_factory.mktemp("kds")
    hub = HubProcess(write_config(root / "store")).start()
    tablet = None
    screens: dict[str, KdsProcess] = {}
    try:
        tablet = hub.tablet("tab-kds", events=True)
        manager = tablet.login(*STAFF["mgr"])
        assert tablet.call("shift.open", {"opening_float": 10000}, auth=manager)["ok"]
        store = Store(hub, root, tablet, tablet.login(*STAFF["server"]), screens)
        yield store
    finally:
        for kds in screens.values():
            kds.stop()
        if tablet is not None:
            tablet.close()
        hub.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module (the system's, never a downloaded one)."""
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
