"""`make demo`'s command: a whole store plays a bounded service and its books verify (the smoke test)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING

from hub.ports import free_port
from tests.hubproc import REPO

if TYPE_CHECKING:
    from pathlib import Path


def test_the_demo_store_serves_tables_that_reach_the_kitchen_screens_and_the_books(tmp_path: Path) -> None:
    env = os.environ | {
        "STOREHUB_DEMO_DIR": str(tmp_path / "demo"),
        "STOREHUB_BROKER__PORT": str(free_port()),
        "STOREHUB_BROKER__WEBSOCKETS_PORT": str(free_port()),
        "STOREHUB_HUB__WEB_PORT": str(free_port()),
    }
    config = REPO / "config" / "store.example.toml"
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "demo", "--config", str(config), "--once", "--rush", "--parties", "6"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=REPO,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "mosquitto_sub" in out
    assert re.search(r"grill screen +http://127\.0\.0\.1:\d+/", out), out
    service = re.search(r"service: (\d+) tables and (\d+) takeouts, (\d+) tickets paid", out)
    assert service is not None, out
    tables, takeouts, paid = (int(g) for g in service.groups())
    assert tables + takeouts == 6
    assert paid == 6
    assert "chain ok: True" in out
    printed = re.search(r"printers: (\d+) chits and receipts printed, (\d+) failed", out)
    assert printed is not None, out
    assert int(printed.group(1)) > 0
    assert printed.group(2) == "0"
    assert (tmp_path / "demo" / "last-receipt.png").read_bytes().startswith(b"\x89PNG")
    held = re.search(r"HQ: central holds (\d+) of the hub's (\d+) ledger entries", out)
    assert held is not None, out
    assert held.group(1) == held.group(2), "the relay shipped the whole ledger to central"
    assert re.search(r"HQ dashboard +http://127\.0\.0\.1:\d+/", out), out
    for screen in ("grill", "expo"):
        seen = re.search(rf"{screen} screen: (\d+) tickets", out)
        assert seen is not None, out
        assert int(seen.group(1)) > 0, f"tickets reached the {screen} screen"
    verify = subprocess.run(
        [sys.executable, "-m", "hub.cli", "ledger", "verify", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env | {"STOREHUB_HUB__DATA_DIR": str(tmp_path / "demo" / "hub")},
        cwd=REPO,
        check=True,
    )
    assert json.loads(verify.stdout)["ok"]
