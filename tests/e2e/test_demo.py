"""`make demo`'s command runs a scripted service end to end and leaves a ledger that verifies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

from tests.hubproc import REPO
from tests.mqtt_helpers import free_port

if TYPE_CHECKING:
    from pathlib import Path


def test_the_demo_plays_a_service_through_the_contract(tmp_path: Path) -> None:
    env = os.environ | {
        "STOREHUB_DEMO_DIR": str(tmp_path / "demo"),
        "STOREHUB_BROKER__PORT": str(free_port()),
        "STOREHUB_BROKER__WEBSOCKETS_PORT": str(free_port()),
    }
    config = REPO / "config" / "store.example.toml"
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "demo", "--config", str(config), "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    steps = [line for line in result.stdout.splitlines() if line.startswith("  tablet:")]
    assert len(steps) >= 10
    assert all(line.rstrip().endswith("ok") for line in steps), "\n".join(steps)
    assert "mosquitto_sub" in result.stdout
    verify = subprocess.run(
        [sys.executable, "-m", "hub.cli", "ledger", "verify", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env | {"STOREHUB_HUB__DATA_DIR": str(tmp_path / "demo")},
        cwd=REPO,
        check=True,
    )
    assert json.loads(verify.stdout)["ok"]
