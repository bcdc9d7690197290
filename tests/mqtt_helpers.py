"""Small helpers for tests that talk MQTT to a real Mosquitto: ports, clients, waiting."""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Literal, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

if TYPE_CHECKING:
    from collections.abc import Callable

    from paho.mqtt.reasoncodes import ReasonCode

HOST = "127.0.0.1"


def wait_until(predicate: Callable[[], object], timeout: float = 2.0, what: str = "") -> None:
    """Poll `predicate` until it is truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate!r}")
        time.sleep(0.005)


class MqttClient:
    """A paho v2 MQTT 5 client on its own network thread that records what the broker answers."""

    def __init__(
        self,
        port: int,
        username: str | None,
        password: str | None,
        *,
        host: str = HOST,
        reconnect: bool = False,
        transport: Literal["tcp", "websockets"] = "tcp",
    ) -> None:
        # Without reconnect, a dropped or refused client stays down and closes at once (paho would
        # otherwise sleep up to 1 s before its retry, and close() would wait for that).
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            protocol=mqtt.MQTTv5,
            transport=transport,
            reconnect_on_failure=reconnect,
        )
        if username is not None:
            self.paho.username_pw_set(username, password)
        self.host, self.port = host, port
        self.connack: ReasonCode | None = None
        self.disconnect_reason: ReasonCode | None = None
        self.messages: list[mqtt.MQTTMessage] = []
        self.subacks: dict[int, list[ReasonCode]] = {}
        self.pubacks: dict[int, ReasonCode] = {}
        self._lock = threading.Lock()
        self.paho.on_connect = self._on_connect
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_message = self._on_message
        self.paho.on_subscribe = self._on_subscribe
        self.paho.on_publish = self._on_publish

    def connect(self, timeout: float = 2.0) -> ReasonCode:
        """Connect and return the CONNACK reason code (a failure code when refused)."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
        self.paho.connect(self.host, self.port, keepalive=30, clean_start=True, properties=props)
        self.paho.loop_start()
        wait_until(lambda: self.connack is not None, timeout, "CONNACK")
        assert self.connack is not None
        if self.connack.is_failure:
            self.close()  # paho's thread would otherwise keep retrying
        return self.connack

    @property
    def connected(self) -> bool:
        """Whether the broker accepted the connection and has not dropped it since."""
        return self.paho.is_connected()

    def subscribe(self, topic: str, qos: int = 1, timeout: float = 2.0) -> ReasonCode:
        """Subscribe and return the SUBACK reason code of the filter."""
        result, mid = self.paho.subscribe(topic, qos)
        assert mid is not None, f"SUBSCRIBE not sent: {result}"
        wait_until(lambda: mid in self.subacks, timeout, f"SUBACK for {topic}")
        return self.subacks[mid][0]

    def publish(
        self, topic: str, payload: bytes | str = b"", qos: int = 1, timeout: float = 2.0
    ) -> ReasonCode:
        """Publish and return the PUBACK reason code (at QoS 0: Success once written)."""
        info = self.paho.publish(topic, payload, qos)
        wait_until(lambda: info.mid in self.pubacks, timeout, f"PUBACK on {topic}")
        return self.pubacks[info.mid]

    def received(self, topic: str) -> list[bytes]:
        """Return the payloads received so far on `topic`."""
        with self._lock:
            return [bytes(msg.payload) for msg in self.messages if msg.topic == topic]

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.paho.disconnect()
        self.paho.loop_stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- paho callbacks (paho's network thread) ------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _userdata: object, _flags: object, rc: ReasonCode, _props: object
    ) -> None:
        if not rc.is_failure:
            sock = client.socket()
            if isinstance(sock, socket.socket):
                # Nagle costs ~40 ms per round trip on loopback (DESIGN.md, performance notes).
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connack = rc

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        self.disconnect_reason = rc

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, mid: int, codes: list[ReasonCode], _p: object
    ) -> None:
        self.subacks[mid] = codes

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: object) -> None:
        self.pubacks[mid] = rc


def connect_client(
    port: int, username: str | None, password: str | None, *, host: str = HOST, reconnect: bool = False
) -> MqttClient:
    """Return a connected client; fail the test when the broker refuses it."""
    client = MqttClient(port, username, password, host=host, reconnect=reconnect)
    rc = client.connect()
    assert not rc.is_failure, f"broker refused {username!r}: {rc}"
    return client
