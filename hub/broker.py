"""Mosquitto management: the generated mosquitto.conf, password file and ACL, and a child broker.

The hub owns the broker's security: the password file and the ACL are generated from its device
registry (contract v1, "ACL") and reloaded with SIGHUP. Production renders the same files for a
systemd-managed Mosquitto (`render_mosquitto_conf`); development, the demo and tests run Mosquitto as
a child of the hub with `ManagedBroker`, which dies with the hub even on SIGKILL.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import ctypes.util
import functools
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from pydantic import TypeAdapter

from hub.contract.types import DeviceId, Id

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from hub.contract.topics import Topics

HUB_USERNAME: Final = "hub"
"""The hub's own broker user (and, with `use_username_as_clientid`, its client id)."""

KDS_KIND: Final = "kds"
"""The device kind whose ACL also grants its stations' `kds/{station}` streams."""

INSTALL_HINT: Final = "install it with `apt-get install -y mosquitto` (Debian, Ubuntu, Raspberry Pi OS)"


class BrokerError(Exception):
    """Mosquitto is missing, cannot start, or exited; the message carries the tail of its log."""


def hash_password(password: str, *, iterations: int = 101, salt: bytes | None = None) -> str:
    """Hash a password in Mosquitto 2's PBKDF2-SHA512 format, exactly as `mosquitto_passwd` writes it."""
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    if len(salt) != _SALT_BYTES:
        raise ValueError(f"mosquitto salts are {_SALT_BYTES} bytes, got {len(salt)}")
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, _DIGEST_BYTES)
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def new_password() -> str:
    """Return a fresh random URL-safe password (24 characters, about 144 bits) for a device or the hub.

    Never starting with "-": passwords are typed after `--password` on command lines, where one
    starting with a dash reads as an option.
    """
    while (password := secrets.token_urlsafe(18)).startswith("-"):
        pass
    return password


@dataclass(frozen=True)
class BrokerUser:
    """One broker account: its hashed password and the topic filters it may publish and read."""

    username: str
    password_hash: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    readwrite: tuple[str, ...] = ()


def hub_user(topics: Topics, password_hash: str) -> BrokerUser:
    """Return the hub's account: read and write everything of its store."""
    return BrokerUser(HUB_USERNAME, password_hash, publish=(), subscribe=(), readwrite=(topics.all_topics(),))


def device_user(
    topics: Topics, device_id: str, kind: str, stations: Sequence[str], password_hash: str
) -> BrokerUser:
    """Return a device's account with exactly the contract's ACL; `stations` count only for kind `kds`."""
    device_id = _DEVICE_ID.validate_python(device_id)
    if device_id == HUB_USERNAME:
        raise ValueError(f"device id {HUB_USERNAME!r} is the hub's own broker user")
    subscribe = [
        topics.reply(device_id),
        topics.device_do(device_id),
        topics.hub_status(),
        topics.device_status_all(),
        topics.event_all(),
        topics.state_all(),
    ]
    if kind == KDS_KIND:
        # A station name becomes part of an ACL filter: validating it keeps `+`, `#` and `/` out.
        subscribe += [topics.kds(_STATION.validate_python(station)) for station in stations]
    return BrokerUser(
        device_id,
        password_hash,
        publish=(topics.cmd(device_id),),
        subscribe=tuple(subscribe),
        readwrite=(topics.device_status(device_id),),
    )


def _running_as_root() -> bool:
    return os.geteuid() == 0


@dataclass(frozen=True, kw_only=True)
class BrokerConfig:
    """Where and how the store's Mosquitto listens, and the directory of its generated files."""

    host: str = "127.0.0.1"
    port: int = 1883
    websockets_port: int | None = None
    conf_dir: Path
    run_as_root: bool = field(default_factory=_running_as_root)
    persistence: bool = False
    max_packet_bytes: int = 16 * 1_048_576
    tls_port: int | None = None
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    plaintext_lan: bool = True
    """False: the plaintext listeners bind 127.0.0.1 only; devices on the LAN must use TLS."""


@dataclass(frozen=True)
class BrokerFiles:
    """The paths of the broker's generated and runtime files, all inside the config directory."""

    conf: Path
    passwd: Path
    acl: Path
    pid: Path
    log: Path


def broker_files(config: BrokerConfig) -> BrokerFiles:
    """Return the absolute paths of a configuration's broker files (nothing is written)."""
    root = config.conf_dir.resolve()
    return BrokerFiles(
        conf=root / "mosquitto.conf",
        passwd=root / "passwd",
        acl=root / "acl",
        pid=root / "mosquitto.pid",
        log=root / "mosquitto.log",
    )


def render_mosquitto_conf(config: BrokerConfig, files: BrokerFiles) -> str:
    """Render mosquitto.conf for a configuration; production renders it for systemd too."""
    _check_config(config, files)
    lines = [
        "# Generated by the StoreHub hub (hub/broker.py). It is overwritten whenever the hub rewrites",
        "# the broker files: do not edit it by hand, change the hub's configuration instead.",
        "",
        "# One password file and one ACL for every listener; nobody connects without an account.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {files.passwd}",
        f"acl_file {files.acl}",
        "",
        "# Nagle's algorithm adds ~40 ms to every QoS 1 round trip on loopback (DESIGN.md, performance).",
        "set_tcp_nodelay true",
        "# Payloads above the contract's 64 KiB must still reach the hub, which answers `too_large`;",
        "# `sync` snapshots of a busy floor run to megabytes; this bound only protects the broker's memory.",
        f"max_packet_size {config.max_packet_bytes}",
        "# QoS 1 messages in flight per client: the default of 20 throttles the hub's command stream and",
        "# the event fan-out during a rush, while each message costs the broker little.",
        "max_inflight_messages 100",
        "# Messages queued per client (offline or slow): clients resync with `sync` and never rely on",
        "# broker queues, so this bound only keeps a dead tablet's session from eating the broker's memory.",
        "max_queued_messages 1000",
        "# Sessions without an expiry (MQTT 3.1.1 clean_session false) would otherwise live forever.",
        "persistent_client_expiration 1d",
        "",
        "# The hub republishes all its retained state on every (re)connect: persistence is only a cache.",
    ]
    if config.persistence:
        lines += ["persistence true", f"persistence_location {files.conf.parent}/"]
    else:
        lines.append("persistence false")
    lines += [
        "",
        f"pid_file {files.pid}",
        f"log_dest file {files.log}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        # `information` also carries "Reloading config.", which ManagedBroker waits for after SIGHUP.
        "log_type information",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
    ]
    if config.run_as_root:
        lines += [
            "# Started as root, Mosquitto would drop to the `mosquitto` user and then could not read",
            "# these files in a private directory (DESIGN.md): development and tests keep root.",
            "user root",
        ]
    listeners = [(config.port, "mqtt")]
    if config.websockets_port is not None:
        listeners.append((config.websockets_port, "websockets"))
    plain_host = config.host if config.plaintext_lan else "127.0.0.1"
    lines += [
        "",
        "# Listener options follow their `listener` line: before any listener they would open a default",
        "# listener on 1883. The client id is the username, so no device can take another's id or session.",
    ]
    if not config.plaintext_lan:
        lines.append("# Plaintext is for the hub and on-hub services only: LAN devices use the TLS listener.")
    for port, protocol in listeners:
        lines += [f"listener {port} {plain_host}", f"protocol {protocol}", "use_username_as_clientid true"]
    if config.tls_port is not None:
        lines += [
            "",
            "# TLS with the store CA's server certificate (hub/tls.py); devices get the CA when they pair.",
            f"listener {config.tls_port} {config.host}",
            "protocol mqtt",
            f"certfile {config.tls_certfile}",
            f"keyfile {config.tls_keyfile}",
            "tls_version tlsv1.2",
            "use_username_as_clientid true",
        ]
    return "\n".join(lines) + "\n"


def render_password_file(users: Sequence[BrokerUser]) -> str:
    """Render the Mosquitto password file: one `username:hash` line per user."""
    _check_users(users)
    return "".join(f"{user.username}:{user.password_hash}\n" for user in users)


def render_acl(users: Sequence[BrokerUser]) -> str:
    """Render the Mosquitto ACL file: per user, what it may write, read, or both."""
    _check_users(users)
    lines = ["# Generated by the StoreHub hub (hub/broker.py) from its device registry. Do not edit."]
    for user in users:
        lines += ["", f"user {user.username}"]
        lines += [f"topic write {topic}" for topic in user.publish]
        lines += [f"topic read {topic}" for topic in user.subscribe]
        lines += [f"topic readwrite {topic}" for topic in user.readwrite]
    return "\n".join(lines) + "\n"


def write_broker_files(config: BrokerConfig, users: Sequence[BrokerUser]) -> BrokerFiles:
    """Write mosquitto.conf, the password file and the ACL atomically (secrets mode 0640)."""
    files = broker_files(config)
    conf = render_mosquitto_conf(config, files)
    passwd = render_password_file(users)
    acl = render_acl(users)
    files.conf.parent.mkdir(parents=True, exist_ok=True)
    # The ACL goes first: a reload between the two replaces then sees a new user without rights or a
    # removed user without a password, never a user with rights it should not have.
    _write_atomic(files.acl, acl, 0o640)
    _write_atomic(files.passwd, passwd, 0o640)
    _write_atomic(files.conf, conf, 0o644)
    return files


def find_mosquitto() -> str:
    """Return the path of the mosquitto executable, also looking in the sbin directories."""
    return _resolve_executable("mosquitto")


class ManagedBroker:
    """Mosquitto as a child process of the hub, for development, the demo and tests."""

    # A plain Popen polled from coroutines, rather than an asyncio subprocess: it is bound to no event
    # loop, so a test fixture may start the broker under one `asyncio.run` and stop it under another.

    def __init__(self, config: BrokerConfig, *, executable: str = "mosquitto") -> None:
        self._config = config
        self._executable = executable
        self._files = broker_files(config)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> BrokerConfig:
        """The configuration the broker runs with."""
        return self._config

    @property
    def files(self) -> BrokerFiles:
        """The paths of the broker's files."""
        return self._files

    @property
    def pid(self) -> int | None:
        """The process id of the running broker, or None when it is not running."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    async def start(self, users: Sequence[BrokerUser]) -> None:
        """Write the files, end a broker an earlier run left behind, start Mosquitto, wait for its ports."""
        # The death signal follows the *thread* that forks: call this from a thread that lives as long
        # as the broker should (the event loop's), never from a short-lived worker thread.
        if self.pid is not None:
            raise BrokerError(f"mosquitto is already running (pid {self.pid})")
        self._proc = None
        executable = _resolve_executable(self._executable)
        files = write_broker_files(self._config, users)
        await _end_stale_broker(files)
        _rotate_log(files.log)
        proc = _spawn(executable, files)
        self._proc = proc
        try:
            await self._wait_listening(proc)
        except BaseException:
            # Also on cancellation: a broker that never became ready must not outlive this call.
            proc.kill()
            proc.wait()
            self._proc = None
            raise

    async def update_users(self, users: Sequence[BrokerUser]) -> None:
        """Rewrite the accounts and return once the running broker has reloaded them (SIGHUP)."""
        # Observed with Mosquitto 2.0.11: the reload drops connected clients whose account is gone or
        # whose password changed, and applies the new ACL to the clients it keeps.
        log_offset = _size(self._files.log)
        write_broker_files(self._config, users)
        proc = self._proc
        if proc is None:
            return  # not running: the next start reads the new files
        if proc.poll() is not None:
            self._proc = None
            raise BrokerError(f"mosquitto exited with code {proc.returncode}{_log_tail(self._files.log)}")
        proc.send_signal(signal.SIGHUP)
        # Mosquitto is single-threaded: once it logged the line it finishes the reload before it serves
        # any other client, so the next connection already sees the new accounts.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _RELOAD_TIMEOUT_S
        while _RELOAD_LINE not in _read_from(self._files.log, log_offset):
            if proc.poll() is not None or loop.time() > deadline:
                raise BrokerError(
                    f"mosquitto did not reload its accounts (exit code {proc.poll()})"
                    f"{_log_tail(self._files.log)}"
                )
            await asyncio.sleep(_POLL_S)

    async def stop(self) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after 3 s; always reaps the process."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.terminate()
                await _wait_exit(proc, _STOP_TIMEOUT_S)
        finally:  # also when cancelled while waiting: never leave the broker running or a zombie
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            self._proc = None

    async def _wait_listening(self, proc: subprocess.Popen[bytes]) -> None:
        ports = [self._config.port]
        if self._config.websockets_port is not None:
            ports.append(self._config.websockets_port)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT_S
        # A port in use by someone else accepts connections too, so readiness is "our process holds a
        # listening socket on every port", read from /proc rather than probed with a connect.
        while not _listens_on(proc.pid, ports):
            if proc.poll() is not None:
                raise BrokerError(f"mosquitto exited with code {proc.returncode}{_log_tail(self._files.log)}")
            if loop.time() > deadline:
                raise BrokerError(
                    f"mosquitto did not listen on {ports} within {_START_TIMEOUT_S:g} s"
                    f"{_log_tail(self._files.log)}"
                )
            await asyncio.sleep(_POLL_S)


# -- helpers ----------------------------------------------------------------------------------------

_SALT_BYTES: Final = 12
_DIGEST_BYTES: Final = 64
_DEVICE_ID: Final = TypeAdapter[str](DeviceId)
_STATION: Final = TypeAdapter[str](Id)
_POLL_S: Final = 0.02
_START_TIMEOUT_S: Final = 5.0
_RELOAD_TIMEOUT_S: Final = 5.0
_STOP_TIMEOUT_S: Final = 3.0
_STALE_TIMEOUT_S: Final = 2.0
_RELOAD_LINE: Final = "Reloading config."
_LOG_ROTATE_BYTES: Final = 1_048_576
_LOG_TAIL_LINES: Final = 15
_SBIN_DIRS: Final = ("/usr/sbin", "/usr/local/sbin", "/sbin")
_PR_SET_PDEATHSIG: Final = 1
_TCP_LISTEN: Final = "0A"
_MAX_PORT: Final = 65535
_MAX_MQTT_PACKET: Final = 268_435_455
_CONTRACT_PAYLOAD_LIMIT: Final = 65_536


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_config(config: BrokerConfig, files: BrokerFiles) -> None:
    ports = [p for p in (config.port, config.websockets_port, config.tls_port) if p is not None]
    for port in ports:
        if not 0 < port <= _MAX_PORT:
            raise ValueError(f"port {port} is not in 1..{_MAX_PORT}")
    if len(set(ports)) != len(ports):
        raise ValueError("each listener (mqtt, websockets, tls) needs its own port")
    if config.tls_port is not None and (config.tls_certfile is None or config.tls_keyfile is None):
        raise ValueError("the TLS listener needs the server certificate and key")
    if not _CONTRACT_PAYLOAD_LIMIT < config.max_packet_bytes <= _MAX_MQTT_PACKET:
        raise ValueError(
            f"max_packet_bytes must exceed the contract's {_CONTRACT_PAYLOAD_LIMIT} bytes (so the hub can "
            f"answer too_large) and stay within MQTT's {_MAX_MQTT_PACKET}"
        )
    # Mosquitto splits its options on spaces: a path or host with one would be cut short.
    tls_paths = [str(p) for p in (config.tls_certfile, config.tls_keyfile) if p is not None]
    for text in (config.host, str(files.conf.parent), *tls_paths):
        if not text or any(char.isspace() or not char.isprintable() for char in text):
            raise ValueError(f"{text!r} cannot appear in mosquitto.conf (empty, spaces, control characters)")


def _check_users(users: Sequence[BrokerUser]) -> None:
    seen: set[str] = set()
    for user in users:
        name = user.username
        if not name or ":" in name or any(char.isspace() or not char.isprintable() for char in name):
            raise ValueError(f"username {name!r} cannot appear in the password file or ACL")
        if name in seen:
            raise ValueError(f"username {name!r} appears twice")
        seen.add(name)
        if not user.password_hash.startswith("$7$") or "\n" in user.password_hash:
            raise ValueError(f"user {name!r}: password_hash must be a hash_password() result")
        for topic in (*user.publish, *user.subscribe, *user.readwrite):
            if not topic or topic != topic.strip() or not topic.isprintable():
                raise ValueError(f"user {name!r}: topic filter {topic!r} cannot appear in the ACL")


def _write_atomic(path: Path, text: str, mode: int) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            os.fchmod(tmp.fileno(), mode)
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        Path(tmp_name).replace(path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _resolve_executable(executable: str) -> str:
    if os.sep in executable:
        if os.access(executable, os.X_OK):
            return executable
        raise BrokerError(f"{executable} is not an executable file; {INSTALL_HINT}")
    # Debian installs mosquitto in /usr/sbin, which is not on a normal user's PATH.
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *_SBIN_DIRS])
    found = shutil.which(executable, path=search)
    if found is None:
        raise BrokerError(f"{executable} not found on PATH or in {', '.join(_SBIN_DIRS)}; {INSTALL_HINT}")
    return found


@functools.cache
def _prctl() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    prctl: Callable[..., int] | None = getattr(libc, "prctl", None)
    return prctl


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    prctl = _prctl()  # loaded here: the child between fork and exec must not dlopen

    def preexec() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)  # the parent died before the death signal was armed

    return preexec


def _spawn(executable: str, files: BrokerFiles) -> subprocess.Popen[bytes]:
    with files.log.open("ab") as log:  # startup errors printed before logging is set up land there too
        try:
            return subprocess.Popen(  # noqa: S603 - fixed argv: our executable and our own conf file
                [executable, "-c", str(files.conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                cwd=files.conf.parent,
                # The death signal makes the broker die with the hub, even when the hub gets SIGKILL;
                # staying in our session and process group lets a kill of the group reach it as well.
                preexec_fn=_die_with_parent(os.getpid()),  # noqa: PLW1509 - only a prctl and getppid
                start_new_session=False,
            )
        except OSError as exc:
            raise BrokerError(f"cannot run {executable}: {exc}; {INSTALL_HINT}") from exc


async def _wait_exit(proc: subprocess.Popen[bytes], within_s: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while proc.poll() is None:
        if loop.time() > deadline:
            return False
        await asyncio.sleep(_POLL_S / 2)
    return True


async def _end_stale_broker(files: BrokerFiles) -> None:
    """End a mosquitto that an earlier run of ours left running on the same files."""
    try:
        pid = int(files.pid.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return
    if not _is_our_broker(pid, files.conf):
        return  # gone, or the pid now belongs to an unrelated process
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _STALE_TIMEOUT_S
        while _is_our_broker(pid, files.conf):
            if loop.time() > deadline:
                break
            await asyncio.sleep(_POLL_S / 2)
        else:
            return
    raise BrokerError(f"a mosquitto left by an earlier run (pid {pid}) does not exit")


def _is_our_broker(pid: int, conf: Path) -> bool:
    """Tell whether `pid` is a live mosquitto on our conf file (a zombie's cmdline is empty)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return Path(os.fsdecode(argv[0])).name.startswith("mosquitto") and os.fsencode(conf) in argv[1:]


def _listens_on(pid: int, ports: Sequence[int]) -> bool:
    """Tell whether process `pid` holds a listening TCP socket on each of `ports`."""
    inodes: set[str] = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = str(fd.readlink())
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    except OSError:
        return False
    listening: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{pid}/net/{table}").read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == _TCP_LISTEN and fields[9] in inodes:
                listening.add(int(fields[1].rsplit(":", 1)[1], 16))
    return all(port in listening for port in ports)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as log:
            if log.seek(0, os.SEEK_END) < offset:
                offset = 0  # the log was rotated or truncated meanwhile
            log.seek(offset)
            return log.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _log_tail(path: Path) -> str:
    size = _size(path)
    text = _read_from(path, max(0, size - 4096))
    lines = [line for line in text.splitlines() if line.strip()][-_LOG_TAIL_LINES:]
    if not lines:
        return f" (nothing in {path})"
    return f"; last lines of {path}:\n" + "\n".join(lines)


def _rotate_log(path: Path) -> None:
    if _size(path) > _LOG_ROTATE_BYTES:
        path.replace(path.with_name(path.name + ".1"))
