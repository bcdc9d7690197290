"""The engine on a real SQLite file, driven with raw contract payloads (no broker needed here)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.app import bootstrap, store_settings
from hub.config import load_config
from hub.contract.envelopes import Reply, encode_command
from hub.engine import Engine
from hub.store.db import Database
from hub.store.ledger import verify_ledger
from hub.store.replay import replay_and_diff
from tests.hubproc import STAFF, write_config


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 18, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Harness:
    """An engine over a database file in tmp_path, with a registered tablet."""

    def __init__(self, tmp_path: Path) -> None:
        self.config = load_config(write_config(tmp_path))
        self.path = self.config.data_dir / "hub.db"
        self.clock = Clock()
        self.ids = 0

    async def open(self) -> Engine:
        self.db = await Database.open(self.path)
        self.engine = Engine(self.db, store_settings(self.config), clock=self.clock)
        await self.engine.load()
        self.engine.start()
        await bootstrap(self.engine, self.config)
        if "tab-01" not in self.engine.state.devices:
            reply = await self.engine.admin("device.add", {"device_id": "tab-01", "kind": "tablet", "stations": []})
            assert reply.ok, reply
        return self.engine

    async def close(self) -> None:
        await self.engine.stop()
        await self.db.close()

    async def raw(self, payload: bytes, device: str = "tab-01") -> Reply:
        return await self.engine.execute(device, payload)

    async def cmd(
        self,
        type_: str,
        body: dict[str, Any] | None = None,
        *,
        auth: str | None = None,
        approve: dict[str, Any] | None = None,
        cmd_id: str | None = None,
    ) -> Reply:
        self.ids += 1
        return await self.raw(encode_command(cmd_id or f"c-{self.ids}", type_, body, auth=auth, approve=approve))

    async def login(self, who: str) -> str:
        employee, pin = STAFF[who]
        reply = await self.cmd("staff.login", {"employee_id": employee, "pin": pin})
        assert reply.ok, reply
        return str(reply.result["token"])


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def ledger_count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0])


def test_ok_reply_is_durable_and_same_id_returns_the_same_reply(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def first() -> tuple[Reply, int]:
        await h.open()
        mgr = await h.login("mgr")
        reply = await h.cmd("shift.open", {"opening_float": 15000}, auth=mgr, cmd_id="open-1")
        await h.close()
        return reply, ledger_count(h.path)

    reply, count = run(first())
    assert reply.ok
    assert reply.seq == count

    async def again() -> tuple[Reply, Reply, Any]:
        await h.open()
        mgr = await h.login("mgr")
        same = await h.cmd("shift.open", {"opening_float": 15000}, auth=mgr, cmd_id="open-1")
        other = await h.cmd("shift.open", {"opening_float": 1}, auth=mgr, cmd_id="open-1")
        state = h.engine.state.current_shift
        await h.close()
        return same, other, state

    same, other, shift = run(again())
    assert same.model_dump() == reply.model_dump()
    assert other.error is not None
    assert other.error.code == "idempotency_mismatch"
    assert shift is not None
    assert shift.opening_float == 15000
    assert len([s for s in [shift] if s.status == "open"]) == 1


def test_bad_input_gets_a_specific_error_and_writes_nothing(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> dict[str, Reply]:
        await h.open()
        before = h.engine.head.seq
        server = await h.login("server")
        after_login = h.engine.head.seq
        out = {
            "not_json": await h.raw(b"{nope"),
            "not_utf8": await h.raw(b"\xff\xfe"),
            "array": await h.raw(b"[1,2]"),
            "unknown": await h.cmd("ticket.teleport", {}),
            "float_money": await h.cmd("shift.open", {"opening_float": 10.5}, auth=server),
            "too_large": await h.raw(b'{"v":1,"id":"big","type":"sync","body":{"x":"' + b"a" * 70000 + b'"}}'),
            "no_auth": await h.cmd("ticket.open", {"channel": "takeout"}),
            "bad_token": await h.cmd("ticket.open", {"channel": "takeout"}, auth="forged"),
            "role": await h.cmd("shift.open", {"opening_float": 100}, auth=server),
            "shift_closed": await h.cmd("ticket.open", {"channel": "takeout"}, auth=server),
            "unknown_device": await h.raw(
                json.dumps({"v": 1, "id": "x1", "type": "sync", "body": {}}).encode(), device="ghost"
            ),
        }
        out["_written"] = Reply.success(None, h.engine.head.seq - after_login, {"before": before})
        await h.close()
        return out

    out = run(go())
    codes = {k: v.error.code for k, v in out.items() if v.error is not None}
    assert codes == {
        "not_json": "invalid_payload",
        "not_utf8": "invalid_payload",
        "array": "invalid_payload",
        "unknown": "unknown_command",
        "float_money": "invalid_payload",
        "too_large": "too_large",
        "no_auth": "unauthorized",
        "bad_token": "unauthorized",
        "role": "forbidden",
        "shift_closed": "shift_closed",
        "unknown_device": "unauthorized",
    }
    assert out["not_json"].id is None
    assert out["float_money"].id is not None
    assert "opening_float" in out["float_money"].error.message
    assert out["_written"].seq == 0, "bad commands must not write the ledger"


def test_clock_behind_the_ledger_refuses_writes_until_fixed(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> tuple[Reply, Reply, Reply]:
        await h.open()
        mgr = await h.login("mgr")
        h.clock.advance(-3600)
        refused = await h.cmd("shift.open", {"opening_float": 100}, auth=mgr, cmd_id="s1")
        read = await h.cmd("sync", {})
        h.clock.advance(3601)
        accepted = await h.cmd("shift.open", {"opening_float": 100}, auth=mgr, cmd_id="s1")
        await h.close()
        return refused, read, accepted

    refused, read, accepted = run(go())
    assert refused.error is not None
    assert refused.error.code == "clock_invalid"
    assert read.ok, "reads are still served while writes are refused"
    assert accepted.ok, "clock_invalid is not remembered: the same command succeeds once the clock is right"


def test_full_disk_answers_storage_full_changes_nothing_and_recovers(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    employee, pin = STAFF["server"]

    async def go() -> tuple[Reply, Reply, bool, bool]:
        await h.open()
        async with h.db.writer.execute("PRAGMA page_count") as cursor:
            row = await cursor.fetchone()
        assert row is not None
        await h.db.writer.execute(f"PRAGMA max_page_count = {row[0]}")
        full = None
        for _ in range(500):  # each login writes an event and a session until the pages run out
            full = await h.cmd("staff.login", {"employee_id": employee, "pin": pin})
            if full.error is not None:
                break
        assert full is not None
        seq = h.engine.head.seq
        sessions = len(h.engine.state.sessions)
        again = await h.cmd("staff.login", {"employee_id": employee, "pin": pin})
        unchanged = h.engine.head.seq == seq and len(h.engine.state.sessions) == sessions
        await h.db.writer.execute("PRAGMA max_page_count = 1073741823")
        ok = await h.cmd("staff.login", {"employee_id": employee, "pin": pin})
        async with h.db.reader() as conn:
            verified = (await verify_ledger(conn)).ok
        await h.close()
        return full if again.error is None else again, ok, unchanged, verified

    full, ok, unchanged, verified = run(go())
    assert full.error is not None
    assert full.error.code == "storage_full"
    assert "Nothing was changed" in full.error.message
    assert unchanged, "a refused write leaves ledger and state as they were"
    assert ok.ok, "the hub recovers by itself once there is room again"
    assert verified


def test_group_commit_many_commands_in_few_transactions_and_replay_matches(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> tuple[list[Reply], Any]:
        await h.open()
        mgr = await h.login("mgr")
        server = await h.login("server")
        await h.cmd("shift.open", {"opening_float": 10000}, auth=mgr)
        batches_before = h.engine.stats.batches
        waiters = []
        for i in range(60):
            h.ids += 1
            envelope = {
                "v": 1,
                "id": f"burst-{i}",
                "type": "ticket.open",
                "auth": server,
                "body": {"ticket_id": f"tk-{i}", "channel": "takeout"},
            }
            waiters.append(h.engine.execute("tab-01", json.dumps(envelope).encode()))
        replies = await asyncio.gather(*waiters)
        batches = h.engine.stats.batches - batches_before
        await h.close()
        return replies, batches

    replies, batches = run(go())
    assert all(r.ok for r in replies)
    assert len({r.result["number"] for r in replies}) == 60
    assert batches < 60, "queued commands share transactions"
    report = run(replay_and_diff(h.path))
    assert report["equal"], report


def test_sync_returns_the_events_since_a_seq_or_a_snapshot_for_a_large_gap(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> tuple[Reply, Reply, int]:
        await h.open()
        mgr = await h.login("mgr")
        since = h.engine.head.seq
        await h.cmd("shift.open", {"opening_float": 100}, auth=mgr)
        await h.cmd("drawer.pay_in", {"amount": 250, "reason": "coins"}, auth=mgr)
        small = await h.cmd("sync", {"since_seq": since})
        large = await h.cmd("sync", {"since_seq": 0}) if h.engine.head.seq > 500 else await h.cmd("sync", {})
        head = h.engine.head.seq
        await h.close()
        return small, large, head

    small, large, head = run(go())
    assert small.ok
    assert large.ok
    events = small.result["events"]
    assert [e["seq"] for e in events] == list(range(head - len(events) + 1, head + 1))
    assert [e["type"] for e in events] == ["shift.opened", "shift.cash_moved"]
    assert events[1]["data"]["amount"] == 250
    assert small.result["seq"] == head
    assert large.result["snapshot"]["shift"]["open"] is True


def test_random_bytes_get_error_replies_and_never_write(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    loop_payloads: list[bytes] = []

    @settings(max_examples=60, deadline=None)
    @given(st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode)))
    def collect(payload: bytes) -> None:
        loop_payloads.append(payload)

    collect()

    async def go() -> tuple[list[Reply], int]:
        await h.open()
        seq = h.engine.head.seq
        replies = [await h.raw(p) for p in loop_payloads]
        await h.close()
        return replies, seq

    replies, seq = run(go())
    assert len(replies) >= 20
    assert all(not r.ok for r in replies)
    assert {r.error.code for r in replies if r.error} <= {"invalid_payload", "unknown_command", "too_large"}
    assert ledger_count(h.path) == seq


def test_a_stale_offline_status_does_not_hide_a_newer_birth(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> list[str]:
        engine = await h.open()
        seen = []
        engine.note_device_status("tab-01", {"state": "online", "sess": 2})
        seen.append(engine.presence["tab-01"]["state"])
        engine.note_device_status("tab-01", {"state": "offline", "sess": 1})  # the old session's late LWT
        seen.append(engine.presence["tab-01"]["state"])
        engine.note_device_status("tab-01", {"state": "offline", "sess": 2})
        seen.append(engine.presence["tab-01"]["state"])
        engine.note_device_status("tab-01", {"state": "online", "sess": 3})
        seen.append(engine.presence["tab-01"]["state"])
        await h.close()
        return seen

    assert run(go()) == ["online", "online", "offline", "online"]


def test_command_ids_are_remembered_for_the_retention_and_then_pruned(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> tuple[Reply, Reply, int, int]:
        await h.open()
        mgr = await h.login("mgr")
        first = await h.cmd("shift.open", {"opening_float": 100}, auth=mgr, cmd_id="keep-me")
        h.clock.advance(6 * 86400)
        kept = await h.engine.prune()
        again = await h.cmd("shift.open", {"opening_float": 100}, auth=mgr, cmd_id="keep-me")
        h.clock.advance(2 * 86400)
        pruned = await h.engine.prune()
        await h.close()
        return first, again, kept, pruned

    first, again, kept, pruned = run(go())
    assert first.ok
    assert again.model_dump() == first.model_dump(), "within 7 days the same id gets the same reply"
    assert kept == 0
    assert pruned >= 1


def test_tickets_settled_long_ago_leave_memory_but_not_the_books(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def sell() -> Reply:
        await h.open()
        mgr = await h.login("mgr")
        await h.cmd("shift.open", {"opening_float": 0}, auth=mgr)
        await h.cmd("ticket.open", {"ticket_id": "old-1", "channel": "takeout"}, auth=mgr)
        items = [{"line_id": "l1", "menu_item_id": "biere", "qty": 2}]
        await h.cmd("ticket.add_items", {"ticket_id": "old-1", "items": items}, auth=mgr)
        paid = await h.cmd(
            "ticket.pay",
            {"ticket_id": "old-1", "tenders": [{"kind": "cash", "amount": 1000, "tendered": 1000}]},
            auth=mgr,
        )
        await h.close()
        return paid

    assert run(sell()).ok
    h.clock.advance(3 * 86400)

    async def later() -> tuple[bool, Reply, Reply, bool]:
        await h.open()
        in_memory = "old-1" in h.engine.state.tickets
        mgr = await h.login("mgr")
        again = await h.cmd("ticket.open", {"ticket_id": "old-1", "channel": "takeout"}, auth=mgr)
        refund = await h.cmd(
            "ticket.refund",
            {"ticket_id": "old-1", "lines": [{"line_id": "l1", "qty": 1}], "tender": "cash", "reason": "flat"},
            auth=mgr,
        )
        evicted = h.engine.evict_settled() == 1 and "old-1" not in h.engine.state.tickets
        second = await h.cmd(
            "ticket.refund",
            {"ticket_id": "old-1", "lines": [{"line_id": "l1", "qty": 1}], "tender": "cash", "reason": "flat too"},
            auth=mgr,
        )
        await h.close()
        return in_memory, again, refund, evicted and second.ok

    in_memory, again, refund, evicted_and_recalled = run(later())
    assert not in_memory, "a ticket settled three days ago is not loaded at start-up"
    assert again.error is not None
    assert again.error.code == "conflict", "its id is still taken"
    assert refund.ok, refund
    assert refund.result["amount"] == 500
    assert evicted_and_recalled, "the hourly eviction drops it again, and the next command brings it back"
    report = run(replay_and_diff(h.path))
    assert report["equal"], report


def test_a_copy_of_a_command_in_a_failed_batch_is_not_told_ok(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    employee, pin = STAFF["server"]
    body = {"employee_id": employee, "pin": pin}

    async def go() -> list[Reply]:
        await h.open()
        async with h.db.writer.execute("PRAGMA page_count") as cursor:
            row = await cursor.fetchone()
        assert row is not None
        await h.db.writer.execute(f"PRAGMA max_page_count = {row[0]}")
        for _ in range(500):  # use up the last free pages
            reply = await h.cmd("staff.login", body)
            if reply.error is not None:
                break
        envelope = json.dumps({"v": 1, "id": "twice", "type": "staff.login", "body": body}).encode()
        replies = await asyncio.gather(h.engine.execute("tab-01", envelope), h.engine.execute("tab-01", envelope))
        await h.close()
        return list(replies)

    first, second = run(go())
    assert first.error is not None
    assert first.error.code == "storage_full"
    assert second.error is not None, "the copy must not report a change that was never saved"
    assert second.error.code == "storage_full"


class RecordingPublisher:
    """A publisher that records what it is given and acknowledges it only when told to."""

    def __init__(self, *, ack: bool) -> None:
        self.ack = ack
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> asyncio.Future[None]:
        del qos, retain
        self.sent.append((topic, payload))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.ack:
            future.set_result(None)
        else:
            future.set_exception(ConnectionError("the broker went away before its PUBACK"))
        return future

    def event_seqs(self) -> list[int]:
        return [json.loads(p)["seq"] for t, p in self.sent if "/event/" in t]


def test_events_the_broker_never_acknowledged_are_published_again_from_the_ledger(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def unacked() -> tuple[list[int], int]:
        await h.open()
        lost = RecordingPublisher(ack=False)
        h.engine.attach(lost)
        mgr = await h.login("mgr")
        assert (await h.cmd("shift.open", {"opening_float": 10000}, auth=mgr)).ok
        await h.engine.flush_acked()
        head = h.engine.head.seq
        await h.close()
        return lost.event_seqs(), head

    lost_seqs, head = run(unacked())
    assert lost_seqs, "events were handed to the broker"

    async def restart(*, ack: bool) -> list[int]:
        await h.open()
        publisher = RecordingPublisher(ack=ack)
        h.engine.attach(publisher)
        await h.engine.republish()
        await asyncio.sleep(0)  # let the PUBACK callbacks run
        await h.engine.flush_acked()
        await h.close()
        return publisher.event_seqs()

    # Everything the broker never acknowledged (the bootstrap's events were committed before any
    # broker was attached) comes again, in order, from the ledger — there are no outbox rows for it.
    again = run(restart(ack=True))
    assert again == list(range(1, head + 1))
    assert set(lost_seqs) <= set(again)
    with sqlite3.connect(h.path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'published_seq'").fetchone() == (str(head),)
        assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone() == (0,)
    # Once acknowledged and saved, a later restart publishes none of them again.
    assert [s for s in run(restart(ack=True)) if s <= head] == []


class HeldPublisher:
    """A publisher whose PUBACKs wait until the test gives them (or drops the connection)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.waiting: list[asyncio.Future[None]] = []

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> asyncio.Future[None]:
        del qos, retain
        self.sent.append((topic, payload))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        return future

    def settle(self, error: Exception | None = None) -> None:
        for future in self.waiting:
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
        self.waiting.clear()

    def event_seqs(self) -> list[int]:
        return [json.loads(p)["seq"] for t, p in self.sent if "/event/" in t]


def test_a_reconnect_sends_the_backlog_in_rounds_each_after_the_last_ones_pubacks(tmp_path: Path) -> None:
    # MQTT packet ids are 16 bits: a backlog past 65,535 events must never be in flight at once.
    h = Harness(tmp_path)

    async def go() -> None:
        await h.open()  # no broker attached yet: every event so far is backlog
        mgr = await h.login("mgr")
        assert (await h.cmd("shift.open", {"opening_float": 10000}, auth=mgr)).ok
        head = h.engine.head.seq
        assert head > 8, "the test needs a backlog of more than two rounds"
        h.engine.republish_round = 4

        held = HeldPublisher()
        h.engine.attach(held)
        republishing = asyncio.create_task(h.engine.republish())
        await _until(lambda: len(held.event_seqs()) >= 4)
        await asyncio.sleep(0.05)  # time for a wrong fifth one to show up
        assert held.event_seqs() == [1, 2, 3, 4], "only the first round until its PUBACKs"
        held.settle()
        await _until(lambda: len(held.event_seqs()) >= 8)
        await asyncio.sleep(0.05)
        assert held.event_seqs() == list(range(1, 9))
        assert h.engine.published_seq == 4
        held.settle(ConnectionError("the broker went away before its PUBACKs"))
        await asyncio.wait_for(republishing, 5)  # gives up; the next connect starts from the cursor
        assert held.event_seqs() == list(range(1, 9))
        assert h.engine.published_seq == 4

        again = RecordingPublisher(ack=True)
        h.engine.attach(again)
        await asyncio.wait_for(h.engine.republish(), 5)
        await asyncio.sleep(0)
        assert again.event_seqs() == list(range(5, head + 1))
        assert h.engine.published_seq == head
        await h.close()

    run(go())


async def _until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


class WriteLock:
    """Another connection holding SQLite's write lock, so the engine's commit waits (or times out)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def test_a_copy_sent_while_the_first_is_still_committing_is_applied_once(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> tuple[Reply, Reply, Reply, int]:
        await h.open()
        mgr = await h.login("mgr")
        lock = WriteLock(h.path)
        first = asyncio.ensure_future(h.cmd("shift.open", {"opening_float": 5000}, auth=mgr, cmd_id="open"))
        await asyncio.sleep(0.2)  # decided, and its commit waits for the lock
        copy = asyncio.ensure_future(h.cmd("shift.open", {"opening_float": 5000}, auth=mgr, cmd_id="open"))
        after = asyncio.ensure_future(
            h.cmd("drawer.pay_in", {"amount": 700, "reason": "change from the bank"}, auth=mgr, cmd_id="in")
        )
        await asyncio.sleep(0.2)  # both decided on top of the batch in flight
        assert not first.done()
        assert not copy.done()
        lock.release()
        replies = await asyncio.gather(first, copy, after)
        opened = sum(1 for e in h.engine.state.shifts.values() if e.opening_float == 5000)
        await h.close()
        return replies[0], replies[1], replies[2], opened

    first, copy, after, opened = run(go())
    assert first.ok, first
    assert copy.model_dump() == first.model_dump()
    assert after.ok, after  # decided against the shift that was not yet on disk, committed after it
    assert opened == 1
    with sqlite3.connect(h.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM ledger WHERE type = 'shift.opened'").fetchone() == (1,)
    assert run(_chain_ok(h.path))
    report = run(replay_and_diff(h.path))
    assert report["equal"], report


def test_a_batch_decided_on_top_of_a_failed_commit_is_refused_too_and_nothing_is_lost(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> tuple[Reply, Reply, Reply, Reply]:
        await h.open()
        mgr = await h.login("mgr")
        lock = WriteLock(h.path)
        first = asyncio.ensure_future(h.cmd("shift.open", {"opening_float": 5000}, auth=mgr, cmd_id="open"))
        await asyncio.sleep(0.2)
        after = asyncio.ensure_future(
            h.cmd("drawer.pay_in", {"amount": 700, "reason": "change from the bank"}, auth=mgr, cmd_id="in")
        )
        # The lock outlives the writer's busy timeout: the first commit fails, and the pay-in that
        # was decided on the shift it would have opened must not be written on its own.
        failed = await asyncio.gather(first, after)
        lock.release()
        retried = await asyncio.gather(
            h.cmd("shift.open", {"opening_float": 5000}, auth=mgr, cmd_id="open"),
            h.cmd("drawer.pay_in", {"amount": 700, "reason": "change from the bank"}, auth=mgr, cmd_id="in"),
        )
        await h.close()
        return failed[0], failed[1], retried[0], retried[1]

    first, after, first_again, after_again = run(go())
    assert first.error is not None
    assert first.error.code == "internal"
    assert after.error is not None
    assert after.error.code == "internal"  # never shift_closed: it was refused for the lost commit
    assert first_again.ok, first_again
    assert after_again.ok, after_again
    with sqlite3.connect(h.path) as conn:
        types = [r[0] for r in conn.execute("SELECT type FROM ledger WHERE type LIKE 'shift.%' ORDER BY seq")]
    assert types == ["shift.opened", "shift.cash_moved"]
    assert run(_chain_ok(h.path))
    report = run(replay_and_diff(h.path))
    assert report["equal"], report


def test_a_batch_left_behind_a_failing_commit_when_the_hub_stops_is_refused_not_written(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> tuple[Reply, Reply]:
        await h.open()
        mgr = await h.login("mgr")
        lock = WriteLock(h.path)
        first = asyncio.ensure_future(h.cmd("shift.open", {"opening_float": 5000}, auth=mgr, cmd_id="open"))
        await asyncio.sleep(0.2)  # its commit waits for the lock, and will give up
        after = asyncio.ensure_future(
            h.cmd("drawer.pay_in", {"amount": 700, "reason": "change from the bank"}, auth=mgr, cmd_id="in")
        )
        await _until(lambda: h.engine._staged)  # decided on top of the first, waiting for it
        generation = h.engine._generation
        stopping = asyncio.ensure_future(h.engine.stop())  # the hub is told to stop right then
        await _until(lambda: h.engine._generation > generation, within=30)  # the first commit failed
        lock.release()  # the disk is free again: only the engine can keep the pay-in out now
        first_reply, after_reply = await asyncio.gather(first, after)
        await stopping
        await h.db.close()
        return first_reply, after_reply

    first, after = run(go())
    assert first.error is not None
    assert first.error.code == "internal"
    assert after.error is not None
    assert after.error.code == "internal"
    with sqlite3.connect(h.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM ledger WHERE type LIKE 'shift.%'").fetchone() == (0,)
    assert run(_chain_ok(h.path))


async def _chain_ok(path: Path) -> bool:
    db = await Database.open(path)
    try:
        return (await verify_ledger(db.writer)).ok
    finally:
        await db.close()
