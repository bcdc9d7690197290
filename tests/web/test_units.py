"""Pure parts of the manager page, with the clock handed in: pairing codes, sessions, limiter, views."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.registry import Offer, PairingCodes, PairingError, code_hash
from hub.domain import token_hash
from hub.domain.model import StaffSession, StoreState
from hub.store.db import Database
from hub.store.webstate import SqliteWebState
from hub.web import views
from hub.web.services import LiveFeed, _seq_of
from hub.web.sessions import ADDRESS_FACTOR, LoginLimiter, WebSessions, csrf_ok
from tests.domain.harness import store


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_a_code_pairs_once_and_expires() -> None:
    clock = Clock()
    codes = PairingCodes(clock, ttl_s=600)
    offer = codes.issue(kind="tablet")
    assert len(offer.code) == 6
    assert offer.code.isdigit()
    claim = codes.claim(offer.code, "tab-1", "tablet", (), "10.0.0.5")
    with pytest.raises(PairingError) as busy:  # reserved while the engine registers the device
        codes.claim(offer.code, "tab-2", "tablet", (), "10.0.0.6")
    assert busy.value.status == 403
    codes.consume(claim)
    with pytest.raises(PairingError, match="already used"):
        codes.claim(offer.code, "tab-2", "tablet", (), "10.0.0.6")
    late = codes.issue()
    clock.advance(601)
    with pytest.raises(PairingError, match="Unknown or expired"):
        codes.claim(late.code, "tab-3", "tablet", (), "10.0.0.7")
    assert codes.pending() == []


def test_a_refused_registration_gives_the_code_back() -> None:
    codes = PairingCodes(Clock())
    offer = codes.issue(kind="kds", stations=("grill",))
    with pytest.raises(PairingError) as wrong:
        codes.claim(offer.code, "kds-1", "kds", ("bar",), "ip")
    assert wrong.value.code == "conflict"
    claim = codes.claim(offer.code, "kds-1", "kds", ("grill",), "ip")
    codes.release(claim)
    assert codes.claim(offer.code, "kds-2", "kds", ("grill",), "ip").device_id == "kds-2"


def test_guessing_codes_locks_the_client_out() -> None:
    clock = Clock()
    codes = PairingCodes(clock, max_failures=3, window_s=60, lockout_s=120)
    real = codes.issue()
    for guess in ("000001", "000002", "000003"):
        with pytest.raises(PairingError):
            codes.claim(guess, "x", "tablet", (), "attacker")
    with pytest.raises(PairingError) as locked:
        codes.claim(real.code, "x", "tablet", (), "attacker")
    assert locked.value.status == 429
    assert codes.claim(real.code, "tab-ok", "tablet", (), "someone-else").device_id == "tab-ok"
    clock.advance(121)
    with pytest.raises(PairingError) as again:
        codes.claim("000004", "x", "tablet", (), "attacker")
    assert again.value.status == 403


def test_codes_refuse_unpairable_kinds() -> None:
    codes = PairingCodes(Clock())
    with pytest.raises(PairingError):
        codes.issue(kind="relay")
    with pytest.raises(PairingError):
        codes.issue(kind="tablet", stations=("grill",))
    offer = codes.issue()
    with pytest.raises(PairingError):
        codes.claim(offer.code, "r", "relay", (), "ip")


def test_web_sessions_end_with_their_lifetime_and_their_staff_session() -> None:
    clock = Clock()
    sessions = WebSessions(3600, clock)
    state = StoreState.empty()
    s = asyncio.run(sessions.create("tok", "emp-1", "Ann", "manager", clock.now + timedelta(hours=12)))
    assert sessions.get(s.sid, state) is None  # the engine knows no such staff session
    assert sessions.count() == 0

    s = asyncio.run(sessions.create("tok", "emp-1", "Ann", "manager", clock.now + timedelta(hours=12)))
    state.sessions[token_hash("tok")] = _staff_session(clock, "emp-1", "server")
    live = sessions.get(s.sid, state)
    assert live is not None
    assert live.role == "server"  # a role change applies at once
    assert not live.manager
    clock.advance(3601)
    assert sessions.get(s.sid, state) is None


def _staff_session(clock: Clock, employee_id: str, role: str) -> StaffSession:
    return StaffSession(
        employee_id=employee_id,
        role=role,
        issued_at=clock.now,
        expires_at=clock.now + timedelta(hours=12),
        device="web",
    )


def test_sessions_outlive_a_restart_stored_without_cookie_or_token(tmp_path: Path) -> None:
    """A real hub database: the row is keyed by the cookie's hash and the token is sealed by the cookie."""
    clock = Clock()
    state = StoreState.empty()
    token, other = "staff-token-" + "x" * 30, "staff-token-" + "y" * 30
    state.sessions[token_hash(token)] = _staff_session(clock, "emp-1", "manager")
    state.sessions[token_hash(other)] = _staff_session(clock, "emp-2", "manager")

    async def run() -> None:
        db = await Database.open(tmp_path / "hub.sqlite3")
        try:
            store = SqliteWebState(db)
            before = WebSessions(3600, clock, store)
            kept = await before.create(token, "emp-1", "Ann", "manager", clock.now + timedelta(hours=12))
            gone = await before.create(other, "emp-2", "Bo", "manager", clock.now + timedelta(hours=12))
            raw = (tmp_path / "hub.sqlite3").read_bytes() + (tmp_path / "hub.sqlite3-wal").read_bytes()
            for secret in (token, kept.sid, kept.csrf):
                assert secret.encode() not in raw  # neither the cookie, its CSRF token, nor the staff token
            del state.sessions[token_hash(other)]  # the engine ended Bo's staff session (deactivated)

            after = WebSessions(3600, clock, store)  # the hub restarted
            assert await after.restore(state) == 1
            assert after.get("not-a-cookie", state) is None
            again = after.get(kept.sid, state)
            assert again is not None
            assert (again.token, again.csrf, again.employee_id) == (token, kept.csrf, "emp-1")
            assert after.get(gone.sid, state) is None
            assert await after.end(kept.sid) is not None
            assert await WebSessions(3600, clock, store).restore(state) == 0  # logged out for good
        finally:
            await db.close()

    asyncio.run(run())


def test_login_limiter_counts_per_browser_and_employee() -> None:
    clock = Clock()
    limiter = LoginLimiter(3, 60, 300, clock)
    for _ in range(3):
        assert limiter.locked_for("a", "emp-1") == 0
        limiter.failed("a", "emp-1")
    assert limiter.locked_for("a", "emp-1") > 0
    assert limiter.locked_for("a", "emp-2") == 0  # another employee at the same browser still logs in
    assert limiter.locked_for("b", "emp-1") == 0
    clock.advance(301)
    assert limiter.locked_for("a", "emp-1") == 0
    for n in range(3 * ADDRESS_FACTOR):  # guessing down the staff list locks the address itself
        limiter.failed("c", f"emp-{n}")
    assert limiter.locked_for("c", "emp-new") > 0
    assert limiter.locked_for("d", "emp-new") == 0


def test_csrf_tokens_compare_in_constant_time() -> None:
    assert csrf_ok("abc", "abc")
    assert not csrf_ok("abc", "abd")
    assert not csrf_ok("abc", None)
    assert not csrf_ok(None, "abc")


def test_pairing_codes_come_back_by_hash_after_a_restart() -> None:
    clock = Clock()
    before = PairingCodes(clock, ttl_s=600)
    offer = before.issue(kind="tablet", issued_by="emp-1")
    used = before.issue()
    before.consume(before.claim(used.code, "tab-9", "tablet", (), "ip"))
    assert offer.hash == code_hash(offer.code) != code_hash("000000")

    after = PairingCodes(clock, ttl_s=600)
    stored = [
        Offer("", o.expires_at, o.kind, o.stations, o.issued_by, state=o.state, device_id=o.device_id, hash=o.hash)
        for o in (offer, used)
    ]
    after.restore(stored)
    assert [(o.code, o.issued_by) for o in after.pending()] == [("", "emp-1")]  # the digits were never stored
    with pytest.raises(PairingError, match="already used"):
        after.claim(used.code, "tab-10", "tablet", (), "ip")
    assert after.claim(offer.code, "tab-1", "tablet", (), "ip").device_id == "tab-1"


def test_money_and_chart() -> None:
    assert views.money(123456) == "1,234.56"
    assert views.money(-5) == "-0.05"
    assert views.money(None) == "-"
    svg = views.hour_chart_svg([{"hour": 12, "amount": 1000}, {"hour": 14, "amount": 500}], "EUR")
    assert svg.count("<rect") == 3  # 12, 13 (empty) and 14
    assert 'role="img"' in svg
    assert "No sales yet" in views.hour_chart_svg([], "EUR")


def test_event_seq_is_read_from_the_envelope() -> None:
    payload = b'{"v":1,"seq":1234,"type":"ticket.fired","at":"x"}'
    assert _seq_of("storehub/v1/s/event/ticket", payload) == 1234
    assert _seq_of("storehub/v1/s/state/shift", payload) is None
    assert _seq_of("storehub/v1/s/event/ticket", b'{"v":1}') is None


class _Recorder:
    """The bus's place: records what the engine hands over."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> asyncio.Future[None]:
        del payload, qos, retain
        self.sent.append(topic)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def _refusal(feed: LiveFeed) -> tuple[str, str, float] | None:
    return feed.refusal


def test_the_feed_wakes_pages_and_remembers_write_refusals() -> None:
    async def scenario() -> None:
        feed = LiveFeed()
        inner = _Recorder()
        tee = feed.tee(inner)
        queue = feed.listen()
        refused = b'{"v":1,"id":"c-1","ok":false,"error":{"code":"storage_full","message":"full"}}'
        tee.publish("storehub/v1/s/reply/tab-1", refused, qos=1, retain=False)
        assert feed.refusal is not None
        assert feed.refusal[0] == "storage_full"
        assert queue.qsize() == 1  # the banner must appear on open pages
        tee.publish("storehub/v1/s/event/ticket", b'{"v":1,"seq":42,"type":"ticket.opened"}', qos=1, retain=False)
        tee.publish("storehub/v1/s/state/shift", b'{"open":true}', qos=1, retain=True)
        assert _refusal(feed) is None  # a write went through
        assert queue.qsize() == 1  # bursts coalesce into one pending refresh
        change = queue.get_nowait()
        assert change.seq == 42
        assert inner.sent == [
            "storehub/v1/s/reply/tab-1",
            "storehub/v1/s/event/ticket",
            "storehub/v1/s/state/shift",
        ]
        feed.close()
        assert queue.get_nowait().seq == -1
        feed.forget(queue)
        assert feed.listeners == 0

    asyncio.run(scenario())


def test_reports_count_by_the_store_clock_and_kds_bumps_and_list_past_shifts() -> None:
    h = store()  # New York; the harness starts at 16:00 UTC = 11:00 in the store
    grill = {"device": "kds-grill", "kind": "kds", "stations": ("grill",)}
    first = h.open_ticket("t1")
    h.add(first, {"line_id": "b1", "menu_item_id": "burger"})
    h.ok("ticket.fire", {"ticket_id": first}, as_="srv")
    h.advance(600)
    h.ok("kds.bump", {"ticket_id": first, "station": "grill"}, **grill)
    h.pay_cash(first)
    h.advance(3600)  # 12:10 in the store
    second = h.open_ticket("t2")
    h.add(second, {"line_id": "b2", "menu_item_id": "burger"}, {"line_id": "s2", "menu_item_id": "soda"})
    h.ok("ticket.fire", {"ticket_id": second}, as_="srv")
    h.advance(300)
    h.ok("kds.bump", {"ticket_id": second, "station": "grill"}, **grill)
    h.pay_cash(second)

    hours = views.sales_by_hour(h.state, h.settings, h.now)
    assert [row["hour"] for row in hours] == [11, 12]  # local hours, not 16 and 17 UTC
    assert [row["payments"] for row in hours] == [1, 1]
    assert sum(row["amount"] for row in hours) == sum(t.totals.total for t in h.state.tickets.values())
    tickets = views.day_tickets(h.state, h.settings, h.now)
    mix = views.item_mix(tickets)
    assert [(row["menu_item_id"], row["qty"]) for row in mix] == [("burger", 2), ("soda", 1)]
    kds = views.kds_times(tickets)
    assert kds["tickets"] == 2
    assert kds["average_s"] == 450.0  # (600 + 300) / 2: fired → ready, from the bumps
    assert kds["stations"] == [{"station": "grill", "lines": 2, "average_s": 450.0}]
    svg = views.hour_chart_svg(hours, "USD")
    assert "11" in svg
    assert "<svg" in svg

    counted = 20000 + sum(t.totals.total for t in h.state.tickets.values()) - 100
    h.ok("shift.close", {"counted_cash": counted}, as_="mgr")
    h.advance(60)
    h.ok("shift.open", {"opening_float": 15000}, as_="mgr")
    shifts = views.past_shifts(h.state)
    assert [s["status"] for s in shifts] == ["open", "closed"]  # newest first
    assert shifts[1]["over_short"] == -100
    assert shifts[1]["opened_by"] == h.state.staff["mgr"].name
