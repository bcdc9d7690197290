"""Online backup while the hub sells, retention, and a restore that bumps the epoch and keeps the chain."""

from __future__ import annotations

import json
import shutil
import sqlite3
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.backup import BackupError, list_backups, prune, run_backup
from hub.tls import ensure_store_pki
from tests.hubproc import STAFF, HubProcess, storehub, write_config


def ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["ok"], reply
    return reply.get("result") or {}


def _newest_entry(db: Path) -> tuple[int, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        seq, epoch = conn.execute("SELECT seq, epoch FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    return int(seq), int(epoch)


def _tickets(db: Path) -> set[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {row[0] for row in conn.execute("SELECT ticket_id FROM p_tickets")}


def test_backup_while_selling_then_restore_bumps_epoch_and_chain_still_verifies(tmp_path):
    hub = HubProcess(write_config(tmp_path / "store")).start()
    dest = tmp_path / "usb-stick"
    config = str(hub.config)
    db = hub.data_dir / "hub.db"
    try:
        creds = hub.add_device("tab-bk")
        tab = hub.tablet("tab-bk", creds=creds)
        mgr = tab.login(*STAFF["mgr"])
        server = tab.login(*STAFF["server"])
        ok(tab.call("shift.open", {"opening_float": 10000}, auth=mgr))
        ok(tab.call("ticket.open", {"ticket_id": "before-backup", "channel": "takeout"}, auth=server))

        made = storehub("backup", "run", "--config", config, "--dest", str(dest), "--keep-days", "7")
        result = json.loads(made.stdout)
        backup_file = Path(result["path"])
        assert backup_file.parent == dest
        assert result["head_seq"] >= 3
        assert result["epoch"] == 1
        assert [str(p) for _, p in list_backups(dest)] == [result["path"]]
        listed = json.loads(storehub("backup", "list", "--dest", str(dest)).stdout)
        assert [b["path"] for b in listed] == [result["path"]]

        ok(tab.call("ticket.open", {"ticket_id": "after-backup", "channel": "takeout"}, auth=server))
        tab.close()

        refused = storehub("backup", "restore", "--config", config, "--from", str(backup_file), check=False)
        assert refused.returncode == 2
        assert "the hub is running" in refused.stderr
        assert "after-backup" in _tickets(db), "a refused restore changes nothing"
    finally:
        hub.stop()

    head_before_restore, _ = _newest_entry(db)
    restored = json.loads(storehub("backup", "restore", "--config", config, "--from", str(backup_file)).stdout)
    assert restored["epoch"] == 2
    assert restored["previous_epoch"] == 1
    assert restored["head_seq"] == result["head_seq"]
    assert restored["previous_head_seq"] == head_before_restore
    kept = Path(restored["replaced_kept_at"])
    assert "after-backup" in _tickets(kept), "the replaced database is kept aside, whole"
    assert _tickets(db) >= {"before-backup"}
    assert "after-backup" not in _tickets(db)
    assert json.loads(storehub("ledger", "verify", "--config", config).stdout)["ok"]
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        outbox = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    assert meta["epoch"] == "2"
    assert meta["published_seq"] == str(result["head_seq"]), "nothing of the old timeline is re-sent"
    assert outbox == 0

    hub.start()
    try:
        status = json.loads(storehub("hub", "status", "--config", config).stdout)
        assert status["epoch"] == 2
        assert status["seq"] == result["head_seq"]
        tab = hub.tablet("tab-bk", creds=creds)
        server = tab.login(*STAFF["server"])
        ok(tab.call("ticket.open", {"ticket_id": "after-restore", "channel": "takeout"}, auth=server))
        tab.close()
    finally:
        hub.stop()
    seq, epoch = _newest_entry(db)
    assert seq > result["head_seq"]
    assert epoch == 2, "entries written after the restore carry the new epoch"
    verify = json.loads(storehub("ledger", "verify", "--config", config).stdout)
    assert verify["ok"], verify
    assert verify["head_seq"] == seq


def _fake_backup(source: Path, dest: Path, taken: datetime) -> Path:
    path = dest / f"hub-{taken.strftime('%Y%m%dT%H%M%SZ')}.db"
    shutil.copy(source, path)
    return path


@pytest.fixture(scope="module")
def stopped_store(tmp_path_factory) -> tuple[Path, Path]:
    """A store whose hub ran once and stopped: a real database with a real ledger."""
    directory = tmp_path_factory.mktemp("stopped")
    hub = HubProcess(write_config(directory)).start()
    hub.stop()
    return hub.config, hub.data_dir / "hub.db"


def test_retention_deletes_old_backups_but_never_the_newest(stopped_store, tmp_path):
    config, db = stopped_store
    now = datetime.now(UTC).replace(microsecond=0)
    old = [_fake_backup(db, tmp_path, now - timedelta(days=d)) for d in (30, 20, 10)]
    recent = _fake_backup(db, tmp_path, now - timedelta(days=2))
    result = json.loads(
        storehub("backup", "run", "--config", str(config), "--dest", str(tmp_path), "--keep-days", "5").stdout
    )
    assert sorted(result["deleted"]) == sorted(str(p) for p in old)
    assert {p for _, p in list_backups(tmp_path)} == {recent, Path(result["path"])}

    # With only stale copies left, the newest of them stays: a backup is never pruned to nothing.
    for path in list(tmp_path.iterdir()):
        path.unlink()
    stale = [_fake_backup(db, tmp_path, now - timedelta(days=d)) for d in (40, 30)]
    assert prune(tmp_path, keep_days=5, now=now) == [str(stale[0])]
    assert [p for _, p in list_backups(tmp_path)] == [stale[1]]


def test_restore_refuses_a_tampered_backup_and_changes_nothing(stopped_store, tmp_path):
    config, db = stopped_store
    tampered = tmp_path / "hub-20260101T000000Z.db"
    shutil.copy(db, tampered)
    with sqlite3.connect(tampered) as conn:
        conn.execute("DROP TRIGGER ledger_never_updated")
        conn.execute("UPDATE ledger SET data = '{\"forged\":true}' WHERE seq = 2")
    before = db.read_bytes()
    result = storehub("backup", "restore", "--config", str(config), "--from", str(tampered), check=False)
    assert result.returncode == 2
    assert "the ledger does not verify at seq 2" in result.stderr
    assert db.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"this is not a database at all" * 100, "not a readable database"), (None, "no such backup file")],
)
def test_restore_refuses_what_is_not_a_backup(stopped_store, tmp_path, content, message):
    config, _db = stopped_store
    path = tmp_path / "junk.db"
    if content is not None:
        path.write_bytes(content)
    result = storehub("backup", "restore", "--config", str(config), "--from", str(path), check=False)
    assert result.returncode == 2
    assert message in result.stderr


def test_backup_refuses_bad_input(stopped_store, tmp_path):
    config, _db = stopped_store
    zero = storehub("backup", "run", "--config", str(config), "--dest", str(tmp_path), "--keep-days", "0", check=False)
    assert zero.returncode == 2
    assert "--keep-days must be at least 1" in zero.stderr
    assert list(tmp_path.iterdir()) == []
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    result = storehub("backup", "run", "--config", str(config), "--dest", str(blocked / "sub"), check=False)
    assert result.returncode == 2
    assert "cannot create the backup directory" in result.stderr
    missing = storehub("backup", "list", "--dest", str(tmp_path / "missing"), check=False)
    assert missing.returncode == 2
    assert "no such directory" in missing.stderr


def test_prune_of_an_empty_directory_deletes_nothing(tmp_path):
    assert prune(tmp_path, keep_days=1, now=datetime.now(UTC)) == []
    with pytest.raises(BackupError, match="nothing to back up"):
        run_backup(tmp_path / "hub.db", tmp_path / "dest", keep_days=1)


def test_the_store_ca_is_backed_up_and_restored_with_the_database(stopped_store, tmp_path):
    config, db = stopped_store
    tls = db.parent / "tls"
    ensure_store_pki(tls, "test-store", ["hub.local"])
    ca_key = (tls / "ca.key").read_bytes()
    dest = tmp_path / "bk"
    result = json.loads(storehub("backup", "run", "--config", str(config), "--dest", str(dest)).stdout)
    archive = Path(result["tls"])
    assert archive.name == Path(result["path"]).name.removesuffix(".db") + ".tls.tar"
    assert oct(archive.stat().st_mode & 0o777) == "0o600", "the archive holds the CA key"

    shutil.rmtree(tls)  # the disk died: a new SD card, no CA
    restored = json.loads(storehub("backup", "restore", "--config", str(config), "--from", result["path"]).stdout)
    assert restored["tls_restored"] is True
    assert (tls / "ca.key").read_bytes() == ca_key, "paired devices keep trusting the hub"
    assert ensure_store_pki(tls, "test-store", ["hub.local"]).ca_cert.exists()

    other = tmp_path / "other-ca"
    ensure_store_pki(other, "test-store", ["hub.local"])
    shutil.rmtree(tls)
    shutil.copytree(other, tls)
    storehub("backup", "restore", "--config", str(config), "--from", result["path"])
    assert (tls / "ca.key").read_bytes() == ca_key
    kept = [p for p in tls.parent.iterdir() if p.name.startswith("tls.replaced-")]
    assert len(kept) == 1, "a different CA in place is kept aside, never deleted"
    assert (kept[0] / "ca.key").read_bytes() == (other / "ca.key").read_bytes()


def test_restore_refuses_an_archive_with_unexpected_entries(stopped_store, tmp_path):
    config, db = stopped_store
    backup = tmp_path / "hub-20260101T000000Z.db"
    shutil.copy(db, backup)
    evil = tmp_path / "evil"
    evil.write_text("x")
    with tarfile.open(tmp_path / "hub-20260101T000000Z.tls.tar", "w") as tar:
        tar.add(evil, arcname="../../etc/cron.d/evil")
    before = db.read_bytes()
    result = storehub("backup", "restore", "--config", str(config), "--from", str(backup), check=False)
    assert result.returncode == 2
    assert "unexpected entries" in result.stderr
    assert db.read_bytes() == before
