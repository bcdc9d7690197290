"""A device reaches the broker over TLS with the store CA; without it the handshake fails."""

from __future__ import annotations

import json
import socket
import ssl
from typing import TYPE_CHECKING

import pytest

from hub.contract.envelopes import encode_command
from hub.contract.topics import Topics
from hub.ports import free_port
from tests.hubproc import STAFF, HubProcess, write_config
from tests.mqtt_helpers import MqttClient, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def tls_hub(tmp_path: Path) -> Iterator[tuple[HubProcess, int]]:
    config = write_config(tmp_path / "store")
    tls_port = free_port()
    text = config.read_text(encoding="utf-8")
    config.write_text(
        f'[tls]\nenabled = true\nmqtt_port = {tls_port}\nnames = ["localhost", "127.0.0.1"]\n\n{text}',
        encoding="utf-8",
    )
    hub = HubProcess(config).start()
    try:
        yield hub, tls_port
    finally:
        hub.stop()


def test_a_device_talks_to_the_hub_over_tls_verified_by_the_store_ca(tls_hub: tuple[HubProcess, int]) -> None:
    hub, tls_port = tls_hub
    creds = hub.add_device("tab-tls")
    ca = hub.data_dir / "tls" / "ca.crt"
    topics = Topics(hub.store_id)

    client = MqttClient(tls_port, creds.username, creds.password, host="127.0.0.1")
    client.paho.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
    assert not client.connect(timeout=5).is_failure
    try:
        client.subscribe(topics.reply("tab-tls"))
        login = encode_command("tls-1", "staff.login", {"employee_id": STAFF["mgr"][0], "pin": STAFF["mgr"][1]})
        client.publish(topics.cmd("tab-tls"), login)
        wait_until(lambda: client.received(topics.reply("tab-tls")), 5, "the reply over TLS")
        reply = json.loads(client.received(topics.reply("tab-tls"))[0])
        assert reply["ok"], reply
    finally:
        client.close()

    # A client that trusts only the system's public CAs refuses the hub: the store CA is what vouches.
    public_only = ssl.create_default_context()
    with (
        socket.create_connection(("127.0.0.1", tls_port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        public_only.wrap_socket(raw, server_hostname="localhost").close()
