"""The relay beside a running hub: reads its live database read-only and reports on `device/relay/status`."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import TYPE_CHECKING, Any

from cloud_relay.mqtt import RelayMqtt
from cloud_relay.relay import Relay
from hub.contract.topics import Topics
from tests.cloud_relay.helpers import Central, hub_entries, load_relay, relay_config
from tests.hubproc import HubProcess, write_config
from tests.mqtt_helpers import connect_client, wait_until

if TYPE_CHECKING:
    from pathlib import Path


def _statuses(client, topic: str) -> list[dict[str, Any]]:
    return [json.loads(p) for p in client.received(topic)]


def _run(loop: asyncio.AbstractEventLoop, relay: Relay) -> None:
    loop.run_until_complete(relay.run())


def _caught_up(client, topic: str, count: int) -> bool:
    return any(s.get("cursor") == count and s.get("backlog") == 0 for s in _statuses(client, topic))


def test_relay_ships_a_running_hubs_ledger_and_publishes_its_status(tmp_path: Path) -> None:
    hub = HubProcess(write_config(tmp_path / "store", store_id="live")).start()
    central = Central(tmp_path / "central", "sqlite+aiosqlite:///" + str(tmp_path / "central" / "c.db")).start()
    try:
        tablet = hub.tablet("tab-01")
        tablet.close()  # a few ledger entries more, written by the running hub
        relay_creds = hub.add_device("relay", kind="relay")
        (tmp_path / "store" / "relay.mqtt").write_text(relay_creds.password, encoding="utf-8")
        options = {"mqtt_username": "relay", "mqtt_password_file": "relay.mqtt", "mqtt_port": hub.port}
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
