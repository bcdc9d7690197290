"""The relay's own files: the acked cursor and its last status, each written atomically with fsync."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from hub.store.ledger import GENESIS_HASH

if TYPE_CHECKING:
    from pathlib import Path

CURSOR_FILE = "cursor.json"
STATUS_FILE = "status.json"
SESS_FILE = "mqtt-sess"
MENU_FILE = "menu-etag"


@dataclass(frozen=True, slots=True)
class Cursor:
    """The last entry central acknowledged: its epoch, seq and hash (seq 0 = nothing acked yet)."""

    epoch: int = 0
    seq: int = 0
    hash: str = GENESIS_HASH


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so a crash leaves either the old or the new file, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_cursor(state_dir: Path) -> Cursor:
    """The persisted cursor, or the start of the ledger when there is none yet."""
    path = state_dir / CURSOR_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Cursor()
    return Cursor(epoch=int(raw["epoch"]), seq=int(raw["seq"]), hash=str(raw["hash"]))


def save_cursor(state_dir: Path, cursor: Cursor) -> None:
    """Persist the cursor (only ever called after central answered 2xx)."""
    atomic_write(state_dir / CURSOR_FILE, json.dumps(asdict(cursor)).encode("utf-8"))


def load_status(state_dir: Path) -> dict[str, Any] | None:
    """The last status the relay wrote, or None."""
    try:
        data: dict[str, Any] = json.loads((state_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data


def save_status(state_dir: Path, status: dict[str, Any]) -> None:
    """Write the status file `storehub relay status` reads."""
    atomic_write(state_dir / STATUS_FILE, json.dumps(status).encode("utf-8"))


def next_session(state_dir: Path) -> int:
    """The MQTT `sess` for this connection: one more than the last one, persisted."""
    path = state_dir / SESS_FILE
    try:
        last = int(path.read_text(encoding="utf-8").strip() or 0)
    except (FileNotFoundError, ValueError):
        last = 0
    atomic_write(path, str(last + 1).encode("ascii"))
    return last + 1


def load_menu_etag(state_dir: Path) -> str | None:
    """The ETag of the last menu the hub accepted from HQ, or None."""
    try:
        return (state_dir / MENU_FILE).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def save_menu_etag(state_dir: Path, etag: str) -> None:
    """Remember that the hub accepted the menu with this ETag."""
    atomic_write(state_dir / MENU_FILE, etag.encode("utf-8"))
