"""`storehub bench kds`: the kitchen screen's figures, measured end to end on this machine.

- fire → painted: a simulated tablet publishes `ticket.fire`; the time runs until the card is
  painted in headless Chromium (the page records `performance.timeOrigin + now()` one frame after
  inserting the card, with a `kds-painted:<ticket>` performance mark). p50/p99 at 5 and 50 tickets/s.
- bump → tablet event: the page sends a bump; the time runs until the tablet receives
  `ticket.item_ready` on `event/ticket`.
- memory: kds_display's resident set with 500 open tickets on its station.

Everything runs on 127.0.0.1 with a private hub and broker in a scratch directory.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.ports import free_port

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TARGET_FIRE_TO_PAINTED_P99_MS = 100.0
TARGET_RSS_MB = 80.0
GRILL_ITEM = "steak-frites"


@dataclass
class KdsProcess:
    """`storehub kds run` as its own process (as a kitchen PC runs it), on a free port."""

    config: Path
    device: str
    password: str
    port: int
    state_dir: Path
    stations: str = ""
    settings: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.state_dir.parent / f"{self.device}.log"

    @property
    def url(self) -> str:
        """The kiosk page."""
        return f"http://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 20.0, *, synced: bool = True) -> KdsProcess:
        """Start the screen and wait until it serves (and, by default, holds the hub's snapshot)."""
        return self.launch().wait_ready(timeout, synced=synced)

    def launch(self) -> KdsProcess:
        """Start the process without waiting (to start several screens at once)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable, "-m", "hub.cli", "kds", "run",
            "--device", self.device, "--config", str(self.config), "--port", str(self.port),
            "--state-dir", str(self.state_dir), "--log-level", "WARNING",
        ]  # fmt: skip
        if self.stations:
            args += ["--stations", self.stations]
        if self.settings is not None:
            args += ["--settings", str(self.settings)]
        log = self.log_path.open("ab")
        env = {**os.environ, "STOREHUB_KDS_PASSWORD": self.password}
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)  # noqa: S603
        log.close()
        return self

    def wait_ready(self, timeout: float = 20.0, *, synced: bool = True) -> KdsProcess:
        """Wait until the screen serves (and, by default, holds the hub's snapshot)."""
        assert self.proc is not None  # noqa: S101 - launched
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.device} exited with {self.proc.returncode}:\n{self.log_tail()}")
            health = self.health()
            if health is not None and (not synced or health.get("synced")):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"{self.device} did not come up in {timeout} s:\n{self.log_tail()}")

    def health(self) -> dict[str, Any] | None:
        """`/healthz`, or None while it does not answer."""
        try:
            with urllib.request.urlopen(self.url + "healthz", timeout=2) as answer:  # noqa: S310 - our own http URL
                data: dict[str, Any] = json.loads(answer.read())
                return data
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def state(self) -> dict[str, Any]:
        """`/api/state`: the screen's cards and panels as JSON."""
        with urllib.request.urlopen(self.url + "api/state", timeout=10) as answer:  # noqa: S310 - our own http URL
            data: dict[str, Any] = json.loads(answer.read())
            return data

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def rss_mb(self) -> float:
        """Resident memory of the screen's process in MB."""
        assert self.proc is not None  # noqa: S101 - started
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def log_tail(self, lines: int = 30) -> str:
        """The end of the screen's log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def run_kds(*, quick: bool = False) -> dict[str, Any]:
    """Run every KDS measurement and return the figures with their targets."""
    from devices.sim.tablet import SimTablet  # noqa: PLC0415
    from hub.bench import MANAGER, SERVER, BenchHub  # noqa: PLC0415

    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - a dev dependency
        raise SystemExit("storehub bench kds needs playwright (pip install -e '.[dev]')") from exc

    slow_n, fast_n, bump_n = (10, 50, 10) if quick else (40, 200, 40)
    with tempfile.TemporaryDirectory(prefix="storehub-bench-kds-") as tmp:
        root = Path(tmp)
        hub = BenchHub(root / "hub")
        kds: KdsProcess | None = None
        try:
            hub.start()
            password = add_device(hub.config, "kds-grill", "kds", "grill")
            tab = SimTablet("bench", hub.device("tab-kds"), port=hub.port, subscribe_events=True).connect()
            manager = tab.login(*MANAGER)
            tab.call("shift.open", {"opening_float": 10000}, auth=manager)
            tab.token = tab.login(*SERVER)
            settings = root / "kds.toml"
            settings.write_text('order = "newest"\npage_size = 60\nsound = false\nrecall_size = 5\n', encoding="utf-8")
            kds = KdsProcess(
                hub.config, "kds-grill", password, free_port(), root / "kds-state", "grill", settings
            ).start()
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1920, "height": 1080})
                page.goto(kds.url)
                page.wait_for_selector("body[data-ready='1']")
                tickets = _Tickets(tab)
                at5 = _fire_phase(page, tickets, rate=5, count=slow_n)
                at50 = _fire_phase(page, tickets, rate=50, count=fast_n)
                bump = _bump_phase(page, tab, tickets.fired[:bump_n])
                browser.close()
            open_now = len(kds.state()["cards"])
            tickets.fill(500 - open_now)
            _wait(lambda: len(kds.state()["cards"]) >= 500, 60, "500 open tickets on the screen")  # noqa: PLR2004
            rss = kds.rss_mb()
            tab.close()
        finally:
            if kds is not None:
                kds.stop()
            hub.stop()
    return {
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
        "fire_to_painted_p50_ms": at5["p50_ms"],
        "fire_to_painted_p99_ms": at5["p99_ms"],
        "fire_to_painted_max_ms": at5["max_ms"],
        "fire_to_painted_p50_ms_at_50_per_s": at50["p50_ms"],
        "fire_to_painted_p99_ms_at_50_per_s": at50["p99_ms"],
        "fire_to_painted_max_ms_at_50_per_s": at50["max_ms"],
        "fire_to_page_socket_p50_ms": at5["to_page_socket"]["p50_ms"],
        "fire_to_page_socket_p99_ms": at5["to_page_socket"]["p99_ms"],
        "fire_to_page_socket_p99_ms_at_50_per_s": at50["to_page_socket"]["p99_ms"],
        "bump_to_tablet_event_p50_ms": bump["p50_ms"],
        "bump_to_tablet_event_p99_ms": bump["p99_ms"],
        "kds_rss_mb_500_open_tickets": round(rss, 1),
        "samples": {"at_5_per_s": at5["n"], "at_50_per_s": at50["n"], "bumps": bump["n"]},
        "targets": {
            "fire_to_painted_p99_ms_at_5_per_s": TARGET_FIRE_TO_PAINTED_P99_MS,
            "kds_rss_mb_500_open_tickets": TARGET_RSS_MB,
        },
        "met": {
            "fire_to_painted_p99_ms_at_5_per_s": (at5["p99_ms"] or 1e9) <= TARGET_FIRE_TO_PAINTED_P99_MS,
            "kds_rss_mb_500_open_tickets": rss <= TARGET_RSS_MB,
        },
    }


class _Tickets:
    """Tickets with one grill line, opened and filled ahead so a phase only fires."""

    def __init__(self, tab: Any) -> None:
        self.tab = tab
        self.count = 0
        self.fired: list[str] = []

    def prepare(self, count: int) -> list[str]:
        ids = []
        for _ in range(count):
            self.count += 1
            tid = f"b{self.count}"
            self.tab.send("ticket.open", {"ticket_id": tid, "channel": "takeout", "name": f"Guest {self.count}"},
                          auth=self.tab.token)  # fmt: skip
            body = {"ticket_id": tid, "items": [{"line_id": f"{tid}-1", "menu_item_id": GRILL_ITEM, "qty": 1,
                                                 "modifiers": ["a-point", "frites"]}]}  # fmt: skip
            ids.append(tid)
            if len(ids) % 25 == 0 or len(ids) == count:
                reply = self.tab.call("ticket.add_items", body, auth=self.tab.token, timeout=30)
                if not reply.get("ok"):
                    raise RuntimeError(f"could not prepare tickets: {reply}")
            else:
                self.tab.send("ticket.add_items", body, auth=self.tab.token)
        return ids

    def fill(self, count: int) -> None:
        """Open and fire `count` more tickets as fast as the hub takes them."""
        ids = self.prepare(count)
        for i, tid in enumerate(ids):
            if i == len(ids) - 1:
                self.tab.call("ticket.fire", {"ticket_id": tid}, auth=self.tab.token, timeout=30)
            else:
                self.tab.send("ticket.fire", {"ticket_id": tid}, auth=self.tab.token)


def _fire_phase(page: Any, tickets: _Tickets, *, rate: float, count: int) -> dict[str, Any]:
    ids = tickets.prepare(count)
    sent: dict[str, float] = {}
    interval = 1.0 / rate
    start = time.monotonic()
    for i, tid in enumerate(ids):
        delay = start + i * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent[tid] = time.time() * 1000
        tickets.tab.send("ticket.fire", {"ticket_id": tid}, auth=tickets.tab.token)
    tickets.fired.extend(ids)
    wanted = set(ids)
    painted: dict[str, float] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not wanted <= painted.keys():
        painted = dict(page.evaluate("window.kds.painted"))
        time.sleep(0.05)
    samples = [(painted[t] - sent[t]) / 1000 for t in ids if t in painted]
    received = dict(page.evaluate("window.kds.received"))
    on_socket = [(received[t] - sent[t]) / 1000 for t in ids if t in received]
    return {"n": len(samples), **_summary(samples), "to_page_socket": _summary(on_socket)}


def _bump_phase(page: Any, tab: Any, ids: list[str]) -> dict[str, Any]:
    offset = time.time() - time.perf_counter()
    samples = []
    for tid in ids:
        rev = page.evaluate(
            f"document.getElementById('t-{tid}') && Number(document.getElementById('t-{tid}').dataset.rev)"
        )
        if rev is None:
            continue
        sent_ms = page.evaluate(
            "([t, rev]) => { const at = performance.timeOrigin + performance.now();"
            " window.kds.send({a: 'bump', t, rev, lines: null}); return at; }",
            [tid, rev],
        )
        event = tab.wait_event(
            lambda e, tid=tid: e.get("type") == "ticket.item_ready" and e.get("data", {}).get("ticket_id") == tid,
            timeout=10,
        )
        samples.append((event["_received"] + offset) - sent_ms / 1000)
        time.sleep(0.05)
    return {"n": len(samples), **_summary(samples)}


def add_device(config: Path, device: str, kind: str, stations: str = "") -> str:
    """`storehub device add` as an operator runs it (in this process); returns the password it printed."""
    from hub.cli import main  # noqa: PLC0415 - hub.cli imports kds_display.cli

    args = ["device", "add", device, "--kind", kind, "--config", str(config)]
    if stations:
        args += ["--stations", stations]
    out = io.StringIO()

    def add() -> int:
        with contextlib.redirect_stdout(out):
            return main(args)

    # Its own thread: the CLI runs an event loop, and the caller may be inside one (Playwright's).
    with ThreadPoolExecutor(1) as pool:
        code = pool.submit(add).result()
    if code != 0:
        raise RuntimeError(f"storehub device add {device} failed with exit code {code}")
    return str(json.loads(out.getvalue().strip().splitlines()[-1])["password"])


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _summary(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }
