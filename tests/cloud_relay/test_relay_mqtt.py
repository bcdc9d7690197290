"""The relay beside a running hub: ships its live ledger, reports on `device/relay/status`, delivers HQ menus."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx

from cloud_relay.mqtt import RelayMqtt
from cloud_relay.relay import Relay
from hub.config import load_config
from hub.contract.topics import Topics
from tests.cloud_relay.helpers import Central, hub_entries, load_relay, relay_config
from tests.hubproc import HubProcess, write_config
from tests.mqtt_helpers import connect_client, wait_until

if TYPE_CHECKING:
    from pathlib import Path


def _statuses(client, topic: str) -> list[dict[str, Any]]:
    return [json.loads(p) for p in client.received(topic)]


def _hq(central: Central, path: str, body: dict[str, Any]) -> None:
    answer = httpx.post(central.url + path, json=body, headers={"Authorization": f"Bearer {central.token}"}, timeout=10)
    assert answer.status_code == 200, answer.text


def _menus(config: Path) -> list[str]:
    """Versions of every `menu.published` in the hub's ledger, oldest first (read-only)."""
    path = config.parent / "data" / "hub.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT data FROM ledger WHERE type = 'menu.published' ORDER BY seq").fetchall()
    return [json.loads(row[0])["version"] for row in rows]


def _latest_is(config: Path, version: str) -> bool:
    return _menus(config)[-1:] == [version]


def _run(loop: asyncio.AbstractEventLoop, relay: Relay) -> None:
    loop.run_until_complete(relay.run())


def _caught_up(client, topic: str, count: int) -> bool:
    return any(s.get("cursor") == count and s.get("backlog") == 0 for s in _statuses(client, topic))


def test_relay_ships_a_running_hubs_ledger_and_publishes_its_status(tmp_path: Path) -> None:
    hub = HubProcess(write_config(tmp_path / "store", store_id="live")).start()
    central = Central(tmp_path / "central", "sqlite+aiosqlite:///" + str(tmp_path / "central" / "c.db")).start()
    central.token = central.hq_token("hq-admin", "admin")  # publishing menus is an admin's
    try:
        tablet = hub.tablet("tab-01")
        tablet.close()  # a few ledger entries more, written by the running hub
        relay_creds = hub.add_device("relay", kind="relay")
        (tmp_path / "store" / "relay.mqtt").write_text(relay_creds.password, encoding="utf-8")
        options = {
            "mqtt_username": "relay",
            "mqtt_password_file": "relay.mqtt",
            "mqtt_port": hub.port,
            "menu_poll_s": 0.2,
        }
        config = relay_config(hub.config, central.url, central.add_store("live"), **options)
        observer_creds = hub.add_device("tab-obs")
        observer = connect_client(hub.port, observer_creds.username, observer_creds.password)
        topic = Topics("live").device_status("relay")
        observer.subscribe(topic)

        loaded = load_relay(config)
        password = loaded.mqtt_password or ""
        mqtt = RelayMqtt("live", "127.0.0.1", hub.port, username="relay", password=password, state_dir=loaded.state_dir)
        mqtt.start()
        relay = Relay(loaded, mqtt=mqtt)
        loop = asyncio.new_event_loop()
        runner = threading.Thread(target=_run, args=(loop, relay), daemon=True)
        runner.start()
        count, _ = hub_entries(hub.config)
        wait_until(lambda: _caught_up(observer, topic, count), timeout=30, what="a status with the ledger acked")

        # HQ publishes two versions, then rolls back to the first: the hub applies each, via the relay.
        menu = load_config(hub.config).menu.model_dump(mode="json")
        for version, price in (("hq-2", 1111), ("hq-3", 2222)):
            menu = menu | {"version": version, "items": [menu["items"][0] | {"price": price}, *menu["items"][1:]]}
            _hq(central, "/v1/menus/publish", {"stores": ["live"], "menu": menu})
            wait_until(partial(_latest_is, hub.config, version), timeout=30, what=f"menu {version} at the hub")
        _hq(central, "/v1/menus/rollback", {"stores": ["live"], "version": "hq-2"})
        wait_until(lambda: _menus(hub.config)[-3:] == ["hq-2", "hq-3", "hq-2"], timeout=30, what="the rollback")
        refused = httpx.post(
            central.url + "/v1/menus/rollback", json={"stores": ["live"], "version": "never"},
            headers={"Authorization": f"Bearer {central.token}"}, timeout=10,
        )  # fmt: skip
        assert refused.status_code == 409
        count = hub_entries(hub.config)[0]
        wait_until(lambda: _caught_up(observer, topic, count), timeout=30, what="the menu entries relayed too")
        loop.call_soon_threadsafe(relay.stop)
        runner.join(20)
        loop.close()
        mqtt.close()
        wait_until(lambda: _statuses(observer, topic)[-1]["state"] == "offline", timeout=10, what="offline")
        statuses = _statuses(observer, topic)
        online = [s for s in statuses if s["state"] == "online"]
        assert online[-1]["kind"] == "relay"
        assert online[-1]["halted"] is False
        assert {s["sess"] for s in statuses} == {online[0]["sess"]}
        assert central.audit("live")["entries"] == count
        observer.close()
    finally:
        central.stop()
        hub.stop()
