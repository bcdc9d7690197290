"""The MQTT adapter: paho-mqtt 2.x (MQTT 5) driven by the asyncio event loop itself.

paho's socket is watched by the loop (`add_reader`/`add_writer` through paho's socket callbacks)
instead of by a paho network thread, so a command goes from the socket to the engine and its
reply back to the socket without a thread hand-off or a fight for the GIL; paho's callbacks run
on the loop and only hand data on. Publishes return futures keyed by paho's `mid` that complete on
the broker's PUBACK and fail on a disconnect. `AsyncMqttClient` reconnects with backoff and
resubscribes on every connect; `PahoBus` adds the hub's birth/LWT on `hub/status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from hub.contract.envelopes import HubStatus, encode

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from hub.contract.topics import Topics

log = logging.getLogger("storehub.bus")

HUB_SESSION_EXPIRY_S = 3600
MISC_INTERVAL_S = 1.0
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 5.0
_READ_SIZE = 1 << 16
_PUBACK_SUCCESS = ReasonCode(PacketTypes.PUBACK)
_NO_PROPERTIES = Properties(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]
_CORK: int | None = getattr(socket, "TCP_CORK", None)
"""Linux's TCP_CORK (None elsewhere: then packets leave one by one, as before)."""


class _ReadBuffered:
    """paho's plain TCP socket with a read buffer: one recv for many packets instead of three per packet.

    paho reads a packet's first byte, then its length a byte at a time, then its body, each with a
    system call of its own: about a dozen calls per command for its few small packets. This reads
    whatever has arrived in one call and hands it out as paho asks. Everything else is the socket's.
    """

    def __init__(self, raw: socket.socket) -> None:
        self.raw = raw
        self._data = b""
        self._at = 0

    @property
    def buffered(self) -> int:
        """Bytes received from the kernel that paho has not taken yet."""
        return len(self._data) - self._at

    def recv(self, size: int) -> bytes:
        """Up to `size` bytes: from the buffer, else one large read (BlockingIOError when none arrived)."""
        if self._at >= len(self._data):
            data = self.raw.recv(_READ_SIZE)
            if len(data) <= size:
                return data  # including b"" at end of stream
            self._data, self._at = data, 0
        start = self._at
        self._at = min(start + size, len(self._data))
        return self._data[start : self._at]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def _is_tcp(sock: object) -> bool:
    return isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6)


class _Client(mqtt.Client):
    """paho's client, leaner on the two things the hub does thousands of times a second.

    A read-buffered socket for plain TCP (TLS and websockets stay as paho makes them), and a fast
    path for the common PUBACK: two bytes, success, no properties (paho builds a reason code and a
    property set for each). Both hook paho 2.x internals; every MQTT test exercises them.
    """

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        return _ReadBuffered(sock) if type(sock) is socket.socket and _is_tcp(sock) else sock

    def _handle_pubackcomp(self, cmd: Literal["PUBACK", "PUBCOMP"]) -> MQTTErrorCode:
        packet = self._in_packet["packet"]
        if cmd != "PUBACK" or len(packet) != 2:  # noqa: PLR2004 - a bare PUBACK is its packet id
            return super()._handle_pubackcomp(cmd)
        mid = (packet[0] << 8) | packet[1]
        with self._out_message_mutex:
            if mid in self._out_messages:
                return self._do_on_publish(mid, _PUBACK_SUCCESS, _NO_PROPERTIES)
        return MQTTErrorCode.MQTT_ERR_SUCCESS


class BusError(Exception):
    """The broker refused or dropped the connection, or a publish could not be delivered."""


def set_nodelay(client: mqtt.Client) -> None:
    """Turn Nagle off on the client's socket: 88 ms → 1 ms per round trip on loopback (DESIGN.md)."""
    sock = client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Where and as whom a client connects, and what it subscribes to on every connect."""

    host: str
    port: int
    username: str
    password: str
    subscriptions: tuple[tuple[str, int], ...] = ()
    keepalive: int = 15
    session_expiry_s: int = 300
    clean_start: bool = True
    will: tuple[str, bytes, int, bool] | None = None
    will_delay_s: int = 0


@dataclass(eq=False)
class AsyncMqttClient:
    """One MQTT 5 connection on the running event loop, reconnecting until closed."""

    settings: MqttSettings
    on_message: Callable[[str, bytes], None]
    on_connected: Callable[[], None] | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    client: mqtt.Client = field(init=False)
    refused: str | None = field(init=False, default=None)
    _loop: asyncio.AbstractEventLoop = field(init=False)
    _pending: dict[int, asyncio.Future[None]] = field(init=False, default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)
    _closing: bool = field(init=False, default=False)
    _lost: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        client = _Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.settings.username,
            protocol=mqtt.MQTTv5,
        )
        client.username_pw_set(self.settings.username, self.settings.password)
        if self.settings.will is not None:
            topic, payload, qos, retain = self.settings.will
            props = None
            if self.settings.will_delay_s:
                props = Properties(PacketTypes.WILLMESSAGE)  # type: ignore[no-untyped-call]
                props.WillDelayInterval = self.settings.will_delay_s
            client.will_set(topic, payload, qos=qos, retain=retain, properties=props)
        # No cap on QoS 1 messages in flight: the hub's own batches bound them, and with a cap paho
        # rescans every unacknowledged message on each PUBACK (quadratic in a batch's publishes).
        client.max_inflight_messages_set(0)
        client.on_connect = self._paho_connect
        client.on_disconnect = self._paho_disconnect
        client.on_message = self._paho_message
        client.on_publish = self._paho_publish
        client.on_socket_open = self._socket_open
        client.on_socket_close = self._socket_close
        client.on_socket_register_write = self._register_write
        client.on_socket_unregister_write = self._unregister_write
        self.client = client

    async def start(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - a start-up deadline, not an I/O timeout
        """Connect (and keep reconnecting); returns once the first connection is up."""
        self._loop = asyncio.get_running_loop()
        self._tasks = [
            asyncio.create_task(self._supervise(), name=f"mqtt-{self.settings.username}"),
            asyncio.create_task(self._misc(), name=f"mqtt-misc-{self.settings.username}"),
        ]
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except TimeoutError as exc:
            await self.close()
            detail = f": {self.refused}" if self.refused else ""
            raise BusError(
                f"could not connect to the broker at {self.settings.host}:{self.settings.port}{detail}"
            ) from exc

    def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False, properties: Properties | None = None
    ) -> asyncio.Future[None]:
        """Publish; the future completes on the broker's acknowledgement (or fails on a disconnect)."""
        future: asyncio.Future[None] = self._loop.create_future()
        if not self.connected.is_set():
            # paho would queue it and resend it after the reconnect, on top of the caller's own
            # redelivery (the hub's outbox): refuse instead, so each message goes out once per connect.
            future.set_exception(BusError(f"publish to {topic}: not connected"))
            future.exception()
            return future
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            future.set_exception(BusError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}"))
            future.exception()  # the caller may not look; the outbox keeps the message anyway
        elif qos == 0:
            future.set_result(None)
        else:
            self._pending[info.mid] = future
        return future

    async def close(self) -> None:
        """Disconnect and stop reconnecting."""
        self._closing = True
        if self.client.is_connected():
            self.client.disconnect()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), 2.0)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        sock = self.client.socket()
        if sock is not None:
            self._socket_close(self.client, None, sock)
        self._fail_pending("connection closed")

    # -- the loop's own work ----------------------------------------------------------------
    async def _supervise(self) -> None:
        delay = RECONNECT_MIN_S
        first = True
        while not self._closing:
            self._lost.clear()
            try:
                if first:
                    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                    props.SessionExpiryInterval = self.settings.session_expiry_s
                    self.client.connect(
                        self.settings.host,
                        self.settings.port,
                        keepalive=self.settings.keepalive,
                        clean_start=self.settings.clean_start,
                        properties=props,
                    )
                    first = False
                else:
                    self.client.reconnect()
            except OSError as exc:
                self.refused = str(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            await self._lost.wait()
            if self.connected.is_set():
                delay = RECONNECT_MIN_S
            self.connected.clear()
            if not self._closing:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)

    async def _misc(self) -> None:
        while True:
            await asyncio.sleep(MISC_INTERVAL_S)
            if self.client.socket() is not None:
                self.client.loop_misc()

    def _socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        del userdata
        raw = sock.raw if isinstance(sock, _ReadBuffered) else sock
        if _is_tcp(raw):
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._loop.add_reader(sock, self._read, client, sock)

    def _read(self, client: mqtt.Client, sock: Any) -> None:
        """Let paho read every whole packet that has arrived, including what sits in our read buffer."""
        try:
            client.loop_read()
            while isinstance(sock, _ReadBuffered) and sock.buffered and client.socket() is sock:
                client.loop_read()  # the kernel may have nothing more, so the loop would not call us again
        finally:
            if isinstance(sock, _ReadBuffered) and sock.buffered and client.socket() is sock:
                self._loop.call_soon(self._read, client, sock)  # something raised: finish on the next turn

    def _socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        del client, userdata
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)

    def _register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        del userdata
        self._loop.add_writer(sock, self._write, client, sock)

    @staticmethod
    def _write(client: mqtt.Client, sock: Any) -> None:
        """Write what paho queued since the last turn of the loop, corked into as few segments as fit.

        With Nagle off (`TCP_NODELAY`, for latency), every packet paho sends would leave as its own
        TCP segment: a batch's replies, events and PUBACKs would cost the broker one read each.
        Corking around one `loop_write` sends them in full segments instead, and uncorking flushes
        at once, so no packet waits for a later one.
        """
        if isinstance(sock, _ReadBuffered):
            sock = sock.raw
        corked = _CORK is not None and _is_tcp(sock)
        if corked:
            sock.setsockopt(socket.IPPROTO_TCP, _CORK, 1)
        try:
            client.loop_write()
        finally:
            if corked:
                with contextlib.suppress(OSError):  # paho closed it on an error: nothing left to flush
                    sock.setsockopt(socket.IPPROTO_TCP, _CORK, 0)

    def _unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        del client, userdata
        self._loop.remove_writer(sock)

    # -- paho callbacks, already on the loop -----------------------------------------------
    def _paho_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: ReasonCode, properties: Any
    ) -> None:
        del userdata, flags, properties
        if reason_code.is_failure:
            self.refused = str(reason_code)
            log.error("broker refused %s: %s", self.settings.username, reason_code)
            return
        self.refused = None
        if self.settings.subscriptions:
            client.subscribe(list(self.settings.subscriptions))
        self.connected.set()
        if self.on_connected is not None:
            try:
                self.on_connected()
            except Exception:
                log.exception("on_connected handler failed")

    def _paho_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: ReasonCode, properties: Any
    ) -> None:
        del client, userdata, flags, properties
        if self.connected.is_set() and not self._closing:
            log.warning("%s disconnected from broker: %s", self.settings.username, reason_code)
        self._fail_pending(f"disconnected: {reason_code}")
        self._lost.set()

    def _paho_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        del client, userdata
        try:
            self.on_message(message.topic, bytes(message.payload))
        except Exception:
            # Never raise into paho: it would hand the same packet back forever and stall the intake.
            log.exception("dropped a message on %s that its handler could not take", message.topic)

    def _paho_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: ReasonCode, props: Any) -> None:
        del client, userdata, props
        future = self._pending.pop(mid, None)
        if future is None or future.done():
            return
        if reason_code.is_failure:
            future.set_exception(BusError(f"broker refused message {mid}: {reason_code}"))
            future.exception()
        else:
            future.set_result(None)

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(BusError(why))
                future.exception()  # retrieved: the outbox keeps the message for the next connect


@dataclass(frozen=True, slots=True)
class BusSettings:
    """Where and as whom the hub connects."""

    host: str
    port: int
    username: str
    password: str
    keepalive: int = 15


class PahoBus:
    """The hub's MQTT connection: commands and device statuses in, outbox messages out."""

    def __init__(self, settings: BusSettings, topics: Topics) -> None:
        self.settings = settings
        self.topics = topics
        self._status: HubStatus | None = None
        self._on_command: Callable[[str, bytes], None] | None = None
        self._on_status: Callable[[str, dict[str, Any]], None] | None = None
        self._on_connect: Callable[[], Awaitable[None]] | None = None
        self._connect_tasks: set[asyncio.Task[None]] = set()
        self.mqtt = AsyncMqttClient(
            MqttSettings(
                host=settings.host,
                port=settings.port,
                username=settings.username,
                password=settings.password,
                subscriptions=((topics.cmd_all(), 1), (topics.device_status_all(), 1)),
                keepalive=settings.keepalive,
                session_expiry_s=HUB_SESSION_EXPIRY_S,
                clean_start=False,
                will=(topics.hub_status(), encode(HubStatus(state="offline")), 1, True),
            ),
            on_message=self._dispatch,
            on_connected=self._connected,
        )

    @property
    def connected(self) -> asyncio.Event:
        """Set while the hub is connected to its broker."""
        return self.mqtt.connected

    async def start(
        self,
        status: HubStatus,
        *,
        on_command: Callable[[str, bytes], None],
        on_device_status: Callable[[str, dict[str, Any]], None],
        on_connect: Callable[[], Awaitable[None]],
        connect_timeout: float = 10.0,
    ) -> None:
        """Connect, and keep reconnecting; returns once the first connection is up."""
        self._status = status
        self._on_command = on_command
        self._on_status = on_device_status
        self._on_connect = on_connect
        await self.mqtt.start(connect_timeout)

    def set_status(self, status: HubStatus) -> None:
        """Update and publish the retained `hub/status` (seq, epoch)."""
        self._status = status
        if self.connected.is_set():
            self.publish(self.topics.hub_status(), encode(status), qos=1, retain=True)

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> asyncio.Future[None]:
        """Publish; the future completes on the broker's acknowledgement (or fails on disconnect)."""
        return self.mqtt.publish(topic, payload, qos=qos, retain=retain)

    async def stop(self, *, clean: bool = True) -> None:
        """Announce `offline` (so clients hold commands) and disconnect."""
        if clean and self.connected.is_set():
            waiter = self.publish(self.topics.hub_status(), encode(HubStatus(state="offline")), qos=1, retain=True)
            try:
                await asyncio.wait_for(waiter, 2.0)
            except (TimeoutError, BusError):
                log.warning("could not publish offline status before disconnecting")
        await self.mqtt.close()

    def _connected(self) -> None:
        log.info("connected to broker %s:%s", self.settings.host, self.settings.port)
        if self._status is not None:
            self.publish(self.topics.hub_status(), encode(self._status), qos=1, retain=True)
        if self._on_connect is not None:
            task = asyncio.ensure_future(self._on_connect())
            self._connect_tasks.add(task)
            task.add_done_callback(self._connect_tasks.discard)

    def _dispatch(self, topic: str, payload: bytes) -> None:
        device = self.topics.device_of_cmd(topic)
        if device is not None:
            if self._on_command is not None:
                self._on_command(device, payload)
            return
        device = self.topics.device_of_status(topic)
        if device is not None and self._on_status is not None and payload:
            try:
                status = json.loads(payload)
            except (UnicodeDecodeError, json.JSONDecodeError):
                log.warning("ignoring unreadable status of device %s", device)
                return
            if isinstance(status, dict):
                self._on_status(device, status)
