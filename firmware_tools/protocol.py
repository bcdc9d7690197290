r"""The StoreHub serial line protocol v1 between a technician's laptop (or the hub) and a device.

Serial, 115200 8N1 by default. One frame per line, ASCII, at most 512 bytes with its line end:

    >1F SET hub_host 192.168.1.10*82B4\r\n      host → device
    <1F OK*9C2D\r\n                              device → host

- `>`/`<` is the direction; then the frame's sequence number as two hex digits (00-FF), a space,
  the verb (host) or `OK`/`ERR` (device), and space-separated arguments, each percent-encoded
  (RFC 3986 unreserved characters stay as they are) so values may hold spaces or any UTF-8.
- `*` and four hex digits: CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of the bytes between the
  direction character and the `*`.
- The host waits for the answer with the same sequence number. On a timeout, a bad CRC or
  `ERR crc`, it sends the identical frame again (same seq); the device remembers its last answer
  and repeats it for a repeated seq instead of acting twice.

Verbs: `HELLO` → `OK kind=… fw=… proto=1 serial=…`; `SET key value`; `GET key` → `OK value`
(secrets come back as `sha256:<hex>` so they can be checked without being shown); `COMMIT`
(persist the staged settings atomically); `ABORT` (drop them); `REBOOT`. Errors: `ERR <code>
<message>` with codes `crc`, `bad_frame`, `unknown_verb`, `bad_key`, `bad_value`, `nothing_staged`.

The store CA certificate (when the store has TLS, docs/tls.md) does not fit in one frame, so it
travels as its DER bytes in lowercase hex, cut into numbered chunks of at most 384 hex digits:
`SET ca_cert.0 3082…`, `SET ca_cert.1 …`, then `SET ca_sha256 <hex of the DER's SHA-256>`. Each
chunk reads back with `GET ca_cert.N`. On `COMMIT` the device joins the staged chunks 0..N-1 and
refuses (`ERR bad_value`, nothing committed) unless they are contiguous and hash to `ca_sha256`;
a committed CA replaces the previous one whole (no chunk of an older, longer certificate survives).
The device then verifies the broker's TLS listener and the hub's HTTPS (firmware downloads) with it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    from collections.abc import Mapping

PROTOCOL_VERSION: Final = 1
MAX_FRAME: Final = 512
HOST: Final = ">"
DEVICE: Final = "<"
_FRAME: Final = re.compile(r"^([<>])([0-9A-F]{2}|\?\?) ([A-Z_]+)((?: [^ *]*)*)\*([0-9A-F]{4})$")

SETTINGS: Final = ("device_id", "store", "wifi_ssid", "wifi_psk", "hub_host", "hub_port", "mqtt_user", "mqtt_pass")
"""What `provision` writes, in this order."""
OPTIONAL_SETTINGS: Final = ("ota_key", "ca_sha256")
SECRET_SETTINGS: Final = frozenset({"wifi_psk", "mqtt_pass"})
CA_CHUNK_PREFIX: Final = "ca_cert."
CA_CHUNK_HEX: Final = 384
"""Hex digits per CA chunk: a `SET ca_cert.NN <chunk>` frame stays far below MAX_FRAME."""
MAX_CA_CHUNKS: Final = 16
"""At most 3 KiB of DER: a store CA (EC P-256) is about 500 bytes."""


class FrameError(ValueError):
    """A line that is not a valid frame (bad shape or checksum)."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame; `seq` is None for a device's `??` (it could not read the host's seq)."""

    direction: str
    seq: int | None
    verb: str
    args: tuple[str, ...] = ()

    def encode(self) -> bytes:
        """The frame as bytes on the wire, with CRC and CRLF."""
        seq = "??" if self.seq is None else f"{self.seq:02X}"
        body = " ".join([seq, self.verb, *(quote(arg, safe="") for arg in self.args)])
        line = f"{self.direction}{body}*{crc16(body.encode('ascii')):04X}\r\n".encode("ascii")
        if len(line) > MAX_FRAME:
            raise FrameError(f"frame of {len(line)} bytes exceeds {MAX_FRAME}")
        return line


def decode(line: bytes) -> Frame:
    """Parse one line (with or without its line end); FrameError if malformed or the CRC is wrong."""
    if len(line) > MAX_FRAME:
        raise FrameError(f"line of {len(line)} bytes exceeds {MAX_FRAME}")
    try:
        text = line.decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise FrameError("non-ASCII bytes on the line") from exc
    match = _FRAME.match(text)
    if match is None:
        raise FrameError(f"not a frame: {text[:60]!r}")
    direction, seq, verb, args, crc = match.groups()
    body = text[1 : text.rindex("*")]
    if crc16(body.encode("ascii")) != int(crc, 16):
        raise FrameError("checksum mismatch")
    values = tuple(unquote(arg, errors="strict") for arg in args.split(" ")[1:]) if args else ()
    return Frame(direction, None if seq == "??" else int(seq, 16), verb, values)


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def parse_fields(args: tuple[str, ...]) -> dict[str, str]:
    """`key=value` arguments (HELLO's answer) as a dict."""
    fields = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep:
            fields[key] = value
    return fields


_DEVICE_ID: Final = re.compile(r"^[a-z0-9-]{1,32}$")
_HOSTNAME: Final = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_MAX_SSID_BYTES: Final = 32
_PSK_MIN: Final = 8
_PSK_MAX: Final = 63
_RAW_PSK_HEX: Final = 64
_MAX_PASSWORD: Final = 128
_ED25519_KEY_BYTES: Final = 32
_SHA256_HEX: Final = 64
_LOWER_HEX: Final = re.compile(r"^[0-9a-f]+$")
_CA_CHUNK_KEY: Final = re.compile(r"^ca_cert\.(?:[0-9]|1[0-5])$")  # 0 .. MAX_CA_CHUNKS - 1


def ca_settings(der: bytes) -> dict[str, str]:
    """The settings that carry a CA certificate (DER): its hex chunks, then `ca_sha256`."""
    text = der.hex()
    if not der or len(text) > CA_CHUNK_HEX * MAX_CA_CHUNKS:
        raise ValueError(f"a CA certificate must be 1-{CA_CHUNK_HEX * MAX_CA_CHUNKS // 2} bytes of DER")
    chunks = [text[i : i + CA_CHUNK_HEX] for i in range(0, len(text), CA_CHUNK_HEX)]
    settings = {f"{CA_CHUNK_PREFIX}{index}": chunk for index, chunk in enumerate(chunks)}
    settings["ca_sha256"] = hashlib.sha256(der).hexdigest()
    return settings


def join_ca(settings: Mapping[str, str]) -> bytes | None:
    """The CA certificate (DER) carried by `settings`; None when there is none; ValueError when inconsistent."""
    indexes = sorted(int(key[len(CA_CHUNK_PREFIX) :]) for key in settings if is_ca_chunk(key))
    expected = settings.get("ca_sha256")
    if not indexes and expected is None:
        return None
    if indexes != list(range(len(indexes))) or not indexes:
        raise ValueError("ca_cert chunks must be numbered 0..N-1 without gaps")
    if expected is None:
        raise ValueError("ca_cert chunks without ca_sha256")
    der = bytes.fromhex("".join(settings[f"{CA_CHUNK_PREFIX}{i}"] for i in indexes))
    if hashlib.sha256(der).hexdigest() != expected:
        raise ValueError("ca_cert chunks do not hash to ca_sha256 (a chunk is missing or damaged)")
    return der


def is_ca_chunk(key: str) -> bool:
    """`ca_cert.0` … `ca_cert.15`."""
    return _CA_CHUNK_KEY.match(key) is not None


def check_setting(key: str, value: str) -> str | None:
    """Why `value` is not acceptable for setting `key` (None when it is); device and host use the same rules."""
    if is_ca_chunk(key):
        ok = 0 < len(value) <= CA_CHUNK_HEX and len(value) % 2 == 0 and _LOWER_HEX.match(value) is not None
        return None if ok else f"{key} must be 2-{CA_CHUNK_HEX} lowercase hex digits (an even number)"
    if key not in SETTINGS and key not in OPTIONAL_SETTINGS:
        return f"unknown setting {key!r}"
    problem: str | None = None
    if key in ("device_id", "store", "mqtt_user"):
        if not _DEVICE_ID.match(value):
            problem = "must be 1-32 of a-z, 0-9 and -"
    elif key == "wifi_ssid":
        if not 0 < len(value.encode("utf-8")) <= _MAX_SSID_BYTES:
            problem = f"must be 1-{_MAX_SSID_BYTES} bytes"
    elif key == "wifi_psk":
        hex_key = len(value) == _RAW_PSK_HEX and all(c in "0123456789abcdefABCDEF" for c in value)
        if not hex_key and not (_PSK_MIN <= len(value) <= _PSK_MAX and value.isascii() and value.isprintable()):
            problem = f"must be {_PSK_MIN}-{_PSK_MAX} printable ASCII characters (WPA2) or {_RAW_PSK_HEX} hex digits"
    elif key == "hub_host":
        if not _HOSTNAME.match(value):
            problem = "must be a host name or an IPv4 address"
    elif key == "hub_port":
        if not value.isdigit() or not 0 < int(value) < 65536:  # noqa: PLR2004 - TCP ports
            problem = "must be a TCP port, 1-65535"
    elif key == "mqtt_pass":
        if not 0 < len(value) <= _MAX_PASSWORD or not value.isprintable():
            problem = f"must be 1-{_MAX_PASSWORD} printable characters"
    elif key == "ota_key":
        problem = _check_key(value)
    elif key == "ca_sha256" and (len(value) != _SHA256_HEX or _LOWER_HEX.match(value) is None):
        problem = "must be 64 lowercase hex digits"
    return None if problem is None else f"{key} {problem}"


def _check_key(value: str) -> str | None:
    import base64  # noqa: PLC0415
    import binascii  # noqa: PLC0415

    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return "must be base64"
    return None if len(raw) == _ED25519_KEY_BYTES else "must be a base64 Ed25519 public key (32 bytes)"
