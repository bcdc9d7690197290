"""Run the web app inside the hub's event loop (uvicorn), bound to the configured host and port.

server = WebServer(app, host, port)
await server.start()      # binds first: a taken port is a clear HubError-like WebServerError
...
await server.stop()       # ends live pages, then waits (bounded) for requests in flight
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import TYPE_CHECKING, Any, Final

import uvicorn

if TYPE_CHECKING:
    from collections.abc import Generator
    from pathlib import Path

    from fastapi import FastAPI

STOP_TIMEOUT_S: Final = 3.0


class WebServerError(Exception):
    """The web server cannot start (the port is taken, the host is not local)."""


class _InLoopServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the hub (which owns SIGTERM/SIGINT)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class WebServer:
    """The manager page's HTTP server on one socket."""

    def __init__(
        self, app: FastAPI, host: str, port: int, *, certfile: Path | None = None, keyfile: Path | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.scheme = "https" if certfile is not None else "http"
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
            proxy_headers=False,
            server_header=False,
            ssl_certfile=str(certfile) if certfile is not None else None,
            ssl_keyfile=str(keyfile) if keyfile is not None else None,
        )
        self._server = _InLoopServer(config)
        self._task: asyncio.Task[Any] | None = None
        self._socket: socket.socket | None = None

    async def start(self) -> None:
        """Bind the socket and serve in the background."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise WebServerError(f"the manager page cannot listen on {self.host}:{self.port}: {exc.strerror}") from exc
        sock.listen(128)
        sock.setblocking(False)  # noqa: FBT003 - the socket API
        self._socket = sock
        self.port = sock.getsockname()[1]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="web")
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise WebServerError("the manager page stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving; open live pages are closed by the caller's feed first."""
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT_S)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        finally:
            self._task = None
            if self._socket is not None:
                self._socket.close()
                self._socket = None
