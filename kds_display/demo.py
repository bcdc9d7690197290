"""`storehub kds demo`: a hub, a grill screen and an expo screen fed by a simulated tablet.

Everything runs on this machine as separate processes, as in a store: the hub with its managed
broker (on a free port), two `storehub kds run` screens, and a tablet firing a ticket every few
seconds. The demo's data lives in `var/kds-demo/` (wiped at each start).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.app import control_request
from hub.config import ConfigError, LoadedConfig, load_config
from hub.ports import free_port
from kds_display.bench import REPO, KdsProcess

if TYPE_CHECKING:
    from devices.sim.tablet import SimTablet

DEMO_DIR = Path(os.environ.get("STOREHUB_KDS_DEMO_DIR", REPO / "var" / "kds-demo"))
NOTES = ["no salt", "sauce on the side", "birthday!", None, None, None]
ALLERGIES = ["nuts", "gluten", "shellfish", None, None, None, None, None]


def run_kds_demo(config: Path, *, tickets: int | None, interval: float, ports: tuple[int, int]) -> int:
    """Run the demo until Ctrl-C, or until `tickets` tickets were fired."""
    if DEMO_DIR.exists():
        shutil.rmtree(DEMO_DIR)
    DEMO_DIR.mkdir(parents=True)
    os.environ["STOREHUB_HUB__DATA_DIR"] = str(DEMO_DIR / "hub")
    os.environ["STOREHUB_BROKER__PORT"] = str(free_port())
    os.environ["STOREHUB_HUB__WEB_PORT"] = str(free_port())
    loaded = load_config(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    hub = _start_hub(config)
    screens: list[KdsProcess] = []
    tab = None
    try:
        _wait_hub(loaded, hub)
        for (device, stations), port in zip((("kds-grill", "grill"), ("kds-expo", "expo")), ports, strict=True):
            password = _add(loaded, device, "kds", [stations])
            kds = KdsProcess(loaded.path, device, password, port or free_port(), DEMO_DIR / device / "state")
            screens.append(kds.start())
        tab = _tablet(loaded)
        _say(
            "\nStoreHub KDS demo is running (Ctrl-C to stop).\n"
            f"  grill screen: {screens[0].url}\n"
            f"  expo screen:  {screens[1].url}\n"
            f"  broker 127.0.0.1:{loaded.config.broker.port}, data in {DEMO_DIR}\n"
        )
        _play(tab, loaded, tickets=tickets, interval=interval, stop=stop)
        if tickets is not None:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(len(k.state()["cards"]) < tickets for k in screens):
                time.sleep(0.05)
        for kds in screens:
            state = kds.state()
            _say(f"  {kds.device}: {len(state['cards'])} open tickets on screen")
        if tickets is None:
            stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if tab is not None:
            tab.close()
        for kds in screens:
            kds.stop()
        hub.terminate()
        hub.wait(15)
    return 0


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _start_hub(config: Path) -> subprocess.Popen[bytes]:
    log = (DEMO_DIR / "hub.log").open("ab")
    try:
        return subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "hub.cli", "hub", "run", "--config", str(config), "--log-level", "WARNING"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    finally:
        log.close()


def _wait_hub(loaded: LoadedConfig, hub: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub.poll() is not None:
            raise ConfigError(f"the hub exited with {hub.returncode}; see {DEMO_DIR / 'hub.log'}")
        answer = asyncio.run(control_request(loaded.data_dir, "hub.status", {}))
        if answer is not None and (answer.get("result") or {}).get("broker_connected"):
            return
        time.sleep(0.1)
    raise ConfigError(f"the hub did not start in {timeout} s; see {DEMO_DIR / 'hub.log'}")


def _add(loaded: LoadedConfig, device: str, kind: str, stations: list[str]) -> str:
    body = {"device_id": device, "kind": kind, "stations": stations}
    answer = asyncio.run(control_request(loaded.data_dir, "device.add", body))
    if answer is None or not answer.get("ok"):
        raise ConfigError(f"could not register {device}: {answer}")
    return str(answer["result"]["password"])


def _tablet(loaded: LoadedConfig) -> SimTablet:
    from devices.sim.tablet import Credentials, SimTablet  # noqa: PLC0415

    cfg = loaded.config
    creds = Credentials("tab-kds-demo", "tab-kds-demo", _add(loaded, "tab-kds-demo", "tablet", []))
    tab = SimTablet(cfg.store.id, creds, port=cfg.broker.port).connect()
    staff = {s.role: s for s in cfg.staff}
    manager = staff.get("manager")
    server = staff.get("server", manager)
    if manager is None or server is None:
        raise ConfigError(f"{loaded.path}: the demo needs a [[staff]] manager to open the shift")
    mgr = tab.login(manager.id, manager.pin)
    tab.call("shift.open", {"opening_float": 20000}, auth=mgr)
    tab.token = tab.login(server.id, server.pin)
    return tab


def _play(tab: SimTablet, loaded: LoadedConfig, *, tickets: int | None, interval: float, stop: threading.Event) -> None:
    """Fire a ticket of one to three kitchen items every `interval` seconds."""
    menu = loaded.menu
    groups = {g.id: g for g in menu.modifier_groups}
    kitchen = [item for item in menu.items if item.stations and "bar" not in item.stations]
    grill = [item for item in kitchen if "grill" in item.stations] or kitchen
    tables = [t.id for t in loaded.config.tables]
    rng = random.Random(7)
    fired = 0
    while (tickets is None or fired < tickets) and not stop.is_set():
        head: dict[str, Any] = {"channel": "takeout", "name": rng.choice(["Martin", "Ana", "Kenji", "Sofia"])}
        if tables and rng.random() < 0.6:  # noqa: PLR2004 - most tickets are dine-in
            head = {"channel": "dine_in", "table_id": rng.choice(tables), "guests": 2}
        opened = tab.call("ticket.open", head, auth=tab.token)
        if not opened.get("ok"):
            head = {"channel": "takeout", "name": "Walk-in"}
            opened = tab.call("ticket.open", head, auth=tab.token)
        ticket = opened["result"]["ticket_id"]
        lines = []
        picked = [rng.choice(grill), *rng.sample(kitchen, k=min(len(kitchen), rng.randint(0, 2)))]
        unique = list({item.id: item for item in picked}.values())
        for n, item in enumerate(unique):
            mods = [o.id for gid in item.modifier_groups for o in groups[gid].options[: groups[gid].min]]
            line: dict[str, Any] = {"line_id": f"{ticket}-{n}", "menu_item_id": item.id, "qty": rng.randint(1, 2)}
            line |= {"modifiers": mods, "seat": n + 1}
            if note := rng.choice(NOTES):
                line["note"] = note
            if allergy := rng.choice(ALLERGIES):
                line["allergy"] = allergy
            lines.append(line)
        tab.call("ticket.add_items", {"ticket_id": ticket, "items": lines}, auth=tab.token)
        reply = tab.call("ticket.fire", {"ticket_id": ticket}, auth=tab.token)
        fired += 1
        _say(f"  tablet fired ticket #{opened['result']['number']} (seq {reply.get('seq')})")
        stop.wait(interval)
