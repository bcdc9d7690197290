"""Store credentials: the bearer key is kept hashed, the HMAC secret encrypted.

The HMAC secret must be usable to verify signatures, so it is encrypted (Fernet) with central's
own key file rather than hashed.

Both are 256-bit random tokens, so a plain SHA-256 of the key is enough (no password stretching
needed: there is nothing to guess).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken

from hub.config import ConfigError

if TYPE_CHECKING:
    from pathlib import Path


class KeyFileError(ConfigError):
    """Central's key file is missing, unreadable or not a Fernet key."""


def new_store_key() -> str:
    """A fresh bearer key for a store."""
    return "sk_" + secrets.token_urlsafe(32)


def new_store_secret() -> str:
    """A fresh HMAC secret for a store."""
    return "ss_" + secrets.token_urlsafe(32)


def new_api_token() -> tuple[str, str]:
    """(token id, token) for an HQ user's API token; only the token's hash is kept."""
    return "tok-" + secrets.token_hex(5), "hqt_" + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """What the registry keeps of a bearer key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_matches(key: str, key_hash: str) -> bool:
    """Constant-time check of a presented key against its stored hash."""
    return hmac.compare_digest(hash_key(key), key_hash)


class SecretBox:
    """Encrypts store secrets at rest with central's key."""

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError as exc:
            raise KeyFileError("central's key is not a valid Fernet key (44 url-safe base64 characters)") from exc

    @classmethod
    def from_file(cls, path: Path, *, create: bool) -> SecretBox:
        """Load the key file, creating it (mode 0600) on first use when `create`."""
        if not path.exists():
            if not create:
                raise KeyFileError(f"central's key file {path} does not exist")
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, Fernet.generate_key())
                os.fsync(fd)
            finally:
                os.close(fd)
        try:
            return cls(path.read_bytes().strip())
        except OSError as exc:
            raise KeyFileError(f"central's key file {path} cannot be read: {exc.strerror}") from exc

    def seal(self, secret: str) -> str:
        """Encrypt a secret for storage."""
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def seal_session(self, session: dict[str, str]) -> str:
        """An authenticated, encrypted session cookie value."""
        return self._fernet.encrypt(json.dumps(session).encode("utf-8")).decode("ascii")

    def open_session(self, cookie: str, ttl_s: int) -> dict[str, str] | None:
        """The session in a cookie, or None when forged, altered or older than `ttl_s`."""
        try:
            data = json.loads(self._fernet.decrypt(cookie.encode("ascii"), ttl=ttl_s))
        except (InvalidToken, ValueError, UnicodeEncodeError):
            return None
        return data if isinstance(data, dict) else None

    def open(self, sealed: str) -> bytes:
        """Decrypt a stored secret."""
        try:
            return self._fernet.decrypt(sealed.encode("ascii"))
        except InvalidToken as exc:
            raise KeyFileError("a stored store secret does not decrypt with central's key (wrong key file?)") from exc


def new_credentials(box: SecretBox) -> tuple[dict[str, str], str, str]:
    """Fresh credentials for a store: (what to print once, key hash to store, sealed secret to store)."""
    key, secret = new_store_key(), new_store_secret()
    return {"store_key": key, "secret": secret}, hash_key(key), box.seal(secret)
