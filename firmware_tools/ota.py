"""Signed firmware: Ed25519 keys, manifests, and the checks a device makes before installing an image.

A manifest is `{"device_kind","version","sha256","size","min_version","signature"}`. The
signature is Ed25519 over the canonical JSON (sorted keys, no spaces, UTF-8) of the manifest
without `signature`, so any change to a field (or a swapped image, through `sha256`/`size`)
breaks it. `min_version` is the oldest firmware that may install this one directly (older ones
go through an intermediate release). Versions are `MAJOR.MINOR.PATCH` integers; an offer whose
version is not above the running one is a downgrade and is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from typing import TYPE_CHECKING, Annotated, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

if TYPE_CHECKING:
    from pathlib import Path

VERSION_PATTERN: Final = r"^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})$"
MAX_IMAGE_BYTES: Final = 64 * 1_048_576
Version = Annotated[str, StringConstraints(pattern=VERSION_PATTERN)]
Kind = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,31}$")]


class OtaRefusedError(Exception):
    """An image or manifest that must not be installed; `code` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Manifest(BaseModel):
    """A signed firmware manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_kind: Kind
    version: Version
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[int, Field(ge=1, le=MAX_IMAGE_BYTES)]
    min_version: Version = "0.0.0"
    signature: str = ""

    def signed_bytes(self) -> bytes:
        """What the signature covers: canonical JSON of every field but `signature`."""
        body = self.model_dump(exclude={"signature"})
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def parse_version(version: str) -> tuple[int, int, int]:
    """`1.2.3` → (1, 2, 3); ValueError for anything else."""
    match = re.match(VERSION_PATTERN, version)
    if match is None:
        raise ValueError(f"version {version!r} is not MAJOR.MINOR.PATCH")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


# -- keys --------------------------------------------------------------------------------------
def generate_key(private_path: Path) -> str:
    """Write a new Ed25519 private key (PEM, mode 0600) and return its public key (base64)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return public_key_b64(key)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load a PEM Ed25519 private key; ValueError with a clear message otherwise."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the signing key: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 key")  # noqa: TRY004 - callers expect one error type
    return key


def public_key_b64(key: Ed25519PrivateKey) -> str:
    """The raw 32-byte public key, base64 (what devices are provisioned with as `ota_key`)."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def _public_key(b64: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(b64, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise OtaRefusedError("bad_key", "the trusted key is not a base64 Ed25519 public key") from exc


# -- signing and checking ------------------------------------------------------------------------
def sign(image: bytes, *, kind: str, version: str, min_version: str, key: Ed25519PrivateKey) -> Manifest:
    """A signed manifest for `image`."""
    if parse_version(min_version) > parse_version(version):
        raise ValueError(f"min_version {min_version} is above version {version}")
    unsigned = Manifest(
        device_kind=kind,
        version=version,
        sha256=hashlib.sha256(image).hexdigest(),
        size=len(image),
        min_version=min_version,
    )
    signature = base64.b64encode(key.sign(unsigned.signed_bytes())).decode("ascii")
    return unsigned.model_copy(update={"signature": signature})


def verify_manifest(manifest: Manifest, trusted_key: str) -> None:
    """OtaRefusedError(bad_signature) unless the manifest was signed by `trusted_key`."""
    try:
        signature = base64.b64decode(manifest.signature, validate=True)
        _public_key(trusted_key).verify(signature, manifest.signed_bytes())
    except (InvalidSignature, binascii.Error, ValueError) as exc:
        raise OtaRefusedError("bad_signature", "the manifest's signature does not verify with the trusted key") from exc


def verify_image(manifest: Manifest, image: bytes) -> None:
    """OtaRefusedError unless `image` is exactly the one the manifest describes."""
    if len(image) != manifest.size:
        raise OtaRefusedError("size_mismatch", f"image is {len(image)} bytes, the manifest says {manifest.size}")
    if hashlib.sha256(image).hexdigest() != manifest.sha256:
        raise OtaRefusedError("sha256_mismatch", "the image's sha256 differs from the manifest's (tampered or corrupt)")


def check_offer(manifest: Manifest, image: bytes, *, trusted_key: str, kind: str, current: str) -> None:
    """Everything a device checks before installing: signature, image, kind, no downgrade, min version."""
    verify_manifest(manifest, trusted_key)
    verify_image(manifest, image)
    if manifest.device_kind != kind:
        raise OtaRefusedError("wrong_kind", f"firmware for {manifest.device_kind}, this device is a {kind}")
    if parse_version(manifest.version) <= parse_version(current):
        raise OtaRefusedError("downgrade", f"{manifest.version} is not newer than the running {current}")
    if parse_version(current) < parse_version(manifest.min_version):
        raise OtaRefusedError(
            "below_min_version", f"{manifest.version} needs at least {manifest.min_version}; running {current}"
        )
