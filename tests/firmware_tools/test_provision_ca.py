"""Provisioning hands the device the store CA certificate: chunked, read back, checked at COMMIT."""

from __future__ import annotations

import hashlib
import json
import ssl

import pytest

from firmware_tools import protocol
from firmware_tools.provision import ProvisionError, SerialLink, provision
from hub.tls import ensure_store_pki
from tests.firmware_tools.conftest import FAST, SETTINGS, storehub_fw_process
from tests.hubproc import write_config


@pytest.fixture
def ca(tmp_path):
    """A real store CA made by the hub's code: (PEM, DER)."""
    pki = ensure_store_pki(tmp_path / "pki", "test-store", ["hub.local", "127.0.0.1"])
    pem = pki.ca_pem()
    return pem, ssl.PEM_cert_to_DER_cert(pem)


def test_the_ca_travels_in_chunks_each_frame_within_the_limit(ca):
    _pem, der = ca
    settings = protocol.ca_settings(der)
    chunks = [k for k in settings if protocol.is_ca_chunk(k)]
    assert len(chunks) >= 2, "a whole certificate does not fit in one 512-byte frame"
    for key, value in settings.items():
        assert protocol.check_setting(key, value) is None
        assert len(protocol.Frame(protocol.HOST, 0xFF, "SET", (key, value)).encode()) <= protocol.MAX_FRAME
    assert settings["ca_sha256"] == hashlib.sha256(der).hexdigest()
    assert protocol.join_ca(settings) == der
    broken = settings | {"ca_cert.1": settings["ca_cert.1"][:-2] + "00"}
    with pytest.raises(ValueError, match="do not hash to ca_sha256"):
        protocol.join_ca(broken)
    with pytest.raises(ValueError, match="without gaps"):
        protocol.join_ca({k: v for k, v in settings.items() if k != "ca_cert.0"})


def test_provision_writes_reads_back_and_commits_the_store_ca(sim, ca):
    _pem, der = ca
    settings = SETTINGS | protocol.ca_settings(der)
    report = provision(sim.port, settings, link_settings=FAST)
    assert report.committed
    assert report.ca_sha256 == hashlib.sha256(der).hexdigest()
    assert report.verified == report.written
    assert report.written[-1] == "ca_sha256", "the hash goes last: the device checks the chunks against it"
    assert sim.ca_pem is not None
    assert ssl.PEM_cert_to_DER_cert(sim.ca_pem) == der
    # The device can use it: a TLS context trusting exactly the store CA.
    ssl.create_default_context(cadata=sim.ca_pem)


def test_a_chunk_stored_wrong_is_caught_by_read_back_and_nothing_is_committed(sim, ca, monkeypatch):
    _pem, der = ca
    original = sim._handle

    def flipped_bit(frame):
        answer = original(frame)
        if frame.verb == "SET" and frame.args[0] == "ca_cert.1":
            value = sim.staged["ca_cert.1"]
            sim.staged["ca_cert.1"] = value[:10] + ("0" if value[10] != "0" else "1") + value[11:]
        return answer

    monkeypatch.setattr(sim, "_handle", flipped_bit)
    with pytest.raises(ProvisionError, match=r"read-back of ca_cert.1 gave .*nothing was committed"):
        provision(sim.port, SETTINGS | protocol.ca_settings(der), link_settings=FAST)
    assert sim.committed == {}
    assert sim.ca_pem is None


def test_the_device_refuses_to_commit_chunks_that_do_not_match_the_hash(sim, ca):
    _pem, der = ca
    settings = protocol.ca_settings(der)
    with SerialLink(sim.port, FAST) as link:
        for key, value in settings.items():
            if key != "ca_cert.0":  # chunk 0 lost: the device must not commit a truncated certificate
                assert link.request("SET", key, value).verb == "OK"
        answer = link.request("COMMIT")
    assert answer.verb == "ERR"
    assert answer.args[0] == "bad_value"
    assert "without gaps" in answer.args[1]
    assert sim.committed == {}


def test_a_new_ca_replaces_the_old_one_whole(sim, ca, tmp_path):
    _pem, der = ca
    provision(sim.port, SETTINGS | protocol.ca_settings(der), link_settings=FAST)
    other = ensure_store_pki(tmp_path / "other", "other-store", ["hub.local"]).ca_pem()
    other_der = ssl.PEM_cert_to_DER_cert(other)
    provision(sim.port, SETTINGS | protocol.ca_settings(other_der), link_settings=FAST)
    assert ssl.PEM_cert_to_DER_cert(sim.ca_pem) == other_der
    chunks = sorted(k for k in sim.committed if protocol.is_ca_chunk(k))
    assert chunks == sorted(k for k in protocol.ca_settings(other_der) if protocol.is_ca_chunk(k))


def _enable_tls(config, names='["hub.local", "127.0.0.1"]') -> None:
    config.write_text(config.read_text() + f"\n[tls]\nenabled = true\nnames = {names}\n")


def test_cli_takes_the_ca_from_the_store_config_when_tls_is_on(sim, tmp_path):
    config = write_config(tmp_path / "store")
    _enable_tls(config)
    data_dir = tmp_path / "store" / "data"
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"device_id": "drawer-1", "username": "drawer-1", "password": "pw-123456"}))
    psk = tmp_path / "psk"
    psk.write_text(SETTINGS["wifi_psk"])
    args = [
        "provision", "--port", sim.port, "--credentials", str(creds), "--config", str(config),
        "--hub-host", "192.168.10.2", "--wifi-ssid", "Staff", "--wifi-psk-file", str(psk), "--timeout", "1",
    ]  # fmt: skip
    result = storehub_fw_process(*args)
    assert result.returncode == 2
    assert "does not exist yet: start the hub once" in result.stderr
    assert sim.frames_received == 0
    pki = ensure_store_pki(data_dir / "tls", "test-store", ["hub.local", "127.0.0.1"])  # what the hub does at start
    result = storehub_fw_process(*args)
    assert result.returncode == 0, result.stderr
    der = ssl.PEM_cert_to_DER_cert(pki.ca_pem())
    assert json.loads(result.stdout)["ca_sha256"] == hashlib.sha256(der).hexdigest()
    assert sim.committed["store"] == "test-store", "the store id comes from the config"
    assert ssl.PEM_cert_to_DER_cert(sim.ca_pem) == der


def test_cli_takes_the_ca_from_a_pairing_answer_and_refuses_a_bad_pem(sim, tmp_path, ca):
    pem, der = ca
    creds = tmp_path / "pair.json"
    pair = {"device_id": "drawer-1", "username": "drawer-1", "password": "pw-123456", "ca_cert": pem}
    creds.write_text(json.dumps(pair))
    psk = tmp_path / "psk"
    psk.write_text(SETTINGS["wifi_psk"])
    args = [
        "provision", "--port", sim.port, "--credentials", str(creds), "--store", "test-store",
        "--hub-host", "192.168.10.2", "--wifi-ssid", "Staff", "--wifi-psk-file", str(psk), "--timeout", "1",
    ]  # fmt: skip
    result = storehub_fw_process(*args)
    assert result.returncode == 0, result.stderr
    assert ssl.PEM_cert_to_DER_cert(sim.ca_pem) == der
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    result = storehub_fw_process(*args, "--ca-cert", str(bad))
    assert result.returncode == 2
    assert f"{bad}: not a PEM certificate" in result.stderr
