"""`storehub kds demo`: a hub, a grill and an expo screen fed by a simulated tablet."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.hubproc import REPO

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e


def test_the_demo_fires_tickets_onto_both_screens(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "kds", "demo", "--config", str(REPO / "config" / "store.example.toml"),
         "--ports", "0,0", "--tickets", "2", "--interval", "0"],
        check=False, capture_output=True, text=True, timeout=120, cwd=REPO,
        env={**os.environ, "STOREHUB_KDS_DEMO_DIR": str(tmp_path / "demo")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "grill screen: http://127.0.0.1:" in result.stdout
    assert "kds-grill: 2 open tickets on screen" in result.stdout
    assert "kds-expo: 2 open tickets on screen" in result.stdout
