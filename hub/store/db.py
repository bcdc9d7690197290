"""The hub's SQLite database: WAL, `synchronous=FULL`, one writer connection, read-only readers.

Only the engine writes, through `Database.writer` with `BEGIN IMMEDIATE`; everybody else (sync
answers, the relay, `storehub ledger verify`) reads through `Database.reader()`, which opens a
separate read-only connection so a long read never holds the writer up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
from contextlib import asynccontextmanager
from importlib import resources
from typing import TYPE_CHECKING, Any, Self, TypeVar

import aiosqlite

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

T = TypeVar("T")
log = logging.getLogger("storehub.store")
Writes = list[tuple[str, list[tuple[Any, ...]]]]
"""Statements for one transaction: (sql, rows), each run with executemany, in order."""

SQLITE_FULL = 13
CHECKPOINT_INTERVAL_S = 1.0
"""How often the hub's background checkpointer copies the WAL into the database file."""
SQLITE_AUTOCHECKPOINT = 1000
"""SQLite's own default (pages), back in force when the background checkpointer stops."""
SQLITE_IOERR = 10


class StorageFullError(Exception):
    """SQLite could not write: the disk (or the database's page limit) is full. Nothing was changed."""


def is_storage_full(exc: BaseException) -> bool:
    """Whether a sqlite3 error means the disk is full (SQLITE_FULL, or an I/O error from ENOSPC)."""
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == SQLITE_FULL:
        return True
    return "database or disk is full" in str(exc)


def migrations() -> list[tuple[int, str]]:
    """The numbered SQL migrations shipped with the package, in order."""
    found: list[tuple[int, str]] = []
    for entry in resources.files("hub.store").joinpath("migrations").iterdir():
        name = entry.name
        if name.endswith(".sql"):
            found.append((int(name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [n for n, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..N without gaps, found {numbers}")
    return found


class Database:
    """The hub's database file with its single writer connection."""

    def __init__(self, path: Path, writer: aiosqlite.Connection) -> None:
        self.path = path
        self.writer = writer

    @classmethod
    async def open(cls, path: Path) -> Self:
        """Open (creating if needed) and migrate the database at `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = await aiosqlite.connect(path, isolation_level=None)
        try:
            await writer.execute("PRAGMA journal_mode=WAL")
            await writer.execute("PRAGMA synchronous=FULL")
            await writer.execute("PRAGMA foreign_keys=ON")
            await writer.execute("PRAGMA busy_timeout=5000")
            await writer.execute("PRAGMA temp_store=MEMORY")
            db = cls(path, writer)
            await db.migrate()
        except BaseException:
            await writer.close()
            raise
        return db

    async def migrate(self) -> int:
        """Apply every migration above `PRAGMA user_version`; returns the new version."""
        async with self.writer.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        current = int(row[0]) if row else 0
        for number, sql in migrations():
            if number <= current:
                continue
            await self.writer.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(sql):
                    await self.writer.execute(statement)
                await self.writer.execute(f"PRAGMA user_version = {number:d}")
                await self.writer.execute("COMMIT")
            except BaseException:
                await self.writer.execute("ROLLBACK")
                raise
            current = number
        return current

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue `fn` on the writer's own thread with its sqlite3 connection, now; await the future for its result.

        One thread hop, not one per statement: aiosqlite hands every statement to its worker thread
        and back, and a batch commit of a dozen statements paid a dozen hand-offs (~3 ms on a quiet
        hub). The job is queued before this returns, not when a coroutine first runs, so the writer
        starts on a commit while the event loop goes on with whatever else is ready. This is the one
        place that reaches into aiosqlite's worker (`_tx`, `_conn`, `_running`), so an aiosqlite
        upgrade is checked here (tests/hub/test_db.py runs it).
        """
        writer = self.writer
        if not writer._running or writer._connection is None:  # noqa: SLF001 - see the docstring
            raise ValueError("The database is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        writer._tx.put_nowait((future, functools.partial(fn, writer._conn)))  # noqa: SLF001 - see the docstring
        return future

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` on the writer's own thread with its sqlite3 connection (see `submit`)."""
        return await self.submit(fn)

    def start_transaction(self, writes: Writes) -> asyncio.Future[None]:
        """Start applying `writes` in one `BEGIN IMMEDIATE` … `COMMIT` (fsync'd) on the writer's thread.

        Nothing of it is applied on any error; the future carries the error.
        """
        if any(rows for _sql, rows in writes):
            return self.submit(lambda conn: apply_in_transaction(conn, writes))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def transaction(self, writes: Writes) -> None:
        """Apply `writes` in one `BEGIN IMMEDIATE` … `COMMIT` (fsync'd); nothing of it on any error."""
        await self.start_transaction(writes)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[aiosqlite.Connection]:
        """A separate read-only connection; each statement sees a consistent snapshot."""
        async with open_reader(self.path) as conn:
            yield conn

    async def close(self) -> None:
        """Close the writer (checkpointing the WAL)."""
        await self.writer.close()

    async def run_checkpoints(self, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        """Move the WAL into the database file in the background, every `interval_s`, until cancelled.

        Left to SQLite, every 1,000th page written makes one commit also copy the whole WAL into
        the database file and fsync it: a command in that batch waits several milliseconds more
        (the hub's p99 at 200 commands/s was mostly that). Here the writer never checkpoints; a
        connection of its own does, on a thread of its own, alongside the writer's commits
        (a PASSIVE checkpoint never blocks a writer). Once it has copied everything, the next commit
        starts the WAL over from its beginning, so the file does not grow.
        """
        await self.writer.execute("PRAGMA wal_autocheckpoint=0")
        conn = await asyncio.to_thread(_checkpointer, self.path)
        try:
            while True:
                await asyncio.sleep(interval_s)
                await asyncio.to_thread(_checkpoint, conn)
        finally:
            conn.close()
            with contextlib.suppress(Exception):  # the writer may be closing too
                await self.writer.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT}")


def _checkpointer(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA synchronous=FULL")  # the checkpoint fsyncs the database file before the WAL restarts
    return conn


def _checkpoint(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.OperationalError as exc:  # busy or a full disk: the next round tries again
        log.warning("background WAL checkpoint failed: %s", exc)


def apply_in_transaction(conn: sqlite3.Connection, writes: Writes) -> None:
    """Run `writes` as one transaction on a sqlite3 connection in autocommit mode."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for sql, rows in writes:
            if rows:
                conn.executemany(sql, rows)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@asynccontextmanager
async def open_reader(path: Path) -> AsyncIterator[aiosqlite.Connection]:
    """Open the database at `path` read-only (the relay and CLI tools use this too)."""
    conn = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        await conn.execute("PRAGMA busy_timeout=5000")
        yield conn
    finally:
        await conn.close()


def _statements(sql: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies (BEGIN … END;) whole."""
    statements: list[str] = []
    buffer = ""
    for line in sql.splitlines(keepends=True):
        if line.strip().startswith("--") and not buffer.strip():
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise RuntimeError(f"incomplete SQL statement in migration: {buffer.strip()[:80]}")
    return statements
