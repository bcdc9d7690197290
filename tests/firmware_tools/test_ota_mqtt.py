"""OTA end to end: provision over serial, connect over MQTT, offer signed firmware, roll out, refuse.

A private Mosquitto with the hub's generated ACL for the devices, and a controller account standing
in for the hub's role on `device/{id}/do`; firmware served over real HTTP by the firmware router.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import uvicorn
from paho.mqtt.enums import CallbackAPIVersion

from firmware_tools.ota import generate_key, load_private_key, sign
from firmware_tools.provision import provision
from firmware_tools.rollout import MqttRolloutRunner, Rollout, RolloutPolicy
from firmware_tools.server import FirmwareStore, create_app, manifest_json
from firmware_tools.simdevice import SimMicrocontroller, SimMqttDevice
from hub.broker import BrokerConfig, BrokerUser, ManagedBroker, device_user, hash_password
from hub.contract.envelopes import DeviceJob, encode
from hub.contract.topics import Topics
from hub.contract.types import format_time
from tests.firmware_tools.conftest import FAST
from tests.hubproc import REPO
from tests.mqtt_helpers import free_port, wait_until

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


def _runner(controller, firmware, version: str, policy: RolloutPolicy) -> MqttRolloutRunner:
    found = firmware["store"].get("drawer", version)
    assert found is not None
    rollout = Rollout(found[0], f"{firmware['base']}/drawer/{version}/image", policy)
    runner = MqttRolloutRunner(rollout, controller, STORE)
    runner.subscribe()
    wait_until(lambda: len(rollout._fleet()) == len(DEVICES), 10, "every drawer's retained status")
    return runner


def _set_shift(controller, open_: bool) -> None:
    payload = json.dumps({"open": True, "shift_id": "s-1"} if open_ else {"open": False})
    controller.publish(TOPICS.state_shift(), payload, qos=1, retain=True).wait_for_publish(5)


def _run_until(runner: MqttRolloutRunner, states: tuple[str, ...], timeout: float = 30) -> None:
    def done() -> bool:
        runner.step()
        return runner.rollout.state in states

    wait_until(done, timeout, f"the rollout to reach {states}: {runner.rollout.summary()}")


def test_staged_rollout_waits_for_the_shift_to_close_then_updates_its_wave(fleet, controller, firmware):
    _set_shift(controller, open_=True)
    runner = _runner(controller, firmware, "1.1.0", RolloutPolicy(40))
    wait_until(lambda: runner.rollout.shift_open is True, 10, "the shift state")
    assert runner.step() == []
    assert runner.rollout.state == "waiting_shift"

    _set_shift(controller, open_=False)
    wait_until(lambda: runner.rollout.shift_open is False, 10, "the shift to close")
    _run_until(runner, ("complete",))
    summary = runner.rollout.summary()
    assert summary["target"] == 2
    updated = {d for d, dev in fleet.items() if dev.fw == "1.1.0"}
    assert updated == set(summary["succeeded"])
    assert len(updated) == 2
    assert all(dev.fw == "1.0.0" for d, dev in fleet.items() if d not in updated)
    for device_id in updated:
        assert fleet[device_id].results[-1]["ok"] is True
        assert fleet[device_id].ota == {"state": "done", "version": "1.1.0"}


def test_a_tampered_image_is_refused_and_the_rollout_stops(fleet, controller, firmware):
    _set_shift(controller, open_=False)
    runner = _runner(controller, firmware, "1.2.0", RolloutPolicy(40, max_failures=1))
    _run_until(runner, ("stopped",))
    offered = set(runner.rollout.failed) | set(runner.rollout.pending)
    assert 1 <= len(offered) <= 2
    assert "sha256_mismatch" in (runner.rollout.stopped_reason or "")
    for _ in range(3):
        assert runner.step() == [], "a stopped rollout offers nothing more"
    wait_until(lambda: all(fleet[d].ota and fleet[d].ota["state"] == "failed" for d in offered), 20, "refusals")
    assert all(dev.fw == "1.0.0" for dev in fleet.values()), "no device installed the tampered image"
    refused = next(iter(offered))
    assert fleet[refused].ota == {"state": "failed", "version": "1.2.0", "error": "sha256_mismatch"}


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


def test_storehub_fw_rollout_drives_a_wave_to_completion(fleet, controller, firmware, broker, tmp_path):
    _set_shift(controller, open_=False)
    manifest = tmp_path / "manifest.json"
    found = firmware["store"].get("drawer", "1.1.0")
    assert found is not None
    manifest.write_text(manifest_json(found[0]))
    password = tmp_path / "password"
    password.write_text(PASSWORDS["fw-rollout"])
    controller.disconnect()  # the CLI takes the controller's account (one session per client id)
    result = subprocess.run(
        [
            sys.executable, "-m", "firmware_tools.cli", "rollout", str(manifest),
            "--url", f"{firmware['base']}/drawer/1.1.0/image", "--store", STORE, "--percent", "20",
            "--broker-port", str(broker), "--username", "fw-rollout", "--password-file", str(password),
            "--interval", "0.2", "--max-duration", "60",
        ],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    final = json.loads(result.stdout.strip().splitlines()[-1])
    assert final["state"] == "complete"
    assert final["target"] == 1
    (device_id,) = final["succeeded"]
    assert fleet[device_id].fw == "1.1.0"


def test_storehub_fw_rollout_refuses_bad_input(tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text("{}")
    password = tmp_path / "password"
    password.write_text("x")
    result = subprocess.run(
        [
            sys.executable, "-m", "firmware_tools.cli", "rollout", str(manifest), "--url", "http://x/", "--store",
            STORE, "--percent", "20", "--username", "u", "--password-file", str(password),
        ],
        capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "device_kind: Field required" in result.stderr
