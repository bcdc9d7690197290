"""The manager page as part of a running hub: built, started and stopped by `hub.app.Hub.run`.

web = WebRuntime(engine, loaded, describe)
await web.prepare()                        # after bootstrap: registers the `web` device
engine.attach(web.publisher(bus))          # commits wake the live pages
on_device_status = web.on_device_status(engine.note_device_status)
await web.start()                          # serves http://{web.host}:{hub.web_port}
...
await web.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from devices.registry import PairingCodes, PairingError
from hub.contract.envelopes import Reply
from hub.contract.errors import ErrorCode
from hub.contract.types import format_time
from hub.web.app import WebSettings, create_app
from hub.web.server import WebServer, WebServerError
from hub.web.services import TlsInfo, WebServices, ensure_web_device

if TYPE_CHECKING:
    from collections.abc import Callable

    from hub.config import LoadedConfig
    from hub.engine import Engine, Publisher
    from hub.web.services import PrintDesk

log = logging.getLogger("storehub.web")


class WebRuntime:
    """Services, app and server of the manager page."""

    def __init__(
        self,
        engine: Engine,
        loaded: LoadedConfig,
        describe: Callable[[], dict[str, Any]],
        printing: Callable[[], PrintDesk | None] | None = None,
    ) -> None:
        from hub.app import store_pki  # noqa: PLC0415 - hub.app imports this module lazily, never the reverse

        cfg = loaded.config
        pki = store_pki(loaded)  # None unless [tls] enabled: then the page is HTTPS and pairing hands out the CA
        tls = TlsInfo(cfg.tls.names[0], cfg.tls.mqtt_port, pki.ca_pem()) if pki is not None else None
        self.codes = PairingCodes(engine.clock, ttl_s=cfg.web.pair_code_ttl_s)
        self.services = WebServices(engine, loaded, self.codes, describe, tls=tls)
        if printing is not None:
            self.services.printing = printing
        settings = WebSettings(
            session_ttl_s=cfg.web.session_ttl_s,
            login_max_failures=cfg.web.login_max_failures,
            login_window_s=cfg.web.login_window_s,
            login_lockout_s=cfg.web.login_lockout_s,
            secure_cookies=cfg.web.secure_cookies or pki is not None,
        )
        self.app = create_app(self.services, settings)
        self.enabled = cfg.web.enabled
        self.server = WebServer(
            self.app,
            cfg.web.host,
            cfg.hub.web_port,
            certfile=pki.server_cert if pki is not None else None,
            keyfile=pki.server_key if pki is not None else None,
        )
        self.bind_retry_s = cfg.web.bind_retry_s
        self.error: str | None = None
        """Why the page is not being served right now (its port is taken), or None."""
        self._retry: asyncio.Task[None] | None = None

    async def prepare(self) -> None:
        """Register the `web` device so the page's commands are admitted; take back sessions and codes.

        Browser sessions and pairing codes stored before a restart stay valid (those the engine
        ended meanwhile, or that expired, are dropped), so a hub restart logs no manager out.
        """
        await ensure_web_device(self.services.engine)
        web = self.app.state.web
        restored = await web.sessions.restore(self.services.engine.state)
        codes = await self.services.restore_codes()
        if restored or codes:
            log.info("kept %d browser sessions and %d pairing codes across the restart", restored, codes)

    def publisher(self, inner: Publisher) -> Publisher:
        """The bus, teed into the live pages."""
        return self.services.feed.tee(inner)

    def on_device_status(self, inner: Callable[[str, dict[str, Any]], None]) -> Callable[[str, dict[str, Any]], None]:
        """Presence updates also refresh the devices page."""

        def note(device_id: str, status: dict[str, Any]) -> None:
            inner(device_id, status)
            self.services.feed.notify(f"presence/{device_id}")

        return note

    async def start(self) -> None:
        """Serve the page (unless `[web] enabled = false`).

        A taken port never stops the hub: tablets and kitchen screens keep working, the error is
        logged, and the page binds as soon as the port is free (tried every `[web] bind_retry_s`).
        """
        if not self.enabled:
            return
        try:
            await self.server.start()
        except WebServerError as exc:
            self.error = str(exc)
            log.error("%s; the hub runs on without it and tries again every %s s", exc, self.bind_retry_s)  # noqa: TRY400 - a known condition, not a bug
            self._retry = asyncio.create_task(self._bind_later(), name="web-bind")
            return
        self._ready()

    async def _bind_later(self) -> None:
        while True:
            await asyncio.sleep(self.bind_retry_s)
            try:
                await self.server.start()
            except WebServerError as exc:
                self.error = str(exc)
                continue
            self.error = None
            self._ready()
            return

    def _ready(self) -> None:
        log.info("manager page ready", extra={"url": f"{self.server.scheme}://{self.server.host}:{self.server.port}/"})

    async def stop(self) -> None:
        """Close live pages and stop serving."""
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
            self._retry = None
        self.services.feed.close()
        await self.server.stop()

    def describe(self) -> dict[str, Any]:
        """What `storehub hub status` shows about the page."""
        return {
            "enabled": self.enabled,
            "url": f"{self.server.scheme}://{self.server.host}:{self.server.port}/",
            "serving": self.enabled and self.error is None,
            "error": self.error,
            "sessions": self.app.state.web.sessions.count(),
            "live_pages": self.services.feed.listeners,
            "pairing_codes_open": len(self.codes.pending()),
        }

    async def pair_code(self, body: dict[str, Any]) -> Reply:
        """`storehub device pair` over the control socket: a fresh one-time code."""
        kind = body.get("kind")
        stations = body.get("stations") or []
        if (kind is not None and not isinstance(kind, str)) or not isinstance(stations, list):
            return Reply.failure(None, ErrorCode.INVALID_PAYLOAD, "kind must be a string and stations a list")
        try:
            offer = self.codes.issue(kind=kind, stations=tuple(str(s) for s in stations), issued_by="admin")
        except PairingError as refused:
            return Reply.failure(None, ErrorCode.INVALID_PAYLOAD, refused.message)
        await self.services.keep_code(offer)
        self.services.feed.notify("pairing")
        port = self.server.port
        result = {
            "code": offer.code,
            "expires_at": format_time(offer.expires_at),
            "kind": offer.kind,
            "stations": list(offer.stations),
            "pair_url": f"{self.server.scheme}://{self.server.host}:{port}/api/pair",
            **({"ca_sha256": self.services.tls.ca_sha256} if self.services.tls is not None else {}),
        }
        return Reply.success(None, self.services.engine.committed_head.seq, result)
