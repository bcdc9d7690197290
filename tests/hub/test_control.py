"""The control socket as `storehub` commands meet it: a starting hub is waited for, an absent one is not."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from hub.app import SOCKET_NAME, DataDirLock, control_request

if TYPE_CHECKING:
    from pathlib import Path


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = json.loads(await reader.readline())
    writer.write(json.dumps({"ok": True, "result": {"type": request["type"]}}).encode() + b"\n")
    await writer.drain()
    writer.close()


def test_a_request_waits_for_a_starting_hubs_socket(tmp_path: Path) -> None:
    async def go() -> None:
        lock = DataDirLock(tmp_path)
        assert lock.acquire()  # a hub is starting: the data directory is locked, no socket yet
        assert lock.held()
        request = asyncio.create_task(control_request(tmp_path, "hub.status", {}))
        await asyncio.sleep(0.3)
        assert not request.done(), "the request waits while the hub is starting"
        server = await asyncio.start_unix_server(_answer, path=str(tmp_path / SOCKET_NAME))
        answer = await asyncio.wait_for(request, 5)
        assert answer == {"ok": True, "result": {"type": "hub.status"}}
        server.close()
        await server.wait_closed()
        lock.release()
        assert not lock.held()

    asyncio.run(go())


def test_without_a_hub_a_request_returns_none(tmp_path: Path) -> None:
    assert asyncio.run(control_request(tmp_path, "hub.status", {})) is None  # never started here
    stopped = DataDirLock(tmp_path)
    assert stopped.acquire()
    stopped.release()  # a hub that has stopped leaves its lock file, unheld
    assert not stopped.held()
    assert asyncio.run(control_request(tmp_path, "hub.status", {})) is None
