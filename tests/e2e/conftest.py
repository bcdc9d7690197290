"""A hub process with its managed, generated-config Mosquitto on a free 127.0.0.1 port."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.hubproc import HubProcess, write_config

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """One hub for a module's tests (each test uses its own tablets and tickets)."""
    directory: Path = tmp_path_factory.mktemp("hub")
    process = HubProcess(write_config(directory)).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def fresh_hub(tmp_path: Path) -> Iterator[HubProcess]:
    """A hub of its own, for tests that kill or restart it."""
    process = HubProcess(write_config(tmp_path / "store"))
    try:
        yield process
    finally:
        process.stop()
