"""The relay as an MQTT device of kind `relay`: a retained `device/relay/status` with birth and LWT.

Optional by design: the HQ link must not depend on the store's broker, so a relay without MQTT
credentials (or with the broker down) keeps relaying; paho reconnects in its own thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud_relay import state
from hub.bus import set_nodelay
from hub.contract.envelopes import encode_command
from hub.contract.topics import Topics

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger("storehub.relay.mqtt")
DEVICE_ID = "relay"
SESSION_EXPIRY_S = 3600
WILL_DELAY_S = 5
COMMAND_EXPIRY_S = 30


class CommandError(Exception):
    """A command to the hub got no reply in time (or the broker is not connected)."""


class RelayMqtt:
    """Publishes the relay's status; `sess` rises by one per connection, as CONTRACT.md asks."""

    def __init__(self, store_id: str, host: str, port: int, *, username: str, password: str, state_dir: Path) -> None:
        self.topics = Topics(store_id)
        self.topic = self.topics.device_status(username)
        self.host = host
        self.port = port
        self.state_dir = state_dir
        self.sess = state.next_session(state_dir)
        self._last: dict[str, Any] | None = None
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=username, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(username, password)
        self._set_will()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.device = username
        self._pending: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        self.client.reconnect_delay_set(1, 30)

    def start(self) -> None:
        """Connect in the background; never blocks or fails the relay."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(self.host, self.port, keepalive=30, clean_start=True, properties=props)
        self.client.loop_start()

    def publish_status(self, status: dict[str, Any]) -> None:
        """Publish (retained) the relay's status; remembered for the next birth."""
        self._last = status
        if self.client.is_connected():
            self.client.publish(self.topic, self._payload(status), qos=1, retain=True)

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        return bool(self.client.is_connected())

    async def command(self, cmd_id: str, type_: str, body: dict[str, Any], wait_s: float) -> dict[str, Any]:
        """Send a command on `cmd/relay` and wait for the hub's reply on `reply/relay`."""
        if not self.connected:
            raise CommandError("not connected to the store's broker")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        with self._lock:
            self._pending[cmd_id] = (loop, future)
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.MessageExpiryInterval = COMMAND_EXPIRY_S
        try:
            self.client.publish(
                self.topics.cmd(self.device), encode_command(cmd_id, type_, body), qos=1, properties=props
            )
            return await asyncio.wait_for(future, wait_s)
        except TimeoutError as exc:
            raise CommandError(f"no reply from the hub to {type_} within {wait_s} s") from exc
        finally:
            with self._lock:
                self._pending.pop(cmd_id, None)

    def close(self) -> None:
        """Say `offline` ourselves before a clean disconnect."""
        if self.client.is_connected():
            info = self.client.publish(
                self.topic, json.dumps({"state": "offline", "sess": self.sess, "kind": "relay"}), qos=1, retain=True
            )
            try:
                info.wait_for_publish(2)
            except (RuntimeError, ValueError):
                log.debug("offline status not confirmed before disconnect")
        self.client.disconnect()
        self.client.loop_stop()

    def _payload(self, status: dict[str, Any]) -> str:
        return json.dumps(status | {"state": "online", "sess": self.sess, "kind": "relay"})

    def _set_will(self) -> None:
        will = Properties(PacketTypes.WILLMESSAGE)  # type: ignore[no-untyped-call]
        will.WillDelayInterval = WILL_DELAY_S
        self.client.will_set(
            self.topic, json.dumps({"state": "offline", "sess": self.sess}), qos=1, retain=True, properties=will
        )

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: Any, reason: Any, props: Any) -> None:
        del userdata, flags, props
        if reason.is_failure:
            log.warning("broker refused the relay: %s", reason)
            return
        set_nodelay(client)
        client.subscribe(self.topics.reply(self.device), qos=1)
        birth = self._last or {"kind": "relay", "fw": "relay-1", "caps": []}
        client.publish(self.topic, self._payload(birth), qos=1, retain=True)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        del client, userdata
        try:
            reply = json.loads(message.payload)
        except ValueError:
            log.warning("ignoring a reply that is not JSON")
            return
        if not isinstance(reply, dict):
            return
        with self._lock:
            waiting = self._pending.get(str(reply.get("id")))
        if waiting is not None:
            loop, future = waiting
            loop.call_soon_threadsafe(_resolve, future, reply)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: Any, reason: Any, props: Any) -> None:
        del client, userdata, flags, props
        log.info("disconnected from the broker: %s", reason)
        self.sess = state.next_session(self.state_dir)
        self._set_will()


def _resolve(future: asyncio.Future[dict[str, Any]], reply: dict[str, Any]) -> None:
    if not future.done():
        future.set_result(reply)
