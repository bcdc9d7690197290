"""OTA through the hub: a real hub process serves the image and runs the rollout; simulated devices over real MQTT.

`storehub-fw rollout` hands the release to the running hub over its control socket; only the hub
publishes `ota.offer` on `device/{id}/do`. One drawer is provisioned over a pty first (it joins the
broker when it reboots); the others are already in the field.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import ssl
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from firmware_tools.ota import generate_key, load_private_key, sign
from firmware_tools.provision import provision
from firmware_tools.server import manifest_json
from firmware_tools.simdevice import SimMicrocontroller, SimMqttDevice
from hub.app import control_request
from tests.firmware_tools.conftest import FAST
from tests.hubproc import REPO, STAFF, HubProcess, write_config
from tests.mqtt_helpers import wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from devices.sim.tablet import SimTablet

DRAWER_IMAGE = b"drawer firmware 1.1.0 " * 700
BUTTON_IMAGE = b"button firmware 1.2.0 " * 300


def storehub_fw(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`storehub-fw` as its own process, as a technician runs it on the hub."""
    return subprocess.run(
        [sys.executable, "-m", "firmware_tools.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


def ledger(hub: HubProcess, type_: str) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{hub.data_dir / 'hub.db'}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT data FROM ledger WHERE type = ? ORDER BY seq", (type_,)).fetchall()
    return [json.loads(r[0]) for r in rows]


def ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["ok"], reply
    return reply.get("result") or {}


class Store:
    """A running hub, its signing key, a manager's tablet and the simulated devices."""

    def __init__(self, tmp_path: Path, *, tls: bool = False) -> None:
        self.tmp = tmp_path
        self.public = generate_key(tmp_path / "signing.pem")
        self.key = load_private_key(tmp_path / "signing.pem")
        config = write_config(tmp_path / "store")
        extra = f'\n[ota]\ntrusted_key = "{self.public}"\nstep_interval_s = 0.2\noffer_timeout_s = 120\n'
        if tls:
            extra += '\n[tls]\nenabled = true\nnames = ["127.0.0.1"]\n'
        config.write_text(config.read_text(encoding="utf-8") + extra, encoding="utf-8")
        self.hub = HubProcess(config).start()
        self.web_port = int(config.read_text(encoding="utf-8").split("web_port = ")[1].split()[0])
        self.devices: dict[str, SimMqttDevice] = {}
        self.micros: list[SimMicrocontroller] = []
        self.tablet: SimTablet = self.hub.tablet("tab-mgr")
        self.mgr = self.tablet.login(*STAFF["mgr"])

    def settings(self, device_id: str, password: str) -> dict[str, str]:
        return {
            "device_id": device_id,
            "store": self.hub.store_id,
            "wifi_ssid": "Bistro Staff",
            "wifi_psk": "kitchen-only-psk",
            "hub_host": "127.0.0.1",
            "hub_port": str(self.hub.port),
            "mqtt_user": device_id,
            "mqtt_pass": password,
            "ota_key": self.public,
        }

    def _microcontroller(self, device_id: str, kind: str) -> SimMicrocontroller:
        """A factory-fresh microcontroller on a pty that joins the broker once provisioning reboots it."""
        micro = SimMicrocontroller(self.tmp / f"{device_id}.flash", kind=kind)
        self.micros.append(micro)

        def boot(device: SimMicrocontroller) -> None:
            settings = device.committed
            self.devices[device_id] = SimMqttDevice(
                settings, kind=kind, fw=device.fw, trusted_key=settings["ota_key"]
            ).connect()

        micro.on_reboot = boot
        return micro

    def provision_over_serial(self, device_id: str, kind: str) -> None:
        """Register the device with the hub, write its settings over a pty, let it reboot onto MQTT."""
        creds = self.hub.add_device(device_id, kind=kind)
        micro = self._microcontroller(device_id, kind)
        assert provision(micro.port, self.settings(device_id, creds.password), link_settings=FAST).rebooted
        wait_until(lambda: device_id in self.devices, 10, f"{device_id} to boot onto the network")

    def provision_with_the_cli(self, device_id: str, kind: str) -> dict[str, Any]:
        """`storehub-fw provision --config …` as the technician runs it: the store CA comes from the hub."""
        creds = self.hub.add_device(device_id, kind=kind)
        creds_file = self.tmp / f"{device_id}.json"
        creds_file.write_text(json.dumps({"device_id": device_id, "username": device_id, "password": creds.password}))
        psk = self.tmp / "psk"
        psk.write_text("kitchen-only-psk")
        micro = self._microcontroller(device_id, kind)
        result = storehub_fw(
            "provision", "--port", micro.port, "--credentials", str(creds_file), "--config", str(self.hub.config),
            "--hub-host", "127.0.0.1", "--hub-port", str(self.hub.port), "--wifi-ssid", "Bistro Staff",
            "--wifi-psk-file", str(psk), "--ota-key", self.public, "--timeout", "1",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        wait_until(lambda: device_id in self.devices, 10, f"{device_id} to boot onto the network")
        report: dict[str, Any] = json.loads(result.stdout)
        return report

    def in_the_field(self, device_id: str, kind: str) -> None:
        creds = self.hub.add_device(device_id, kind=kind)
        self.devices[device_id] = SimMqttDevice(
            self.settings(device_id, creds.password), kind=kind, fw="1.0.0", trusted_key=self.public
        ).connect()

    def release(self, kind: str, version: str, image: bytes) -> tuple[Path, Path]:
        path = self.tmp / f"{kind}-{version}.bin"
        path.write_bytes(image)
        manifest = self.tmp / f"{kind}-{version}.manifest.json"
        manifest.write_text(manifest_json(sign(image, kind=kind, version=version, min_version="1.0.0", key=self.key)))
        return manifest, path

    def rollout_args(self, manifest: Path, image: Path, *extra: str) -> list[str]:
        """`storehub-fw rollout` arguments for this store (a later `--follow-timeout` in `extra` wins)."""
        return [
            "rollout", "--config", str(self.hub.config), "--manifest", str(manifest), "--image", str(image),
            "--interval", "0.2", "--follow-timeout", "90", *extra,
        ]  # fmt: skip

    def rollout(self, manifest: Path, image: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return storehub_fw(*self.rollout_args(manifest, image, *extra))

    def status(self) -> dict[str, Any]:
        result = storehub_fw("rollout", "status", "--config", str(self.hub.config))
        assert result.returncode == 0, result.stderr
        summary: dict[str, Any] = json.loads(result.stdout)
        return summary

    def shift(self, *, open_: bool) -> None:
        if open_:
            ok(self.tablet.call("shift.open", {"opening_float": 10000}, auth=self.mgr))
        else:
            ok(self.tablet.call("shift.close", {"counted_cash": 10000}, auth=self.mgr))

    def fleet_known(self, kind: str, count: int) -> None:
        """The hub saw every device's birth (presence), so the rollout knows the whole fleet."""
        from tests.hubproc import storehub  # noqa: PLC0415

        def seen() -> bool:
            out = storehub("hub", "status", "--config", str(self.hub.config))
            online = json.loads(out.stdout)["devices_online"]
            return sum(1 for d in online if d.startswith(kind)) == count

        wait_until(seen, 15, f"the hub to see {count} {kind}s online")

    def close(self) -> None:
        for device in self.devices.values():
            device.close()
        for micro in self.micros:
            micro.close()
        self.tablet.close()
        self.hub.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    running = Store(tmp_path)
    yield running
    running.close()


def test_the_hub_rolls_out_in_waves_and_holds_during_an_open_shift(store: Store) -> None:
    store.provision_over_serial("drawer-1", "drawer")
    for device_id in ("drawer-2", "drawer-3", "drawer-4"):
        store.in_the_field(device_id, "drawer")
    store.fleet_known("drawer", 4)
    manifest, image = store.release("drawer", "1.1.0", DRAWER_IMAGE)

    store.shift(open_=True)
    result = store.rollout(manifest, image, "--percent", "50", "--no-follow")
    assert result.returncode == 0, result.stderr
    started = json.loads(result.stdout)
    assert started["state"] == "waiting_shift"
    assert (started["fleet"], started["target"], started["pending"]) == (4, 2, [])
    assert started["url"] == f"http://127.0.0.1:{store.web_port}/firmware/drawer/1.1.0/image"
    assert (store.hub.data_dir / "firmware" / "drawer" / "1.1.0" / "image.bin").read_bytes() == DRAWER_IMAGE
    assert store.status()["state"] == "waiting_shift", "an open shift holds the rollout"
    assert all(device.results == [] for device in store.devices.values()), "nothing offered during service"

    store.shift(open_=False)
    wait_until(lambda: store.status()["state"] == "complete", 60, "the first wave to complete")
    wave = store.status()
    assert len(wave["succeeded"]) == 2
    updated = {d for d, dev in store.devices.items() if dev.fw == "1.1.0"}
    assert updated == set(wave["succeeded"])
    for device_id in updated:
        assert store.devices[device_id].results[-1]["ok"] is True
        assert wave["progress"][device_id] == {"state": "done", "version": "1.1.0"}

    # Widen to the whole kind: the same release, a higher percent; the CLI follows it to the end.
    result = store.rollout(manifest, image, "--percent", "100")
    assert result.returncode == 0, result.stderr + result.stdout
    final = json.loads(result.stdout.strip().splitlines()[-1])
    assert final["state"] == "complete"
    assert sorted(final["succeeded"]) == ["drawer-1", "drawer-2", "drawer-3", "drawer-4"]
    assert all(device.fw == "1.1.0" for device in store.devices.values())

    starts = ledger(store.hub, "ota.rollout_started")
    assert [(s["percent"], s["target"]) for s in starts] == [(50, 2), (100, 4)]
    assert len({s["rollout"] for s in starts}) == 1, "widening keeps the rollout"
    finished = ledger(store.hub, "ota.rollout_finished")
    assert [(f["percent"], len(f["succeeded"])) for f in finished] == [(50, 2), (100, 4)]
    assert ledger(store.hub, "ota.rollout_stopped") == []


def test_a_rollout_goes_on_after_a_power_cut_and_stops_if_its_release_is_gone(store: Store) -> None:
    for device_id in ("drawer-1", "drawer-2"):
        store.in_the_field(device_id, "drawer")
    store.fleet_known("drawer", 2)
    manifest, image = store.release("drawer", "1.1.0", DRAWER_IMAGE)
    store.shift(open_=True)
    # The technician follows the rollout from the command line; the hub restarting does not end that.
    follower = subprocess.Popen(
        [sys.executable, "-m", "firmware_tools.cli", *store.rollout_args(manifest, image, "--percent", "100",
                                                                         "--follow-timeout", "150")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip
    try:
        wait_until(lambda: store.status().get("state") == "waiting_shift", 30, "the rollout to start")
        rollout_id = store.status()["rollout"]
        _power_cut_and_resume(store, manifest, image, rollout_id)
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert follower.returncode == 0, err
    assert "still following while it restarts" in err
    assert json.loads(out.strip().splitlines()[-1])["state"] == "complete"
    assert [s["rollout"] for s in ledger(store.hub, "ota.rollout_started")] == [rollout_id], "resumed, not restarted"
    (finished,) = ledger(store.hub, "ota.rollout_finished")
    assert (finished["rollout"], sorted(finished["succeeded"])) == (rollout_id, ["drawer-1", "drawer-2"])

    # A release removed from the hub while it was down cannot go on: the books say it stopped, and why.
    newer_manifest, newer_image = store.release("drawer", "1.2.0", DRAWER_IMAGE + b"!")
    store.shift(open_=True)
    result = store.rollout(newer_manifest, newer_image, "--percent", "100", "--no-follow")
    assert result.returncode == 0, result.stderr
    newer_id = json.loads(result.stdout)["rollout"]
    store.hub.stop()
    for staged in (store.hub.data_dir / "firmware" / "drawer" / "1.2.0").iterdir():
        staged.unlink()
    store.hub.start()
    wait_until(lambda: ledger(store.hub, "ota.rollout_stopped"), 30, "the rollout to be ledgered as stopped")
    (stopped,) = ledger(store.hub, "ota.rollout_stopped")
    assert (stopped["rollout"], stopped["version"]) == (newer_id, "1.2.0")
    assert "the hub restarted and cannot offer drawer 1.2.0" in stopped["reason"]
    assert store.status() == {"state": "none"}
    assert all(device.fw == "1.1.0" for device in store.devices.values()), "nothing of 1.2.0 was offered"


def _power_cut_and_resume(store: Store, manifest: Path, image: Path, rollout_id: str) -> None:
    # The hub loses power while the rollout waits for the shift to close, and comes back on its own;
    # drawer-2 is unplugged meanwhile. Until the hub sees as many drawers as the rollout started
    # with, it waits for them ("resuming") rather than judge the wave by the one it sees.
    unplugged = store.devices.pop("drawer-2")
    unplugged.close()
    store.hub.kill9()
    store.hub.start()
    wait_until(lambda: store.status().get("rollout") == rollout_id, 30, "the rollout to be taken up again")
    wait_until(lambda: store.status()["fleet"] == 1, 30, "drawer-1 to reconnect")
    resuming = store.status()
    assert (resuming["rollout"], resuming["state"]) == (rollout_id, "resuming"), resuming
    widened = store.rollout(manifest, image, "--percent", "100", "--force", "--no-follow")
    assert widened.returncode == 2
    assert "resuming after a hub restart" in widened.stderr
    assert ledger(store.hub, "ota.rollout_finished") == []
    store.devices["drawer-2"] = SimMqttDevice(
        unplugged.settings, kind="drawer", fw=unplugged.fw, trusted_key=unplugged.trusted_key
    ).connect()
    wait_until(lambda: store.status()["state"] == "waiting_shift", 30, "drawer-2 to be seen again")
    assert all(device.results == [] for device in store.devices.values()), "still held by the open shift"
    store.shift(open_=False)
    wait_until(lambda: store.status()["state"] == "complete", 60, "the resumed rollout to complete")
    assert all(device.fw == "1.1.0" for device in store.devices.values())


def test_a_tampered_image_is_refused_by_the_device_and_the_failure_stops_the_rollout(store: Store) -> None:
    for device_id in ("button-1", "button-2"):
        store.in_the_field(device_id, "button")
    store.fleet_known("button", 2)
    manifest, image = store.release("button", "1.2.0", BUTTON_IMAGE)

    store.shift(open_=True)
    result = store.rollout(manifest, image, "--percent", "50", "--no-follow")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["state"] == "waiting_shift"
    # Someone swaps the image on the hub's disk after it was checked (same size, other bytes).
    served = store.hub.data_dir / "firmware" / "button" / "1.2.0" / "image.bin"
    served.write_bytes(BUTTON_IMAGE[:-5] + b"EVIL!")

    # Forced: offered during the open shift. The device refuses the image; the rollout stops.
    result = store.rollout(manifest, image, "--percent", "50", "--force", "--max-failures", "1")
    assert result.returncode == 1, result.stderr + result.stdout
    assert "the rollout stopped" in result.stderr
    final = json.loads(result.stdout.strip().splitlines()[-1])
    assert final["state"] == "stopped"
    assert "sha256_mismatch" in final["stopped_reason"]
    (refused,) = final["failed"]
    device = store.devices[refused]
    wait_until(lambda: device.ota is not None and device.ota.get("state") == "failed", 10, "the refusal status")
    assert device.ota == {"state": "failed", "version": "1.2.0", "error": "sha256_mismatch"}
    assert device.results[-1]["ok"] is False
    assert all(d.fw == "1.0.0" for d in store.devices.values()), "no device installed the tampered image"

    (stopped,) = ledger(store.hub, "ota.rollout_stopped")
    assert "sha256_mismatch" in stopped["failed"][refused]  # from its status or its device.result, whichever came first
    assert stopped["version"] == "1.2.0"
    # A stopped rollout offers nothing more, even widened; the operator starts a new one after a look.
    widened = store.rollout(manifest, image, "--percent", "100", "--force", "--no-follow")
    assert widened.returncode == 2
    assert "refuses to offer button 1.2.0" in widened.stderr, "the hub checks the image again: it is tampered"
    other = next(d for d in store.devices if d != refused)
    assert store.devices[other].results == []
    assert store.status()["state"] == "stopped"


def test_the_rollout_cli_refuses_bad_input_and_needs_a_running_hub(store: Store, tmp_path: Path) -> None:
    manifest, image = store.release("drawer", "1.1.0", DRAWER_IMAGE)
    config = str(store.hub.config)
    missing = storehub_fw("rollout", "--config", config, "--manifest", str(manifest))
    assert missing.returncode == 2
    assert "needs --manifest, --image and --percent" in missing.stderr
    other_image = tmp_path / "other.bin"
    other_image.write_bytes(DRAWER_IMAGE[:-1] + b"?")
    refused = store.rollout(manifest, other_image, "--percent", "10")
    assert refused.returncode == 2
    assert "refused: sha256_mismatch" in refused.stderr
    assert not (store.hub.data_dir / "firmware" / "drawer").exists(), "nothing staged"
    nothing = storehub_fw("rollout", "stop", "--config", config)
    assert nothing.returncode == 2
    assert "conflict: no rollout is running" in nothing.stderr
    assert store.status() == {"state": "none"}

    def control(body: dict[str, Any]) -> dict[str, Any]:
        answer = asyncio.run(control_request(store.hub.data_dir, "ota.rollout", body))
        assert answer is not None
        return answer

    assert control({"kind": "drawer", "version": "1.1.0", "percent": "ten"})["error"]["code"] == "invalid_payload"
    assert control({"kind": "drawer", "version": "1.1.0", "percent": 0})["error"]["code"] == "invalid_payload"
    assert control({"kind": "drawer", "version": "9.9.9", "percent": 10})["error"]["code"] == "not_found"
    outside = control({"kind": "../../data", "version": "1.1.0", "percent": 10})
    assert outside["error"]["code"] == "invalid_payload", "a kind can only name a folder of the firmware directory"
    assert control({"kind": "drawer", "version": "1.1.0", "percent": 10, "force": "no"})["error"]["code"] == (
        "invalid_payload"
    )

    store.in_the_field("drawer-9", "drawer")
    store.fleet_known("drawer", 1)
    store.shift(open_=True)
    assert store.rollout(manifest, image, "--percent", "50", "--no-follow").returncode == 0
    narrower = store.rollout(manifest, image, "--percent", "10", "--no-follow")
    assert narrower.returncode == 2
    assert "never narrows" in narrower.stderr
    newer_manifest, newer_image = store.release("drawer", "1.2.0", DRAWER_IMAGE + b"!")
    busy = store.rollout(newer_manifest, newer_image, "--percent", "10", "--no-follow")
    assert busy.returncode == 2
    assert "conflict: the rollout of drawer 1.1.0 is running; stop it first" in busy.stderr
    stopped = storehub_fw("rollout", "stop", "--config", config, "--reason", "wrong release")
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)["state"] == "stopped"
    assert ledger(store.hub, "ota.rollout_stopped")[0]["reason"] == "wrong release"
    replaced = store.rollout(newer_manifest, newer_image, "--percent", "10", "--no-follow")
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads(replaced.stdout)["version"] == "1.2.0"
    assert store.devices["drawer-9"].results == [], "all of it during an open shift: nothing offered"
    store.hub.stop()
    down = store.rollout(manifest, image, "--percent", "10")
    assert down.returncode == 2
    assert "no hub is running" in down.stderr


def test_the_hub_serves_images_read_only_and_never_outside_its_firmware_directory(store: Store) -> None:
    manifest, image = store.release("drawer", "1.1.0", DRAWER_IMAGE)
    assert store.rollout(manifest, image, "--percent", "10", "--no-follow").returncode == 0
    base = f"http://127.0.0.1:{store.web_port}"
    with httpx.Client(base_url=base, timeout=10) as web:
        got = web.get("/firmware/drawer/1.1.0/image")
        assert got.status_code == 200
        assert got.content == DRAWER_IMAGE
        assert web.get("/firmware/drawer/1.1.0/manifest.json").json()["sha256"] == json.loads(manifest.read_text())[
            "sha256"
        ]
        secret = store.hub.hub_password()
        for path in (
            "/firmware/..%2F..%2Fhub.secret/1.1.0/image",
            "/firmware/drawer/..%2F..%2F..%2Fhub.secret/image",
            "/firmware/drawer/1.1.0/..%2F..%2F..%2F..%2Fhub.secret",
            "/firmware/%2E%2E/%2E%2E/image",
            "/firmware/drawer/1.1.0/image/../../../../hub.secret",
        ):
            answer = web.get(path)
            assert answer.status_code in (404, 422), (path, answer.status_code)
            assert secret not in answer.text
        assert web.put("/firmware/drawer/1.1.0/image", content=b"x").status_code == 405
        assert web.get("/firmware/drawer/1.1.0/image").content == DRAWER_IMAGE


@pytest.fixture
def tls_store(tmp_path: Path) -> Iterator[Store]:
    running = Store(tmp_path, tls=True)
    yield running
    running.close()


def test_with_tls_devices_download_over_https_trusting_the_store_ca_they_were_provisioned_with(
    tls_store: Store,
) -> None:
    store = tls_store
    report = store.provision_with_the_cli("drawer-1", "drawer")
    ca_der = ssl.PEM_cert_to_DER_cert((store.hub.data_dir / "tls" / "ca.crt").read_text())
    assert report["ca_sha256"] == hashlib.sha256(ca_der).hexdigest()
    assert ssl.PEM_cert_to_DER_cert(store.micros[0].ca_pem or "") == ca_der
    store.in_the_field("drawer-2", "drawer")  # provisioned before the store had TLS: no CA
    store.fleet_known("drawer", 2)
    manifest, image = store.release("drawer", "1.1.0", DRAWER_IMAGE)

    result = store.rollout(manifest, image, "--percent", "100", "--max-failures", "2")
    assert result.returncode == 0, result.stderr + result.stdout
    final = json.loads(result.stdout.strip().splitlines()[-1])
    assert final["url"] == f"https://127.0.0.1:{store.web_port}/firmware/drawer/1.1.0/image"
    assert final["state"] == "complete"
    assert final["succeeded"] == ["drawer-1"]
    assert store.devices["drawer-1"].fw == "1.1.0"
    assert "download_failed" in final["failed"]["drawer-2"], "without the store CA the hub's HTTPS is not trusted"
    assert "certificate verify failed" in store.devices["drawer-2"].results[-1]["detail"]
    assert store.devices["drawer-2"].fw == "1.0.0"
    assert "1 device(s) failed" in result.stderr
    (finished,) = ledger(store.hub, "ota.rollout_finished")
    assert finished["succeeded"] == ["drawer-1"]
    assert list(finished["failed"]) == ["drawer-2"]


def test_a_rollout_is_refused_when_devices_could_not_reach_the_image_url(tmp_path: Path) -> None:
    public = generate_key(tmp_path / "signing.pem")
    config = write_config(tmp_path / "store")
    wildcard = f'\n[ota]\ntrusted_key = "{public}"\nimage_base_url = "http://0.0.0.0:8080"\n'
    config.write_text(config.read_text(encoding="utf-8") + wildcard, encoding="utf-8")
    hub = HubProcess(config).start()
    try:
        body = {"kind": "drawer", "version": "1.1.0", "percent": 10}
        answer = asyncio.run(control_request(hub.data_dir, "ota.rollout", body))
        assert answer is not None
        assert answer["error"]["code"] == "conflict"
        assert "is where the hub listens" in answer["error"]["message"]
        assert "[ota] image_base_url" in answer["error"]["message"]
        assert ledger(hub, "ota.rollout_started") == []
    finally:
        hub.stop()
