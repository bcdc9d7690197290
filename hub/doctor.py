"""`storehub doctor`: check a store install and say plainly what is wrong and what to do about it.

Each check returns one `Finding` (ok, warn, fail or skip) with a one-line detail and, when not ok,
a fix. Exit code 0 when nothing failed (warnings allowed), 1 when a check failed, 2 when the
config itself cannot be read. Every check is read-only: doctor never writes the hub's database,
never connects to the broker with an account (an anonymous MQTT CONNECT must be refused), and is
safe to run on a store in the middle of service.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import sqlite3
import sys
import tomllib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence

    from hub.config import LoadedConfig

Status = Literal["ok", "warn", "fail", "skip"]
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
MIB: Final = 1_048_576
DISK_FAIL_BYTES: Final = 256 * MIB
DISK_WARN_BYTES: Final = 1024 * MIB
DISK_WARN_FRACTION: Final = 0.10
RELAY_WARN_LAG_S: Final = 15 * 60
BACKUP_WARN_AGE_S: Final = 2 * 3600
TLS_RENEW_DAYS: Final = 30
BACKUP_FAIL_AGE_S: Final = 26 * 3600
NETWORK_TIMEOUT_S: Final = 3.0
MQTT_NOT_AUTHORIZED: Final = (4, 5)
DEFAULT_PRINTER_PORT: Final = 9100


@dataclass(frozen=True)
class Finding:
    """The outcome of one check."""

    check: str
    status: Status
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class Options:
    """What to check beyond the config: extra printers, a relay cursor file, the time (for tests)."""

    printers: tuple[str, ...] = ()
    relay_cursor: Path | None = None
    backup_dir: Path | None = None
    now: datetime | None = None


def run_checks(loaded: LoadedConfig, options: Options | None = None) -> list[Finding]:
    """Run every check against the store described by `loaded`."""
    options = options or Options()
    now = options.now or datetime.now(UTC)
    checks: list[tuple[str, Callable[[], Finding]]] = [
        ("hub", lambda: check_hub(loaded)),
        ("broker", lambda: check_broker(loaded)),
        ("broker files", lambda: check_broker_files(loaded)),
        ("tls", lambda: check_tls(loaded, now)),
        ("disk", lambda: check_disk(loaded.data_dir)),
        ("clock", lambda: check_clock(loaded, now)),
        ("database", lambda: check_database(loaded)),
        ("printers", lambda: check_printers(loaded, options.printers)),
        ("relay", lambda: check_relay(loaded, options.relay_cursor, now)),
        ("backups", lambda: check_backups(options.backup_dir, now)),
    ]
    findings = []
    for name, check in checks:
        try:
            findings.append(check())
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            if isinstance(exc, PermissionError) or "unable to open database" in str(exc):
                findings.append(Finding(name, "fail", f"cannot read the store's files: {exc}", _AS_OWNER))
            else:
                findings.append(Finding(name, "fail", f"the check itself failed: {type(exc).__name__}: {exc}"))
    return findings


def exit_code(findings: Sequence[Finding]) -> int:
    """0 when nothing failed, 1 otherwise."""
    return EXIT_FAILED if any(f.status == "fail" for f in findings) else EXIT_OK


def render(loaded: LoadedConfig, findings: Sequence[Finding]) -> str:
    """The human report."""
    lines = [f"StoreHub doctor: store {loaded.config.store.id}, data {loaded.data_dir}", ""]
    width = max(len(f.check) for f in findings)
    for finding in findings:
        label = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "-"}[finding.status]
        lines.append(f"  {label:<5} {finding.check:<{width}}  {finding.detail}")
        if finding.fix:
            lines.append(f"        {'':<{width}}  fix: {finding.fix}")
    failed = sum(f.status == "fail" for f in findings)
    warned = sum(f.status == "warn" for f in findings)
    lines += ["", f"{failed} failed, {warned} warning(s)." if failed or warned else "All checks passed."]
    return "\n".join(lines) + "\n"


# -- checks --------------------------------------------------------------------------------------
def check_hub(loaded: LoadedConfig) -> Finding:
    """The hub answers on its control socket and is connected to its broker."""
    from hub.app import HubError, control_request  # noqa: PLC0415 - keep `storehub --help` fast

    try:
        answer = asyncio.run(control_request(loaded.data_dir, "hub.status", {}))
    except (HubError, OSError, ValueError) as exc:
        return Finding("hub", "fail", f"the hub's control socket answered badly: {exc}", _RESTART_HUB)
    if answer is None:
        return Finding("hub", "fail", f"no hub is running on {loaded.data_dir}", _START_HUB)
    status = answer.get("result") or {}
    detail = f"running {status.get('version')}, seq {status.get('seq')}, epoch {status.get('epoch')}"
    if not status.get("broker_connected"):
        return Finding("hub", "fail", detail + ", NOT connected to its broker", _CHECK_BROKER)
    online = status.get("devices_online") or []
    return Finding("hub", "ok", f"{detail}, broker connected, {len(online)} device(s) online")


def check_broker(loaded: LoadedConfig) -> Finding:
    """The broker speaks MQTT on its port and refuses an anonymous client."""
    cfg = loaded.config.broker
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "") else cfg.host  # noqa: S104 - a listen-all address
    where = f"{host}:{cfg.port}"
    try:
        code = mqtt_anonymous_connect(host, cfg.port, NETWORK_TIMEOUT_S)
    except OSError as exc:
        return Finding("broker", "fail", f"{where}: cannot connect: {exc.strerror or exc}", _CHECK_BROKER)
    except ValueError as exc:
        return Finding("broker", "fail", f"{where}: does not speak MQTT: {exc}", _CHECK_BROKER)
    if code == 0:
        return Finding(
            "broker",
            "fail",
            f"{where} accepts anonymous clients: anyone on the network can read and send orders",
            "run Mosquitto with the hub's generated mosquitto.conf (allow_anonymous false)",
        )
    if code not in MQTT_NOT_AUTHORIZED:
        return Finding("broker", "warn", f"{where} refused an anonymous client with code {code}")
    return Finding("broker", "ok", f"{where} answers MQTT and refuses anonymous clients")


def check_tls(loaded: LoadedConfig, now: datetime) -> Finding:
    """With `[tls] enabled`: the store CA's certificate for the names, not expiring, served by the broker."""
    import ssl  # noqa: PLC0415

    from cryptography import x509  # noqa: PLC0415
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415

    tls = loaded.config.tls
    if not tls.enabled:
        return Finding("tls", "skip", "TLS is off ([tls] enabled = false)")
    directory = loaded.data_dir / "tls"
    ca_file, cert_file = directory / "ca.crt", directory / "server.crt"
    if not directory.exists():
        return Finding("tls", "fail", f"no {directory}: the hub makes the store CA at start", _RESTART_HUB)
    if not os.access(directory, os.R_OK | os.X_OK):
        return Finding("tls", "fail", f"cannot read {directory}", _AS_OWNER)
    missing = [p.name for p in (ca_file, directory / "ca.key", cert_file, directory / "server.key") if not p.exists()]
    if missing:
        return Finding("tls", "fail", f"missing {', '.join(missing)} in {directory}", _RESTORE_CA)
    ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return Finding("tls", "fail", "server.crt is not issued by the store CA (ca.crt)", _RESTART_HUB)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    covered = {str(v) for v in sans.get_values_for_type(x509.DNSName)}
    covered |= {str(v) for v in sans.get_values_for_type(x509.IPAddress)}
    if absent := [n for n in tls.names if n not in covered]:
        return Finding("tls", "fail", f"server.crt does not cover {', '.join(absent)}", _RESTART_HUB)
    days_left = (cert.not_valid_after_utc - now).total_seconds() / 86400
    host = "127.0.0.1" if loaded.config.broker.host in ("0.0.0.0", "") else loaded.config.broker.host  # noqa: S104
    where = f"{host}:{tls.mqtt_port}"
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with (
            socket.create_connection((host, tls.mqtt_port), timeout=NETWORK_TIMEOUT_S) as raw,
            context.wrap_socket(raw, server_hostname=tls.names[0]) as wrapped,
        ):
            presented = wrapped.getpeercert(binary_form=True)
    except ssl.SSLError as exc:
        return Finding("tls", "fail", f"{where}: TLS handshake with the store CA failed: {exc}", _CHECK_BROKER)
    except OSError as exc:
        return Finding("tls", "fail", f"{where}: cannot connect: {exc.strerror or exc}", _CHECK_BROKER)
    if presented != cert.public_bytes(_der()):
        return Finding("tls", "fail", f"{where} presents another certificate than server.crt", _CHECK_BROKER)
    detail = f"{where} verified by the store CA for {', '.join(tls.names)}; certificate valid {days_left:.0f} more days"
    if days_left < 0:
        return Finding("tls", "fail", detail, _RESTART_HUB)
    if days_left < TLS_RENEW_DAYS:
        return Finding("tls", "warn", detail + " (the hub re-issues it when it restarts)", _RESTART_HUB)
    return Finding("tls", "ok", detail)


def _der() -> Any:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    return serialization.Encoding.DER


def check_broker_files(loaded: LoadedConfig) -> Finding:
    """The broker's password file and ACL say exactly what the device registry says."""
    from hub.app import DB_NAME, HUB_SECRET_NAME, broker_config  # noqa: PLC0415
    from hub.broker import HUB_USERNAME, broker_files, device_user, hub_user, render_acl  # noqa: PLC0415
    from hub.contract.topics import Topics  # noqa: PLC0415

    files = broker_files(broker_config(loaded))
    db = loaded.data_dir / DB_NAME
    missing = [p.name for p in (files.passwd, files.acl) if not p.exists()]
    if missing:
        return Finding("broker files", "fail", f"{', '.join(missing)} missing in {files.passwd.parent}", _RESTART_HUB)
    if not db.exists():
        return Finding("broker files", "fail", f"no hub database at {db}", _START_HUB)
    registry = _registry(db)
    topics = Topics(loaded.config.store.id)
    users = [hub_user(topics, "$7$placeholder")]  # the ACL does not carry hashes
    users += [
        device_user(topics, device_id, kind, stations, password_hash)
        for device_id, (kind, stations, password_hash) in sorted(registry.items())
    ]
    problems = []
    passwd = _read_passwd(files.passwd)
    expected_names = {u.username for u in users}
    if extra := sorted(set(passwd) - expected_names):
        problems.append(f"passwd lets in unregistered or revoked {', '.join(extra)}")
    if absent := sorted(expected_names - set(passwd)):
        problems.append(f"passwd lacks registered {', '.join(absent)}")
    stale = sorted(name for name, (_k, _s, hashed) in registry.items() if name in passwd and passwd[name] != hashed)
    if stale:
        problems.append(f"passwd holds old passwords for {', '.join(stale)}")
    secret = loaded.data_dir / HUB_SECRET_NAME
    if HUB_USERNAME in passwd and secret.exists():
        if not os.access(secret, os.R_OK):
            return Finding("broker files", "fail", f"cannot read {secret}", _AS_OWNER)
        if not _hash_matches(passwd[HUB_USERNAME], secret):
            problems.append("the hub's own password does not match hub.secret")
    if files.acl.read_text(encoding="utf-8") != render_acl(users):
        problems.append("acl differs from the registry")
    if problems:
        return Finding("broker files", "fail", "; ".join(problems), _RESTART_HUB)
    return Finding("broker files", "ok", f"passwd and acl match the registry ({len(registry)} active device(s))")


def check_disk(data_dir: Path) -> Finding:
    """Free space where the database lives."""
    try:
        usage = shutil.disk_usage(data_dir)
    except OSError as exc:
        return Finding("disk", "fail", f"{data_dir}: {exc.strerror}", "create the data directory (install.sh)")
    fraction = usage.free / usage.total if usage.total else 0.0
    detail = (
        f"{usage.free / MIB / 1024:.1f} GiB free of {usage.total / MIB / 1024:.1f} GiB ({fraction:.0%}) on {data_dir}"
    )
    fix = "free space: old logs (journalctl --vacuum-size=100M), old backups on the same medium"
    if usage.free < DISK_FAIL_BYTES:
        return Finding("disk", "fail", detail + ": the hub will soon answer storage_full", fix)
    if usage.free < DISK_WARN_BYTES or fraction < DISK_WARN_FRACTION:
        return Finding("disk", "warn", detail, fix)
    return Finding("disk", "ok", detail)


def check_clock(loaded: LoadedConfig, now: datetime) -> Finding:
    """The system clock is not behind the newest ledger entry (the hub refuses to write if it is)."""
    from hub.app import DB_NAME  # noqa: PLC0415
    from hub.contract.types import parse_time  # noqa: PLC0415

    db = loaded.data_dir / DB_NAME
    if not db.exists():
        return Finding("clock", "skip", "no ledger yet")
    with _readonly(db) as conn:
        row = conn.execute("SELECT seq, at FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        return Finding("clock", "skip", "the ledger is empty")
    newest = parse_time(row[1])
    skew = (now - newest).total_seconds()
    synced = Path("/run/systemd/timesync/synchronized").exists()
    sync_note = ", NTP synchronized" if synced else ""
    if skew < 0:
        return Finding(
            "clock",
            "fail",
            f"the system clock is {-skew:.0f} s behind the newest ledger entry (seq {row[0]}, {row[1]}): "
            "the hub refuses to write (clock_invalid)",
            "let NTP set the clock (timedatectl set-ntp true; check the network), or add a real-time clock",
        )
    return Finding("clock", "ok", f"{_duration(skew)} after the newest ledger entry (seq {row[0]}){sync_note}")


def check_database(loaded: LoadedConfig) -> Finding:
    """SQLite's integrity_check on the hub database (read-only, safe while the hub writes)."""
    from hub.app import DB_NAME  # noqa: PLC0415

    db = loaded.data_dir / DB_NAME
    if not db.exists():
        return Finding("database", "fail", f"no hub database at {db}", _START_HUB)
    try:
        with _readonly(db) as conn:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check(10)")]
    except sqlite3.DatabaseError as exc:
        return Finding("database", "fail", f"{db}: {exc}", _RESTORE)
    size = sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists())
    if problems != ["ok"]:
        return Finding("database", "fail", f"integrity_check: {'; '.join(problems)}", _RESTORE)
    return Finding("database", "ok", f"integrity_check ok ({db.name}, {size / MIB:.1f} MiB)")


def check_printers(loaded: LoadedConfig, extra: Sequence[str]) -> Finding:
    """Every configured printer is there: network ones accept a TCP connection, serial ones exist."""
    targets = [*_configured_printers(loaded), *(("tcp", *_parse_address(a)) for a in extra)]
    if not targets:
        return Finding("printers", "skip", "no printers configured")
    down = []
    for target in targets:
        if target[0] == "serial":
            device = Path(str(target[1]))
            if not device.exists():
                down.append(f"{device} (no such device: unplugged?)")
            continue
        host, port = str(target[1]), int(target[2])
        try:
            with socket.create_connection((host, port), timeout=NETWORK_TIMEOUT_S):
                pass
        except OSError as exc:
            down.append(f"{host}:{port} ({exc.strerror or exc})")
    if down:
        return Finding(
            "printers",
            "fail",
            f"{len(down)} of {len(targets)} unreachable: {', '.join(down)}",
            "check the printer is on, cabled, and its IP address has not changed (give it a DHCP reservation)",
        )
    return Finding("printers", "ok", f"{len(targets)} printer(s) reachable")


def check_relay(loaded: LoadedConfig, cursor_file: Path | None, now: datetime) -> Finding:
    """How far the relay's acknowledged cursor is behind the ledger head, in entries and time."""
    from hub.app import DB_NAME  # noqa: PLC0415
    from hub.contract.types import parse_time  # noqa: PLC0415

    path = cursor_file or _configured_relay_cursor(loaded)
    if path is None or not path.exists():
        return Finding("relay", "skip", "no relay cursor" + (f" at {path}" if path else " configured"))
    try:
        cursor = _cursor_seq(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        return Finding("relay", "fail", f"{path}: unreadable cursor: {exc}", "check the relay's logs")
    with _readonly(loaded.data_dir / DB_NAME) as conn:
        head = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM ledger").fetchone()[0]
        oldest = conn.execute("SELECT at FROM ledger WHERE seq > ? ORDER BY seq LIMIT 1", (cursor,)).fetchone()
    backlog = max(0, int(head) - cursor)
    if backlog == 0 or oldest is None:
        return Finding("relay", "ok", f"up to date at seq {cursor}")
    lag = (now - parse_time(oldest[0])).total_seconds()
    detail = f"{backlog} entries behind (cursor {cursor}, head {head}), oldest unsent {_duration(lag)} old"
    if lag > RELAY_WARN_LAG_S:
        return Finding(
            "relay", "warn", detail, "check the internet link and `journalctl -u storehub-relay`; the store sells on"
        )
    return Finding("relay", "ok", detail)


def check_backups(backup_dir: Path | None, now: datetime) -> Finding:
    """The newest backup is recent (the timer runs hourly): warn after 2 h, fail after 26 h."""
    from hub.backup import list_backups  # noqa: PLC0415

    if backup_dir is None:
        return Finding("backups", "skip", "no --backup-dir given")
    if not backup_dir.is_dir():
        return Finding("backups", "fail", f"{backup_dir}: no such directory (backup medium not mounted?)", _BACKUP)
    backups = list_backups(backup_dir)
    if not backups:
        return Finding("backups", "fail", f"no backup in {backup_dir}", _BACKUP)
    taken, newest = backups[-1]
    age = (now - taken).total_seconds()
    detail = f"{len(backups)} backup(s), newest {newest.name} ({_duration(max(age, 0))} old)"
    if age > BACKUP_FAIL_AGE_S:
        return Finding("backups", "fail", detail, _BACKUP)
    if age > BACKUP_WARN_AGE_S:
        return Finding("backups", "warn", detail, _BACKUP)
    return Finding("backups", "ok", detail)


# -- MQTT probe ----------------------------------------------------------------------------------
def mqtt_anonymous_connect(host: str, port: int, timeout: float) -> int:
    """Send an MQTT 3.1.1 CONNECT without credentials; return the CONNACK return code."""
    client_id = f"storehub-doctor-{os.getpid()}".encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x0a"  # protocol name, level 4, clean session, keepalive 10 s
    payload = len(client_id).to_bytes(2, "big") + client_id
    body = variable + payload
    packet = b"\x10" + bytes([len(body)]) + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(packet)
        answer = _recv_exactly(sock, 4)
        if answer[0] != 0x20 or answer[1] != 0x02:  # noqa: PLR2004 - CONNACK, remaining length 2
            raise ValueError(f"expected a CONNACK, got {answer.hex()}")
        code = answer[3]
        if code == 0:
            sock.sendall(b"\xe0\x00")  # DISCONNECT
        return code


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ValueError(f"connection closed after {len(data)} byte(s)")
        data += chunk
    return data


# -- CLI -----------------------------------------------------------------------------------------
def register(subparsers: Any) -> None:
    """Add `storehub doctor`."""
    doctor = subparsers.add_parser("doctor", help="check this store's install and print a clear report")
    doctor.add_argument("--config", type=Path, required=True, help="the store's TOML config")
    doctor.add_argument("--json", action="store_true", help="machine-readable findings")
    doctor.add_argument(
        "--printer", action="append", default=[], metavar="HOST[:PORT]", help="also check this network printer"
    )
    doctor.add_argument("--relay-cursor", type=Path, help="the relay's cursor file (to report its lag)")
    doctor.add_argument("--backup-dir", type=Path, help="where the backup timer writes (to check the newest is recent)")
    doctor.set_defaults(handler=_cli)


def _cli(args: argparse.Namespace) -> int:
    from hub.config import load_config  # noqa: PLC0415

    loaded = load_config(args.config)
    try:
        printers = tuple(args.printer)
        for address in printers:
            _parse_address(address)
    except ValueError as exc:
        sys.stderr.write(f"storehub: {exc}\n")
        return EXIT_USAGE
    findings = run_checks(
        loaded, Options(printers=printers, relay_cursor=args.relay_cursor, backup_dir=args.backup_dir)
    )
    if args.json:
        sys.stdout.write(json.dumps({"ok": exit_code(findings) == 0, "checks": [asdict(f) for f in findings]}) + "\n")
    else:
        sys.stdout.write(render(loaded, findings))
    return exit_code(findings)


# -- helpers -------------------------------------------------------------------------------------
_START_HUB: Final = "start it: systemctl start storehub-hub (logs: journalctl -u storehub-hub)"
_RESTART_HUB: Final = "restart the hub (systemctl restart storehub-hub): it rewrites the broker files at start"
_CHECK_BROKER: Final = "systemctl status mosquitto; journalctl -u mosquitto; storehub-broker-reload.path enabled?"
_AS_OWNER: Final = "run storehub doctor as root or as the storehub user (sudo -u storehub storehub doctor …)"
_BACKUP: Final = "systemctl status storehub-backup.timer storehub-backup.service; is the backup medium mounted?"
_RESTORE_CA: Final = "restore the store CA from the newest backup (storehub backup restore), never make a new one"
_RESTORE: Final = "stop the hub and restore the newest backup: storehub backup restore (docs/operations.md)"


class _readonly:  # noqa: N801 - used like a function in `with`
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        self.conn.execute("PRAGMA busy_timeout=5000")

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def _registry(db: Path) -> dict[str, tuple[str, list[str], str]]:
    """Active devices with credentials: id → (kind, stations, password hash)."""
    with _readonly(db) as conn:
        hashes = dict(conn.execute("SELECT device_id, password_hash FROM device_credentials").fetchall())
        devices = [json.loads(row[0]) for row in conn.execute("SELECT doc FROM p_devices")]
    return {
        d["device_id"]: (d["kind"], list(d.get("stations") or []), hashes[d["device_id"]])
        for d in devices
        if d.get("active", True) and d["device_id"] in hashes
    }


def _read_passwd(path: Path) -> dict[str, str]:
    entries = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, hashed = line.partition(":")
            entries[name] = hashed
    return entries


def _hash_matches(hashed: str, secret_file: Path) -> bool:
    from hub.broker import hash_password  # noqa: PLC0415

    try:
        _, kind, iterations, salt, _digest = hashed.split("$")
        if kind != "7":
            return False
        secret = secret_file.read_text(encoding="utf-8").strip()
        return hash_password(secret, iterations=int(iterations), salt=base64.b64decode(salt)) == hashed
    except (ValueError, OSError):
        return False


def _configured_printers(loaded: LoadedConfig) -> list[tuple[str, ...]]:
    """The config's `[[printers]]` addresses: `tcp://host[:port]` or `serial:/dev/…[?baud=N]`."""
    found: list[tuple[str, ...]] = []
    for entry in _raw_toml(loaded.path).get("printers", []):
        address = entry.get("address") if isinstance(entry, dict) else None
        if not isinstance(address, str):
            continue
        if address.startswith("serial:"):
            found.append(("serial", address.removeprefix("serial:").split("?", 1)[0]))
        else:
            with contextlib.suppress(ValueError):
                host, port = _parse_address(address.removeprefix("tcp://"))
                found.append(("tcp", host, str(port)))
    return found


def _configured_relay_cursor(loaded: LoadedConfig) -> Path | None:
    """The relay's cursor file: `<relay.state_dir>/cursor.json`, relative to the config's directory."""
    relay = _raw_toml(loaded.path).get("relay")
    if not isinstance(relay, dict):
        return None
    state_dir = Path(str(relay.get("state_dir", "relay-state")))
    return (state_dir if state_dir.is_absolute() else loaded.path.resolve().parent / state_dir) / "cursor.json"


def _cursor_seq(data: Any) -> int:
    if isinstance(data, int) and not isinstance(data, bool):
        return data
    if isinstance(data, dict):
        for key in ("seq", "acked_seq"):
            value = data.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    raise ValueError("expected a seq number or an object with seq")


def _parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = address, str(DEFAULT_PRINTER_PORT)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:  # noqa: PLR2004 - TCP ports
        raise ValueError(f"--printer {address!r}: expected HOST or HOST:PORT")
    return host, int(port)


def _raw_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def _duration(seconds: float) -> str:
    if seconds < 120:  # noqa: PLR2004
        return f"{seconds:.0f} s"
    if seconds < 7200:  # noqa: PLR2004
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:  # noqa: PLR2004
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
