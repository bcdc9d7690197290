"""A tiny real HTTP proxy in front of central that injects faults on a script (5xx, timeouts, lost acks)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Self

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from hub.ports import free_port

if TYPE_CHECKING:
    from starlette.requests import Request

FORWARDED = ("authorization", "content-encoding", "content-type", "x-storehub-signature")


class ChaosProxy:
    """Serves on 127.0.0.1:port; each request takes the next fault from `plan` (then forwards normally).

    Faults: `500`, `503` (Retry-After: 0), `429` (Retry-After: 0), `stall` (answers nothing until the
    client times out), `ack_lost` (forwards, central stores it, then the answer never arrives).
    """

    def __init__(self, upstream: str, plan: list[str], stall_s: float) -> None:
        self.upstream = upstream
        self.plan = list(plan)
        self.stall_s = stall_s
        self.seen: list[tuple[str, int]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST", "GET"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "proxy did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    async def _handle(self, request: Request) -> Response:
        fault = self.plan.pop(0) if self.plan else "ok"
        body = await request.body()
        if fault in ("500", "503", "429"):
            self.seen.append((fault, int(fault)))
            return Response(b'{"detail":"injected"}', status_code=int(fault), headers={"Retry-After": "0"})
        if fault == "stall":
            self.seen.append((fault, 0))
            await asyncio.sleep(self.stall_s)
            return Response(b"late", status_code=200)
        headers = {k: v for k, v in request.headers.items() if k.lower() in FORWARDED}
        async with httpx.AsyncClient() as client:
            answer = await client.request(
                request.method, self.upstream + request.url.path, content=body, headers=headers
            )
        self.seen.append((fault, answer.status_code))
        if fault == "ack_lost":
            await asyncio.sleep(self.stall_s)
        return Response(answer.content, status_code=answer.status_code, headers={"content-type": "application/json"})
