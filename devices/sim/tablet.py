"""A simulated POS tablet: a real MQTT 5 device holding its own credentials.

Used by `make demo`, the end-to-end tests and `storehub bench`. Thread-safe and synchronous so
tests read like a server's actions: `tab.call("ticket.open", {...}, auth=token)`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.bus import set_nodelay
from hub.contract.envelopes import encode_command
from hub.contract.topics import Topics

COMMAND_EXPIRY_S = 30


class DeviceError(Exception):
    """The simulated device could not connect or got no answer."""


@dataclass
class Credentials:
    """What `storehub device add` prints."""

    device_id: str
    username: str
    password: str


@dataclass
class SimTablet:
    """A tablet (or any device) connected to the store's broker."""

    store_id: str
    creds: Credentials
    host: str = "127.0.0.1"
    port: int = 1883
    subscribe_events: bool = False
    sess: int = 1
    kind: str = "tablet"
    topics: Topics = field(init=False)
    client: mqtt.Client = field(init=False)
    events: queue.Queue[dict[str, Any]] = field(init=False, default_factory=queue.Queue)
    retained: dict[str, Any] = field(init=False, default_factory=dict)
    seen: list[dict[str, Any]] = field(init=False, default_factory=list)
    _waiters: dict[str, queue.Queue[dict[str, Any]]] = field(init=False, default_factory=dict)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _connected: threading.Event = field(init=False, default_factory=threading.Event)
    _ids: itertools.count[int] = field(init=False, default_factory=itertools.count)
    _on_reply: Any = field(init=False, default=None)
    token: str = field(init=False, default="")
    cashier: str = field(init=False, default="")

    def __post_init__(self) -> None:
        self.topics = Topics(self.store_id)
        self._prefix = f"c-{secrets.token_hex(4)}-"
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.creds.username,
            protocol=mqtt.MQTTv5,
        )
        self.client.username_pw_set(self.creds.username, self.creds.password)
        will = Properties(PacketTypes.WILLMESSAGE)  # type: ignore[no-untyped-call]
        will.WillDelayInterval = 5
        self.client.will_set(
            self.topics.device_status(self.creds.device_id),
            json.dumps({"state": "offline", "sess": self.sess}),
            qos=1,
            retain=True,
            properties=will,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    # -- connection ------------------------------------------------------------------------
    def connect(self, timeout: float = 5.0) -> SimTablet:
        """Connect, subscribe and announce `online`; raises DeviceError when refused."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 300
        self.client.connect(self.host, self.port, keepalive=30, clean_start=True, properties=props)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            self.close()
            raise DeviceError(f"{self.creds.device_id}: broker did not accept the connection")
        return self

    def close(self) -> None:
        """Say `offline` and disconnect."""
        if self._connected.is_set() and self.client.is_connected():
            info = self.client.publish(
                self.topics.device_status(self.creds.device_id),
                json.dumps({"state": "offline", "sess": self.sess}),
                qos=1,
                retain=True,
            )
            with contextlib.suppress(RuntimeError, ValueError):  # the broker may be gone already
                info.wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()
        self._connected.clear()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: Any, reason: Any, props: Any) -> None:
        del userdata, flags, props
        if reason.is_failure:
            return
        set_nodelay(client)
        subs = [(self.topics.reply(self.creds.device_id), 1), (self.topics.hub_status(), 1)]
        if self.subscribe_events:
            subs += [(self.topics.event_all(), 1), (self.topics.state_all(), 1)]
        client.subscribe(subs)
        client.publish(
            self.topics.device_status(self.creds.device_id),
            json.dumps({"state": "online", "sess": self.sess, "kind": self.kind, "fw": "sim-1", "caps": []}),
            qos=1,
            retain=True,
        )
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        del client, userdata
        try:
            payload = json.loads(message.payload) if message.payload else None
        except ValueError:
            return
        topic = message.topic
        if topic == self.topics.reply(self.creds.device_id):
            if isinstance(payload, dict):
                self._deliver_reply(payload)
            return
        if topic == self.topics.hub_status() or topic.startswith(self.topics.root + "state/"):
            self.retained[topic] = payload
            return
        if isinstance(payload, dict):
            payload["_received"] = time.perf_counter()
            self.events.put(payload)

    def _deliver_reply(self, payload: dict[str, Any]) -> None:
        if self._on_reply is not None:
            self._on_reply(payload)
            return
        reply_id = payload.get("id")
        with self._lock:
            waiter = self._waiters.get("null" if reply_id is None else str(reply_id))
        if waiter is not None:
            waiter.put(payload)

    # -- commands --------------------------------------------------------------------------
    def new_id(self) -> str:
        """A fresh command id."""
        return f"{self._prefix}{next(self._ids)}"

    def send(
        self,
        type_: str,
        body: dict[str, Any] | None = None,
        *,
        auth: str | None = None,
        approve: dict[str, Any] | None = None,
        cmd_id: str | None = None,
    ) -> str:
        """Publish a command without waiting; returns its id."""
        cmd_id = cmd_id or self.new_id()
        self.publish_raw(encode_command(cmd_id, type_, body, auth=auth, approve=approve))
        return cmd_id

    def publish_raw(self, payload: bytes, topic: str | None = None) -> mqtt.MQTTMessageInfo:
        """Publish bytes as a command (or on another topic, to test the broker's ACL)."""
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.MessageExpiryInterval = COMMAND_EXPIRY_S
        return self.client.publish(
            topic or self.topics.cmd(self.creds.device_id), payload, qos=1, properties=props
        )

    def call(
        self,
        type_: str,
        body: dict[str, Any] | None = None,
        *,
        auth: str | None = None,
        approve: dict[str, Any] | None = None,
        cmd_id: str | None = None,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Send a command and wait for its reply."""
        cmd_id = cmd_id or self.new_id()
        waiter = self.expect(cmd_id)
        self.send(type_, body, auth=auth, approve=approve, cmd_id=cmd_id)
        return self.wait_reply(cmd_id, waiter, timeout)

    def expect(self, cmd_id: str) -> queue.Queue[dict[str, Any]]:
        """Register interest in a reply before sending (raw-payload tests)."""
        waiter: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._lock:
            self._waiters[cmd_id] = waiter
        return waiter

    def wait_reply(self, cmd_id: str, waiter: queue.Queue[dict[str, Any]], timeout: float = 10.0) -> dict[str, Any]:
        """Wait for the reply registered with `expect`."""
        try:
            return waiter.get(timeout=timeout)
        except queue.Empty:
            raise DeviceError(f"no reply to {cmd_id} within {timeout} s") from None
        finally:
            with self._lock:
                self._waiters.pop(cmd_id, None)

    def login(self, employee_id: str, pin: str) -> str:
        """Log an employee in; returns the token."""
        reply = self.call("staff.login", {"employee_id": employee_id, "pin": pin})
        if not reply.get("ok"):
            raise DeviceError(f"login of {employee_id} failed: {reply}")
        return str(reply["result"]["token"])

    def wait_event(self, predicate: Any, timeout: float = 5.0) -> dict[str, Any]:
        """The next event (from `event/#`) that satisfies `predicate`; every event read is kept in `seen`."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeviceError("expected event did not arrive")
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(event)
            if predicate(event):
                return event
