"""The single writer: commands in, durable replies and events out.

A command's path: decode with `hub.contract` → idempotency check on (device, id) → `hub.domain`
decides → its events are chained into the ledger, applied to the in-memory state and to the
projections, the KDS messages are written to the outbox and the command's reply is remembered —
all in ONE SQLite transaction per batch of commands (group commit) — then everything is published.
A reply with `ok: true` therefore means durable.

Nothing committed is left unpublished, and little is written twice to get there:
- events are the ledger itself: a `published_seq` cursor (meta) follows the broker's PUBACKs, and
  after a restart or a reconnect every entry above it is published again from the ledger;
- KDS messages carry per-station `prev` numbers that cannot be rebuilt, so they go through the outbox;
- retained `state/…` is republished from the state on every connect;
- a reply lost in a crash is answered again from `processed_commands` when the device re-sends
  its command (devices re-send with the same id until they get a reply).
Delivery is at-least-once; clients dedupe events by `seq`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import sqlite3
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

from pydantic import BaseModel, ValidationError

from hub import domain
from hub.broker import hash_password, new_password
from hub.contract.commands import COMMANDS, READ_ONLY_COMMANDS
from hub.contract.envelopes import (
    ApprovePin,
    By,
    CommandEnvelope,
    ContractViolation,
    EventEnvelope,
    Reply,
    decode_command,
    encode,
)
from hub.contract.errors import NOT_REMEMBERED, ErrorCode
from hub.contract.kds import KdsMessage, KdsTicket
from hub.contract.topics import Topics
from hub.contract.types import format_time, parse_time
from hub.store import projections
from hub.store.db import Database, Writes, is_storage_full
from hub.store.ledger import INSERT_SQL, Head, LedgerEntry, canonical_json, make_entry, read_entries, read_head

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence

log = logging.getLogger("storehub.engine")

MAX_BATCH: Final = 256
ADMIN_DEVICE: Final = "admin"
"""The local operator (CLI over the control socket, config bootstrap): acts with manager rights."""
MAX_LATENCY_SAMPLES: Final = 20_000
RESERVED_DEVICE_IDS: Final = frozenset({"hub", ADMIN_DEVICE})
SETTLED_IN_MEMORY: Final = timedelta(days=2)
"""How long closed and voided tickets stay in memory; older ones are read back from disk when referenced."""
REPUBLISH_ROUND: Final = 10_000
"""Messages re-sent per round on a reconnect; the next round waits for this one's PUBACKs. MQTT
packet ids are 16 bits: more than 65,535 QoS 1 messages in flight at once would reuse ids. A backlog
of one round goes out at once, ahead of anything new; with more, new events can overtake the later
rounds, and clients fill the gap they see with `sync` (as after any gap)."""
KDS_STREAM_SQL: Final = (
    "INSERT INTO kds_streams (station, last_seq) VALUES (?, ?) "
    "ON CONFLICT(station) DO UPDATE SET last_seq = excluded.last_seq"
)
PROCESSED_SQL: Final = (
    "INSERT OR REPLACE INTO processed_commands (device, cmd_id, type, body_hash, reply, at) VALUES (?, ?, ?, ?, ?, ?)"
)
OUTBOX_SQL: Final = "INSERT INTO outbox (id, topic, payload, qos, retain) VALUES (?, ?, ?, ?, ?)"
META_SQL: Final = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
SECRET_SQL: Final = {
    "staff_pins": "INSERT OR REPLACE INTO staff_pins (employee_id, pin_hash) VALUES (?, ?)",
    "device_credentials": "INSERT OR REPLACE INTO device_credentials (device_id, password_hash) VALUES (?, ?)",
}


class Publisher(Protocol):
    """Where committed messages go (the MQTT bus)."""

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> asyncio.Future[None]:
        """Hand a message to the broker; the future completes when the broker acknowledged it."""
        ...


class CommitHook(Protocol):
    """Rows to write in the same transaction as a batch's ledger entries, and news once committed.

    The print queue is one: its jobs are written with the `print.queued` events that cause them.
    """

    def writes(self, entries: Sequence[LedgerEntry]) -> Writes:
        """Statements for the batch's transaction (called while it is being assembled)."""
        ...

    def committed(self, entries: Sequence[LedgerEntry]) -> None:
        """The batch is durable (called before its replies are published)."""
        ...


@dataclass(slots=True)
class OutMessage:
    """A message for the broker.

    `seq` marks a ledger event (its delivery advances the published cursor); `durable` ones get an
    outbox row (`outbox_id`) in the batch's transaction; the rest can be rebuilt and are only published.
    """

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    outbox_id: int | None = None
    seq: int | None = None
    durable: bool = False


@dataclass(slots=True)
class Submission:
    """One command as it arrived: raw bytes from MQTT, or a typed admin command from the hub itself."""

    device_id: str
    payload: bytes | None = None
    admin_type: str | None = None
    admin_body: dict[str, Any] | None = None
    secret: str | None = None
    future: asyncio.Future[Reply] | None = None
    received: float = field(default_factory=time.perf_counter)


@dataclass(slots=True)
class _Pending:
    """A command inside the batch being built."""

    sub: Submission
    cmd_id: str | None
    type: str = ""
    body: BaseModel | None = None
    envelope: CommandEnvelope | None = None
    body_hash: str = ""
    reply: Reply | None = None
    remember: bool = False
    entries: list[LedgerEntry] = field(default_factory=list)
    copy_of_pending: bool = False
    secret_rows: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass(slots=True)
class _Staged:
    """A decided batch: in memory already, waiting for its transaction."""

    pendings: list[_Pending]
    outbox: list[OutMessage]
    touched: set[domain.EntityRef]
    syncs: list[_Pending]
    writes: Writes
    acked: list[int]
    head: Head
    generation: int
    size: int
    cursor: int | None
    """The published cursor this transaction saves, if it saves one."""
    commit: asyncio.Future[None] | None = None
    """Its transaction, once handed to the writer's thread."""


class Engine:
    """The hub's single writer over the store database."""

    def __init__(
        self,
        db: Database,
        settings: domain.StoreSettings,
        *,
        clock: Callable[[], datetime] | None = None,
        retention_days: int = 7,
        on_devices_changed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.topics = Topics(settings.store_id)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.retention = timedelta(days=retention_days)
        self.on_devices_changed = on_devices_changed
        self.publisher: Publisher | None = None
        self.state = domain.StoreState.empty()
        self.head = Head(0, "", None)
        self.epoch = 1
        self.pin_hashes: dict[str, str] = {}
        self.kds_last: dict[str, int] = {}
        self.presence: dict[str, dict[str, Any]] = {}
        self._queue: asyncio.Queue[Submission] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._lookup = sqlite3.connect(f"file:{db.path}?mode=ro", uri=True, check_same_thread=False)
        self._acked_outbox: list[int] = []
        self.published_seq = 0
        """Every ledger event up to here reached the broker (PUBACK); above it they are published again."""
        self._saved_published_seq = 0
        self._planned_cursor: int | None = None
        self._acked_seqs: set[int] = set()
        self._next_outbox_id = 1
        self._last_retained: dict[str, bytes] = {}
        self._batch_lock = asyncio.Lock()
        """Held while a batch is decided (and while the state is reloaded): one writer of the state at a time."""
        self._generation = 0
        """Bumped by every reload: a batch decided on an older generation is stale and never committed."""
        self._inflight: asyncio.Task[None] | None = None
        """The batch being committed and delivered while the next one is decided (a pipeline of depth one)."""
        self._staged = False
        """A batch is decided and waits for the one in flight: its changes are in memory, not yet on disk."""
        self._uncommitted: dict[tuple[str, str], _Pending] = {}
        """(device, id) of commands decided but not yet committed, so a copy in the next batch is caught."""
        self._failure: Exception | None = None
        self.committed_head = Head(0, "", None)
        self._pruned_at = 0.0
        self.stats = EngineStats()
        self.hooks: list[CommitHook] = []
        self.republish_round = REPUBLISH_ROUND

    # -- lifecycle --------------------------------------------------------------------------
    async def load(self) -> None:
        """Load state, head, epoch, secrets and KDS stream positions from the database."""
        conn = self.db.writer
        self._last_retained.clear()  # what the broker holds is unknown now: republish on the next change
        self.state = await projections.load_state(conn, settled_before=self._settled_cutoff())
        self.head = await read_head(conn)
        self.committed_head = self.head
        self.epoch = int(await _meta(conn, "epoch", "1"))
        async with conn.execute("SELECT employee_id, pin_hash FROM staff_pins") as cursor:
            self.pin_hashes = {row[0]: row[1] async for row in cursor}
        async with conn.execute("SELECT station, last_seq FROM kds_streams") as cursor:
            self.kds_last = {row[0]: int(row[1]) async for row in cursor}
        async with conn.execute("SELECT COALESCE(MAX(id), 0) FROM outbox") as cursor:
            row = await cursor.fetchone()
        self._next_outbox_id = (int(row[0]) if row else 0) + 1
        saved = await _meta(conn, "published_seq", "")
        if not saved:
            # A new database, or one from before the cursor, whose events went through the outbox.
            saved = str(self.head.seq)
            await self.db.transaction([(META_SQL, [("published_seq", saved)])])
        self.published_seq = int(saved)
        self._saved_published_seq = self.published_seq
        self._acked_seqs.clear()

    def _settled_cutoff(self) -> str:
        return format_time(self.clock() - SETTLED_IN_MEMORY)

    def _recall_ticket(self, body: BaseModel | None) -> None:
        """Bring a settled ticket that was left on disk back into memory before a command about it."""
        ticket_id = getattr(body, "ticket_id", None)
        if not isinstance(ticket_id, str) or ticket_id in self.state.tickets:
            return
        row = self._lookup.execute("SELECT doc FROM p_tickets WHERE ticket_id = ?", (ticket_id,)).fetchone()
        if row is not None:
            self.state.tickets[ticket_id] = domain.model.Ticket.model_validate_json(row[0])

    def evict_settled(self) -> int:
        """Drop tickets settled long ago from memory (they stay in the database and come back on demand)."""
        cutoff = self.clock() - SETTLED_IN_MEMORY
        in_use = {tid for table in self.state.tables.values() for tid in table.ticket_ids}
        stale = [
            tid
            for tid, ticket in self.state.tickets.items()
            if ticket.status in ("closed", "voided")
            and (ticket.closed_at or ticket.opened_at) < cutoff
            and tid not in in_use
        ]
        for tid in stale:
            del self.state.tickets[tid]
        return len(stale)

    def start(self) -> None:
        """Start consuming commands."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="engine")

    async def stop(self) -> None:
        """Finish the batch in hand and stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._drain()
        self._lookup.close()

    # -- intake -----------------------------------------------------------------------------
    def submit(self, device_id: str, payload: bytes) -> None:
        """Queue a raw command from `cmd/{device_id}` (called on the event loop by the bus)."""
        self._queue.put_nowait(Submission(device_id=device_id, payload=payload))

    async def execute(self, device_id: str, payload: bytes) -> Reply:
        """Queue a raw command and wait for its reply (tests, the control socket)."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Submission(device_id=device_id, payload=payload, future=future))
        return await future

    async def admin(
        self, type_: str, body: dict[str, Any], *, secret: str | None = None, actor: str | None = None
    ) -> Reply:
        """Run a command as the local operator (config bootstrap, the CLI's control socket).

        `actor`: the manager on whose behalf it runs (the manager page); the domain checks they are
        an active manager and ledgers them as the actor instead of `admin`.
        """
        if actor is not None:
            body = {**body, "actor": actor}
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(
            Submission(device_id=ADMIN_DEVICE, admin_type=type_, admin_body=body, secret=secret, future=future)
        )
        return await future

    def note_device_status(self, device_id: str, status: dict[str, Any]) -> None:
        """Track presence from `device/{id}/status`: a birth always wins; a stale LWT is ignored."""
        sess = status.get("sess")
        state = status.get("state")
        if not isinstance(sess, int) or isinstance(sess, bool) or state not in ("online", "offline"):
            log.warning("ignoring a malformed status of device %s", device_id, extra={"device": device_id})
            return
        current = self.presence.get(device_id)
        stale = current is not None and current["state"] == "online" and sess < current["sess"]
        if state == "offline" and stale:
            return
        self.presence[device_id] = {**status, "since": format_time(self.clock())}

    # -- publishing -------------------------------------------------------------------------
    def attach(self, publisher: Publisher | None) -> None:
        """Set (or clear) where messages are published."""
        self.publisher = publisher

    async def republish(self) -> None:
        """On every (re)connect: retained state, the events the broker has not acknowledged, the outbox.

        Events and outbox rows go in rounds of `republish_round`, each round once the broker has
        acknowledged the one before; if the connection drops meanwhile, the next connect starts over
        from the published cursor.
        """
        async with self._quiet():
            for message in self.retained_messages():
                self._last_retained[message.topic] = message.payload
                self._publish(message)
            self._acked_seqs.clear()  # what was in flight on the old connection is sent again below
            after, upto = self.published_seq, self.head.seq
            async with self.db.writer.execute(
                "SELECT id, topic, payload, qos, retain FROM outbox ORDER BY id"
            ) as cursor:
                rows = await cursor.fetchall()
        if upto > after:
            log.info("publishing %d events the broker had not acknowledged", upto - after)
        while after < upto:
            entries = await read_entries(self.db.writer, after, min(self.republish_round, upto - after))
            if not entries:
                break
            after = entries[-1].seq
            if not await self._publish_round([_event_out(self.topics, e) for e in entries]):
                return
        outbox = [OutMessage(r[1], bytes(r[2]), int(r[3]), bool(r[4]), int(r[0]), durable=True) for r in rows]
        for start in range(0, len(outbox), self.republish_round):
            if not await self._publish_round(outbox[start : start + self.republish_round]):
                return

    async def _publish_round(self, messages: Sequence[OutMessage]) -> bool:
        """Publish `messages` and wait for every PUBACK. False: the connection dropped."""
        acks = [ack for message in messages if (ack := self._publish(message)) is not None]
        done = await asyncio.gather(*acks, return_exceptions=True)
        return not any(isinstance(result, BaseException) for result in done)

    def retained_messages(self) -> list[OutMessage]:
        """Every retained `state/…` message from the current state."""
        kinds = ("shift", "availability", "staff", "menu")
        return [m for kind in kinds if (m := self._retained(kind)) is not None]

    def _retained(self, kind: str) -> OutMessage | None:
        if kind == "shift":
            return _json_out(self.topics.state_shift(), domain.shift_summary(self.state), retain=True)
        if kind == "availability":
            return _json_out(self.topics.state_availability(), domain.availability_board(self.state), retain=True)
        if kind == "staff":
            return _json_out(self.topics.state_staff(), domain.staff_list(self.state), retain=True)
        if kind == "menu":
            menu = domain.menu_payload(self.state)
            return None if menu is None else _json_out(self.topics.state_menu(), menu, retain=True)
        return None

    def _changed_retained(self, touched: set[domain.EntityRef]) -> list[OutMessage]:
        """Retained `state/…` messages whose payload this batch changed (the shift summary is checked always)."""
        out = []
        for kind in _retained_kinds(touched):
            message = self._retained(kind)
            if message is not None and self._last_retained.get(message.topic) != message.payload:
                self._last_retained[message.topic] = message.payload
                out.append(message)
        return out

    def _publish(self, message: OutMessage) -> asyncio.Future[None] | None:
        if self.publisher is None:
            return None
        acked = self.publisher.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        if message.outbox_id is not None or message.seq is not None:  # replies and state need no receipt
            acked.add_done_callback(lambda f: self._note_acked(f, message))
        return acked

    def _note_acked(self, future: asyncio.Future[None], message: OutMessage) -> None:
        """A PUBACK (or a lost connection): what was delivered leaves the outbox / moves the cursor."""
        if future.cancelled() or future.exception() is not None:
            return  # published again on the next connect
        if message.outbox_id is not None:
            self._acked_outbox.append(message.outbox_id)
        elif message.seq is not None:
            self._note_event_acked(message.seq)

    def _note_event_acked(self, seq: int) -> None:
        if seq <= self.published_seq:
            return
        self._acked_seqs.add(seq)
        while self.published_seq + 1 in self._acked_seqs:  # the cursor only moves over a gap-free run
            self.published_seq += 1
            self._acked_seqs.discard(self.published_seq)

    def _cursor_writes(self) -> Writes:
        """The published cursor's row, when it moved since it was last saved."""
        if self.published_seq == self._saved_published_seq:
            return []
        return [(META_SQL, [("published_seq", str(self.published_seq))])]

    # -- the loop ---------------------------------------------------------------------------
    async def _run(self) -> None:
        """Decide batch N+1 while batch N is committed on the writer's thread (group commit, pipelined).

        The writer thread spends most of a batch's time in SQLite and fsync with the GIL released;
        deciding the next batch meanwhile keeps the event loop busy instead of waiting. Replies and
        events still leave strictly after their own batch's commit, and batches commit in order.
        """
        syncs_in_flight = False
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if syncs_in_flight:
                await self._drain()  # a sync answers from committed state: nothing may be decided ahead of it
            try:
                async with self._batch_lock:
                    staged = self._stage(batch)
                    self._staged = True
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("batch of %d commands failed unexpectedly", len(batch))
                await self._drain()
                await self._fail_batch(batch, ErrorCode.INTERNAL, "The hub hit an internal error; retry the command")
                continue
            previous = self._inflight
            try:
                await self._drain()
            except BaseException:
                # Stopped while the batch before is still committing: this one still gets its answer,
                # committed after that one and only if that one stood (`_finish` waits, then checks).
                self._staged = False
                self._inflight = asyncio.create_task(self._finish(staged, after=previous), name="engine-commit")
                raise
            self._staged = False
            staged.commit = self._start_commit(staged)
            self._inflight = asyncio.create_task(self._finish(staged), name="engine-commit")
            syncs_in_flight = bool(staged.syncs)

    def _start_commit(self, staged: _Staged) -> asyncio.Future[None] | None:
        """Hand a decided batch to the writer's thread now that the batch before it is done.

        Started here rather than in the `_finish` task, the commit does not wait for the event
        loop's next turn (and whatever I/O that turn handles first). None leaves it to `_finish`:
        a batch decided on top of a failed one is never committed, and an error is answered there.
        """
        if staged.generation != self._generation:
            return None
        try:
            return self.db.start_transaction(staged.writes)
        except Exception:  # noqa: BLE001 - `_finish` starts it again and answers the failure
            return None

    async def _drain(self) -> None:
        """Wait for the batch in flight (its task answers its own failures and never raises)."""
        inflight = self._inflight
        if inflight is not None:
            await asyncio.shield(inflight)

    @contextlib.asynccontextmanager
    async def _quiet(self) -> AsyncIterator[None]:
        """Hold the batch lock with nothing decided ahead of the database (state == committed state)."""
        while True:
            await self._drain()
            await self._batch_lock.acquire()
            if not self._staged and (self._inflight is None or self._inflight.done()):
                break
            self._batch_lock.release()
            await asyncio.sleep(0)
        try:
            yield
        finally:
            self._batch_lock.release()

    def _stage(self, batch: list[Submission]) -> _Staged:
        """Decode, dedupe and decide a batch, apply it to memory, and plan its one transaction."""
        now = self.clock()
        ctx = domain.Context(
            now=now,
            settings=self.settings,
            new_id=_new_id,
            new_token=lambda: secrets.token_urlsafe(32),
            verify_pin=self._verify_pin,
        )
        pendings = [self._decode(sub) for sub in batch]
        self._lookup_processed(pendings)
        clock_ok = self.head.at is None or now >= parse_time(self.head.at)
        at = format_time(now)
        outbox: list[OutMessage] = []
        touched: set[domain.EntityRef] = set()
        syncs: list[_Pending] = []
        head = self.head
        for p in pendings:
            if p.reply is not None:
                continue
            key = (p.sub.device_id, p.cmd_id or "")
            if p.cmd_id is not None and key in self._uncommitted:
                p.reply = _replay_reply(self._uncommitted[key], p)
                p.copy_of_pending = True  # its reply stands or falls with the first copy's commit
                continue
            refused = self._device_refusal(p)
            if refused is not None:
                p.reply = refused
                continue
            if p.type == "sync":
                syncs.append(p)
                continue
            writes = p.type not in READ_ONLY_COMMANDS or bool(getattr(p.body, "print", False))
            if writes and not clock_ok:
                p.reply = Reply.failure(
                    p.cmd_id,
                    ErrorCode.CLOCK_INVALID,
                    f"The hub's clock ({at}) is behind its newest ledger entry ({head.at}); "
                    "it refuses to write until the clock is fixed",
                )
                continue
            head = self._decide(p, ctx, at, head, touched, outbox)
            if p.cmd_id is not None:
                self._uncommitted[key] = p
        acked, self._acked_outbox = self._acked_outbox, []
        planned = self._batch_writes(pendings, outbox, touched, at, acked)
        self.head = head
        return _Staged(
            pendings, outbox, touched, syncs, planned, acked, head, self._generation, len(batch), self._planned_cursor
        )

    async def _finish(self, staged: _Staged, after: asyncio.Task[None] | None = None) -> None:
        """Commit a decided batch, then answer it and publish what it produced; never raises.

        `after`: the batch before, still in flight, to wait for before this one is committed.
        """
        try:
            if after is not None:
                await asyncio.shield(after)
            if staged.commit is None and staged.generation != self._generation:
                # Decided on top of a batch whose commit failed: its state is gone, so is this batch.
                self._acked_outbox.extend(staged.acked)
                await self._commit_failed(staged.pendings, self._failure or RuntimeError("stale batch"), reload=False)
                return
            try:
                await self._commit(staged)
            except Exception as exc:  # noqa: BLE001 - any failed commit is answered, never crashes the hub
                self._failure = exc
                await self._commit_failed(staged.pendings, exc)
                return
            self.committed_head = staged.head
            self._committed(staged.pendings)
            if any(ref[0] == "device" for ref in staged.touched) and self.on_devices_changed is not None:
                # The broker accepts (or refuses) the device before anyone hears that it was added or revoked.
                try:
                    await self.on_devices_changed()
                except Exception:  # the batch is committed: answer it, and say the broker lags behind
                    log.exception("the broker could not be updated with the device registry")
            self._deliver(staged.pendings, staged.outbox)
            for p in staged.syncs:
                try:
                    p.reply = await self._sync(p)
                except Exception:
                    log.exception("sync failed")
                    p.reply = Reply.failure(p.cmd_id, ErrorCode.INTERNAL, "The hub could not read its ledger; retry")
                self._deliver([p], [])
            self.stats.note_batch(staged.size)
        except Exception:
            log.exception("answering a committed batch failed")
        finally:
            for p in staged.pendings:
                if p.cmd_id is not None and self._uncommitted.get((p.sub.device_id, p.cmd_id)) is p:
                    del self._uncommitted[(p.sub.device_id, p.cmd_id)]

    # -- decode and idempotency -------------------------------------------------------------
    def _decode(self, sub: Submission) -> _Pending:
        if sub.admin_type is not None:
            return self._decode_admin(sub)
        assert sub.payload is not None  # noqa: S101 - a Submission has one or the other
        try:
            envelope, body = decode_command(sub.payload)
        except ContractViolation as violation:
            pending = _Pending(sub, violation.cmd_id)
            pending.reply = Reply.failure(violation.cmd_id, violation.code, violation.message, violation.details)
            return pending
        pending = _Pending(sub, envelope.id, envelope.type, body, envelope)
        pending.body_hash = _body_hash(envelope.type, envelope.body)
        return pending

    def _decode_admin(self, sub: Submission) -> _Pending:
        type_ = sub.admin_type or ""
        model = domain.ADMIN_COMMANDS.get(type_) or COMMANDS.get(type_)
        cmd_id = _new_id("adm")
        pending = _Pending(sub, cmd_id, type_)
        if model is None:
            pending.reply = Reply.failure(cmd_id, ErrorCode.UNKNOWN_COMMAND, f"Unknown admin command {type_!r}")
            return pending
        try:
            pending.body = model.model_validate(sub.admin_body or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(part) for part in first["loc"])
            pending.reply = Reply.failure(cmd_id, ErrorCode.INVALID_PAYLOAD, f"{loc}: {first['msg']}")
        return pending

    def _lookup_processed(self, pendings: Sequence[_Pending]) -> None:
        """Find re-sent commands with one primary-key read on the lookup reader (no thread hop).

        Every earlier batch is committed before this one is read, and WAL readers see commits, so
        the read-only connection is exact; a point read takes microseconds on the event loop.
        """
        wanted = [p for p in pendings if p.reply is None and p.envelope is not None]
        if not wanted:
            return
        pairs = sorted({(p.sub.device_id, p.cmd_id) for p in wanted if p.cmd_id is not None})
        if not pairs:
            return
        # One primary-key probe per command: the wanted pairs are joined to the table, never crossed
        # (`device IN (…) AND cmd_id IN (…)` probed every device with every id: 20 tablets by 50 ids).
        sql = (
            f"WITH wanted(device, cmd_id) AS (VALUES {','.join(['(?,?)'] * len(pairs))}) "  # noqa: S608 - placeholders only
            "SELECT p.device, p.cmd_id, p.type, p.body_hash, p.reply FROM wanted "
            "CROSS JOIN processed_commands p ON p.device = wanted.device AND p.cmd_id = wanted.cmd_id"
        )
        params = [value for pair in pairs for value in pair]
        rows = {(r[0], r[1]): r for r in self._lookup.execute(sql, params).fetchall()}
        for p in wanted:
            row = rows.get((p.sub.device_id, p.cmd_id or ""))
            if row is None:
                continue
            if row[2] == p.type and row[3] == p.body_hash:
                p.reply = Reply.model_validate_json(row[4])
                self.stats.duplicates += 1
            else:
                p.reply = _mismatch(p.cmd_id)

    # -- deciding ---------------------------------------------------------------------------
    def _decide(  # noqa: PLR0917 - the batch's running state, threaded through explicitly
        self,
        p: _Pending,
        ctx: domain.Context,
        at: str,
        head: Head,
        touched: set[domain.EntityRef],
        outbox: list[OutMessage],
    ) -> Head:
        assert p.body is not None  # noqa: S101 - decoded commands have a body
        device = self.state.devices.get(p.sub.device_id)
        stations: tuple[str, ...] = ()
        if p.sub.payload is None or device is None:
            kind = "admin"  # only local admin submissions get here without a device
        else:
            kind, stations = device.kind, tuple(device.stations)
        envelope = p.envelope
        command = domain.CommandIn(
            cmd_id=p.cmd_id or "",
            type=p.type,
            body=p.body,
            device_id=p.sub.device_id,
            device_kind=kind,
            device_stations=stations,
            token_hash=domain.token_hash(envelope.auth) if envelope is not None and envelope.auth else None,
            approve=_approver(envelope),
        )
        self._recall_ticket(p.body)
        secret_rows = self._secret_rows(p, command)
        if isinstance(secret_rows, Reply):
            p.reply = secret_rows
            return head
        decision = domain.decide(self.state, command, ctx)
        if decision.events and decision.state is not None:
            domain.commit_overlay(self.state, decision.state)  # decide already evolved its events there
        for index, new in enumerate(decision.events):
            seq = head.seq + 1
            entry = make_entry(
                seq=seq,
                epoch=self.epoch,
                at=at,
                type_=new.type,
                actor=new.actor,
                device=p.sub.device_id,
                cmd=p.cmd_id,
                data=new.data,
                prev_hash=head.hash,
            )
            p.entries.append(entry)
            head = Head(seq, entry.hash, at)
            touched |= decision.touched[index]
            outbox.append(_event_out(self.topics, entry))
            outbox.extend(self._kds_out(seq, decision.kds[index]))
        if decision.error is not None:
            err = decision.error
            p.reply = Reply.failure(p.cmd_id, err.code, err.message, err.details or None, seq=head.seq)
            p.remember = err.code not in NOT_REMEMBERED
        else:
            p.reply = Reply.success(p.cmd_id, head.seq, decision.result)
            p.remember = True
            p.secret_rows = secret_rows
            if p.sub.secret and isinstance(p.reply.result, dict) and p.type == "device.add":
                p.reply = Reply.success(p.cmd_id, head.seq, {**p.reply.result, "password": p.sub.secret})
        if p.sub.device_id == ADMIN_DEVICE:
            p.remember = False
        return head

    def _committed(self, pendings: Sequence[_Pending]) -> None:
        """The batch is durable: tell the commit hooks (the print queue) which entries it wrote."""
        if self.hooks:
            entries = [e for p in pendings for e in p.entries]
            for hook in self.hooks:
                hook.committed(entries)

    def _device_refusal(self, p: _Pending) -> Reply | None:
        if p.sub.payload is None:
            return None
        device = self.state.devices.get(p.sub.device_id)
        if device is None or not device.active:
            return Reply.failure(
                p.cmd_id, ErrorCode.UNAUTHORIZED, f"Device {p.sub.device_id} is not registered with this hub"
            )
        return None

    def _secret_rows(self, p: _Pending, command: domain.CommandIn) -> list[tuple[str, str, str]] | Reply:
        """Secrets an admin command stores beside its events (PIN and device password hashes)."""
        del command
        if p.type in ("staff.add", "staff.reset_pin"):
            pin = p.sub.secret or (p.sub.admin_body or {}).get("pin")
            if not isinstance(pin, str):
                return Reply.failure(p.cmd_id, ErrorCode.INVALID_PAYLOAD, "a PIN is required")
            employee = str((p.sub.admin_body or {}).get("employee_id"))
            pin_hash = domain.hash_pin(pin, secrets.token_bytes(16))
            return [("staff_pins", employee, pin_hash)]
        if p.type == "device.add":
            device_id = str((p.sub.admin_body or {}).get("device_id"))
            if device_id in RESERVED_DEVICE_IDS:
                return Reply.failure(p.cmd_id, ErrorCode.CONFLICT, f"{device_id!r} is reserved for the hub itself")
            password = new_password()
            p.sub.secret = password
            return [("device_credentials", device_id, hash_password(password))]
        return []

    def _kds_out(self, seq: int, messages: Sequence[tuple[str, str, dict[str, Any]]]) -> list[OutMessage]:
        out: list[OutMessage] = []
        for station, kds_type, data in messages:
            message = KdsMessage(
                seq=seq,
                prev=self.kds_last.get(station),
                type=kds_type,
                data=KdsTicket.model_validate(data),
            )
            self.kds_last[station] = seq
            out.append(OutMessage(self.topics.kds(station), encode(message), durable=True))
        return out

    def _verify_pin(self, employee_id: str, pin: str) -> bool:
        stored = self.pin_hashes.get(employee_id)
        return stored is not None and domain.verify_pin_hash(pin, stored)

    # -- committing -------------------------------------------------------------------------
    async def _commit(self, staged: _Staged) -> None:
        """One transaction for the whole batch, run in one hop on the writer's thread."""
        try:
            await (staged.commit if staged.commit is not None else self.db.start_transaction(staged.writes))
        except BaseException:
            self._acked_outbox.extend(staged.acked)  # still to be deleted by a later transaction
            raise
        if staged.cursor is not None:
            self._saved_published_seq = staged.cursor
        for p in staged.pendings:
            for table, key, value in p.secret_rows:
                if table == "staff_pins":
                    self.pin_hashes[key] = value

    def _batch_writes(
        self,
        pendings: Sequence[_Pending],
        outbox: list[OutMessage],
        touched: set[domain.EntityRef],
        at: str,
        acked: list[int],
    ) -> Writes:
        entries = [e for p in pendings for e in p.entries]
        writes: Writes = []
        if entries:
            writes.append((INSERT_SQL, [e.row() for e in entries]))
            writes.extend(projections.plan_writes(self.state, touched))
            for hook in self.hooks:
                writes.extend(hook.writes(entries))
            writes.append((KDS_STREAM_SQL, list(self.kds_last.items())))
            writes.extend((SECRET_SQL[table], [(key, value)]) for p in pendings for table, key, value in p.secret_rows)
            outbox.extend(self._changed_retained(touched))
        processed = [
            (p.sub.device_id, p.cmd_id, p.type, p.body_hash, encode(p.reply), at)
            for p in pendings
            if p.remember and p.reply is not None and p.envelope is not None
        ]
        writes.append((PROCESSED_SQL, processed))
        if acked:
            writes.append(("DELETE FROM outbox WHERE id = ?", [(i,) for i in acked]))
        self._planned_cursor = self.published_seq if (cursor := self._cursor_writes()) else None
        writes.extend(cursor)
        durable = [m for m in outbox if m.durable]
        for message in durable:
            message.outbox_id = self._next_outbox_id
            self._next_outbox_id += 1
        if durable:
            writes.append((OUTBOX_SQL, [(m.outbox_id, m.topic, m.payload, m.qos, int(m.retain)) for m in durable]))
        return writes

    async def _commit_failed(self, pendings: Sequence[_Pending], exc: Exception, *, reload: bool = True) -> None:
        """Roll back, reload the state, and answer every command that depended on the commit."""
        storage_full = is_storage_full(exc)
        if reload:
            if not storage_full:
                log.error("commit failed", exc_info=exc)
            await self._rollback_and_reload()
        code = ErrorCode.STORAGE_FULL if storage_full else ErrorCode.INTERNAL
        message = (
            "The hub cannot write: its storage is full. Nothing was changed"
            if storage_full
            else "The hub could not save this command; nothing was changed. Retry it"
        )
        for p in pendings:
            if p.reply is None or p.remember or p.entries or p.copy_of_pending:
                p.reply = Reply.failure(p.cmd_id, code, message)
                p.remember = False
        self._deliver(pendings, [])

    async def _rollback_and_reload(self) -> None:
        """The transaction rolled itself back; bring memory back in line with the database.

        A batch decided meanwhile on top of the lost one is stale from here on (generation).
        """
        async with self._batch_lock:
            self._generation += 1
            await self.load()

    def _deliver(self, pendings: Sequence[_Pending], outbox: Iterable[OutMessage]) -> None:
        """Answer the batch's commands, then publish its events and the rest of its outbox.

        Replies go first: the broker handles a client's messages in order, so a reply behind the
        batch's events would wait while each event is fanned out to every subscriber (the screens,
        the manager page, the relay). The tablet that asked is the one waiting on a person.
        """
        for p in pendings:
            if p.reply is None:
                continue
            if p.sub.future is not None:
                if not p.sub.future.done():
                    p.sub.future.set_result(p.reply)
            else:
                self._publish(OutMessage(self.topics.reply(p.sub.device_id), encode(p.reply)))
            self.stats.note_latency(time.perf_counter() - p.sub.received)
        for message in outbox:
            self._publish(message)

    async def _fail_batch(self, batch: Sequence[Submission], code: ErrorCode, message: str) -> None:
        try:
            await self._rollback_and_reload()
        except Exception:  # answer the batch anyway; the next batch tries again
            log.exception("reloading the state after a failed batch failed")
        for sub in batch:
            reply = Reply.failure(None, code, message)
            if sub.future is not None and not sub.future.done():
                sub.future.set_result(reply)
            elif sub.payload is not None:
                self._publish(OutMessage(self.topics.reply(sub.device_id), encode(reply)))

    # -- sync -------------------------------------------------------------------------------
    async def _sync(self, p: _Pending) -> Reply:
        since = getattr(p.body, "since_seq", None)
        head = self.committed_head.seq
        base = {"seq": head, "epoch": self.epoch}
        if since is not None and since <= head and head - since <= self.settings.sync_max_events:
            entries = await read_entries(self.db.writer, since, head - since)
            events = [_event_envelope(e).model_dump(mode="json") for e in entries]
            return Reply.success(p.cmd_id, head, {**base, "events": events})
        return Reply.success(p.cmd_id, head, {**base, "snapshot": domain.snapshot(self.state)})

    # -- housekeeping -----------------------------------------------------------------------
    async def tick(self) -> None:
        """Timers (table attention, business-day close) and pruning; called every few seconds."""
        reply = await self.admin("clock.tick", {})
        if not reply.ok and reply.error is not None and reply.error.code != ErrorCode.CLOCK_INVALID:
            log.warning("clock.tick failed: %s", reply.error.message)
        await self.flush_acked()
        if time.monotonic() - self._pruned_at > 3600:  # noqa: PLR2004 - hourly
            await self.prune()
            self.evict_settled()

    async def flush_acked(self) -> None:
        """Delete acknowledged outbox rows and save the published cursor (normally folded into a batch)."""
        cursor = self._cursor_writes()
        if not self._acked_outbox and not cursor:
            return
        acked, self._acked_outbox = self._acked_outbox, []
        published = self.published_seq
        writes: Writes = [*cursor]
        if acked:
            writes.append(("DELETE FROM outbox WHERE id = ?", [(i,) for i in acked]))
        try:
            async with self._batch_lock:
                await self.db.transaction(writes)
        except Exception:
            self._acked_outbox.extend(acked)
            raise
        self._saved_published_seq = published

    async def prune(self) -> int:
        """Forget processed command ids older than the retention (at least 7 days)."""
        cutoff = format_time(self.clock() - self.retention)

        def _prune(conn: sqlite3.Connection) -> int:
            with conn:
                return conn.execute("DELETE FROM processed_commands WHERE at < ?", (cutoff,)).rowcount

        removed = await self.db.run(_prune)
        self._pruned_at = time.monotonic()
        return removed


@dataclass(slots=True)
class EngineStats:
    """Counters for benchmarks, `storehub hub status` and /metrics."""

    batches: int = 0
    commands: int = 0
    duplicates: int = 0
    max_batch: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_LATENCY_SAMPLES))

    def note_batch(self, size: int) -> None:
        """Count a committed batch."""
        self.batches += 1
        self.commands += size
        self.max_batch = max(self.max_batch, size)

    def note_latency(self, seconds: float) -> None:
        """Time from a command's arrival on the hub to its reply being handed to the broker."""
        self.latencies.append(seconds)

    def summary(self) -> dict[str, Any]:
        """Counts and in-hub latency percentiles over the most recent commands."""
        ordered = sorted(self.latencies)
        pick = (lambda q: round(ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000, 3)) if ordered else None
        return {
            "batches": self.batches,
            "commands": self.commands,
            "duplicates": self.duplicates,
            "max_batch": self.max_batch,
            "mean_batch": round(self.commands / self.batches, 2) if self.batches else None,
            "latency_ms": {"p50": pick(0.5), "p99": pick(0.99), "samples": len(ordered)} if pick else None,
        }

    def reset(self) -> None:
        """Start counting afresh (benchmark phases)."""
        self.batches = self.commands = self.duplicates = self.max_batch = 0
        self.latencies.clear()


# -- helpers -------------------------------------------------------------------------------
def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


def _body_hash(type_: str, body: dict[str, Any]) -> str:
    return hashlib.sha256(type_.encode() + b"\0" + canonical_json(body)).hexdigest()


def _mismatch(cmd_id: str | None) -> Reply:
    return Reply.failure(
        cmd_id,
        ErrorCode.IDEMPOTENCY_MISMATCH,
        f"Command id {cmd_id} was already used for a different command; use a new id",
    )


def _replay_reply(first: _Pending, again: _Pending) -> Reply:
    if first.type == again.type and first.body_hash == again.body_hash and first.reply is not None:
        return first.reply
    return _mismatch(again.cmd_id)


def _approver(envelope: CommandEnvelope | None) -> domain.ApproverIn | None:
    if envelope is None or envelope.approve is None:
        return None
    approve = envelope.approve
    if isinstance(approve, ApprovePin):
        return domain.ApproverIn(employee_id=approve.employee_id, pin=approve.pin, token_hash=None)
    return domain.ApproverIn(employee_id=None, pin=None, token_hash=domain.token_hash(approve.token))


def _event_envelope(entry: LedgerEntry) -> EventEnvelope:
    return EventEnvelope(
        seq=entry.seq,
        type=entry.type,
        at=entry.at,
        by=By(device=entry.device, actor=entry.actor),
        cmd=entry.cmd,
        data=entry.data,
    )


def _event_out(topics: Topics, entry: LedgerEntry) -> OutMessage:
    return OutMessage(topics.event(entry.type), encode(_event_envelope(entry)), seq=entry.seq)


def _json_out(topic: str, payload: Any, *, retain: bool = False) -> OutMessage:
    return OutMessage(topic, canonical_json(payload), 1, retain)


def _retained_kinds(touched: set[domain.EntityRef]) -> list[str]:
    kinds = {ref[0] for ref in touched}
    wanted = ["shift"]  # small, and its open-ticket count moves with many events
    if "availability" in kinds:
        wanted.append("availability")
    if "staff" in kinds:
        wanted.append("staff")
    if "menu" in kinds:
        wanted.append("menu")
    return wanted


async def _meta(conn: Any, key: str, default: str) -> str:
    async with conn.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cursor:
        row = await cursor.fetchone()
    return str(row[0]) if row else default
