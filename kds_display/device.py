"""The screen as an MQTT device: birth/LWT with `sess`, sync, the streams, and commands sent exactly once.

Connection (CONTRACT.md): MQTT 5, clean start, session expiry 300 s, a Will Delay of 5 s, and a
`sess` that rises by 1 per connect (it starts from the wall clock in milliseconds, so a restarted
screen still rises). On every connect the device subscribes first and then sends `sync`; messages
that arrive while the sync is on its way are held and applied after the snapshot when newer. A gap
in a station's `prev`, a hub that comes back online, or an epoch change → `sync` again.

Commands (bumps, starts, recalls, priority, 86) go into a queue persisted in the state directory
before anything is published; each keeps its id until the hub's reply arrives, and is published
again (same id) on every reconnect and when the hub comes back. The hub remembers ids, so a
command sent twice acts once: queued bumps are never lost and never doubled.

A queued command shows its effect at once (an overlay: a bumped card leaves the screen). The hub
answers a command before it publishes the `kds/…` messages the command caused, and MQTT orders
messages only within one topic, so an answered command's overlay stays until the station's stream
has reached the reply's `seq` (or `CONFIRM_HOLD_S` has passed, for a command that changed nothing):
the card never comes back for a moment between the reply and the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from hub.bus import AsyncMqttClient, MqttSettings
from hub.contract.envelopes import HubStatus, encode_command
from hub.contract.kds import KdsMessage
from hub.contract.topics import Topics
from kds_display.station import EXPO, Applied, Overlay, StationView

if TYPE_CHECKING:
    from collections.abc import Callable

    from kds_display.settings import KdsSettings

log = logging.getLogger("storehub.kds")

SESSION_EXPIRY_S = 300
WILL_DELAY_S = 5
COMMAND_EXPIRY_S = 30
SYNC_RETRY_S = 10.0
RESEND_AFTER_S = 5.0
FW_VERSION = "kds-1"
CAPS = ["start", "bump", "recall", "undo", "priority", "availability"]
OVERLAY_STATES = {"kds.bump": "ready", "kds.start": "started", "kds.recall": "new"}
CONFIRM_HOLD_S = 2.0
"""How long an answered command's overlay waits for its station's stream to show the effect."""


@dataclass
class PendingCommand:
    """A command the hub has not answered yet."""

    cmd_id: str
    type: str
    body: dict[str, Any]
    sent_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        """What the state file keeps (never the send time: after a restart everything is resent)."""
        return {"id": self.cmd_id, "type": self.type, "body": self.body}


@dataclass(frozen=True)
class Answered:
    """A command the hub accepted whose effect its station's stream has not shown yet."""

    command: PendingCommand
    station: str
    seq: int
    until: float
    """`time.monotonic()` after which the overlay goes anyway (the command may have changed nothing)."""


@dataclass
class Notice:
    """Something to tell the cook (a refused command)."""

    level: str
    text: str


@dataclass
class KdsDevice:
    """One screen's connection to the store (see the module docstring)."""

    settings: KdsSettings
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    inbound: Callable[[str, bytes], bool] | None = None
    """Test seam: return False to lose a message on its way in (as a network would)."""

    view: StationView = field(init=False)
    topics: Topics = field(init=False)
    pending: dict[str, PendingCommand] = field(init=False, default_factory=dict)
    answered: dict[str, Answered] = field(init=False, default_factory=dict)
    broker_connected: bool = field(init=False, default=False)
    hub_online: bool = field(init=False, default=False)
    hub_epoch: int | None = field(init=False, default=None)
    syncing: bool = field(init=False, default=False)
    resyncs: int = field(init=False, default=0)
    gaps: int = field(init=False, default=0)
    menu: list[dict[str, Any]] = field(init=False, default_factory=list)
    availability: dict[str, dict[str, Any]] = field(init=False, default_factory=dict)
    availability_rev: int = field(init=False, default=0)
    notices: list[Notice] = field(init=False, default_factory=list)
    sess: int = field(init=False)
    mqtt: AsyncMqttClient = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.view = StationView(s.stations, recall_size=s.screen.recall_size, oldest_first=s.screen.order == "oldest")
        self.topics = Topics(s.store_id)
        self.sess = int(time.time() * 1000)
        self._prefix = f"k{secrets.token_hex(3)}-"
        self._counter = 0
        self._listeners: list[Callable[[set[str], bool], None]] = []
        self._changed: set[str] = set()
        self._meta_dirty = False
        self._flush_scheduled = False
        self._sync_id: str | None = None
        self._sync_sent = 0.0
        self._held: list[tuple[str, KdsMessage]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._state_file = s.state_dir / "pending.json"
        subs = [(self.topics.kds(st), 1) for st in s.stations]
        subs += [
            (self.topics.reply(s.device_id), 1),
            (self.topics.hub_status(), 1),
            (self.topics.state_availability(), 1),
            (self.topics.state_menu(), 1),
            (self.topics.state_staff(), 1),
            (self.topics.event("ticket"), 1),
        ]
        self.mqtt = AsyncMqttClient(
            MqttSettings(
                host=s.broker_host,
                port=s.broker_port,
                username=s.device_id,
                password=s.password,
                subscriptions=tuple(subs),
                keepalive=10,
                session_expiry_s=SESSION_EXPIRY_S,
                clean_start=True,
                will=(self.topics.device_status(s.device_id), self._status("offline"), 1, True),
                will_delay_s=WILL_DELAY_S,
            ),
            on_message=self._on_message,
            on_connected=self._on_connected,
        )
        paho_disconnect = self.mqtt.client.on_disconnect

        def on_disconnect(*args: Any) -> None:
            if paho_disconnect is not None:
                paho_disconnect(*args)
            self._on_disconnected()

        self.mqtt.client.on_disconnect = on_disconnect

    # -- life ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the queue left by a previous run and start connecting (forever, in the background)."""
        self._load_pending()
        self._loop = asyncio.get_running_loop()
        self._tasks = [
            asyncio.create_task(self._connect_forever(), name="kds-mqtt"),
            asyncio.create_task(self._housekeeping(), name="kds-housekeeping"),
        ]

    async def close(self) -> None:
        """Say `offline` (so the hub need not wait for the will) and disconnect."""
        if self.broker_connected:
            waiter = self.mqtt.publish(
                self.topics.device_status(self.settings.device_id), self._status("offline"), qos=1, retain=True
            )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(waiter, 2.0)
        await self.mqtt.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def subscribe(self, listener: Callable[[set[str], bool], None]) -> Callable[[], None]:
        """Call `listener(changed ticket ids, meta changed)` after each burst of changes; returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @property
    def online(self) -> bool:
        """Whether commands reach the hub right now."""
        return self.broker_connected and self.hub_online

    # -- commands ------------------------------------------------------------------------------
    def command(self, type_: str, body: dict[str, Any], cmd_id: str | None = None) -> str:
        """Queue a command (kept until the hub answers) and send it when the hub can hear it."""
        cmd_id = cmd_id or self.new_id()
        if cmd_id in self.pending:
            return cmd_id  # a double tap: the same command, already on its way
        self.pending[cmd_id] = PendingCommand(cmd_id, type_, body)
        self._save_pending()
        self._send(self.pending[cmd_id])
        self._touch({str(body["ticket_id"])} if "ticket_id" in body else set(), meta=True)
        return cmd_id

    def cancel(self, cmd_id: str) -> bool:
        """Take back a command that has not been published yet (undo while offline)."""
        command = self.pending.get(cmd_id)
        if command is None or command.sent_at is not None:
            return False
        del self.pending[cmd_id]
        self._save_pending()
        self._touch({str(command.body.get("ticket_id"))}, meta=True)
        return True

    def new_id(self) -> str:
        """A fresh command id."""
        self._counter += 1
        return f"{self._prefix}{self._counter}"

    def overlays(self) -> list[Overlay]:
        """What the queued commands will do, so the screen shows a bump at once (even offline)."""
        out = []
        commands = [*self.pending.values(), *(a.command for a in self.answered.values())]
        for command in commands:
            state = OVERLAY_STATES.get(command.type)
            if state is None:
                continue
            if command.type == "kds.bump" and command.body.get("station") == EXPO:
                state = "out"
            lines = command.body.get("line_ids")
            out.append(Overlay(str(command.body["ticket_id"]), frozenset(lines) if lines else None, state))
        return out

    # -- MQTT ----------------------------------------------------------------------------------
    async def _connect_forever(self) -> None:
        # AsyncMqttClient keeps reconnecting by itself; a screen must come up even with no broker.
        await self.mqtt.start(timeout=float(365 * 24 * 3600))

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            if self.broker_connected and self.syncing and now - self._sync_sent > SYNC_RETRY_S:
                self._sync()
            if self.online and not self.syncing:
                for command in list(self.pending.values()):
                    if command.sent_at is None or now - command.sent_at > RESEND_AFTER_S:
                        self._send(command)
            self._touch(set(), meta=True)  # the header's average ticket time moves with the clock

    def _on_connected(self) -> None:
        self.broker_connected = True
        self.mqtt.publish(
            self.topics.device_status(self.settings.device_id), self._status("online"), qos=1, retain=True
        )
        log.info("connected to the broker as %s (sess %d)", self.settings.device_id, self.sess)
        self._sync()
        self._touch(set(), meta=True)

    def _on_disconnected(self) -> None:
        if self.broker_connected:
            log.warning("lost the broker; bumps are queued until it is back")
        self.broker_connected = False
        self.hub_online = False
        for command in self.pending.values():
            command.sent_at = None
        self.sess += 1
        will = Properties(PacketTypes.WILLMESSAGE)  # type: ignore[no-untyped-call]
        will.WillDelayInterval = WILL_DELAY_S
        self.mqtt.client.will_set(
            self.topics.device_status(self.settings.device_id),
            self._status("offline"),
            qos=1,
            retain=True,
            properties=will,
        )
        self._touch(set(), meta=True)

    def _on_message(self, topic: str, payload: bytes) -> None:
        if self.inbound is not None and not self.inbound(topic, payload):
            return
        root = self.topics.root
        if topic == self.topics.reply(self.settings.device_id):
            self._on_reply(payload)
        elif topic.startswith(root + "kds/"):
            self._on_kds(topic.removeprefix(root + "kds/"), payload)
        elif topic == self.topics.hub_status():
            self._on_hub_status(payload)
        elif topic == self.topics.event("ticket"):
            event = _json(payload)
            if isinstance(event, dict):
                self._touch(self.view.note_event(event, self.clock()))
        elif topic == self.topics.state_availability():
            board = _json(payload)
            if isinstance(board, dict) and isinstance(board.get("items"), dict):
                self.availability = board["items"]
                self.availability_rev += 1
                self._touch(set(), meta=True)
        elif topic == self.topics.state_menu():
            menu = _json(payload)
            if isinstance(menu, dict) and isinstance(menu.get("items"), list):
                self.menu = [i for i in menu["items"] if isinstance(i, dict)]
                self._touch(set(), meta=True)
        elif topic == self.topics.state_staff():
            staff = _json(payload)
            if isinstance(staff, list):
                self.view.set_staff(staff)

    def _on_kds(self, station: str, payload: bytes) -> None:
        try:
            message = KdsMessage.model_validate_json(payload)
        except ValidationError:
            log.warning("dropped an unreadable message on kds/%s", station)
            return
        if self.syncing or not self.view.synced:
            self._held.append((station, message))
            return
        self._apply(station, message)

    def _apply(self, station: str, message: KdsMessage) -> None:
        result = self.view.apply(station, message, self.clock())
        if result is Applied.GAP:
            self.gaps += 1
            log.warning(
                "gap on kds/%s: message %d follows %d, last seen %s; syncing",
                station,
                message.seq,
                message.prev,
                self.view.last_seq.get(station, self.view.sync_seq),
            )
            self._held.append((station, message))
            self._sync()
        elif result is Applied.APPLIED:
            self._touch({message.data.ticket_id})
            if self.answered:
                self._release_answered()

    def _on_hub_status(self, payload: bytes) -> None:
        try:
            status = HubStatus.model_validate_json(payload) if payload else HubStatus(state="offline")
        except ValidationError:
            return
        was = self.hub_online
        self.hub_online = status.state == "online"
        epoch_changed = status.epoch is not None and self.hub_epoch is not None and status.epoch != self.hub_epoch
        if status.epoch is not None:
            self.hub_epoch = status.epoch
        back = self.hub_online and (not was or epoch_changed)
        if back and self.broker_connected and self.view.synced and not self.syncing:
            self._sync()  # the hub restarted or was restored: what it sent while away is not queued anywhere
        elif self.hub_online and not was and not self.syncing:
            self._flush()
        self._touch(set(), meta=True)

    def _on_reply(self, payload: bytes) -> None:
        reply = _json(payload)
        if not isinstance(reply, dict):
            return
        reply_id = reply.get("id")
        if reply_id is not None and reply_id == self._sync_id:
            self._on_sync(reply)
            return
        command = self.pending.pop(str(reply_id), None) if reply_id is not None else None
        if command is None:
            return
        self._save_pending()
        ticket_id = str(command.body.get("ticket_id", ""))
        if reply.get("ok"):
            if command.type == "kds.bump" and command.body.get("station") == EXPO:
                self.view.bump_out(ticket_id, self.clock())
            self._hold_until_shown(command, reply.get("seq"))
        else:
            error = reply.get("error") or {}
            text = f"{command.type} refused: {error.get('message') or error.get('code') or 'error'}"
            log.warning("%s (%s)", text, command.cmd_id)
            self.notices.append(Notice("error", text))
            del self.notices[:-5]
        self._touch({ticket_id} if ticket_id else set(), meta=True)

    def _hold_until_shown(self, command: PendingCommand, seq: object) -> None:
        """Keep an accepted command's overlay until its station's stream reaches the reply's `seq`."""
        station = command.body.get("station")
        if command.type not in OVERLAY_STATES or not isinstance(seq, int) or not isinstance(station, str):
            return
        if station not in self.view.views or self._shown(station, seq):
            return
        self.answered[command.cmd_id] = Answered(command, station, seq, time.monotonic() + CONFIRM_HOLD_S)
        with contextlib.suppress(RuntimeError):  # no running loop: the next message or sync releases it
            asyncio.get_running_loop().call_later(CONFIRM_HOLD_S, self._release_answered)

    def _shown(self, station: str, seq: int) -> bool:
        return max(self.view.sync_seq, self.view.last_seq.get(station, -1)) >= seq

    def _release_answered(self) -> None:
        """Drop the overlays of answered commands whose effect is on screen now (or that waited long enough)."""
        now = time.monotonic()
        done = [a for a in self.answered.values() if now >= a.until or self._shown(a.station, a.seq)]
        for a in done:
            del self.answered[a.command.cmd_id]
        if done:
            self._touch({str(a.command.body.get("ticket_id", "")) for a in done} - {""})

    # -- sync ----------------------------------------------------------------------------------
    def _sync(self) -> None:
        self.syncing = True
        self._sync_id = f"{self._prefix}sync-{self.new_id()}"
        self._sync_sent = time.monotonic()
        self.resyncs += 1
        self.mqtt.publish(
            self.topics.cmd(self.settings.device_id),
            encode_command(self._sync_id, "sync", {}),
            qos=1,
            properties=_expiry(),
        )

    def _on_sync(self, reply: dict[str, Any]) -> None:
        result = reply.get("result")
        if not reply.get("ok") or not isinstance(result, dict) or not isinstance(result.get("snapshot"), dict):
            log.warning("sync refused: %s", reply.get("error"))
            return  # housekeeping asks again
        self._sync_id = None
        now = self.clock()
        changed = self.view.load_snapshot(int(result["seq"]), result["snapshot"], now)
        if isinstance(result.get("epoch"), int):
            self.hub_epoch = result["epoch"]
        self.hub_online = True  # it just answered
        held, self._held = self._held, []
        self.syncing = False
        for station, message in sorted(held, key=lambda sm: sm[1].seq):
            if self.syncing:
                self._held.append((station, message))
            else:
                self._apply(station, message)
        self._touch(changed, meta=True)
        self._release_answered()
        if not self.syncing:
            self._flush()

    # -- sending -------------------------------------------------------------------------------
    def _flush(self) -> None:
        for command in list(self.pending.values()):
            self._send(command)

    def _send(self, command: PendingCommand) -> None:
        if not self.online or self.syncing:
            return
        command.sent_at = time.monotonic()
        self.mqtt.publish(
            self.topics.cmd(self.settings.device_id),
            encode_command(command.cmd_id, command.type, command.body),
            qos=1,
            properties=_expiry(),
        )

    def _status(self, state: str) -> bytes:
        status: dict[str, Any] = {"state": state, "sess": self.sess}
        if state == "online":
            status |= {"kind": "kds", "fw": FW_VERSION, "caps": CAPS}
        return json.dumps(status, separators=(",", ":")).encode()

    # -- the queue on disk ---------------------------------------------------------------------
    def _load_pending(self) -> None:
        try:
            saved = json.loads(self._state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            log.exception("could not read the command queue %s; starting with an empty one", self._state_file)
            return
        for entry in saved if isinstance(saved, list) else []:
            if isinstance(entry, dict) and {"id", "type", "body"} <= entry.keys():
                self.pending[str(entry["id"])] = PendingCommand(str(entry["id"]), str(entry["type"]), entry["body"])

    def _save_pending(self) -> None:
        try:
            self._write_pending()
        except OSError as exc:
            # The command still goes out and stays queued in memory; only a restart could lose it.
            log.exception("could not save the command queue to %s", self._state_file)
            self.notices.append(Notice("error", f"bump queue not saved to disk: {exc.strerror}"))
            del self.notices[:-5]

    def _write_pending(self) -> None:
        directory = self._state_file.parent
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{self._state_file.name}.tmp"
        data = json.dumps([c.to_json() for c in self.pending.values()]).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(self._state_file)

    # -- telling the page ----------------------------------------------------------------------
    def _touch(self, ticket_ids: set[str], *, meta: bool = False) -> None:
        self._changed |= ticket_ids
        self._meta_dirty = self._meta_dirty or meta
        if not self._flush_scheduled and (self._changed or self._meta_dirty):
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._notify)

    def _notify(self) -> None:
        self._flush_scheduled = False
        changed, self._changed = self._changed, set()
        meta, self._meta_dirty = self._meta_dirty, False
        for listener in list(self._listeners):
            try:
                listener(changed, meta)
            except Exception:
                log.exception("a screen listener failed")


def _expiry() -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.MessageExpiryInterval = COMMAND_EXPIRY_S
    return props


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload) if payload else None
    except ValueError:
        return None
