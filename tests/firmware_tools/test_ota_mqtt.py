"""The simulated device's side of OTA: provisioned over serial, joins MQTT, refuses a downgrade.

A private Mosquitto with the hub's generated ACL for the devices, and a controller account standing
in for the hub's role on `device/{id}/do`; firmware served over real HTTP by the firmware router.
Rollouts through a real hub process are in test_ota_hub.py.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import uvicorn
from paho.mqtt.enums import CallbackAPIVersion

from firmware_tools.ota import generate_key, load_private_key, sign
from firmware_tools.provision import provision
from firmware_tools.server import FirmwareStore, create_app, manifest_json
from firmware_tools.simdevice import SimMicrocontroller, SimMqttDevice
from hub.broker import BrokerConfig, BrokerUser, ManagedBroker, device_user, hash_password
from hub.contract.envelopes import DeviceJob, encode
from hub.contract.topics import Topics
from hub.contract.types import format_time
from hub.ports import free_port
from tests.firmware_tools.conftest import FAST
from tests.mqtt_helpers import wait_until

STORE = "fw-store"
TOPICS = Topics(STORE)
GOOD = b"drawer firmware 1.1.0 " * 500
OLD = b"drawer firmware 0.9.0 " * 500


@pytest.fixture
def keys(tmp_path):
    public = generate_key(tmp_path / "signing.pem")
    return load_private_key(tmp_path / "signing.pem"), public


def _release(root: Path, manifest, image: bytes) -> None:
    folder = root / manifest.device_kind / manifest.version
    folder.mkdir(parents=True)
    (folder / "image.bin").write_bytes(image)
    (folder / "manifest.json").write_text(manifest_json(manifest))


@pytest.fixture
def firmware(tmp_path, keys):
    """Releases on a real HTTP server: 1.1.0 (good), 1.2.0 (image swapped after signing), 0.9.0 (older)."""
    key, _public = keys
    root = tmp_path / "firmware"
    _release(root, sign(GOOD, kind="drawer", version="1.1.0", min_version="1.0.0", key=key), GOOD)
    _release(root, sign(GOOD, kind="drawer", version="1.2.0", min_version="1.0.0", key=key), GOOD[:-5] + b"EVIL!")
    _release(root, sign(OLD, kind="drawer", version="0.9.0", min_version="0.0.0", key=key), OLD)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(FirmwareStore(root)), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, "the firmware server to start")
    yield {"store": FirmwareStore(root), "base": f"http://127.0.0.1:{port}/firmware"}
    server.should_exit = True
    thread.join(10)


DEVICES = [f"drawer-{i}" for i in range(1, 6)]
PASSWORDS = {d: f"pw-{d}-0123456789" for d in DEVICES} | {"fw-rollout": "controller-secret-42"}


@pytest.fixture
def broker(tmp_path):
    port = free_port()
    managed = ManagedBroker(BrokerConfig(host="127.0.0.1", port=port, conf_dir=tmp_path / "broker"))
    users = [
        BrokerUser("fw-rollout", hash_password(PASSWORDS["fw-rollout"]), (), (), (TOPICS.all_topics(),)),
        *(device_user(TOPICS, d, "drawer", [], hash_password(PASSWORDS[d])) for d in DEVICES),
    ]
    asyncio.run(managed.start(users))
    yield port
    asyncio.run(managed.stop())


def _settings(device_id: str, port: int) -> dict[str, str]:
    return {
        "device_id": device_id,
        "store": STORE,
        "wifi_ssid": "Bistro Staff",
        "wifi_psk": "kitchen-only-psk",
        "hub_host": "127.0.0.1",
        "hub_port": str(port),
        "mqtt_user": device_id,
        "mqtt_pass": PASSWORDS[device_id],
    }


@pytest.fixture
def fleet(broker, keys, tmp_path):
    """drawer-1 provisioned over serial (it connects when it reboots), drawer-2..5 already in the field."""
    _key, public = keys
    devices: dict[str, SimMqttDevice] = {}
    micro = SimMicrocontroller(tmp_path / "flash.json")

    def boot(device: SimMicrocontroller) -> None:
        settings = device.committed
        devices[settings["device_id"]] = SimMqttDevice(
            settings, kind="drawer", fw=device.fw, trusted_key=settings["ota_key"]
        ).connect()

    micro.on_reboot = boot
    report = provision(micro.port, _settings("drawer-1", broker) | {"ota_key": public}, link_settings=FAST)
    assert report.rebooted
    wait_until(lambda: "drawer-1" in devices, 10, "drawer-1 to boot onto the network")
    for device_id in DEVICES[1:]:
        devices[device_id] = SimMqttDevice(
            _settings(device_id, broker), kind="drawer", fw="1.0.0", trusted_key=public
        ).connect()
    yield devices
    for device in devices.values():
        device.close()
    micro.close()


@pytest.fixture
def controller(broker):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fw-rollout", protocol=mqtt.MQTTv5)
    client.username_pw_set("fw-rollout", PASSWORDS["fw-rollout"])
    connected = threading.Event()
    client.on_connect = lambda *_a: connected.set()
    client.connect("127.0.0.1", broker)
    client.loop_start()
    assert connected.wait(10)
    yield client
    client.disconnect()
    client.loop_stop()


def test_a_device_refuses_a_downgrade_offered_directly(fleet, controller, firmware):
    found = firmware["store"].get("drawer", "0.9.0")
    assert found is not None
    job = DeviceJob(
        id="ota-downgrade-1",
        type="ota.offer",
        expires_at=format_time(datetime.now(UTC) + timedelta(minutes=1)),
        body={"manifest": found[0].model_dump(), "url": f"{firmware['base']}/drawer/0.9.0/image"},
    )
    controller.publish(TOPICS.device_do("drawer-3"), encode(job), qos=1).wait_for_publish(5)
    device = fleet["drawer-3"]
    wait_until(lambda: device.results, 20, "drawer-3's answer")
    assert device.results[-1]["of"] == "ota-downgrade-1"
    assert device.results[-1]["ok"] is False
    assert device.results[-1]["detail"].startswith("downgrade:")
    assert device.fw == "1.0.0"
