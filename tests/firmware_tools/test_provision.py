"""Provisioning over a real pty with the simulated microcontroller: retries, read-back, failures."""

from __future__ import annotations

import json
import os
import tty

import pytest
import serial  # type: ignore[import-untyped, unused-ignore]

from firmware_tools import protocol
from firmware_tools.provision import LinkSettings, ProvisionError, provision
from tests.firmware_tools.conftest import FAST, SETTINGS, storehub_fw, storehub_fw_process


def test_provision_writes_verifies_commits_and_reboots(sim):
    report = provision(sim.port, SETTINGS, link_settings=FAST)
    assert report.device.kind == "drawer"
    assert report.device.fw == "1.0.0"
    assert report.written == list(SETTINGS)
    assert report.verified == list(SETTINGS)
    assert report.committed
    assert report.rebooted
    assert report.requests_sent == len(SETTINGS) * 2 + 3  # HELLO, SETs, GETs, COMMIT, REBOOT
    assert sim.committed == SETTINGS
    assert sim.reboots == 1


def test_lost_frames_and_garbled_answers_are_resent_and_applied_once(sim):
    sim.faults.drop_frames = 2
    sim.faults.corrupt_answers = 3
    report = provision(sim.port, SETTINGS, link_settings=LinkSettings(answer_timeout_s=1.0, retries=8))
    assert report.committed
    assert report.resends >= 5  # more when this machine is so loaded that an answer comes late
    assert sim.committed == SETTINGS
    assert sim.reboots == 1


def test_a_device_that_stops_answering_mid_write_keeps_its_previous_settings(sim):
    provision(sim.port, SETTINGS, link_settings=FAST)
    before = sim.committed
    sim.faults.stop_after_requests = sim.requests_received + 4  # HELLO + 3 SETs, then silence
    changed = SETTINGS | {"hub_host": "192.168.10.99", "mqtt_pass": "another-password"}
    with pytest.raises(ProvisionError) as caught:
        provision(sim.port, changed, link_settings=FAST)
    message = str(caught.value)
    assert "no answer to SET" in message
    assert "3 of 8 settings written, 0 verified" in message
    assert "nothing was committed: the device keeps its previous configuration" in message
    assert sim.committed == before


def test_read_back_catches_a_setting_the_device_stored_wrong(sim, monkeypatch):
    original = sim._handle

    def flaky_flash(frame):
        answer = original(frame)
        if frame.verb == "SET" and frame.args[0] == "hub_host":
            sim.staged["hub_host"] = "192.168.10.3"  # a flipped bit in the device's RAM
        return answer

    monkeypatch.setattr(sim, "_handle", flaky_flash)
    with pytest.raises(ProvisionError, match=r"read-back of hub_host gave '192.168.10.3'.*nothing was committed"):
        provision(sim.port, SETTINGS, link_settings=FAST)
    assert sim.committed == {}
    assert sim.staged == {}, "the tool aborted the staged settings"


def test_a_device_refusing_a_value_is_reported(sim, monkeypatch):
    settings = SETTINGS | {"hub_host": "hub.lan"}
    original = sim._handle
    monkeypatch.setattr(
        sim,
        "_handle",
        lambda f: ["ERR", "bad_value", "no DNS on this firmware"] if f.args[:1] == ("hub_host",) else original(f),
    )
    with pytest.raises(ProvisionError, match="refused SET hub_host: bad_value: no DNS on this firmware"):
        provision(sim.port, settings, link_settings=FAST)


def test_bad_settings_are_refused_before_anything_is_sent(sim):
    with pytest.raises(ProvisionError, match="wifi_psk must be 8-63"):
        provision(sim.port, SETTINGS | {"wifi_psk": "1234"}, link_settings=FAST)
    with pytest.raises(ProvisionError, match="missing mqtt_pass"):
        provision(sim.port, {k: v for k, v in SETTINGS.items() if k != "mqtt_pass"}, link_settings=FAST)
    assert sim.frames_received == 0


def test_wrong_port():
    with pytest.raises(ProvisionError, match="no such serial port"):
        provision("/dev/ttyUSB-storehub-missing", SETTINGS, link_settings=FAST)


def test_busy_port(sim):
    holder = serial.Serial(sim.port, 115200, exclusive=True)
    try:
        with pytest.raises(ProvisionError, match="the port is busy"):
            provision(sim.port, SETTINGS, link_settings=FAST)
    finally:
        holder.close()
    assert sim.frames_received == 0


def test_a_port_where_nothing_answers():
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        with pytest.raises(ProvisionError, match="no StoreHub device answered"):
            provision(os.ttyname(slave), SETTINGS, link_settings=LinkSettings(answer_timeout_s=0.2, retries=1))
    finally:
        os.close(master)
        os.close(slave)


def test_not_a_serial_port(tmp_path):
    plain = tmp_path / "plain-file"
    plain.write_text("")
    with pytest.raises(ProvisionError, match="not a serial port"):
        provision(str(plain), SETTINGS, link_settings=FAST)


def _cli_args(tmp_path, port: str) -> list[str]:
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"device_id": "drawer-1", "username": "drawer-1", "password": SETTINGS["mqtt_pass"]}))
    psk = tmp_path / "psk"
    psk.write_text(SETTINGS["wifi_psk"] + "\n")
    return [
        "provision", "--port", port, "--credentials", str(creds), "--store", "test-store",
        "--hub-host", "192.168.10.2", "--wifi-ssid", SETTINGS["wifi_ssid"], "--wifi-psk-file", str(psk),
        "--timeout", "1", "--retries", "2",
    ]  # fmt: skip


def test_cli_provisions_and_prints_a_report(sim, tmp_path):
    result = storehub_fw_process(*_cli_args(tmp_path, sim.port))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["committed"]
    assert report["device"]["serial"] == "SIM-0001"
    assert sim.committed == SETTINGS


def test_cli_exits_2_with_a_clear_message(sim, tmp_path):
    result = storehub_fw_process(*_cli_args(tmp_path, "/dev/ttyUSB-storehub-missing"))
    assert result.returncode == 2
    assert result.stderr.startswith("storehub-fw: /dev/ttyUSB-storehub-missing: no such serial port")
    sim.faults.stop_after_requests = 3
    result = storehub_fw(*_cli_args(tmp_path, sim.port))
    assert result.returncode == 2
    assert "nothing was committed" in result.stderr
    assert sim.committed == {}
    args = _cli_args(tmp_path, sim.port)
    args[args.index("--wifi-psk-file") + 1] = str(tmp_path / "missing-psk")
    result = storehub_fw(*args)
    assert result.returncode == 2
    assert "missing-psk: cannot read" in result.stderr


def test_the_device_answers_a_garbled_frame_with_err_crc(sim):
    with serial.Serial(sim.port, 115200, timeout=5) as port:
        port.write(b">01 SET hub_host 10.0.0.1*0000\r\n")
        answer = protocol.decode(port.readline())
    assert answer.seq is None
    assert answer.verb == "ERR"
    assert answer.args[0] == "crc"
    assert sim.staged == {}
