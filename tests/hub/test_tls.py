"""The store CA and the hub's server certificate (real files, real X.509 checks)."""

from __future__ import annotations

import datetime as dt
import ssl
import stat
from typing import TYPE_CHECKING

import pytest
from cryptography import x509

from hub.broker import BrokerConfig, broker_files, render_mosquitto_conf
from hub.tls import TlsError, ensure_store_pki

if TYPE_CHECKING:
    from pathlib import Path


def test_the_server_certificate_is_signed_by_the_store_ca_for_the_names_devices_use(tmp_path: Path) -> None:
    pki = ensure_store_pki(tmp_path / "tls", "bistro", ["hub.local", "192.168.1.10"])
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["hub.local"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["192.168.1.10"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not stat.S_IMODE(pki.ca_key.stat().st_mode) & 0o007, "the CA key is never world-readable"
    # Python's own TLS stack accepts the pair (what paho and httpx use on devices).
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))


def test_new_names_reissue_the_server_certificate_but_keep_the_ca(tmp_path: Path) -> None:
    first = ensure_store_pki(tmp_path, "bistro", ["hub.local"])
    ca_before, server_before = first.ca_cert.read_bytes(), first.server_cert.read_bytes()
    same = ensure_store_pki(tmp_path, "bistro", ["hub.local"])
    assert same.server_cert.read_bytes() == server_before, "nothing changed, nothing re-issued"
    ensure_store_pki(tmp_path, "bistro", ["hub.local", "10.0.0.5"])
    assert first.ca_cert.read_bytes() == ca_before, "paired devices keep trusting the same CA"
    assert first.server_cert.read_bytes() != server_before
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=820)
    ensure_store_pki(tmp_path, "bistro", ["hub.local", "10.0.0.5"], now=later)
    renewed = x509.load_pem_x509_certificate(first.server_cert.read_bytes())
    assert renewed.not_valid_after_utc > later + dt.timedelta(days=800), "renewed before it expires"


def test_a_half_restored_ca_is_refused_rather_than_silently_replaced(tmp_path: Path) -> None:
    pki = ensure_store_pki(tmp_path, "bistro", ["hub.local"])
    pki.ca_key.unlink()
    with pytest.raises(TlsError, match="both exist"):
        ensure_store_pki(tmp_path, "bistro", ["hub.local"])
    with pytest.raises(TlsError, match="at least one name"):
        ensure_store_pki(tmp_path / "other", "bistro", [])


def test_without_plaintext_on_the_lan_only_tls_listens_beyond_loopback(tmp_path: Path) -> None:
    pki = ensure_store_pki(tmp_path / "tls", "bistro", ["hub.local"])
    config = BrokerConfig(
        host="192.168.10.2",  # rendered only, never started: the hub's address on the staff network
        port=1883,
        websockets_port=9001,
        conf_dir=tmp_path / "broker",
        tls_port=8883,
        tls_certfile=pki.server_cert,
        tls_keyfile=pki.server_key,
        plaintext_lan=False,
    )
    conf = render_mosquitto_conf(config, broker_files(config))
    listeners = [line for line in conf.splitlines() if line.startswith("listener ")]
    assert listeners == ["listener 1883 127.0.0.1", "listener 9001 127.0.0.1", "listener 8883 192.168.10.2"]
    assert f"certfile {pki.server_cert}" in conf
    with pytest.raises(ValueError, match="own port"):
        render_mosquitto_conf(
            BrokerConfig(
                port=1883,
                conf_dir=tmp_path / "b",
                tls_port=1883,
                tls_certfile=pki.server_cert,
                tls_keyfile=pki.server_key,
            ),
            broker_files(config),
        )
