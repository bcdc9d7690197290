"""The relay as an MQTT device of kind `relay`: a retained `device/relay/status` with birth and LWT.

Optional by design: the HQ link must not depend on the store's broker, so a relay without MQTT
credentials (or with the broker down) keeps relaying; paho reconnects in its own thread.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud_relay import state
from hub.bus import set_nodelay
from hub.contract.topics import Topics

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger("storehub.relay.mqtt")
DEVICE_ID = "relay"
SESSION_EXPIRY_S = 3600
WILL_DELAY_S = 5


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
        birth = self._last or {"kind": "relay", "fw": "relay-1", "caps": []}
        client.publish(self.topic, self._payload(birth), qos=1, retain=True)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: Any, reason: Any, props: Any) -> None:
        del client, userdata, flags, props
        log.info("disconnected from the broker: %s", reason)
        self.sess = state.next_session(self.state_dir)
        self._set_will()
