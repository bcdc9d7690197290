"""A dinner service played by simulated tablets, through contract v1 only (for `make demo` and tests).

Each tablet is a server working the floor: it seats a party at a free table, takes drinks and
starters and fires them, fires the mains a little later, sometimes desserts, then takes payment
(cash, the card terminal, or both) and clears the table. The first tablet also carries the
manager's jobs: it opens the shift, 86s an item mid-service and brings it back, refunds a dish a
guest complained about, and approves a void of a fired line. Takeout orders come in between.

Like a real tablet, it re-sends a command with the same id when no reply comes (so a hub restart
mid-service applies nothing twice), takes `item_unavailable` as "pick something else", and never
stops the service for one refused command: refusals are counted by code.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devices.sim.tablet import Credentials, DeviceError, SimTablet

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from hub.contract.menu import Menu, MenuItem

RETRIES = 3
"""Times a tablet re-sends a command (same id) before it gives the command up."""


@dataclass(frozen=True, slots=True)
class Employee:
    """Who logs in on a tablet."""

    employee_id: str
    name: str
    pin: str


@dataclass
class ServiceStats:
    """What the service did, for the demo's narration and the tests."""

    parties: int = 0
    takeouts: int = 0
    tickets_paid: int = 0
    lines_fired: int = 0
    cash_payments: int = 0
    terminal_payments: int = 0
    refunds: int = 0
    voids: int = 0
    eighty_sixed: list[str] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    sales: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        """Add to counters from any tablet's thread."""
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def refuse(self, code: str) -> None:
        """Count a refused command by its error code."""
        with self.lock:
            self.refused[code] += 1


class RefusedError(Exception):
    """The hub answered a command with an error."""

    def __init__(self, type_: str, error: dict[str, Any]) -> None:
        self.code = str(error.get("code", "error"))
        self.details: dict[str, Any] = error.get("details") or {}
        super().__init__(f"{type_}: {self.code}: {error.get('message', '')}")


class DinnerService:
    """Simulated tablets playing a service against a running hub (see the module docstring)."""

    def __init__(
        self,
        *,
        store_id: str,
        port: int,
        tablets: Sequence[Credentials],
        manager: Employee,
        servers: Sequence[Employee],
        menu: Menu,
        tables: Sequence[str],
        pace: float = 1.0,
        seed: int | None = None,
        narrate: Callable[[str], None] | None = None,
    ) -> None:
        if not tablets:
            raise ValueError("a service needs at least one tablet")
        self.store_id = store_id
        self.port = port
        self.creds = list(tablets)
        self.manager = manager
        self.servers = list(servers) or [manager]
        self.menu = menu
        self.tables = list(tables)
        self.pace = pace
        self.rng = random.Random(seed)
        self.narrate = narrate or (lambda _line: None)
        self.stats = ServiceStats()
        self.stop = threading.Event()
        self.shift_open = threading.Event()
        self._free = set(self.tables)
        self._free_lock = threading.Lock()
        self._unavailable: set[str] = set()
        self._groups = {g.id: g for g in menu.modifier_groups}
        self._paid: list[tuple[str, str]] = []  # (ticket_id, a line id) the manager may refund
        self._manager_jobs_done: set[str] = set()

    # -- running ---------------------------------------------------------------------------------
    def run(self, *, parties: int | None = None, seconds: float | None = None) -> ServiceStats:
        """Play until `parties` parties were served, `seconds` passed, or `stop` is set."""
        deadline = None if seconds is None else time.monotonic() + seconds
        budget = _Budget(parties)
        threads = [
            threading.Thread(target=self._tablet, args=(i, creds, budget, deadline), name=creds.device_id, daemon=True)
            for i, creds in enumerate(self.creds)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return self.stats

    def _tablet(self, index: int, creds: Credentials, budget: _Budget, deadline: float | None) -> None:
        tab = SimTablet(self.store_id, creds, port=self.port).connect()
        server = self.servers[index % len(self.servers)]
        try:
            waiter = _Waiter(self, tab, server, is_manager=index == 0)
            waiter.start()
            if index == 0:
                self.shift_open.set()
            else:  # a server cannot seat anyone before the manager has opened the shift
                while not self.shift_open.wait(0.2):
                    if self.stop.is_set():
                        return
            while not self.stop.is_set() and (deadline is None or time.monotonic() < deadline):
                if not budget.take():
                    break
                try:
                    waiter.one_party()
                except (RefusedError, DeviceError) as exc:
                    self.narrate(f"{creds.device_id}: {exc}")
        finally:
            tab.close()

    # -- shared floor ----------------------------------------------------------------------------
    def take_table(self) -> str | None:
        """A free table for a party, or None (then it is a takeout)."""
        with self._free_lock:
            if not self._free:
                return None
            table = self.rng.choice(sorted(self._free))
            self._free.discard(table)
            return table

    def free_table(self, table: str) -> None:
        """The party left."""
        with self._free_lock:
            self._free.add(table)

    def sleep(self, seconds: float) -> None:
        """Wait (scaled by the pace) unless the service is stopping."""
        self.stop.wait(seconds * self.pace)

    def pick(self, course: int, count: int) -> list[MenuItem]:
        """`count` menu items of a course that are not 86'd as far as the floor knows."""
        choices = [i for i in self.menu.items if (i.course or 0) == course and i.id not in self._unavailable]
        return [self.rng.choice(choices) for _ in range(count)] if choices else []

    def modifiers(self, item: MenuItem) -> list[str]:
        """Options that satisfy each of the item's modifier groups."""
        chosen: list[str] = []
        for group_id in item.modifier_groups:
            group = self._groups.get(group_id)
            if group is None:
                continue
            count = self.rng.randint(group.min, min(group.max, group.min + 1))
            chosen.extend(o.id for o in self.rng.sample(group.options, min(count, len(group.options))))
        return chosen

    def first_time(self, job: str) -> bool:
        """True once per service for a manager's job."""
        with self.stats.lock:
            if job in self._manager_jobs_done:
                return False
            self._manager_jobs_done.add(job)
            return True


class _Budget:
    """How many parties are left to seat across all tablets (None: no limit)."""

    def __init__(self, parties: int | None) -> None:
        self.left = parties
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.left is None:
                return True
            if self.left <= 0:
                return False
            self.left -= 1
            return True


class _Waiter:
    """One tablet and the server logged in on it."""

    def __init__(self, service: DinnerService, tab: SimTablet, server: Employee, *, is_manager: bool) -> None:
        self.s = service
        self.tab = tab
        self.server = server
        self.is_manager = is_manager
        self.name = tab.creds.device_id
        self.token = ""
        self.mgr = ""
        self.lines = 0

    def start(self) -> None:
        self.token = self.tab.login(self.server.employee_id, self.server.pin)
        self.mgr = self.tab.login(self.s.manager.employee_id, self.s.manager.pin)
        if self.is_manager:
            try:
                self.call("shift.open", {"opening_float": 20000}, self.mgr, expected=frozenset({"conflict"}))
                self.s.narrate(f"{self.name}: {self.s.manager.name} opens the shift with a 200.00 float")
            except RefusedError as exc:
                if exc.code != "conflict":
                    raise

    # -- one command -------------------------------------------------------------------------
    def call(
        self,
        type_: str,
        body: dict[str, Any],
        auth: str,
        approve: dict[str, Any] | None = None,
        *,
        expected: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """Send a command; re-send it with the same id when no reply comes; raise RefusedError on an error.

        Refusals are counted in the stats, except the `expected` codes the caller handles as normal.
        """
        cmd_id = self.tab.new_id()
        for attempt in range(RETRIES):
            try:
                reply = self.tab.call(type_, body, auth=auth, approve=approve, cmd_id=cmd_id, timeout=10.0)
                break
            except DeviceError:
                if attempt == RETRIES - 1 or self.s.stop.is_set():
                    raise
        if not reply.get("ok"):
            error = reply.get("error") or {}
            if str(error.get("code")) not in expected:
                self.s.stats.refuse(str(error.get("code", "error")))
            raise RefusedError(type_, error)
        result = reply.get("result")
        return result if isinstance(result, dict) else {}

    # -- a party -----------------------------------------------------------------------------
    def one_party(self) -> None:
        if self.is_manager:
            self.manager_jobs()
        table = self.s.take_table()
        if table is None:
            self.takeout()
            self.s.sleep(2)
            return
        try:
            self.dine_in(table)
        finally:
            self.s.free_table(table)

    def _walk_out(self, table: str | None, ticket: str | None) -> None:
        """A party whose service went wrong leaves: void what is open (manager's approval), clear the table."""
        approve = {"employee_id": self.s.manager.employee_id, "pin": self.s.manager.pin}
        with contextlib.suppress(RefusedError, DeviceError):
            if ticket is not None:
                self.call("ticket.void", {"ticket_id": ticket, "reason": "party left"}, self.token, approve=approve)
        with contextlib.suppress(RefusedError, DeviceError):
            if table is not None:
                self.call("table.clear", {"table_id": table}, self.token)

    def dine_in(self, table: str) -> None:
        guests = self.s.rng.randint(1, 4)
        self.call("table.seat", {"table_id": table, "guests": guests}, self.token)
        ticket: str | None = None
        try:
            opened = self.call("ticket.open", {"table_id": table, "guests": guests, "channel": "dine_in"}, self.token)
            ticket = str(opened["ticket_id"])
            self.s.stats.add(parties=1)
            self._serve(table, ticket, guests)
        except (RefusedError, DeviceError):
            self._walk_out(table, ticket)
            raise

    def _serve(self, table: str, ticket: str, guests: int) -> None:
        drinks = self.s.pick(0, guests)
        starters = self.s.pick(1, max(1, guests - 1))
        mains = self.s.pick(2, guests)
        self.add(ticket, [(i, 0, seat) for seat, i in enumerate(drinks, 1)], "drinks")
        self.fire(ticket, None, f"{table}: drinks for {guests}")  # only the drinks are held yet
        self.add(ticket, [(i, 1, seat) for seat, i in enumerate(starters, 1)], "starters")
        self.add(ticket, [(i, 2, seat) for seat, i in enumerate(mains, 1)], "mains")
        self.fire(ticket, 1, f"{table}: starters")
        self.s.sleep(6)
        if self.is_manager and self.s.first_time("void"):
            self.void_with_approval(ticket)
        self.fire(ticket, 2, f"{table}: mains away")
        self.s.sleep(8)
        if self.s.rng.random() < 0.5:  # noqa: PLR2004 - half the tables take dessert
            self.add(ticket, [(i, 3, seat) for seat, i in enumerate(self.s.pick(3, guests), 1)], "desserts")
            self.fire(ticket, 3, f"{table}: desserts")
            self.s.sleep(5)
        self.pay(ticket, f"{table}")
        self.call("table.clear", {"table_id": table}, self.token)

    def takeout(self) -> None:
        name = self.s.rng.choice(["Martin", "Dubois", "Moreau", "Laurent", "Garcia", "Bernard"])
        opened = self.call("ticket.open", {"channel": "takeout", "name": name}, self.token)
        ticket = str(opened["ticket_id"])
        self.s.stats.add(takeouts=1)
        try:
            self.add(ticket, [(i, 2, None) for i in self.s.pick(2, self.s.rng.randint(1, 3))], "takeout")
            self.fire(ticket, None, f"takeout for {name}")
            self.s.sleep(4)
            self.pay(ticket, f"takeout {name}")
        except (RefusedError, DeviceError):
            self._walk_out(None, ticket)
            raise

    def add(self, ticket: str, picks: list[tuple[MenuItem, int, int | None]], what: str) -> None:
        lines = []
        for item, course, seat in picks:
            self.lines += 1
            line: dict[str, Any] = {
                "line_id": f"{self.name}-l{self.lines}",
                "menu_item_id": item.id,
                "qty": 1,
                "modifiers": self.s.modifiers(item),
            }
            if course:
                line["course"] = course
            if seat is not None:
                line["seat"] = seat
            if item.id == "steak-frites" and self.s.rng.random() < 0.2:  # noqa: PLR2004
                line["allergy"] = "no peanut oil"
            lines.append(line)
        if not lines:
            return
        try:
            self.call("ticket.add_items", {"ticket_id": ticket, "items": lines}, self.token)
        except RefusedError as exc:
            if exc.code != "item_unavailable":
                raise
            # 86'd since the tablet last looked: drop the item the hub named and order the rest.
            gone = {str(exc.details.get("menu_item_id", ""))} | self._availability_gone()
            self.s._unavailable |= gone  # noqa: SLF001 - the floor's shared knowledge
            self.s.narrate(f"{self.name}: {exc.details.get('menu_item_id', 'an item')} is 86'd; the guest picks again")
            kept = [line for line in lines if line["menu_item_id"] not in gone]
            if kept:
                self.call("ticket.add_items", {"ticket_id": ticket, "items": kept}, self.token)
        del what

    def _availability_gone(self) -> set[str]:
        board = self.tab.retained.get(self.tab.topics.state_availability()) or {}
        items = board.get("items") or {}
        return {item_id for item_id, a in items.items() if not a.get("available", True)}

    def fire(self, ticket: str, course: int | None, what: str) -> None:
        body: dict[str, Any] = {"ticket_id": ticket}
        if course is not None:
            body["course"] = course
        try:
            # Nothing left in that course (its items were 86'd and dropped) is a normal answer.
            fired = self.call("ticket.fire", body, self.token, expected=frozenset({"conflict"}))
        except RefusedError as exc:
            if exc.code == "conflict":  # nothing left to fire in that course
                return
            raise
        count = len(fired.get("fired") or [])
        self.s.stats.add(lines_fired=count)
        self.s.narrate(f"{self.name}: {what} (fired)")

    def pay(self, ticket: str, what: str) -> None:
        view = self._ticket(ticket)
        balance = int(view["totals"]["balance"])
        if balance <= 0:
            return
        roll = self.s.rng.random()
        tenders: list[dict[str, Any]]
        if roll < 0.45:  # noqa: PLR2004 - cash
            tendered = balance + (1000 - balance % 1000) if balance % 1000 else balance
            tenders = [{"kind": "cash", "amount": balance, "tendered": tendered}]
            self.s.stats.add(cash_payments=1)
        elif roll < 0.85:  # noqa: PLR2004 - the card terminal, with a tip
            tenders = [{"kind": "external", "amount": balance, "tip": 200, "reference": f"term-{ticket[-6:]}"}]
            self.s.stats.add(terminal_payments=1)
        else:  # split: half cash, half card
            half = balance // 2
            tenders = [
                {"kind": "cash", "amount": half, "tendered": half},
                {"kind": "external", "amount": balance - half, "reference": f"term-{ticket[-6:]}"},
            ]
            self.s.stats.add(cash_payments=1, terminal_payments=1)
        self.call("ticket.pay", {"ticket_id": ticket, "tenders": tenders}, self.mgr)
        self.s.stats.add(tickets_paid=1, sales=balance)
        self.s.narrate(f"{self.name}: {what} paid {balance / 100:.2f} ({', '.join(str(t['kind']) for t in tenders)})")
        lines = [line for line in view["lines"] if line.get("state") != "voided"]
        if lines:
            with self.s.stats.lock:
                self.s._paid.append((ticket, str(lines[0]["line_id"])))  # noqa: SLF001

    def _ticket(self, ticket: str) -> dict[str, Any]:
        snapshot = self.call("sync", {}, self.token).get("snapshot") or {}
        return next(t for t in snapshot.get("tickets", []) if t["ticket_id"] == ticket)

    # -- the manager's jobs ------------------------------------------------------------------
    def manager_jobs(self) -> None:
        stats = self.s.stats
        if stats.parties >= 2 and self.s.first_time("86"):  # noqa: PLR2004 - after the first tables
            item = next((i for i in self.s.menu.items if i.id == "confit-canard"), self.s.menu.items[0])
            self.call("menu.availability", {"menu_item_id": item.id, "available": False}, self.mgr)
            stats.eighty_sixed.append(item.id)
            self.s.narrate(f"{self.name}: the kitchen is out of {item.name}: 86'd")
        elif stats.parties >= 6 and self.s.first_time("back"):  # noqa: PLR2004
            for item_id in stats.eighty_sixed:
                self.call("menu.availability", {"menu_item_id": item_id, "available": True}, self.mgr)
                self.s._unavailable.discard(item_id)  # noqa: SLF001
                self.s.narrate(f"{self.name}: {item_id} is back on")
        if self.s._paid and stats.tickets_paid >= 3 and self.s.first_time("refund"):  # noqa: SLF001, PLR2004
            ticket, line_id = self.s._paid[0]  # noqa: SLF001
            body = {"ticket_id": ticket, "lines": [{"line_id": line_id, "qty": 1}], "tender": "cash"}
            self.call("ticket.refund", {**body, "reason": "guest complaint: cold dish"}, self.mgr)
            stats.add(refunds=1)
            self.s.narrate(f"{self.name}: refunded a dish on a paid ticket (guest complaint)")

    def void_with_approval(self, ticket: str) -> None:
        """The server voids a fired line; the manager approves with their PIN on the same tablet."""
        view = self._ticket(ticket)
        fired = [line for line in view["lines"] if line.get("state") in ("fired", "started")]
        if not fired:
            return
        approve = {"employee_id": self.s.manager.employee_id, "pin": self.s.manager.pin}
        body = {"ticket_id": ticket, "line_id": fired[0]["line_id"], "reason": "sent back: wrong order"}
        self.call("ticket.void_item", body, self.token, approve=approve)
        self.s.stats.add(voids=1)
        self.s.narrate(f"{self.name}: voided a fired line, approved by {self.s.manager.name}")
