"""Fixtures: a simulated microcontroller on a real pty, and valid provisioning settings."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys

import pytest

from firmware_tools.cli import main
from firmware_tools.provision import LinkSettings
from firmware_tools.simdevice import SimMicrocontroller
from tests.hubproc import REPO

FAST = LinkSettings(answer_timeout_s=1.0, retries=2)
"""Generous: other test suites share the CPU, and a late answer only costs a resend."""

SETTINGS = {
    "device_id": "drawer-1",
    "store": "test-store",
    "wifi_ssid": "Bistro Staff 5G",
    "wifi_psk": "correct horse battery",
    "hub_host": "192.168.10.2",
    "hub_port": "1883",
    "mqtt_user": "drawer-1",
    "mqtt_pass": "s3cr3t-Pässword",
}


@pytest.fixture
def sim(tmp_path):
    device = SimMicrocontroller(tmp_path / "flash.json")
    yield device
    device.close()


def storehub_fw(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `storehub-fw`'s entry point in this process (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(["storehub-fw", *args], code, out.getvalue(), err.getvalue())


def storehub_fw_process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `storehub-fw` as its own process, as a technician would."""
    return subprocess.run(
        [sys.executable, "-m", "firmware_tools.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
        check=False,
    )
