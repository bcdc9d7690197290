"""Signed firmware: sign, verify, refuse tampered images and downgrades; store and serve releases."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest

from firmware_tools.ota import (
    OtaRefusedError,
    check_offer,
    generate_key,
    load_private_key,
    parse_version,
    sign,
)
from firmware_tools.server import FirmwareStore
from hub.ports import free_port
from tests.firmware_tools.conftest import storehub_fw
from tests.hubproc import REPO

IMAGE = bytes(range(256)) * 64


@pytest.fixture
def release(tmp_path):
    """A key pair and a signed drawer image 1.1.0 (min 1.0.0) on disk."""
    key_file = tmp_path / "signing.pem"
    keygen = json.loads(storehub_fw("keygen", "--out", str(key_file)).stdout)
    image = tmp_path / "drawer-1.1.0.bin"
    image.write_bytes(IMAGE)
    signed = storehub_fw(
        "sign", str(image), "--key", str(key_file), "--kind", "drawer", "--version", "1.1.0", "--min-version", "1.0.0"
    )
    assert signed.returncode == 0, signed.stderr
    manifest = tmp_path / "drawer-1.1.0.bin.manifest.json"
    return {"key": key_file, "public": keygen["public_key"], "image": image, "manifest": manifest}


def _verify(release, image=None, manifest=None, *extra):
    return storehub_fw(
        "verify",
        str(image or release["image"]),
        str(manifest or release["manifest"]),
        "--trusted-key",
        release["public"],
        *extra,
    )


def test_a_signed_image_verifies(release):
    result = _verify(release, None, None, "--current", "1.0.0")
    assert result.returncode == 0, result.stdout
    assert json.loads(result.stdout) == {"ok": True, "device_kind": "drawer", "version": "1.1.0"}
    manifest = json.loads(release["manifest"].read_text())
    assert set(manifest) == {"device_kind", "version", "sha256", "size", "min_version", "signature"}
    assert manifest["size"] == len(IMAGE)


def test_a_tampered_image_is_refused(release, tmp_path):
    tampered = tmp_path / "tampered.bin"
    data = bytearray(IMAGE)
    data[1000] ^= 0x01
    tampered.write_bytes(bytes(data))
    result = _verify(release, tampered)
    assert result.returncode == 1
    assert json.loads(result.stdout)["code"] == "sha256_mismatch"


def test_a_tampered_manifest_is_refused(release, tmp_path):
    manifest = json.loads(release["manifest"].read_text())
    manifest["min_version"] = "0.0.0"  # an attacker widening who may install it
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(manifest))
    result = _verify(release, None, forged)
    assert result.returncode == 1
    assert json.loads(result.stdout)["code"] == "bad_signature"


def test_a_manifest_signed_by_another_key_is_refused(release, tmp_path):
    other = generate_key(tmp_path / "other.pem")
    result = storehub_fw("verify", str(release["image"]), str(release["manifest"]), "--trusted-key", other)
    assert result.returncode == 1
    assert json.loads(result.stdout)["code"] == "bad_signature"


def test_a_downgrade_and_a_skipped_minimum_are_refused(release):
    result = _verify(release, None, None, "--current", "1.1.0")
    assert json.loads(result.stdout)["code"] == "downgrade"
    result = _verify(release, None, None, "--current", "2.0.0")
    assert json.loads(result.stdout)["code"] == "downgrade"
    result = _verify(release, None, None, "--current", "0.9.9")
    assert json.loads(result.stdout)["code"] == "below_min_version"


def test_device_side_check_refuses_the_wrong_kind(release):
    key = load_private_key(release["key"])
    manifest = sign(IMAGE, kind="printer", version="1.1.0", min_version="0.0.0", key=key)
    with pytest.raises(OtaRefusedError) as caught:
        check_offer(manifest, IMAGE, trusted_key=release["public"], kind="drawer", current="1.0.0")
    assert caught.value.code == "wrong_kind"


def test_versions_compare_numerically():
    assert parse_version("1.10.0") > parse_version("1.9.9")
    for bad in ("1.0", "v1.0.0", "01.0.0", "1.0.0-beta"):
        with pytest.raises(ValueError, match=r"MAJOR\.MINOR\.PATCH"):
            parse_version(bad)


def test_signing_refuses_bad_input(release, tmp_path):
    result = storehub_fw(
        "sign", str(release["image"]), "--key", str(release["key"]), "--kind", "drawer", "--version", "1.0",
    )  # fmt: skip
    assert result.returncode == 2
    assert "version" in result.stderr
    result = storehub_fw(
        "sign", str(release["image"]), "--key", str(release["key"]), "--kind", "drawer", "--version", "1.0.0",
        "--min-version", "2.0.0",
    )  # fmt: skip
    assert result.returncode == 2
    assert "min_version 2.0.0 is above version 1.0.0" in result.stderr
    not_a_key = tmp_path / "not-a-key.pem"
    not_a_key.write_text("hello")
    result = storehub_fw(
        "sign", str(release["image"]), "--key", str(not_a_key), "--kind", "drawer", "--version", "1.0.0"
    )
    assert result.returncode == 2
    assert "not an unencrypted PEM private key" in result.stderr
    again = storehub_fw("keygen", "--out", str(release["key"]))
    assert again.returncode == 2
    assert "never overwrite a signing key" in again.stderr


def test_the_firmware_store_accepts_only_verified_releases(release, tmp_path):
    root = tmp_path / "firmware"
    tampered = tmp_path / "tampered.bin"
    tampered.write_bytes(IMAGE[:-1] + b"\x00")
    refused = storehub_fw(
        "add", str(tampered), str(release["manifest"]), "--dir", str(root), "--trusted-key", release["public"]
    )
    assert refused.returncode == 2
    assert "refused: sha256_mismatch" in refused.stderr
    assert not (root / "drawer" / "1.1.0").exists()
    added = storehub_fw(
        "add", str(release["image"]), str(release["manifest"]), "--dir", str(root), "--trusted-key", release["public"]
    )
    assert added.returncode == 0, added.stderr
    store = FirmwareStore(root)
    latest = store.latest("drawer")
    assert latest is not None
    assert latest.version == "1.1.0"
    twice = storehub_fw(
        "add", str(release["image"]), str(release["manifest"]), "--dir", str(root), "--trusted-key", release["public"]
    )
    assert twice.returncode == 2
    assert "already in" in twice.stderr


def test_storehub_fw_serve_serves_manifests_and_images(release, tmp_path):
    root = tmp_path / "firmware"
    FirmwareStore(root).add(release["image"], release["manifest"], release["public"])
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "firmware_tools.cli", "serve", "--dir", str(root), "--port", str(port)],
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}/firmware"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                listing = httpx.get(base, timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "storehub-fw serve did not start"
                time.sleep(0.1)
        assert [m["version"] for m in listing.json()] == ["1.1.0"]
        manifest = httpx.get(f"{base}/drawer/1.1.0/manifest.json", timeout=5).json()
        image = httpx.get(f"{base}/drawer/1.1.0/image", timeout=5)
        assert image.status_code == 200
        assert image.content == IMAGE
        assert image.headers["etag"] == f'"{manifest["sha256"]}"'
        missing = httpx.get(f"{base}/drawer/9.9.9/image", timeout=5)
        assert missing.status_code == 404
        assert missing.json()["detail"] == "no firmware 9.9.9 for drawer"
        assert httpx.get(f"{base}/drawer/latest/image", timeout=5).status_code == 422
        assert httpx.get(f"{base}/..%2F..%2Fetc/1.0.0/image", timeout=5).status_code in (404, 422)
    finally:
        proc.terminate()
        proc.wait(10)
