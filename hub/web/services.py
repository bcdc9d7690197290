"""What the manager page needs from the running hub, in one small object (no import of hub.app).

    services = WebServices(engine, loaded, codes, describe=hub.describe)
    engine.attach(services.feed.tee(bus))    # every committed message also wakes the live pages

The web is a device of its own, `web` (kind `tablet`): everything it does goes through
`Engine.execute` as a contract command with the logged-in employee's staff token, so the same
rules, the same ledger and the same idempotency apply as for a tablet. Operator-only commands
(staff and device administration, test pages, reroutes) go through `Engine.admin` on behalf of the
logged-in manager, who is then the ledger's actor.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import secrets
import sqlite3
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from devices.registry import Offer
from hub.contract.envelopes import Reply, encode_command
from hub.contract.types import format_time, parse_time
from hub.store.webstate import SqliteWebState, StoredCode

if TYPE_CHECKING:
    from collections.abc import Callable

    from devices.registry import PairingCodes
    from hub.config import LoadedConfig
    from hub.engine import Engine, Publisher

log = logging.getLogger("storehub.web")

WEB_DEVICE: Final = "web"
"""The manager page's device id: its commands arrive as `cmd/web` would, and are ledgered with it."""
WEB_KIND: Final = "tablet"
"""Its device kind: no device privileges, so every action needs a staff session (the manager's)."""


@dataclass(slots=True)
class Change:
    """What woke the live pages: the newest ledger seq seen and when (wall clock, ms) it was committed."""

    seq: int
    committed_ms: float
    topic: str


class LiveFeed:
    """Fan-out of "something changed" to every open live page (SSE), coalescing bursts."""

    def __init__(self) -> None:
        self._listeners: set[asyncio.Queue[Change]] = set()
        self.last = Change(0, time.time() * 1000, "")
        self.refusal: tuple[str, str, float] | None = None
        """The last write refusal (`storage_full`/`clock_invalid`) any device was told, until a write succeeds."""

    def tee(self, inner: Publisher) -> Publisher:
        """A publisher that hands each message to `inner` and then wakes the live pages."""
        return _TeePublisher(inner, self)

    def notify(self, topic: str, seq: int | None = None) -> None:
        """A committed message (or a presence change) was published."""
        change = Change(seq if seq is not None else self.last.seq, time.time() * 1000, topic)
        self.last = change
        for queue in self._listeners:
            if queue.empty():
                queue.put_nowait(change)
            else:  # a refresh is already pending: let it carry the newest change
                queue.get_nowait()
                queue.put_nowait(change)

    def close(self) -> None:
        """The hub is stopping: every live page ends its stream (browsers reconnect to the next hub)."""
        for queue in self._listeners:
            if not queue.empty():
                queue.get_nowait()
            queue.put_nowait(Change(-1, time.time() * 1000, ""))

    def listen(self) -> asyncio.Queue[Change]:
        """A queue that receives (coalesced) changes until `forget`."""
        queue: asyncio.Queue[Change] = asyncio.Queue(maxsize=1)
        self._listeners.add(queue)
        return queue

    def forget(self, queue: asyncio.Queue[Change]) -> None:
        """Stop delivering to a queue."""
        self._listeners.discard(queue)

    @property
    def listeners(self) -> int:
        """How many live pages are open."""
        return len(self._listeners)


class _TeePublisher:
    def __init__(self, inner: Publisher, feed: LiveFeed) -> None:
        self._inner = inner
        self._feed = feed

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> asyncio.Future[None]:
        future = self._inner.publish(topic, payload, qos=qos, retain=retain)
        seq = _seq_of(topic, payload)
        if seq is not None:
            self._feed.refusal = None  # a write went through
        elif "/reply/" in topic:
            for code in _REFUSALS:
                if code in payload:
                    name = code.decode().strip('"')
                    self._feed.refusal = (name, f"The hub refused a device's write with {name}", time.time())
                    self._feed.notify(topic)
        if seq is not None or "/state/" in topic:
            self._feed.notify(topic, seq)
        return future


_REFUSALS: Final = (b'"storage_full"', b'"clock_invalid"')


def _seq_of(topic: str, payload: bytes) -> int | None:
    """The `seq` of an event envelope (cheap: it is always near the front), else None."""
    if "/event/" not in topic:
        return None
    head = payload[:64]
    start = head.find(b'"seq":')
    if start < 0:
        return None
    digits = bytearray()
    for byte in head[start + 6 :]:
        if 48 <= byte <= 57:  # noqa: PLR2004 - ASCII digits
            digits.append(byte)
        else:
            break
    return int(digits) if digits else None


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """What a device needs to reach the broker over TLS: the store CA and the TLS listener."""

    host: str
    port: int
    ca_pem: str

    @property
    def ca_sha256(self) -> str:
        """The CA certificate's SHA-256 fingerprint, shown with pairing codes so a device can check the CA it gets."""
        der = ssl.PEM_cert_to_DER_cert(self.ca_pem)
        digest = hashlib.sha256(der).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


class PrintDesk(Protocol):
    """What the page uses of the hub's print service (`hub.printing.PrintService`)."""

    def describe(self) -> list[dict[str, Any]]:
        """Every printer's state."""
        ...

    def discovered(self) -> list[dict[str, Any]]:
        """Printers found on the network, with the configured printer each one is (or None)."""
        ...

    async def preview(self, job_id: str, printer: str | None = None) -> bytes:
        """A PNG of a job as its printer renders it; KeyError for an unknown job."""
        ...


def _no_printing() -> PrintDesk | None:
    return None


@dataclass
class WebServices:
    """The running hub as the web app sees it."""

    engine: Engine
    loaded: LoadedConfig
    codes: PairingCodes
    describe: Callable[[], dict[str, Any]]
    feed: LiveFeed = field(default_factory=LiveFeed)
    tls: TlsInfo | None = None
    printing: Callable[[], PrintDesk | None] = _no_printing
    """The print service once the hub started it (None on a hub without printing)."""
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _prefix: str = field(default_factory=lambda: f"w-{secrets.token_hex(4)}-")
    webstate: SqliteWebState = field(init=False)
    """The page's sessions and pairing codes in the hub database."""

    def __post_init__(self) -> None:
        self.webstate = SqliteWebState(self.engine.db)

    async def restore_codes(self) -> int:
        """Take back the pairing codes stored before a restart; returns how many are still open."""
        rows = await self.webstate.load_codes(format_time(self.engine.clock()))
        offers = [
            Offer(
                "",
                parse_time(r.expires_at),
                r.kind,
                r.stations,
                r.issued_by,
                state=r.state,
                device_id=r.device_id,
                issued_at=parse_time(r.issued_at),
                hash=r.code_hash,
            )
            for r in rows
        ]
        self.codes.restore(offers)
        return sum(1 for o in offers if o.state == "open")

    async def keep_code(self, offer: Offer) -> None:
        """Store a pairing code as issued or used, so it outlives a restart (a failed write only logs)."""
        issued = offer.issued_at or self.engine.clock()
        row = StoredCode(
            code_hash=offer.hash,
            kind=offer.kind,
            stations=tuple(offer.stations),
            issued_by=offer.issued_by,
            state="used" if offer.state == "used" else "open",
            device_id=offer.device_id if offer.state == "used" else None,
            issued_at=format_time(issued),
            expires_at=format_time(offer.expires_at),
        )
        try:
            await self.webstate.save_code(row)
        except sqlite3.Error:
            log.warning("could not store a pairing code; it lasts until the hub restarts", exc_info=True)

    def new_cmd_id(self) -> str:
        """A fresh command id for the web device (unique across hub restarts)."""
        return f"{self._prefix}{next(self._ids)}"

    async def command(
        self,
        type_: str,
        body: dict[str, Any],
        *,
        token: str | None,
        approve: dict[str, Any] | None = None,
        cmd_id: str | None = None,
    ) -> Reply:
        """Run a contract command as the web device with a staff token; the reply once durable."""
        device = self.engine.state.devices.get(WEB_DEVICE)
        if device is None or not device.active:  # revoked by hand (`storehub device revoke web`): the hub owns it
            await ensure_web_device(self.engine)
        payload = encode_command(cmd_id or self.new_cmd_id(), type_, body, auth=token, approve=approve)
        return await self.engine.execute(WEB_DEVICE, payload)

    async def admin(self, type_: str, body: dict[str, Any], *, actor: str | None) -> Reply:
        """Run an operator command (staff, devices, print queue) on behalf of the manager `actor`.

        The caller checked for a manager session; the domain checks again that `actor` is an active
        manager, and the ledger names them as the actor (device `admin`).
        """
        return await self.engine.admin(type_, body, actor=actor)


async def ensure_web_device(engine: Engine) -> None:
    """Register the `web` device once (and again if someone revoked it), so its commands are admitted."""
    device = engine.state.devices.get(WEB_DEVICE)
    if device is not None and device.active:
        return
    reply = await engine.admin("device.add", {"device_id": WEB_DEVICE, "kind": WEB_KIND, "stations": []})
    if not reply.ok and reply.error is not None:
        raise RuntimeError(f"cannot register the web device: {reply.error.code}: {reply.error.message}")
