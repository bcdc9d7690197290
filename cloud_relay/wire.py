"""The relay's HTTP wire format (CONTRACT.md "Ledger and relay"), shared by both ends.

A batch is JSON, gzip-compressed; the signature is HMAC-SHA256 with the store secret over the
exact gzip bytes sent, so central checks it before it decompresses anything.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import zlib
from typing import Any, Final

SIGNATURE_HEADER: Final = "X-StoreHub-Signature"
SIGNATURE_PREFIX: Final = "sha256="
GZIP_LEVEL: Final = 1


class BodyTooLargeError(Exception):
    """The decompressed body is over the limit (a gzip bomb or a batch too big to take)."""


def ledger_path(store_id: str) -> str:
    """The ingest path for one store."""
    return f"/v1/stores/{store_id}/ledger"


def encode_batch(batch: dict[str, Any]) -> bytes:
    """The gzip bytes of a batch's JSON."""
    return compress(json.dumps(batch, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def compress(raw: bytes) -> bytes:
    """Gzip already-serialised batch JSON."""
    return gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0)


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value for `body`."""
    return SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether `header` is the signature of `body` (constant-time comparison)."""
    if header is None or not header.startswith(SIGNATURE_PREFIX):
        return False
    return hmac.compare_digest(sign(secret, body), header)


def gunzip_limited(body: bytes, limit: int) -> bytes:
    """Decompress `body`, refusing to produce more than `limit` bytes; ValueError if not gzip."""
    decoder = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = decoder.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"body is not valid gzip: {exc}") from exc
    if len(out) > limit or decoder.unconsumed_tail:
        raise BodyTooLargeError(f"the decompressed batch is over {limit} bytes")
    if not decoder.eof:
        raise ValueError("body is not valid gzip: truncated stream")
    return out
