"""Run a real hub process (`storehub hub run`) with its managed Mosquitto on free ports, for tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from devices.sim.tablet import Credentials, SimTablet
from hub.ports import free_port

REPO = Path(__file__).resolve().parent.parent
MENU = REPO / "config" / "menu.example.toml"

STAFF = {
    "mgr": ("emp-claire", "7410"),
    "server": ("emp-hugo", "2580"),
    "server2": ("emp-lea", "3690"),
    "cashier": ("emp-sami", "4826"),
    "kitchen": ("emp-marc", "7391"),
}

CONFIG_TEMPLATE = """
[store]
id = "{store_id}"
name = "Test Bistro"
currency = "EUR"
timezone = "Europe/Paris"
business_day_starts_at = "04:00"
tax_rates = [
  {{ id = "food", rate_bp = 1000, inclusive = true }},
  {{ id = "alcohol", rate_bp = 2000, inclusive = true }},
  {{ id = "soft", rate_bp = 550, inclusive = true }},
]

[hub]
data_dir = "{data_dir}"
menu_file = "{menu}"
web_port = {web_port}
tick_interval_s = {tick}

[broker]
managed = true
host = "127.0.0.1"
port = {port}

[[staff]]
id = "emp-claire"
name = "Claire"
role = "manager"
pin = "7410"

[[staff]]
id = "emp-hugo"
name = "Hugo"
role = "server"
pin = "2580"

[[staff]]
id = "emp-lea"
name = "Léa"
role = "server"
pin = "3690"

[[staff]]
id = "emp-sami"
name = "Sami"
role = "cashier"
pin = "4826"

[[staff]]
id = "emp-marc"
name = "Marc"
role = "kitchen"
pin = "7391"

[[tables]]
id = "t1"
name = "1"
seats = 2

[[tables]]
id = "t2"
name = "2"
seats = 4

[[tables]]
id = "t3"
name = "3"
seats = 4

[[tables]]
id = "t4"
name = "4"
seats = 6
"""


def write_config(directory: Path, *, store_id: str = "test-store", port: int | None = None, tick: float = 30.0) -> Path:
    """A store config for a hub in `directory` on a free broker port."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "store.toml"
    path.write_text(
        CONFIG_TEMPLATE.format(
            store_id=store_id,
            data_dir=directory / "data",
            menu=MENU,
            web_port=free_port(),
            port=port or free_port(),
            tick=tick,
        ),
        encoding="utf-8",
    )
    return path


def storehub(
    *args: str, check: bool = True, timeout: float = 60, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `storehub` CLI as a user would (`stdin` is typed into it, e.g. a PIN)."""
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
        cwd=REPO,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )


@dataclass
class HubProcess:
    """A hub running as its own process (so it can be SIGKILLed like in a real store)."""

    config: Path
    store_id: str = "test-store"
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.config.parent / "hub.log"
        text = self.config.read_text(encoding="utf-8")
        self.port = int(text.split("port = ")[-1].split()[0])
        self.data_dir = self.config.parent / "data"

    def start(self, timeout: float = 15.0) -> HubProcess:
        """Start the hub and wait until it answers on its control socket, connected to its broker."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "hub", "run", "--config", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"hub exited with {self.proc.returncode}:\n{self.log_tail()}")
            result = storehub("hub", "status", "--config", str(self.config), check=False)
            if result.returncode == 0 and json.loads(result.stdout).get("broker_connected"):
                return self
            time.sleep(0.05)
        raise AssertionError(f"hub did not become ready in {timeout} s:\n{self.log_tail()}")

    def kill9(self) -> None:
        """SIGKILL the hub, as a power cut or the OOM killer would."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait for a clean exit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(f"hub did not stop on SIGTERM:\n{self.log_tail()}") from None

    def log_tail(self, lines: int = 40) -> str:
        """The end of the hub's log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def add_device(self, device_id: str, kind: str = "tablet", stations: str = "") -> Credentials:
        """`storehub device add`, parsing the JSON on the last line of stdout."""
        args = ["device", "add", device_id, "--kind", kind, "--config", str(self.config)]
        if stations:
            args += ["--stations", stations]
        result = storehub(*args)
        data = json.loads(result.stdout.strip().splitlines()[-1])
        return Credentials(data["device_id"], data["username"], data["password"])

    def tablet(self, device_id: str, *, events: bool = False, creds: Credentials | None = None) -> SimTablet:
        """A connected simulated tablet (registered first unless credentials are given)."""
        creds = creds or self.add_device(device_id)
        return SimTablet(self.store_id, creds, port=self.port, subscribe_events=events).connect()

    def hub_password(self) -> str:
        """The hub's own broker password (for observers in tests)."""
        return (self.data_dir / "hub.secret").read_text(encoding="utf-8").strip()


def pid_alive(pid: int) -> bool:
    """Whether a process exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")
