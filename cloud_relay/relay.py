"""The relay: ships the hub's ledger to central, exactly once, and never slows the hub down.

It reads the hub's SQLite file read-only (`mode=ro`, one short read per batch), so selling never
waits for HQ. Its cursor (the last entry central acknowledged) lives in its own file and moves
only after a 2xx. Everything else is a retry:

- network errors, timeouts and 5xx: exponential backoff with jitter, forever;
- 429/503: wait what `Retry-After` says;
- 409: central is missing entries or already has them: resend from its `expected_seq`;
- 413: halve the batch and try again;
- 401/422 (and other 4xx): stop sending, keep the ledger, and say so loudly (log, status file,
  retained `device/relay/status`). Only an operator can fix a bad key or a broken chain.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_never, wait_exponential_jitter

from cloud_relay import state
from cloud_relay.mqtt import CommandError
from cloud_relay.wire import SIGNATURE_HEADER, compress, ledger_path, sign
from hub.contract.types import format_time
from hub.store.db import open_reader
from hub.store.ledger import read_entries, read_head

if TYPE_CHECKING:
    from collections.abc import Callable

    from cloud_relay.config import RelayConfig
    from cloud_relay.mqtt import RelayMqtt

log = logging.getLogger("storehub.relay")
VERSION: Final = "relay-1"
RETRY_AFTER_MAX_S: Final = 600.0


class RelayHaltedError(Exception):
    """Central refused the relay for a reason only an operator can fix (401, 422, ...)."""


class _TransientError(Exception):
    """Worth retrying: network error, timeout, 5xx, 429."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _StoppedError(Exception):
    """The relay was asked to stop while waiting."""


@dataclass(frozen=True, slots=True)
class WireEntry:
    """A ledger entry as read for shipping: its chain fields and its JSON, spliced from the stored row.

    The hub stores `data` as canonical JSON already; re-parsing and re-encoding it for every entry
    cost the relay half its time. Central recomputes every hash, so a bad splice cannot pass.
    """

    seq: int
    epoch: int
    at: str
    prev_hash: str
    hash: str
    json: bytes


@dataclass(slots=True)
class Batch:
    """Entries of one epoch, ready to send."""

    epoch: int
    entries: list[WireEntry]
    body: bytes
    full: bool = False
    """Cut by the entry count, the byte limit or an epoch change: more entries follow at once."""

    @property
    def first_seq(self) -> int:
        """The first entry's seq."""
        return self.entries[0].seq

    @property
    def last_seq(self) -> int:
        """The last entry's seq."""
        return self.entries[-1].seq


@dataclass(slots=True)
class RelayStats:
    """What the relay did since it started (the bench reads these)."""

    batches: int = 0
    entries: int = 0
    retries: int = 0
    conflicts: int = 0
    halvings: int = 0
    batch_latencies: list[float] = field(default_factory=list)


class Relay:
    """One store's relay; `run()` until `stop()`, or `drain()` until central has the whole ledger."""

    def __init__(
        self,
        config: RelayConfig,
        *,
        mqtt: RelayMqtt | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.settings = config.relay
        self.mqtt = mqtt
        self.clock = clock
        self.cursor = state.load_cursor(config.state_dir)
        self._pos = self.cursor
        self.batch_limit = self.settings.batch_entries
        self.last_error: str | None = None
        self.halted: str | None = None
        self.stats = RelayStats()
        self.head_seq = 0
        self._oldest_pending_at: str | None = None
        self._pending_since: float | None = None
        self._stop = asyncio.Event()
        self._last_status = 0.0
        self._client: httpx.AsyncClient | None = None
        self._prefetched: Batch | None = None
        self._next_menu_check = 0.0
        self.menu_etag = state.load_menu_etag(config.state_dir)
        first = self.settings.backoff_initial_s
        self._backoff = wait_exponential_jitter(multiplier=first, max=self.settings.backoff_max_s, jitter=first)

    # -- public API ----------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask `run()` to return (also interrupts a backoff wait)."""
        self._stop.set()

    async def run(self) -> None:
        """Relay until `stop()`; a halt keeps the process up and reporting, sending nothing."""
        async with self._http():
            while not self._stop.is_set():
                await self._maybe_sync_menu()
                if self.halted:
                    await self._publish_status(force=False)
                    await self._sleep(self.settings.status_interval_s)
                    continue
                try:
                    sent = await self.step()
                except _StoppedError:
                    break
                except RelayHaltedError:
                    continue
                except (sqlite3.Error, OSError) as exc:
                    # The hub's file is busy, being restored, or unreadable for a moment: the ledger
                    # is still there, so report it and try again rather than die.
                    self.last_error = f"cannot read the hub's ledger: {exc}"
                    log.warning("cannot read the hub's ledger: %s", exc)
                    await self._publish_status(force=False)
                    await self._sleep(self.settings.backoff_max_s)
                    continue
                if not sent:
                    await self._publish_status(force=False)
                    await self._sleep(self.settings.poll_s)
        await self._publish_status(force=True)

    async def drain(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Send until central has acknowledged the hub's head as it was at the start; returns the acked seq.

        `progress(acked_seq, target_seq)` is called after every batch (the CLI draws a bar with it).
        """
        async with self._http():
            target = (await self._read_head()).seq
            while self.cursor.seq < target:
                if self._stop.is_set():
                    raise RelayHaltedError("stopped before the backlog was drained")
                await self.step(linger=False)
                if self.halted:
                    raise RelayHaltedError(self.halted)
                if progress is not None:
                    progress(self.cursor.seq, target)
        await self._publish_status(force=True)
        return self.cursor.seq

    async def step(self, *, linger: bool = True) -> bool:
        """Send at most one batch; False when there was nothing (yet) to send.

        While a full batch is in flight the next one is read and encoded, so a backlog drains with
        central and the relay working at the same time; it is used only if the batch in flight was
        acknowledged whole.
        """
        batch, self._prefetched = self._prefetched, None
        if batch is None or batch.entries[0].prev_hash != self._pos.hash or batch.first_seq != self._pos.seq + 1:
            batch = await self._next_batch(linger=linger)
        if batch is None:
            return False
        prefetch = None
        if batch.full:
            prefetch = asyncio.create_task(self._read_after(batch))
        try:
            await self._deliver(batch)
        finally:
            if prefetch is not None:
                following = await prefetch
                if self._pos.seq == batch.last_seq and self._pos.hash == batch.entries[-1].hash:
                    self._prefetched = following
        return True

    async def _read_after(self, batch: Batch) -> Batch | None:
        async with open_reader(self.config.database) as conn:
            entries = await read_wire_entries(conn, batch.last_seq, self.batch_limit)
        if len(entries) < self.batch_limit:
            return None  # a short batch waits for the linger rule
        return self._build(entries)

    def status(self) -> dict[str, Any]:
        """The retained `device/relay/status` payload (also written to the status file)."""
        now = self.clock()
        lag = 0.0
        if self._oldest_pending_at is not None and self.head_seq > self.cursor.seq:
            pending = datetime.strptime(self._oldest_pending_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            lag = max(0.0, now - pending.timestamp())
        return {
            "state": "online",
            "kind": "relay",
            "fw": VERSION,
            "caps": [],
            "store": self.config.store_id,
            "central": self.settings.central_url,
            "epoch": self.cursor.epoch,
            "cursor": self.cursor.seq,
            "head": self.head_seq,
            "backlog": max(0, self.head_seq - self.cursor.seq),
            "lag_s": round(lag, 3),
            "last_error": self.last_error,
            "halted": self.halted is not None,
            "updated_at": format_time(datetime.fromtimestamp(now, UTC)),
        }

    # -- reading the hub's ledger ------------------------------------------------------------------
    async def _read_head(self) -> Any:
        async with open_reader(self.config.database) as conn:
            head = await read_head(conn)
        self.head_seq = head.seq
        return head

    async def _next_batch(self, *, linger: bool) -> Batch | None:
        if not self.config.database.exists():
            self.last_error = f"no hub database at {self.config.database} yet"
            return None
        async with open_reader(self.config.database) as conn:
            await self._check_position(conn)
            entries = await read_wire_entries(conn, self._pos.seq, self.batch_limit)
            head = await read_head(conn)
        self.head_seq = head.seq
        if not entries:
            self._pending_since = None
            self._oldest_pending_at = None
            return None
        self._oldest_pending_at = entries[0].at
        if linger and len(entries) < self.batch_limit and self.settings.linger_s > 0:
            now = time.monotonic()
            if self._pending_since is None:
                self._pending_since = now
            if now - self._pending_since < self.settings.linger_s:
                return None
        self._pending_since = None
        return self._build(entries)

    async def _check_position(self, conn: Any) -> None:
        """Rewind when the hub's ledger no longer holds the entry we stand on (restored from backup)."""
        if self._pos.seq == 0:
            return
        found = await read_entries(conn, self._pos.seq - 1, 1)
        if found and found[0].seq == self._pos.seq and found[0].hash == self._pos.hash:
            return
        log.warning(
            "the hub's ledger no longer holds the entry the relay stood on (restored?); resending from the start",
            extra={"seq": self._pos.seq},
        )
        self._pos = state.Cursor()

    def _build(self, entries: list[WireEntry]) -> Batch:
        epoch = entries[0].epoch
        parts: list[bytes] = []
        size = 0
        kept: list[WireEntry] = []
        for entry in entries:
            if entry.epoch != epoch:
                break
            part = entry.json
            if kept and size + len(part) > self.settings.batch_bytes:
                break
            kept.append(entry)
            parts.append(part)
            size += len(part) + 1
        header = {
            "store": self.config.store_id,
            "epoch": epoch,
            "batch_id": f"{self.config.store_id}-{epoch}-{kept[0].seq}-{kept[-1].seq}",
            "first_seq": kept[0].seq,
            "last_seq": kept[-1].seq,
            "prev_hash": kept[0].prev_hash,
            "last_hash": kept[-1].hash,
        }
        head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        raw = head[:-1] + b',"entries":[' + b",".join(parts) + b"]}"
        full = len(kept) < len(entries) or len(entries) >= self.batch_limit
        return Batch(epoch=epoch, entries=kept, body=compress(raw), full=full)

    # -- sending -----------------------------------------------------------------------------------
    async def _deliver(self, batch: Batch) -> None:
        started = time.monotonic()
        response = await self._post_with_retries(batch)
        code = response.status_code
        if 200 <= code < 300:  # noqa: PLR2004
            self.stats.batch_latencies.append(time.monotonic() - started)
            await self._acked(batch, response)
        elif code == httpx.codes.CONFLICT:
            await self._conflict(batch, response)
        elif code == httpx.codes.REQUEST_ENTITY_TOO_LARGE:
            if len(batch.entries) == 1:
                await self._halt(f"central refuses even a single entry as too large (seq {batch.first_seq})")
            self.batch_limit = max(1, len(batch.entries) // 2)
            self.stats.halvings += 1
            log.warning("central said 413: halving the batch", extra={"batch_entries": self.batch_limit})
        else:
            detail = _detail(response)
            await self._halt(f"central refused seq {batch.first_seq}-{batch.last_seq} with {code}: {detail}")

    async def _post_with_retries(self, batch: Batch) -> httpx.Response:
        assert self._client is not None  # noqa: S101 - set by _http() around every caller
        url = self.settings.central_url + ledger_path(self.config.store_id)
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Authorization": f"Bearer {self.config.store_key}",
            SIGNATURE_HEADER: sign(self.config.secret, batch.body),
        }
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_TransientError),
            wait=self._wait,
            stop=stop_never,
            sleep=self._sleep_or_stop,
            before_sleep=self._note_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                try:
                    response = await self._client.post(url, content=batch.body, headers=headers)
                except httpx.TransportError as exc:
                    raise _TransientError(f"{type(exc).__name__}: {exc}") from exc
                code = response.status_code
                if code >= 500 or code == httpx.codes.TOO_MANY_REQUESTS:  # noqa: PLR2004
                    raise _TransientError(f"central answered {code}: {_detail(response)}", _retry_after(response))
                return response
        raise AssertionError("unreachable: tenacity retries forever")  # pragma: no cover

    def _wait(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, _TransientError) and exc.retry_after is not None:
            return exc.retry_after
        return float(self._backoff(retry_state))

    async def _note_retry(self, retry_state: RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        self.stats.retries += 1
        self.last_error = str(exc)
        log.warning("central unreachable, retrying", extra={"attempt": retry_state.attempt_number, "error": str(exc)})
        await self._publish_status(force=False)

    async def _acked(self, batch: Batch, response: httpx.Response) -> None:
        try:
            acked = int(response.json()["acked_seq"])
        except (ValueError, KeyError, TypeError):
            await self._halt(f"central answered 2xx without a valid acked_seq: {_detail(response)}")
        if not batch.first_seq - 1 <= acked <= batch.last_seq:
            await self._halt(f"central acked seq {acked}, outside the batch {batch.first_seq}-{batch.last_seq}")
        if acked >= batch.first_seq:
            entry = batch.entries[acked - batch.first_seq]
            self.cursor = state.Cursor(epoch=entry.epoch, seq=entry.seq, hash=entry.hash)
            state.save_cursor(self.config.state_dir, self.cursor)
        self._pos = self.cursor
        self.stats.batches += 1
        self.stats.entries += acked - batch.first_seq + 1
        self.last_error = None
        if self.batch_limit < self.settings.batch_entries:
            self.batch_limit = min(self.settings.batch_entries, self.batch_limit * 2)
        await self._publish_status(force=False)

    async def _conflict(self, batch: Batch, response: httpx.Response) -> None:
        try:
            expected = int(response.json()["expected_seq"])
        except (ValueError, KeyError, TypeError):
            await self._halt(f"central answered 409 without expected_seq: {_detail(response)}")
        self.stats.conflicts += 1
        log.warning("central expects another seq", extra={"sent": batch.first_seq, "expected_seq": expected})
        if expected <= 1:
            self._pos = state.Cursor()
            return
        async with open_reader(self.config.database) as conn:
            found = await read_entries(conn, expected - 2, 1)
        if not found or found[0].seq != expected - 1:
            await self._halt(f"central expects seq {expected} but this hub's ledger ends before {expected - 1}")
        self._pos = state.Cursor(epoch=found[0].epoch, seq=found[0].seq, hash=found[0].hash)

    async def _halt(self, reason: str) -> None:
        self.halted = reason
        self.last_error = reason
        log.error("RELAY STOPPED SENDING: %s", reason, extra={"store": self.config.store_id})
        await self._publish_status(force=True)
        raise RelayHaltedError(reason)

    # -- menus from HQ ------------------------------------------------------------------------------
    async def _maybe_sync_menu(self) -> None:
        now = time.monotonic()
        if self.mqtt is None or now < self._next_menu_check:
            return
        self._next_menu_check = now + self.settings.menu_poll_s
        try:
            await self.sync_menu()
        except (httpx.HTTPError, CommandError, ValueError) as exc:
            self.last_error = f"menu from HQ not delivered: {exc}"
            log.warning("menu from HQ not delivered: %s", exc)

    async def sync_menu(self) -> str | None:
        """Fetch HQ's menu (ETag) and hand a new one to the hub as `menu.publish`; returns the applied ETag."""
        assert self._client is not None  # noqa: S101 - called from run()
        assert self.mqtt is not None  # noqa: S101
        headers = {"Authorization": f"Bearer {self.config.store_key}"}
        if self.menu_etag:
            headers["If-None-Match"] = self.menu_etag
        url = self.settings.central_url + f"/v1/stores/{self.config.store_id}/menu"
        response = await self._client.get(url, headers=headers)
        if response.status_code in (httpx.codes.NOT_MODIFIED, httpx.codes.NOT_FOUND):
            return None
        response.raise_for_status()
        etag = str(response.headers.get("ETag", ""))
        menu = response.json()
        cmd_id = "menu-" + hashlib.sha256(etag.encode("utf-8")).hexdigest()[:24]
        reply = await self.mqtt.command(cmd_id, "menu.publish", menu, wait_s=self.settings.timeout_s)
        if not reply.get("ok"):
            error = reply.get("error") or {}
            raise ValueError(
                f"the hub refused menu {menu.get('version')!r}: {error.get('code')}: {error.get('message')}"
            )
        state.save_menu_etag(self.config.state_dir, etag)
        self.menu_etag = etag
        log.info("HQ menu handed to the hub", extra={"version": menu.get("version"), "etag": etag})
        return etag

    # -- plumbing ----------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _http(self) -> Any:
        timeout = httpx.Timeout(self.settings.timeout_s, connect=min(5.0, self.settings.timeout_s))
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            self._client = client
            try:
                yield client
            finally:
                self._client = None

    async def _publish_status(self, *, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_status < self.settings.status_interval_s:
            return
        self._last_status = now
        payload = self.status()
        await asyncio.to_thread(state.save_status, self.config.state_dir, payload)
        if self.mqtt is not None:
            self.mqtt.publish_status(payload)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def _sleep_or_stop(self, seconds: float) -> None:
        await self._sleep(seconds)
        if self._stop.is_set():
            raise _StoppedError


_WIRE_JSON: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # built once, not per entry


async def read_wire_entries(conn: Any, after_seq: int, limit: int) -> list[WireEntry]:
    """Up to `limit` entries above `after_seq` (one short read), with their contract JSON."""
    async with conn.execute(
        "SELECT seq, epoch, at, type, actor, device, cmd, data, prev_hash, hash FROM ledger "
        "WHERE seq > ? ORDER BY seq LIMIT ?",
        (after_seq, limit),
    ) as cursor:
        rows = await cursor.fetchall()
    out: list[WireEntry] = []
    for seq, epoch, at, type_, actor, device, cmd, data, prev_hash, digest in rows:
        fields = {
            "seq": seq, "epoch": epoch, "at": at, "type": type_, "actor": actor, "device": device, "cmd": cmd,
            "prev_hash": prev_hash, "hash": digest,
        }  # fmt: skip
        head = _WIRE_JSON.encode(fields)
        out.append(WireEntry(seq, epoch, at, prev_hash, digest, f'{head[:-1]},"data":{data}}}'.encode()))
    return out


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return min(RETRY_AFTER_MAX_S, max(0.0, float(value)))
    except ValueError:
        return None


def _detail(response: httpx.Response) -> str:
    text = response.text[:300]
    try:
        body = response.json()
    except ValueError:
        return text or response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])
    return text
