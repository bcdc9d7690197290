"""`storehub demo`: a whole store on this machine, every part its own process as in a real store.

It starts the hub (with its managed Mosquitto, the manager page and two virtual printers that print
kitchen chits and receipts and pop the cash drawer), the kitchen screens for the
grill and expo, HQ's central API (SQLite) with its dashboard, the relay that ships the hub's ledger
there, and four simulated tablets playing a dinner service (`devices.sim.service`):
tables seated, courses fired, an item 86'd, cash and card-terminal payments, a refund and a void
with approval. It prints the URLs to open, narrates the service, and Ctrl-C stops everything
cleanly. `--rush` plays the service fast; `--once` plays a bounded service, checks the books and
stops (the smoke test).

The demo keeps its data in `var/demo/` beside the repository (wiped at each start), whatever
`hub.data_dir` the config names, so it never touches a real store's data. Ports come from the
config when they are free, else any free port: the development machines already run a Mosquitto.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devices.sim.service import DinnerService, Employee
from devices.sim.tablet import Credentials
from hub.app import control_request
from hub.config import ConfigError, LoadedConfig, load_config
from hub.ports import free_port

if TYPE_CHECKING:
    from collections.abc import Callable

REPO = Path(__file__).resolve().parent.parent
DEMO_DIR = Path(os.environ.get("STOREHUB_DEMO_DIR", REPO / "var" / "demo"))
TABLETS = 4
DEMO_HQ_PASSWORD = "bistro-hq-demo"  # noqa: S105 - the throwaway demo's HQ login, printed on start
SCREENS = (("kds-grill", "grill", 8091), ("kds-expo", "expo", 8092))


def run_demo(config: Path, *, once: bool = False, rush: bool = False, parties: int | None = None) -> int:
    """Run the whole store until Ctrl-C (or, with `once`, for a bounded service)."""
    store = Store(config, rush=rush)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        store.start()
        store.play(stop, parties=parties if parties is not None else (12 if once else None))
        if once:
            return store.check()
        say("Service played; the store keeps running. Ctrl-C to stop.")
        stop.wait()
    except KeyboardInterrupt:
        say("\nStopping the store…")
    except ConfigError as exc:
        say(f"demo: {exc}")
        return 2
    finally:
        store.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0


def say(text: str) -> None:
    """One line for the person watching the demo."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@dataclass
class Process:
    """A part of the store running as its own process, with its log in the demo directory."""

    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str]) -> Process:
        """Start it in its own session (a Ctrl-C reaches the demo, which stops the parts in order)."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own CLI
                self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env, start_new_session=True
            )
        return self

    def alive(self) -> bool:
        """Still running."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@dataclass
class Store:
    """Every part of the demo store, started in order and stopped in reverse."""

    config: Path
    rush: bool = False
    processes: list[Process] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    service: DinnerService | None = None
    env: dict[str, str] = field(default_factory=dict)
    loaded: LoadedConfig | None = None
    central_toml: Path = Path()

    # -- start -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the hub, the screens, and register the tablets; print what to open."""
        t0 = time.monotonic()
        if DEMO_DIR.exists():
            shutil.rmtree(DEMO_DIR)
        DEMO_DIR.mkdir(parents=True)
        base = load_config(self.config)
        web_port = free_port(base.config.hub.web_port)
        self.env = os.environ | {
            "STOREHUB_HUB__DATA_DIR": str(DEMO_DIR / "hub"),
            "STOREHUB_BROKER__PORT": str(free_port(base.config.broker.port)),
            "STOREHUB_BROKER__WEBSOCKETS_PORT": str(free_port(base.config.broker.websockets_port)),
            "STOREHUB_HUB__WEB_PORT": str(web_port),
        }
        os.environ.update(self.env)  # this process reads the same config the parts do
        self.loaded = loaded = load_config(self.config)
        hub = self._spawn("hub", ["hub", "run", "--config", str(self.config), "--log-level", "WARNING"])
        self._wait(self._hub_ready, 30, "the hub", hub)
        self.urls["manager page"] = f"http://127.0.0.1:{web_port}/  (manager PIN: {self._manager().pin})"
        for device, station, preferred in SCREENS:
            password = self._add(device, "kds", [station])
            port = free_port(preferred)
            screen = self._spawn(
                device,
                [
                    "kds",
                    "run",
                    "--device",
                    device,
                    "--config",
                    str(self.config),
                    "--port",
                    str(port),
                    f"--password={password}",
                    "--state-dir",
                    str(DEMO_DIR / device),
                    "--log-level",
                    "WARNING",
                ],
            )
            health = f"http://127.0.0.1:{port}/healthz"
            self._wait(functools.partial(_http_ok, health), 30, device, screen)
            self.urls[f"{station} screen"] = f"http://127.0.0.1:{port}/"
        self._start_hq(loaded)
        tablets = [
            Credentials(t, t, self._add(t, "tablet", [])) for t in (f"tab-{i:02d}" for i in range(1, TABLETS + 1))
        ]
        staff = loaded.config.staff
        servers = [Employee(s.id, s.name, s.pin) for s in staff if s.role == "server"]
        self.service = DinnerService(
            store_id=loaded.config.store.id,
            port=loaded.config.broker.port,
            tablets=tablets,
            manager=self._manager(),
            servers=servers,
            menu=loaded.menu,
            tables=[t.id for t in loaded.config.tables],
            pace=0.15 if self.rush else 1.0,
            narrate=lambda line: say(f"  {line}"),
        )
        watch = self._add("watch", "display", [])
        say(
            f"\nStoreHub demo: {loaded.config.store.name} is open ({time.monotonic() - t0:.1f} s to start).\n"
            + "".join(f"  {name:<14} {url}\n" for name, url in self.urls.items())
            + f"  broker         127.0.0.1:{loaded.config.broker.port}; watch every message with:\n"
            f"    mosquitto_sub -h 127.0.0.1 -p {loaded.config.broker.port} -u watch -P '{watch}' "
            f"-t 'storehub/v1/{loaded.config.store.id}/#' -v\n"
            f"  data and logs  {DEMO_DIR}\n"
            "Ctrl-C stops the whole store.\n"
        )

    def play(self, stop: threading.Event, *, parties: int | None) -> None:
        """Play the dinner service until `parties` were served or `stop` is set."""
        assert self.service is not None  # noqa: S101 - started
        service = self.service

        def relay_stop() -> None:
            stop.wait()
            service.stop.set()

        watcher = threading.Thread(target=relay_stop, daemon=True)
        watcher.start()
        stats = service.run(parties=parties)
        say(
            f"  service: {stats.parties} tables and {stats.takeouts} takeouts, {stats.tickets_paid} tickets paid "
            f"({stats.sales / 100:.2f} {self._loaded().config.store.currency}), {stats.lines_fired} lines fired, "
            f"{stats.refunds} refund, {stats.voids} void; refused: {dict(stats.refused) or 'none'}"
        )

    def check(self) -> int:
        """After a bounded service: the books verify and replay, and the screens saw the tickets."""
        result = _storehub(["ledger", "verify", "--config", str(self.config)], self.env)
        verified = json.loads(result.stdout or "{}")
        say(f"  ledger: {verified.get('entries', verified.get('head_seq'))} entries, chain ok: {verified.get('ok')}")
        ok = result.returncode == 0 and bool(verified.get("ok"))
        printed, receipt = self._printed()
        say(f"  printers: {printed.get('printed', 0)} chits and receipts printed, {printed.get('failed', 0)} failed")
        if receipt is not None:
            say(f"  the last receipt as it came out of the printer: {receipt}")
        ok = ok and printed.get("printed", 0) > 0 and not printed.get("failed")
        held, head = self.central_holds_the_ledger()
        say(f"  HQ: central holds {held} of the hub's {head} ledger entries")
        ok = ok and held == head
        for name, url in self.urls.items():
            if name.endswith("screen"):
                state = _http_json(url + "api/state")
                seen = len(state.get("cards") or []) + len(state.get("recall") or [])
                say(f"  {name}: {seen} tickets on screen or in its recall list")
                ok = ok and seen > 0
        stats = self.service.stats if self.service is not None else None
        if stats is None or stats.tickets_paid == 0:
            ok = False
        return 0 if ok else 1

    def _start_hq(self, loaded: LoadedConfig) -> None:
        """Central (SQLite) with an HQ user, the store registered, and the relay shipping the ledger."""
        hq = DEMO_DIR / "central"
        hq.mkdir()
        port = free_port(8700)
        central_toml = hq / "central.toml"
        central_toml.write_text(
            f'[central]\ndatabase_url = "sqlite+aiosqlite:///central.db"\nhost = "127.0.0.1"\nport = {port}\n'
            'key_file = "central.key"\n',
            encoding="utf-8",
        )
        store_id = loaded.config.store.id
        added = _storehub(["central", "store", "add", store_id, "--config", str(central_toml)], self.env)
        if added.returncode != 0:
            raise ConfigError(f"central could not register the store: {added.stderr.strip()}")
        keys = json.loads(added.stdout)
        user = _storehub(
            ["central", "user", "add", "hq", "--role", "admin", "--config", str(central_toml)],
            self.env,
            DEMO_HQ_PASSWORD,
        )
        if user.returncode != 0:
            raise ConfigError(f"central could not add the HQ user: {user.stderr.strip()}")
        central = self._spawn("central", ["central", "run", "--config", str(central_toml), "--log-level", "WARNING"])
        self._wait(functools.partial(_http_ok, f"http://127.0.0.1:{port}/healthz"), 30, "central", central)
        self.urls["HQ dashboard"] = f"http://127.0.0.1:{port}/  (user hq, password {DEMO_HQ_PASSWORD})"
        relay_toml = DEMO_DIR / "relay.toml"
        relay_toml.write_text(
            f'[store]\nid = "{store_id}"\n\n[hub]\ndata_dir = "{loaded.data_dir}"\n\n'
            f"[broker]\nport = {loaded.config.broker.port}\n\n"
            f'[relay]\ncentral_url = "http://127.0.0.1:{port}"\nstate_dir = "relay-state"\nlinger_s = 0.2\n',
            encoding="utf-8",
        )
        self.env |= {
            "STOREHUB_RELAY_STORE_KEY": str(keys["store_key"]),
            "STOREHUB_RELAY_SECRET": str(keys["secret"]),
            "STOREHUB_RELAY_MQTT_PASSWORD": self._add("relay", "relay", []),
        }
        self.central_toml = central_toml
        self._spawn("relay", ["relay", "run", "--config", str(relay_toml), "--log-level", "WARNING"])

    def _printed(self) -> tuple[dict[str, int], Path | None]:
        """Print jobs by state (read-only from the hub's database), and a PNG of the last receipt."""
        database = self._loaded().data_dir / "hub.db"
        with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
            deadline = time.monotonic() + 15
            while True:  # the last receipts may still be on their way to the printer
                states = dict(conn.execute("SELECT state, COUNT(*) FROM print_jobs GROUP BY state").fetchall())
                if (not states.get("queued") and not states.get("printing")) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            row = conn.execute(
                "SELECT job_id FROM print_jobs WHERE kind = 'receipt' AND state = 'printed' ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        if row is None:
            return states, None
        png = DEMO_DIR / "last-receipt.png"
        preview = _storehub(
            ["printers", "preview", "--config", str(self.config), row[0], "--output", str(png)], self.env
        )
        return states, png if preview.returncode == 0 else None

    def central_holds_the_ledger(self, timeout: float = 30.0) -> tuple[int, int]:
        """(entries at central, entries in the hub's ledger) once the relay caught up, or at the timeout."""
        head = 0
        held = -1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            verified = json.loads(
                _storehub(["ledger", "verify", "--config", str(self.config)], self.env).stdout or "{}"
            )
            head = int(verified.get("head_seq") or 0)
            store_id = self._loaded().config.store.id
            audit = _storehub(["central", "store", "audit", store_id, "--config", str(self.central_toml)], self.env)
            held = int((json.loads(audit.stdout or "{}") or {}).get("entries") or 0)
            if held == head:
                break
            time.sleep(1)
        return held, head

    # -- stop --------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the service and every process, last started first."""
        if self.service is not None:
            self.service.stop.set()
        for process in reversed(self.processes):
            process.stop()

    # -- helpers -----------------------------------------------------------------------------
    def _loaded(self) -> LoadedConfig:
        if self.loaded is None:
            raise ConfigError("the demo store is not started")
        return self.loaded

    def _manager(self) -> Employee:
        manager = next((s for s in self._loaded().config.staff if s.role == "manager"), None)
        if manager is None:
            raise ConfigError(f"{self.config}: the demo needs a [[staff]] manager to open the shift")
        return Employee(manager.id, manager.name, manager.pin)

    def _spawn(self, name: str, args: list[str]) -> Process:
        process = Process(name, [sys.executable, "-m", "hub.cli", *args], DEMO_DIR / f"{name}.log")
        self.processes.append(process.start(self.env))
        return process

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str, process: Process) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process.alive():
                raise ConfigError(f"{what} stopped at start-up; see {process.log}")
            if ready():
                return
            time.sleep(0.1)
        raise ConfigError(f"{what} was not ready within {timeout:.0f} s; see {process.log}")

    def _hub_ready(self) -> bool:
        answer = asyncio.run(control_request(self._loaded().data_dir, "hub.status", {}))
        return answer is not None and bool((answer.get("result") or {}).get("broker_connected"))

    def _add(self, device: str, kind: str, stations: list[str]) -> str:
        body = {"device_id": device, "kind": kind, "stations": stations}
        answer = asyncio.run(control_request(self._loaded().data_dir, "device.add", body))
        if answer is None or not answer.get("ok"):
            raise ConfigError(f"could not register {device}: {answer}")
        return str(answer["result"]["password"])


def _http_ok(url: str) -> bool:
    import urllib.request  # noqa: PLC0415 - only the demo's readiness checks use it

    try:
        with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 - our own http URL
            return bool(answer.status == 200)  # noqa: PLR2004
    except OSError:
        return False


def _http_json(url: str) -> dict[str, Any]:
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - our own http URL
            data = json.loads(answer.read())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _storehub(args: list[str], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "hub.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
        timeout=120,
        input=stdin,
    )
