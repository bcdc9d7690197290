"""The station view model of one screen: pure, no I/O, handed the clock.

A screen shows one or more stations (`expo` sees every station's lines). It holds, per station,
the last KDS ticket view the hub sent (`kds/{station}`, CONTRACT.md "KDS stream") and merges the
stations' views of one ticket into one card. Ordering rules (Sparkplug-like, CONTRACT.md):

- `load_snapshot(seq, snapshot)` replaces everything with the `sync` snapshot taken at `seq`;
- `apply(station, message)` ignores messages the snapshot (or an earlier message) already covers,
  applies the next one, and answers `GAP` when the message's `prev` is newer than anything the
  screen has seen on that station: something was lost, and the device must `sync` again.

A ticket is *active* on a cooking station while any of its lines there is `new` or `started`; on
expo it is active until expo itself bumps it out (lines go `ready` as each station bumps them, and
expo decides when the plate leaves the pass). Inactive tickets that were bumped feed the recall
list and the average ticket time.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Final

from hub.contract.types import parse_time

if TYPE_CHECKING:
    from hub.contract.kds import KdsMessage

EXPO: Final = "expo"
COOKING: Final = frozenset({"new", "started"})
SPEED_WINDOW: Final = timedelta(hours=1)
KEEP_UNKNOWN: Final = 2000
"""How many tickets of other stations (`ALSO AT`) or sent out by expo a screen remembers."""

_SNAPSHOT_STATE: Final = {"fired": "new", "started": "started", "ready": "ready", "voided": "voided"}


class Applied(Enum):
    """What `StationView.apply` did with a message."""

    APPLIED = "applied"
    STALE = "stale"
    GAP = "gap"


@dataclass(frozen=True, slots=True)
class Overlay:
    """What a command still on its way to the hub will do to some lines (shown before the hub confirms)."""

    ticket_id: str
    line_ids: frozenset[str] | None
    state: str


@dataclass(slots=True)
class Card:
    """A ticket as this screen shows it: the stations' views merged, plus what the screen knows around it."""

    ticket_id: str
    number: int
    table: str | None
    name: str | None
    channel: str
    server: str | None
    fired_at: str
    priority: bool
    items: list[dict[str, Any]]
    stations: list[str]
    also_at: list[str]
    rev: int
    active: bool
    all_ready: bool

    @property
    def fired_ms(self) -> int:
        """`fired_at` as milliseconds since the epoch (0 when unknown), for the page's timers."""
        return _ms(self.fired_at)

    def progress(self) -> list[tuple[str, int, int]]:
        """Per cooking station: (station, ready lines, lines) — expo's readiness line."""
        counts: dict[str, list[int]] = {}
        for item in self.items:
            if item["state"] == "voided":
                continue
            for station in item.get("stations") or []:
                done_total = counts.setdefault(station, [0, 0])
                done_total[1] += 1
                if item["state"] == "ready":
                    done_total[0] += 1
        return [(station, c[0], c[1]) for station, c in sorted(counts.items())]


@dataclass
class StationView:
    """Everything one screen knows; see the module docstring for the rules."""

    stations: tuple[str, ...]
    recall_size: int = 10
    oldest_first: bool = True
    synced: bool = False
    sync_seq: int = -1
    views: dict[str, dict[str, dict[str, Any]]] = field(init=False)
    last_seq: dict[str, int] = field(init=False, default_factory=dict)
    rev: dict[str, int] = field(init=False, default_factory=dict)
    bumped_out: set[str] = field(init=False, default_factory=set)
    done_at: dict[str, datetime] = field(init=False, default_factory=dict)
    recall: deque[str] = field(init=False, default_factory=deque)
    speed: deque[tuple[datetime, float]] = field(init=False, default_factory=deque)
    ticket_stations: dict[str, set[str]] = field(init=False, default_factory=dict)
    staff_names: dict[str, str] = field(init=False, default_factory=dict)
    closed: dict[str, None] = field(init=False, default_factory=dict)
    """Tickets paid and closed (from `ticket.closed`): the snapshot leaves them out, the kitchen does not."""

    def __post_init__(self) -> None:
        if not self.stations:
            raise ValueError("a screen shows at least one station")
        self.views = {station: {} for station in self.stations}
        # Revisions come from one counter, so a ticket that leaves and comes back never shows a
        # revision it had before (command ids are derived from it: a reused id would be a no-op).
        self._revs = itertools.count(1)

    @property
    def is_expo(self) -> bool:
        """Whether this screen is an expo screen (it bumps plates out instead of cooking)."""
        return EXPO in self.stations

    # -- the hub's messages ------------------------------------------------------------------
    def load_snapshot(self, seq: int, snapshot: dict[str, Any], now: datetime) -> set[str]:
        """Replace the view with a `sync` snapshot taken at `seq`; returns every ticket id touched."""
        before = self.ticket_ids()
        tables = {t.get("table_id"): t.get("name") for t in snapshot.get("tables") or [] if isinstance(t, dict)}
        first = not self.synced
        in_snapshot = {t.get("ticket_id") for t in snapshot.get("tickets") or [] if isinstance(t, dict)}
        # A ticket paid before its food is out is still cooking: keep what the screen already shows.
        kept = {
            station: {
                tid: v
                for tid, v in view.items()
                if tid in self.closed and tid not in in_snapshot and any(i["state"] in COOKING for i in v["items"])
            }
            for station, view in self.views.items()
        }
        self.views = kept
        for ticket in snapshot.get("tickets") or []:
            if not isinstance(ticket, dict) or ticket.get("status", "open") == "voided":
                continue
            self._note_stations(ticket["ticket_id"], ticket.get("lines") or [])
            for station in self.stations:
                view = _snapshot_view(ticket, station, tables, self.staff_names)
                if view is not None:
                    self.views[station][view["ticket_id"]] = view
        self.sync_seq = seq
        self.last_seq = {}
        self.synced = True
        after = self.ticket_ids()
        for tid in sorted(after, key=self._last_ready_text):  # the recall list keeps the latest bumps
            self._settle(tid, now, from_snapshot=first)
        for tid in before - after:
            self._forget(tid)
        return before | after

    def apply(self, station: str, message: KdsMessage, now: datetime) -> Applied:
        """Apply one `kds/{station}` message (see the module docstring)."""
        if station not in self.views:
            return Applied.STALE
        known = max(self.sync_seq, self.last_seq.get(station, -1))
        if message.seq <= known:
            return Applied.STALE
        if message.prev is not None and message.prev > known:
            return Applied.GAP
        self.last_seq[station] = message.seq
        data = message.data.model_dump(mode="json")
        tid = data["ticket_id"]
        if message.type == "kds.remove":
            self.views[station].pop(tid, None)
        else:
            self.views[station][tid] = data
            self._note_stations(tid, data["items"])
        if message.type == "kds.recall":
            self.bumped_out.discard(tid)
        if all(tid not in v for v in self.views.values()):
            self._forget(tid)
        else:
            self._settle(tid, now, from_snapshot=False)
        return Applied.APPLIED

    def note_event(self, event: dict[str, Any], now: datetime) -> set[str]:
        """Learn from a `event/ticket` envelope: other stations of a ticket, expo bumps; returns changed ids."""
        data = event.get("data")
        if not isinstance(data, dict):
            return set()
        tid = data.get("ticket_id")
        if not isinstance(tid, str):
            return set()
        kind = event.get("type")
        if kind == "ticket.fired":
            self._note_stations(tid, data.get("lines") or [])
            return {tid} if self._known(tid) else set()
        if kind == "ticket.closed":
            self.closed[tid] = None
            if len(self.closed) > KEEP_UNKNOWN:
                for old in list(self.closed)[: KEEP_UNKNOWN // 2]:
                    del self.closed[old]
            return set()
        if kind in {"ticket.reopened", "ticket.voided"}:
            self.closed.pop(tid, None)
            return set()
        if kind == "ticket.item_ready" and data.get("station") == EXPO and self.is_expo:
            self.bump_out(tid, now)
            return {tid}
        return set()

    def bump_out(self, ticket_id: str, now: datetime) -> None:
        """Expo has sent this ticket out (its own bump, or another expo screen's)."""
        if self.is_expo and ticket_id not in self.bumped_out:
            self.bumped_out.add(ticket_id)
            self._settle(ticket_id, now, from_snapshot=False)

    def set_staff(self, staff: list[dict[str, Any]]) -> None:
        """`state/staff`: names for the server line of cards built from a snapshot."""
        self.staff_names = {
            str(s["employee_id"]): str(s.get("name") or s["employee_id"])
            for s in staff
            if isinstance(s, dict) and "employee_id" in s
        }

    # -- what the page shows -----------------------------------------------------------------
    def ticket_ids(self) -> set[str]:
        """Every ticket with something on this screen."""
        out: set[str] = set()
        for view in self.views.values():
            out.update(view)
        return out

    def card(self, ticket_id: str, overlays: list[Overlay] | tuple[Overlay, ...] = ()) -> Card | None:
        """The merged card of a ticket with the pending commands' effects, or None when it is not here."""
        parts = [v[ticket_id] for v in self.views.values() if ticket_id in v]
        if not parts:
            return None
        head = parts[0]
        items: dict[str, dict[str, Any]] = {}
        for part in parts:
            for item in part["items"]:
                items.setdefault(item["line_id"], dict(item))
        for overlay in overlays:
            if overlay.ticket_id != ticket_id:
                continue
            for item in items.values():
                if overlay.line_ids is None or item["line_id"] in overlay.line_ids:
                    item["state"] = _overlaid(item["state"], overlay.state)
        lines = sorted(items.values(), key=lambda i: (i.get("course") or 0, i.get("seat") or 0))
        mine = set(self.stations)
        stations = sorted({s for i in lines for s in i.get("stations") or []})
        also = sorted(self.ticket_stations.get(ticket_id, set()) - mine - {EXPO}) if not self.is_expo else []
        live = [i for i in lines if i["state"] != "voided"]
        all_ready = bool(live) and all(i["state"] == "ready" for i in live)
        bumped_here = any(o.ticket_id == ticket_id and o.state == "out" for o in overlays)
        if self.is_expo:
            active = bool(live) and ticket_id not in self.bumped_out and not bumped_here
        else:
            active = any(i["state"] in COOKING for i in lines)
        return Card(
            ticket_id=ticket_id,
            number=int(head["number"]),
            table=head.get("table"),
            name=head.get("name"),
            channel=str(head.get("channel") or "dine_in"),
            server=head.get("server"),
            fired_at=min((p.get("fired_at") or "" for p in parts), key=lambda s: s or "~"),
            priority=any(bool(p.get("priority")) for p in parts),
            items=lines,
            stations=stations,
            also_at=also,
            rev=self.rev.get(ticket_id, 0),
            active=active,
            all_ready=all_ready,
        )

    def cards(self, overlays: list[Overlay] | tuple[Overlay, ...] = ()) -> list[Card]:
        """Active cards in screen order: priority first, then by fire time (oldest or newest first)."""
        found = [c for c in (self.card(tid, overlays) for tid in self.ticket_ids()) if c is not None and c.active]
        return sort_cards(found, oldest_first=self.oldest_first)

    def recall_list(self) -> list[Card]:
        """The last bumped tickets still known, newest first."""
        out = []
        for tid in reversed(self.recall):
            card = self.card(tid)
            if card is not None and not card.active:
                out.append(card)
        return out

    def all_day(
        self, overlays: list[Overlay] | tuple[Overlay, ...] = (), cards: list[Card] | None = None
    ) -> list[tuple[str, int]]:
        """Fired and not bumped, across active tickets: (item with its modifiers, quantity), most first."""
        counts: dict[str, int] = {}
        for card in self.cards(overlays) if cards is None else cards:
            for item in card.items:
                if item["state"] in COOKING:
                    mods = ", ".join(sorted(item.get("modifiers") or []))
                    label = f"{item['name']} ({mods})" if mods else str(item["name"])
                    counts[label] = counts.get(label, 0) + int(item["qty"])
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def average_ticket_s(self, now: datetime) -> float | None:
        """Mean fired→bumped seconds of the tickets this screen finished in the last hour."""
        while self.speed and now - self.speed[0][0] > SPEED_WINDOW:
            self.speed.popleft()
        if not self.speed:
            return None
        return sum(s for _, s in self.speed) / len(self.speed)

    # -- helpers -----------------------------------------------------------------------------
    def _known(self, ticket_id: str) -> bool:
        return any(ticket_id in v for v in self.views.values())

    def _note_stations(self, ticket_id: str, lines: list[Any]) -> None:
        # Snapshot lines not fired yet are `held`: the kitchen does not know them yet.
        found = self.ticket_stations.setdefault(ticket_id, set())
        for line in lines:
            if isinstance(line, dict) and line.get("state") != "held":
                found.update(str(s) for s in line.get("stations") or [])
        if len(self.ticket_stations) > KEEP_UNKNOWN:
            # Fired events name every ticket of the store; keep those of other stations bounded.
            known = self.ticket_ids()
            for tid in [t for t in self.ticket_stations if t not in known][: KEEP_UNKNOWN // 2]:
                del self.ticket_stations[tid]

    def _settle(self, ticket_id: str, now: datetime, *, from_snapshot: bool) -> None:
        """Bump bookkeeping after a ticket changed: recall list, speed of service, revision."""
        self.rev[ticket_id] = next(self._revs)
        card = self.card(ticket_id)
        if card is None:
            return
        if self.is_expo and from_snapshot and card.all_ready:
            # After a restart expo cannot know which all-ready plates it sent out: they were.
            self.bumped_out.add(ticket_id)
            card = self.card(ticket_id)
            if card is None:
                return
        if card.active:
            self.done_at.pop(ticket_id, None)
            if ticket_id in self.recall:
                self.recall.remove(ticket_id)
            return
        if not any(i["state"] == "ready" for i in card.items):
            self._drop(ticket_id)  # all voided: nothing to recall
            return
        if ticket_id in self.done_at:
            return
        done = _last_ready(card) if from_snapshot else now
        done = done or now
        self.done_at[ticket_id] = done
        self.recall.append(ticket_id)
        fired = _time(card.fired_at)
        if fired is not None and now - done <= SPEED_WINDOW:
            self.speed.append((done, max(0.0, (done - fired).total_seconds())))
            ordered = sorted(self.speed)
            self.speed = deque(ordered)
        while len(self.recall) > max(1, self.recall_size):
            # Out of the recall list, a finished ticket leaves memory: a long service stays small.
            self._drop(self.recall.popleft())

    def _last_ready_text(self, ticket_id: str) -> str:
        times = [
            str(i.get("ready_at") or "") for v in self.views.values() for i in v.get(ticket_id, {}).get("items", [])
        ]
        return max(times, default="")

    def _drop(self, ticket_id: str) -> None:
        """Forget a finished ticket (a later message about it brings it back whole)."""
        card = self.card(ticket_id)
        if card is not None and card.active:
            return
        for view in self.views.values():
            view.pop(ticket_id, None)
        out = ticket_id in self.bumped_out
        self._forget(ticket_id)
        if out:
            self.bumped_out.add(ticket_id)
            if len(self.bumped_out) > KEEP_UNKNOWN:
                known = self.ticket_ids()
                self.bumped_out = {t for t in self.bumped_out if t in known} | {ticket_id}

    def _forget(self, ticket_id: str) -> None:
        self.rev.pop(ticket_id, None)
        self.done_at.pop(ticket_id, None)
        self.bumped_out.discard(ticket_id)
        self.ticket_stations.pop(ticket_id, None)
        if ticket_id in self.recall:
            self.recall.remove(ticket_id)


def sort_cards(cards: list[Card], *, oldest_first: bool) -> list[Card]:
    """Priority tickets pinned first; then by fire time, oldest first (or newest first)."""
    sign = 1 if oldest_first else -1
    return sorted(cards, key=lambda c: (not c.priority, sign * c.fired_ms, c.number))


def _overlaid(state: str, wanted: str) -> str:
    if state == "voided":
        return state
    if wanted in {"ready", "out"} and state in COOKING:
        return "ready"
    if wanted == "started" and state == "new":
        return "started"
    if wanted == "new" and state == "ready":
        return "new"
    return state


def _snapshot_view(
    ticket: dict[str, Any], station: str, tables: dict[Any, Any], staff: dict[str, str]
) -> dict[str, Any] | None:
    """A snapshot ticket (the hub's full ticket) as `station` shows it: the contract's KDS ticket shape."""
    lines = [
        line
        for line in ticket.get("lines") or []
        if line.get("fired_at") and line.get("stations") and (station == EXPO or station in line["stations"])
    ]
    if not lines:
        return None
    table_id = ticket.get("table_id")
    server = ticket.get("server")
    return {
        "ticket_id": ticket["ticket_id"],
        "number": ticket.get("number", 0),
        "table": tables.get(table_id, table_id) if table_id else None,
        "name": ticket.get("name"),
        "channel": ticket.get("channel", "dine_in"),
        "server": staff.get(server, server) if server else None,
        "fired_at": min(str(line["fired_at"]) for line in lines),
        "priority": bool(ticket.get("priority")),
        "items": [
            {
                "line_id": line["line_id"],
                "name": line.get("name", ""),
                "qty": line.get("qty", 1),
                "modifiers": [m.get("name", "") for m in line.get("modifiers") or [] if isinstance(m, dict)],
                "note": line.get("note"),
                "allergy": line.get("allergy"),
                "seat": line.get("seat"),
                "course": line.get("course"),
                "stations": list(line.get("stations") or []),
                "state": _SNAPSHOT_STATE.get(str(line.get("state")), "new"),
                "ready_at": line.get("ready_at"),
            }
            for line in lines
        ],
    }


def _last_ready(card: Card) -> datetime | None:
    times = [t for t in (_time(i.get("ready_at")) for i in card.items) if t is not None]
    return max(times) if times else None


def _time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        return None


def _ms(text: str) -> int:
    moment = _time(text)
    return int(moment.timestamp() * 1000) if moment is not None else 0
