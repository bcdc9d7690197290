"""The store's own certificate authority, and the hub's server certificate signed by it.

A store has no public hostname and often no internet, so a public CA cannot vouch for its hub.
The hub makes a private CA once (kept in `<data_dir>/tls/`, the key never leaves the hub) and
issues its server certificate from it for the names devices use to reach it (`hub.local`, its
LAN addresses). Devices receive the CA certificate when they pair and verify the broker's TLS
listener (8883) and the manager page's HTTPS against it.

The server certificate is re-issued when it is missing, its names changed, or it expires within
30 days; the CA (10 years) is kept, so paired devices keep trusting the hub.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

CA_DAYS = 3650
SERVER_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)


class TlsError(Exception):
    """The store's certificates cannot be made or read."""


@dataclass(frozen=True, slots=True)
class StorePki:
    """Paths of the store CA certificate and the hub's server certificate and key."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    def ca_pem(self) -> str:
        """The CA certificate, as handed to devices at pairing."""
        return self.ca_cert.read_text(encoding="ascii")


def ensure_store_pki(
    directory: Path, store_id: str, names: Sequence[str], *, now: dt.datetime | None = None
) -> StorePki:
    """Create the store CA once and (re)issue the server certificate for `names` when needed.

    `names` are DNS names or IP addresses; each becomes a subjectAltName of the server certificate.
    """
    if not names:
        raise TlsError("the server certificate needs at least one name (e.g. hub.local or 127.0.0.1)")
    now = now or dt.datetime.now(dt.UTC)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)  # noqa: PTH101 - the directory holds the CA key
    pki = StorePki(directory / "ca.crt", directory / "ca.key", directory / "server.crt", directory / "server.key")
    if pki.ca_cert.exists() != pki.ca_key.exists():
        raise TlsError(f"{directory}: the CA certificate and key must both exist (or neither): restore both")
    if not pki.ca_cert.exists():
        _write_ca(pki, store_id, now)
    ca_cert, ca_key = _load_ca(pki)
    if _server_needs_issuing(pki, names, now):
        _write_server(pki, store_id, names, (ca_cert, ca_key), now)
    return pki


def _name(store_id: str, role: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "StoreHub"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{store_id} {role}"[:64]),
        ]
    )


def _write_ca(pki: StorePki, store_id: str, now: dt.datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(store_id, "store CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(pki.ca_key, key)
    _write_atomic(pki.ca_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _load_ca(pki: StorePki) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
        key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise TlsError(f"cannot read the store CA in {pki.ca_cert.parent}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TlsError(f"{pki.ca_key} is not the store CA's EC key")
    return cert, key


def _sans(names: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _server_needs_issuing(pki: StorePki, names: Sequence[str], now: dt.datetime) -> bool:
    if not pki.server_cert.exists() or not pki.server_key.exists():
        return True
    try:
        cert = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
        current = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return True
    if set(current) != set(_sans(names)):
        return True
    return cert.not_valid_after_utc - now < RENEW_BEFORE


def _write_server(
    pki: StorePki,
    store_id: str,
    names: Sequence[str],
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    now: dt.datetime,
) -> None:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(store_id, "hub"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(_sans(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(pki.server_key, key)
    _write_atomic(pki.server_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    # Group-readable: in production Mosquitto (group storehub) reads the server key; never world-readable.
    _write_atomic(path, pem, 0o640)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)  # noqa: PTH101 - the umask must not widen or narrow it
    tmp.replace(path)
