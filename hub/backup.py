"""`storehub backup …`: online SQLite backups of the hub's database, retention, and restore.

A backup is taken while the hub sells: SQLite's backup API copies one consistent snapshot through a
read-only connection (a WAL reader never blocks the writer), the copy is checked
(`integrity_check`, the ledger's hash chain) and only then renamed into place as
`hub-YYYYMMDDTHHMMSSZ.db`. Copies older than the retention are deleted, never the newest one.

The store CA (`<data_dir>/tls`, docs/tls.md) is archived beside each backup as
`hub-YYYYMMDDTHHMMSSZ.tls.tar` (0600): a hub restored without it would make a new CA and every
device would have to be paired again.

A restore (`storehub backup restore`) refuses while the hub runs (it takes the data directory's
lock), checks the backup the same way, keeps the replaced database aside as
`hub.db.replaced-<time>` and bumps the ledger `epoch` (CONTRACT.md, "Ledger and relay"): seq and the
hash chain continue from the restored head, new entries carry the new epoch, devices resync when
they see it change, and central keeps the entries of both epochs. Messages that were waiting in the
restored outbox belong to the old timeline and are dropped: the hub republishes its retained state
on connect and devices `sync`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import sys
import tarfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from hub.config import LoadedConfig

BACKUP_PATTERN: Final = re.compile(r"^hub-(\d{8}T\d{6}Z)\.db$")
STAMP_FORMAT: Final = "%Y%m%dT%H%M%SZ"
SPACE_MARGIN: Final = 1.1
TLS_DIR: Final = "tls"
TLS_FILES: Final = ("ca.crt", "ca.key", "server.crt", "server.key")
LEDGER_COLUMNS: Final = "seq, epoch, at, type, actor, device, cmd, data, prev_hash, hash"
EXIT_REFUSED: Final = 2


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Snapshot:
    """What a database file holds: its ledger head and epoch."""

    head_seq: int
    epoch: int
    entries: int


@dataclass(frozen=True)
class BackupResult:
    """A finished backup."""

    path: str
    bytes: int
    head_seq: int
    epoch: int
    deleted: list[str]
    tls: str | None = None


@dataclass(frozen=True)
class RestoreResult:
    """A finished restore."""

    restored_from: str
    head_seq: int
    epoch: int
    previous_epoch: int | None
    previous_head_seq: int | None
    replaced_kept_at: str | None
    outbox_dropped: int
    tls_restored: bool = False


def run_backup(
    db_path: Path, dest: Path, *, keep_days: int, now: datetime | None = None, verify_chain: bool = True
) -> BackupResult:
    """Copy the live database at `db_path` into `dest`, check the copy, then apply the retention."""
    if keep_days < 1:
        raise BackupError(f"--keep-days must be at least 1, got {keep_days}")
    if not db_path.exists():
        raise BackupError(f"no hub database at {db_path}: nothing to back up")
    now = now or datetime.now(UTC)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create the backup directory {dest}: {exc.strerror}") from exc
    needed = _db_bytes(db_path)
    free = shutil.disk_usage(dest).free
    if free < needed * SPACE_MARGIN:
        mib = 1_048_576
        raise BackupError(f"{dest} has {free // mib} MiB free; the database needs about {needed // mib} MiB")
    final = dest / f"hub-{now.strftime(STAMP_FORMAT)}.db"
    if final.exists():
        raise BackupError(f"{final} already exists (two backups in the same second?)")
    partial = dest / f".{final.name}.partial"
    tls_final = tls_archive(final)
    tls_partial = dest / f".{tls_final.name}.partial"
    try:
        _copy(_open_readonly(db_path), partial)
        snapshot = check_database(partial, verify_chain=verify_chain)
        _fsync(partial)
        # The store CA goes with the database (docs/tls.md): a hub restored without it makes a new CA,
        # and every device would have to be paired again. It is in place before the database is.
        has_tls = _archive_tls(db_path.parent / TLS_DIR, tls_partial)
        if has_tls:
            tls_partial.rename(tls_final)
        partial.rename(final)
        _fsync(dest)
    except BaseException:
        for leftover in (partial, tls_partial):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        raise
    deleted = prune(dest, keep_days=keep_days, now=now, keep=final)
    return BackupResult(
        str(final),
        final.stat().st_size,
        snapshot.head_seq,
        snapshot.epoch,
        deleted,
        str(tls_final) if has_tls else None,
    )


def tls_archive(backup: Path) -> Path:
    """The store CA archive that goes with a backup: `hub-<time>.tls.tar` beside `hub-<time>.db`."""
    return backup.with_name(backup.name.removesuffix(".db") + ".tls.tar")


def prune(dest: Path, *, keep_days: int, now: datetime, keep: Path | None = None) -> list[str]:
    """Delete backups older than `keep_days`; the newest backup always stays."""
    backups = list_backups(dest)
    if not backups:
        return []
    newest = backups[-1][1]
    cutoff = now - timedelta(days=keep_days)
    deleted = []
    for taken, path in backups:
        if taken < cutoff and path not in (newest, keep):
            path.unlink()
            tls_archive(path).unlink(missing_ok=True)
            deleted.append(str(path))
    return deleted


def list_backups(dest: Path) -> list[tuple[datetime, Path]]:
    """The backups in `dest`, oldest first (by the time in their name)."""
    found = []
    for path in dest.iterdir() if dest.is_dir() else []:
        match = BACKUP_PATTERN.match(path.name)
        if match:
            found.append((datetime.strptime(match.group(1), STAMP_FORMAT).replace(tzinfo=UTC), path))
    return sorted(found)


def check_database(path: Path, *, verify_chain: bool = True) -> Snapshot:
    """Check a database file (integrity, hub schema, hash chain) and describe it; BackupError if bad."""
    try:
        conn = _open_readonly(path)
    except sqlite3.Error as exc:
        raise BackupError(f"{path}: cannot be opened as a database: {exc}") from exc
    try:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check(20)")]
        if problems != ["ok"]:
            raise BackupError(f"{path}: integrity_check failed: {'; '.join(problems)}")
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"ledger", "meta"} <= tables:
            raise BackupError(f"{path}: not a StoreHub hub database (no ledger or meta table)")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        from hub.store.db import migrations  # noqa: PLC0415 - keep `storehub --help` fast

        known = len(migrations())
        if version > known:
            raise BackupError(f"{path}: schema version {version} is newer than this StoreHub knows ({known})")
        head, entries = conn.execute("SELECT COALESCE(MAX(seq), 0), COUNT(*) FROM ledger").fetchone()
        epoch = _epoch(conn)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path}: not a readable database: {exc}") from exc
    finally:
        conn.close()
    if verify_chain:
        _verify_chain(path)
    return Snapshot(int(head), epoch, int(entries))


def restore(backup: Path, loaded: LoadedConfig, *, now: datetime | None = None) -> RestoreResult:
    """Replace the hub's database with `backup` and bump the epoch; refuses while the hub runs."""
    from hub.app import DB_NAME, DataDirLock  # noqa: PLC0415 - keep `storehub --help` fast

    now = now or datetime.now(UTC)
    if not backup.is_file():
        raise BackupError(f"{backup}: no such backup file")
    data_dir = loaded.data_dir
    lock = DataDirLock(data_dir)
    if not lock.acquire():
        raise BackupError(
            f"the hub is running on {data_dir} (lock {lock.path}): stop it first "
            "(systemctl stop storehub-hub), then restore"
        )
    try:
        snapshot = check_database(backup)
        _check_tls_archive(tls_archive(backup))
        live = data_dir / DB_NAME
        previous = _describe_live(live)
        new_epoch = max(snapshot.epoch, previous.epoch if previous else 0) + 1
        staging = data_dir / f".{DB_NAME}.restoring"
        for leftover in _with_sidecars(staging):
            leftover.unlink(missing_ok=True)
        _copy(_open_readonly(backup), staging)
        dropped = _stamp_epoch(staging, new_epoch)
        _fsync(staging)
        kept_at: Path | None = None
        if live.exists():
            kept_at = data_dir / f"{DB_NAME}.replaced-{now.strftime(STAMP_FORMAT)}"
            # The WAL and its index move with the file so the kept copy stays whole.
            for source, target in zip(_with_sidecars(live), _with_sidecars(kept_at), strict=True):
                if source.exists():
                    source.rename(target)
        staging.rename(live)
        tls_restored = _restore_tls(tls_archive(backup), data_dir / TLS_DIR, now)
        _fsync(data_dir)
    finally:
        lock.release()
    return RestoreResult(
        restored_from=str(backup),
        head_seq=snapshot.head_seq,
        epoch=new_epoch,
        previous_epoch=previous.epoch if previous else None,
        previous_head_seq=previous.head_seq if previous else None,
        replaced_kept_at=str(kept_at) if kept_at else None,
        outbox_dropped=dropped,
        tls_restored=tls_restored,
    )


# -- CLI -----------------------------------------------------------------------------------------
def register(subparsers: Any) -> None:
    """Add `storehub backup run|list|restore`."""
    backup = subparsers.add_parser("backup", help="back up and restore the hub's database").add_subparsers(
        metavar="ACTION"
    )
    run = backup.add_parser("run", help="take an online backup now (safe while the hub runs)")
    run.add_argument("--config", type=Path, required=True, help="the store's TOML config")
    run.add_argument("--dest", type=Path, required=True, help="backup directory, ideally on a second medium")
    run.add_argument("--keep-days", type=int, default=14, help="delete backups older than this (default 14)")
    run.set_defaults(handler=_cli(_run))
    lst = backup.add_parser("list", help="list the backups in a directory, oldest first")
    lst.add_argument("--dest", type=Path, required=True)
    lst.set_defaults(handler=_cli(_list))
    rst = backup.add_parser("restore", help="replace the hub's database with a backup (the hub must be stopped)")
    rst.add_argument("--config", type=Path, required=True, help="the store's TOML config")
    rst.add_argument("--from", dest="source", type=Path, required=True, help="the backup file")
    rst.set_defaults(handler=_cli(_restore))


def _cli(fn: Callable[[argparse.Namespace], dict[str, Any] | list[Any]]) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        try:
            result = fn(args)
        except BackupError as exc:
            sys.stderr.write(f"storehub: {exc}\n")
            return EXIT_REFUSED
        sys.stdout.write(json.dumps(result) + "\n")
        return 0

    return handler


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from hub.app import DB_NAME  # noqa: PLC0415
    from hub.config import load_config  # noqa: PLC0415

    loaded = load_config(args.config)
    return asdict(run_backup(loaded.data_dir / DB_NAME, args.dest, keep_days=args.keep_days))


def _list(args: argparse.Namespace) -> list[Any]:
    if not args.dest.is_dir():
        raise BackupError(f"{args.dest}: no such directory")
    return [{"path": str(path), "taken_at": taken.isoformat()} for taken, path in list_backups(args.dest)]


def _restore(args: argparse.Namespace) -> dict[str, Any]:
    from hub.config import load_config  # noqa: PLC0415

    return asdict(restore(args.source, load_config(args.config)))


# -- helpers -------------------------------------------------------------------------------------
def _open_readonly(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def _copy(source: sqlite3.Connection, target_path: Path) -> None:
    """SQLite's online backup in one step: one read transaction, so one consistent snapshot."""
    target = sqlite3.connect(target_path)
    try:
        with source:
            source.backup(target)
        # A self-contained file: the copy must not depend on a -wal beside it.
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        target.close()
        source.close()


def _stamp_epoch(path: Path, epoch: int) -> int:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('epoch', ?)", (str(epoch),))
        # Like the outbox, events not yet published at backup time belong to the old timeline.
        head = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM ledger").fetchone()[0]
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('published_seq', ?)", (str(head),))
        dropped = conn.execute("DELETE FROM outbox").rowcount
        conn.execute("COMMIT")
    finally:
        conn.close()
    return int(dropped)


def _describe_live(path: Path) -> Snapshot | None:
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            head = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM ledger").fetchone()[0]
            return Snapshot(int(head), _epoch(conn), int(head))
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return None  # a broken live database is a reason to restore; it is still kept aside


def _epoch(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
    return int(row[0]) if row else 1


def _verify_chain(path: Path) -> None:
    """Walk the hash chain from seq 1 (the same check as `storehub ledger verify`)."""
    from hub.store.ledger import GENESIS_HASH, check_entry, entry_from_row  # noqa: PLC0415

    conn = _open_readonly(path)
    try:
        rows = conn.execute(f"SELECT {LEDGER_COLUMNS} FROM ledger ORDER BY seq")  # noqa: S608 - constant columns
        prev, expected = GENESIS_HASH, 1
        for row in rows:
            entry = entry_from_row(row)
            reason = check_entry(entry, expected, prev)
            if reason is not None:
                raise BackupError(f"{path}: the ledger does not verify at seq {min(entry.seq, expected)}: {reason}")
            prev, expected = entry.hash, expected + 1
    finally:
        conn.close()


def _archive_tls(directory: Path, target: Path) -> bool:
    """Write the store CA and server certificate files into a tar (0600); False when there is no CA."""
    present = [name for name in TLS_FILES if (directory / name).is_file()]
    if not present:
        return False
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle, tarfile.open(fileobj=handle, mode="w") as tar:
        for name in present:
            tar.add(directory / name, arcname=name, recursive=False)
    _fsync(target)
    return True


def _check_tls_archive(archive: Path) -> None:
    if not archive.exists():
        return
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
    except (tarfile.TarError, OSError) as exc:
        raise BackupError(f"{archive}: not a readable archive: {exc}") from exc
    names = {m.name for m in members}
    if not names <= set(TLS_FILES) or not all(m.isfile() for m in members):
        raise BackupError(f"{archive}: unexpected entries {sorted(names - set(TLS_FILES))}; refusing to restore it")
    if ("ca.crt" in names) != ("ca.key" in names):
        raise BackupError(f"{archive}: holds the CA certificate or its key, not both")


def _restore_tls(archive: Path, directory: Path, now: datetime) -> bool:
    """Put the archived store CA back; a different CA in place is kept aside. False without an archive."""
    if not archive.exists():
        return False  # a backup from a store without TLS: whatever is in place stays
    staging = directory.with_name(f".{directory.name}.restoring")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    with tarfile.open(archive) as tar:
        tar.extractall(staging, filter="data")  # names were checked: plain files, no paths
    for member in staging.iterdir():
        member.chmod(0o644 if member.name.endswith(".crt") else 0o640)
    if directory.exists():
        same = all(
            (staging / name).read_bytes() == (directory / name).read_bytes()
            for name in TLS_FILES
            if (staging / name).exists() and (directory / name).exists()
        )
        if same:
            shutil.rmtree(staging)
            return True
        directory.rename(directory.with_name(f"{directory.name}.replaced-{now.strftime(STAMP_FORMAT)}"))
    staging.rename(directory)
    return True


def _with_sidecars(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def _db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in _with_sidecars(path) if p.exists())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
