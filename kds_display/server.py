"""The kiosk server: the page (server-rendered), its static files, and live updates over WebSocket.

The page holds no state of its own: on every (re)connect it gets every card again, so a reload or
a crashed browser loses nothing. Cards travel as HTML rendered by the same template as the first
paint; the page only places them, ages them and forwards taps and bump-bar keys as actions. Each
action becomes a contract command whose id is derived from the card revision the cook saw, so a
double tap sends the same command twice and the hub acts once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from kds_display.render import HERE, Renderer
from kds_display.station import EXPO

if TYPE_CHECKING:
    from kds_display.device import KdsDevice
    from kds_display.settings import KdsSettings

log = logging.getLogger("storehub.kds.web")

META_INTERVAL_S = 0.2
SEND_QUEUE = 1000


@dataclass(frozen=True)
class _Bump:
    """A bump the cook may still undo."""

    at: float
    cmd_id: str
    ticket_id: str
    station: str
    line_ids: list[str] | None


class KioskServer:
    """The FastAPI app of one screen, fed by its device."""

    def __init__(self, device: KdsDevice, settings: KdsSettings) -> None:
        self.device = device
        self.settings = settings
        self.renderer = Renderer(settings)
        self.clients: dict[WebSocket, asyncio.Queue[str]] = {}
        self.bumps: deque[_Bump] = deque(maxlen=50)
        self._meta_handle: asyncio.TimerHandle | None = None
        self._meta_sent = 0.0
        self._boot = device.new_id()
        self.app = self._build()
        device.subscribe(self._on_change)

    # -- HTTP ----------------------------------------------------------------------------------
    def _build(self) -> FastAPI:
        app = FastAPI(title=f"StoreHub KDS {self.settings.device_id}", docs_url=None, redoc_url=None)
        app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

        @app.get("/", response_class=HTMLResponse)
        async def page() -> HTMLResponse:
            cards = self.device.view.cards(self.device.overlays())
            return HTMLResponse(self.renderer.page(cards, self._boot_data()))

        @app.get("/healthz")
        async def healthz() -> JSONResponse:
            d = self.device
            body = {"ok": True, "broker": d.broker_connected, "hub": d.hub_online, "synced": d.view.synced}
            return JSONResponse(body)

        @app.get("/api/state")
        async def state() -> JSONResponse:
            d = self.device
            cards = d.view.cards(d.overlays())
            return JSONResponse(
                {
                    "meta": self.meta(),
                    "resyncs": d.resyncs,
                    "gaps": d.gaps,
                    "cards": [
                        {
                            "ticket_id": c.ticket_id,
                            "number": c.number,
                            "priority": c.priority,
                            "items": [{"line_id": i["line_id"], "state": i["state"]} for i in c.items],
                        }
                        for c in cards
                    ],
                }
            )

        @app.websocket("/ws")
        async def ws(socket: WebSocket) -> None:
            await self._serve_socket(socket)

        return app

    def _boot_data(self) -> dict[str, Any]:
        return {
            "device": self.settings.device_id,
            "stations": list(self.settings.stations),
            "expo": self.settings.is_expo,
            "keys": self.settings.keys(),
            "page_size": self.settings.screen.page_size,
            "undo_s": self.settings.screen.undo_s,
            "sound": self.settings.screen.sound,
            "oldest_first": self.settings.screen.order == "oldest",
        }

    # -- WebSocket -----------------------------------------------------------------------------
    async def _serve_socket(self, socket: WebSocket) -> None:
        await socket.accept()
        queue: asyncio.Queue[str] = asyncio.Queue(SEND_QUEUE)
        self.clients[socket] = queue
        d = self.device
        reset = {
            "t": "reset",
            "cards": [self.renderer.card_message(c) for c in d.view.cards(d.overlays())],
            "meta": self.meta(),
        }
        queue.put_nowait(json.dumps(reset))
        writer = asyncio.create_task(self._write(socket, queue))
        try:
            while True:
                text = await socket.receive_text()
                try:
                    action = json.loads(text)
                except ValueError:
                    continue
                if isinstance(action, dict):
                    answer = self.act(action)
                    if answer is not None:
                        queue.put_nowait(json.dumps(answer))
        except WebSocketDisconnect:
            pass
        finally:
            self.clients.pop(socket, None)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _write(self, socket: WebSocket, queue: asyncio.Queue[str]) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            while True:
                await socket.send_text(await queue.get())

    def _broadcast(self, message: dict[str, Any]) -> None:
        text = json.dumps(message)
        for socket, queue in list(self.clients.items()):
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:
                # A browser this far behind gets everything again when it reconnects.
                log.warning("a screen fell behind; closing its socket so it reloads")
                self.clients.pop(socket, None)
                asyncio.get_running_loop().create_task(socket.close())

    def _on_change(self, changed: set[str], meta: bool) -> None:
        if changed:
            d = self.device
            overlays = d.overlays()
            cards = []
            for tid in changed:
                card = d.view.card(tid, overlays)
                if card is None:
                    cards.append({"id": tid, "html": "", "active": False, "prio": False, "fired": 0, "num": 0})
                else:
                    cards.append(self.renderer.card_message(card))
            self._broadcast({"t": "cards", "cards": cards})
        if changed or meta:
            self._schedule_meta()

    def _schedule_meta(self) -> None:
        if self._meta_handle is not None:
            return
        delay = max(0.0, META_INTERVAL_S - (time.monotonic() - self._meta_sent))
        self._meta_handle = asyncio.get_running_loop().call_later(delay, self._send_meta)

    def _send_meta(self) -> None:
        self._meta_handle = None
        self._meta_sent = time.monotonic()
        if self.clients:
            self._broadcast({"t": "meta", **self.meta()})

    def meta(self) -> dict[str, Any]:
        """The side panels and the header: connection, queue, counts, all-day, recall, 86 board."""
        d = self.device
        overlays = d.overlays()
        view = d.view
        mine = set(self.settings.stations)
        menu = [
            {
                "id": item.get("id"),
                "name": item.get("name"),
                "available": d.availability.get(str(item.get("id")), {}).get("available", True),
                "remaining": d.availability.get(str(item.get("id")), {}).get("remaining"),
            }
            for item in d.menu
            if self.settings.is_expo or mine & set(item.get("stations") or [])
        ]
        notices = [n.text for n in d.notices]
        d.notices.clear()
        avg = view.average_ticket_s(d.clock())
        cards = view.cards(overlays)
        return {
            "broker": d.broker_connected,
            "refused": d.mqtt.refused,
            "hub": d.hub_online,
            "synced": view.synced,
            "queued": len(d.pending),
            "open": len(cards),
            "avg_s": None if avg is None else round(avg, 1),
            "allday": view.all_day(overlays, cards),
            "recall": [
                {"id": c.ticket_id, "num": c.number, "where": c.table or c.name or "", "rev": c.rev}
                for c in view.recall_list()
            ],
            "menu": menu,
            "notices": notices,
        }

    # -- actions -------------------------------------------------------------------------------
    def act(self, action: dict[str, Any]) -> dict[str, Any] | None:
        """Turn one page action into contract commands; returns an answer for the page, if any."""
        kind = action.get("a")
        tid = action.get("t")
        rev = action.get("rev")
        lines = action.get("lines")
        if lines is not None and not (isinstance(lines, list) and all(isinstance(x, str) for x in lines)):
            return {"t": "error", "text": "lines must be a list of line ids"}
        if kind == "undo":
            return self._undo()
        if kind == "86":
            return self._eighty_six(action)
        if not isinstance(tid, str) or self.device.view.card(tid) is None:
            return {"t": "error", "text": "that ticket is no longer on this screen"}
        if kind in {"bump", "start"}:
            ids = []
            for station in self._stations_of(tid, lines):
                body: dict[str, Any] = {"ticket_id": tid, "station": station}
                if lines:
                    body["line_ids"] = lines
                cmd_id = self._cmd_id(tid, rev, kind, station, lines)
                self.device.command(f"kds.{kind}", body, cmd_id)
                ids.append(cmd_id)
                if kind == "bump":
                    self.bumps.append(_Bump(time.monotonic(), cmd_id, tid, station, lines))
            return {"t": "ack", "a": kind, "ids": ids, "ticket": tid}
        if kind == "recall":
            return self._recall(tid, rev)
        if kind == "priority":
            card = self.device.view.card(tid)
            wanted = not (card is not None and card.priority)
            cmd_id = self._cmd_id(tid, rev, "priority", str(wanted), None)
            self.device.command("ticket.priority", {"ticket_id": tid, "priority": wanted}, cmd_id)
            return {"t": "ack", "a": kind, "ids": [cmd_id], "ticket": tid}
        return {"t": "error", "text": f"unknown action {kind!r}"}

    def _stations_of(self, tid: str, lines: list[str] | None) -> list[str]:
        view = self.device.view
        out = []
        for station in self.settings.stations:
            mine = view.views[station].get(tid)
            if mine is None:
                continue
            if lines and not {i["line_id"] for i in mine["items"]} & set(lines):
                continue
            out.append(station)
        return out

    def _recall(self, tid: str, rev: object) -> dict[str, Any]:
        view = self.device.view
        if view.is_expo:
            # Expo brings the plate back on its own screen; a hub recall would send food back to cook.
            view.bumped_out.discard(tid)
            view._settle(tid, self.device.clock(), from_snapshot=False)  # noqa: SLF001 - the view's own bookkeeping
            self.device._touch({tid}, meta=True)  # noqa: SLF001 - tell the page
            return {"t": "ack", "a": "recall", "ids": [], "ticket": tid}
        ids = []
        for station in self._stations_of(tid, None):
            cmd_id = self._cmd_id(tid, rev, "recall", station, None)
            self.device.command("kds.recall", {"ticket_id": tid, "station": station}, cmd_id)
            ids.append(cmd_id)
        return {"t": "ack", "a": "recall", "ids": ids, "ticket": tid}

    def _undo(self) -> dict[str, Any]:
        now = time.monotonic()
        limit = self.settings.screen.undo_s
        while self.bumps and now - self.bumps[-1].at <= limit:
            bump = self.bumps.pop()
            if self.device.cancel(bump.cmd_id):
                return {"t": "ack", "a": "undo", "ids": [], "ticket": bump.ticket_id}
            if bump.station == EXPO:
                return self._recall(bump.ticket_id, None)
            body: dict[str, Any] = {"ticket_id": bump.ticket_id, "station": bump.station}
            if bump.line_ids:
                body["line_ids"] = bump.line_ids
            cmd_id = _digest(f"undo|{bump.cmd_id}")
            self.device.command("kds.recall", body, cmd_id)
            return {"t": "ack", "a": "undo", "ids": [cmd_id], "ticket": bump.ticket_id}
        return {"t": "error", "text": f"nothing to undo from the last {limit} s"}

    def _eighty_six(self, action: dict[str, Any]) -> dict[str, Any]:
        item = action.get("item")
        available = action.get("available")
        if not isinstance(item, str) or not isinstance(available, bool):
            return {"t": "error", "text": "86 needs an item id and available true/false"}
        # One id per board revision the cook saw: a double tap is one command, a later toggle a new one.
        cmd_id = _digest(f"{self._boot}|86|{item}|{available}|{self.device.availability_rev}")
        self.device.command("menu.availability", {"menu_item_id": item, "available": available}, cmd_id)
        return {"t": "ack", "a": "86", "ids": [cmd_id], "item": item}

    def _cmd_id(self, tid: str, rev: object, kind: str, station: str, lines: list[str] | None) -> str:
        shown = rev if isinstance(rev, int) else f"now{time.monotonic_ns()}"
        return _digest(f"{self._boot}|{tid}|{shown}|{kind}|{station}|{','.join(lines or [])}")


def _digest(text: str) -> str:
    return "k-" + hashlib.sha256(text.encode()).hexdigest()[:30]
