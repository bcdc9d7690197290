"""hub.broker against a real Mosquitto on a free 127.0.0.1 port: hashes, ACL, reloads, lifecycle."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hub.broker import (
    BrokerConfig,
    BrokerError,
    BrokerUser,
    ManagedBroker,
    broker_files,
    device_user,
    find_mosquitto,
    hash_password,
    hub_user,
    new_password,
    render_mosquitto_conf,
    write_broker_files,
)
from hub.contract.topics import Topics
from hub.ports import free_port
from tests.mqtt_helpers import MqttClient, connect_client, wait_until

REPO = Path(__file__).resolve().parents[2]
NOT_AUTHORIZED = 0x87  # what Mosquitto 2.0.11 answers in CONNACK and PUBACK alike
GRANTED_QOS_1 = 1
TOPICS = Topics("s1")


@dataclass
class Store:
    """A running broker with the hub and three devices (tab-01, tab-02, kds-grill on `grill`)."""

    broker: ManagedBroker
    passwords: dict[str, str]
    stations: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"kds-grill": ("grill",)})

    @property
    def port(self) -> int:
        return self.broker.config.port

    def users(self) -> list[BrokerUser]:
        users = [hub_user(TOPICS, hash_password(self.passwords["hub"]))]
        for name, password in self.passwords.items():
            if name != "hub":
                kind = "kds" if name.startswith("kds-") else "tablet"
                stations = self.stations.get(name, ())
                users.append(device_user(TOPICS, name, kind, stations, hash_password(password)))
        return users

    def client(self, username: str) -> MqttClient:
        return connect_client(self.port, username, self.passwords[username])


@pytest.fixture
def store(tmp_path: Path):
    broker = ManagedBroker(BrokerConfig(conf_dir=tmp_path / "broker", port=free_port()))
    store = Store(broker, {name: new_password() for name in ("hub", "tab-01", "tab-02", "kds-grill")})
    asyncio.run(broker.start(store.users()))
    try:
        yield store
    finally:
        asyncio.run(broker.stop())


# -- password hashes ---------------------------------------------------------------------------


def test_hash_password_is_byte_for_byte_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    passwd_tool = shutil.which("mosquitto_passwd", path=f"{os.environ.get('PATH', '')}:/usr/bin:/usr/sbin")
    assert passwd_tool is not None, "mosquitto_passwd ships with mosquitto, which make test installs"
    path = tmp_path / "passwd"
    subprocess.run([passwd_tool, "-c", "-b", str(path), "u1", "s3cret:é"], check=True)
    username, written = path.read_text(encoding="utf-8").strip().split(":", 1)
    _, seven, iterations, salt, _digest = written.split("$")
    assert (username, seven, iterations, len(salt)) == ("u1", "7", "101", 16)

    ours = hash_password("s3cret:é", salt=base64.b64decode(salt))

    assert ours == written
    assert hash_password("x") != hash_password("x")  # a fresh salt each time
    assert len(new_password()) == 24


def test_generated_passwords_never_read_as_a_command_line_option():
    passwords = [new_password() for _ in range(2000)]  # about 1 in 64 random ones would start with "-"
    assert all(len(p) == 24 and not p.startswith("-") for p in passwords)
    assert len(set(passwords)) == len(passwords)


def test_mosquitto_accepts_our_hash_and_refuses_wrong_or_missing_passwords(store: Store) -> None:
    with store.client("tab-01") as good:
        assert good.connected

    wrong = MqttClient(store.port, "tab-01", "not-the-password").connect()
    anonymous = MqttClient(store.port, None, None).connect()
    unknown = MqttClient(store.port, "tab-99", "whatever").connect()

    assert (wrong.value, anonymous.value, unknown.value) == (NOT_AUTHORIZED,) * 3


def test_mosquitto_reads_the_iteration_count_from_the_hash(tmp_path: Path) -> None:
    config = BrokerConfig(conf_dir=tmp_path, port=free_port())
    broker = ManagedBroker(config)
    asyncio.run(broker.start([hub_user(TOPICS, hash_password("pw", iterations=1000))]))
    try:
        with connect_client(config.port, "hub", "pw") as client:
            assert client.connected
    finally:
        asyncio.run(broker.stop())


# -- the contract's ACL --------------------------------------------------------------------------


def test_device_user_is_exactly_the_contract_acl() -> None:
    root = "storehub/v1/s1/"
    kds = device_user(TOPICS, "kds-grill", "kds", ["grill", "expo"], "$7$h")
    tablet = device_user(TOPICS, "tab-01", "tablet", ["grill"], "$7$h")

    reads = ("hub/status", "device/+/status", "event/#", "state/#")
    assert kds.publish == (f"{root}cmd/kds-grill",)
    assert kds.readwrite == (f"{root}device/kds-grill/status",)
    assert kds.subscribe == (
        f"{root}reply/kds-grill",
        f"{root}device/kds-grill/do",
        *(root + topic for topic in reads),
        f"{root}kds/grill",
        f"{root}kds/expo",
    )
    assert f"{root}kds/grill" not in tablet.subscribe  # stations count for KDS devices only
    assert hub_user(TOPICS, "$7$h").readwrite == (f"{root}#",)


@pytest.mark.parametrize(
    ("device_id", "stations"), [("hub", []), ("Tab 1", []), ("kds-x", ["#"]), ("kds-x", ["a/b"])]
)
def test_device_user_refuses_ids_that_would_widen_the_acl(device_id: str, stations: list[str]) -> None:
    with pytest.raises(ValueError):
        device_user(TOPICS, device_id, "kds", stations, "$7$h")


def test_a_device_publishes_only_on_its_own_cmd_and_status(store: Store) -> None:
    with store.client("hub") as hub, store.client("tab-01") as tab:
        assert hub.subscribe(TOPICS.all_topics()).value == GRANTED_QOS_1

        own = [tab.publish(TOPICS.cmd("tab-01"), b"own"), tab.publish(TOPICS.device_status("tab-01"), b"up")]
        foreign = [
            tab.publish(TOPICS.cmd("tab-02"), b"spoofed"),
            tab.publish(TOPICS.event("ticket.fired"), b"forged"),
            tab.publish(TOPICS.hub_status(), b"forged"),
            tab.publish(TOPICS.reply("tab-02"), b"forged"),
            tab.publish(TOPICS.kds("grill"), b"forged"),
            tab.publish(TOPICS.device_status("tab-02"), b"forged"),
        ]
        # The broker keeps one client's messages in order: once the marker is in, nothing else comes.
        tab.publish(TOPICS.cmd("tab-01"), b"marker")
        wait_until(lambda: b"marker" in hub.received(TOPICS.cmd("tab-01")))

        assert [rc.is_failure for rc in own] == [False, False]
        assert {rc.value for rc in foreign} == {NOT_AUTHORIZED}  # Mosquitto 2.0.11 says so in PUBACK
        assert [(m.topic, m.payload) for m in hub.messages] == [
            (TOPICS.cmd("tab-01"), b"own"),
            (TOPICS.device_status("tab-01"), b"up"),
            (TOPICS.cmd("tab-01"), b"marker"),
        ]


def test_a_device_receives_only_what_its_acl_lets_it_read(store: Store) -> None:
    with store.client("hub") as hub, store.client("tab-01") as tab:
        # Mosquitto 2.0.11's ACL file does not check SUBSCRIBE: every filter is granted, and read
        # access is enforced on each message delivered instead.
        subacks = [tab.subscribe(topic) for topic in (TOPICS.reply("tab-02"), TOPICS.all_topics())]
        assert [rc.value for rc in subacks] == [GRANTED_QOS_1, GRANTED_QOS_1]

        for topic in (
            TOPICS.reply("tab-02"),
            TOPICS.cmd("tab-02"),
            TOPICS.kds("grill"),
            TOPICS.device_do("tab-02"),
        ):
            hub.publish(topic, b"not for tab-01")
        allowed = [
            TOPICS.event("ticket.fired"),
            TOPICS.state_menu(),
            TOPICS.hub_status(),
            TOPICS.device_status("tab-02"),
            TOPICS.device_do("tab-01"),
            TOPICS.reply("tab-01"),
        ]
        for topic in allowed:
            hub.publish(topic, b"for tab-01")
        wait_until(lambda: tab.received(TOPICS.reply("tab-01")))

        assert [m.topic for m in tab.messages] == allowed


def test_a_kds_device_reads_its_own_stations_only(store: Store) -> None:
    with store.client("hub") as hub, store.client("kds-grill") as kds:
        assert kds.subscribe(TOPICS.kds("grill")).value == GRANTED_QOS_1
        assert kds.subscribe(TOPICS.kds("fry")).value == GRANTED_QOS_1  # granted, yet never delivered

        hub.publish(TOPICS.kds("fry"), b"fries")
        hub.publish(TOPICS.kds("grill"), b"burger")
        wait_until(lambda: kds.received(TOPICS.kds("grill")))

        assert [(m.topic, m.payload) for m in kds.messages] == [(TOPICS.kds("grill"), b"burger")]


def test_a_command_above_64_kib_still_reaches_the_hub(store: Store) -> None:
    big = b"x" * 100_000
    with store.client("hub") as hub, store.client("tab-01") as tab:
        hub.subscribe(TOPICS.cmd_all())
        assert not tab.publish(TOPICS.cmd("tab-01"), big).is_failure
        wait_until(lambda: hub.received(TOPICS.cmd("tab-01")))
        assert hub.received(TOPICS.cmd("tab-01")) == [big]


# -- reloading accounts --------------------------------------------------------------------------


def test_update_users_adds_and_revokes_at_once(store: Store) -> None:
    with store.client("hub") as hub, store.client("tab-02") as revoked:
        old_password = store.passwords.pop("tab-02")
        store.passwords["tab-03"] = new_password()

        asyncio.run(store.broker.update_users(store.users()))  # every hash gets a fresh salt too

        with store.client("tab-03") as added:
            assert added.connected
        assert MqttClient(store.port, "tab-02", old_password).connect().value == NOT_AUTHORIZED
        # Mosquitto 2.0.11 re-checks connected clients on reload: it drops the revoked one, keeps
        # the hub (whose password still matches its new hash).
        wait_until(lambda: not revoked.connected, 1.0, "the revoked device to be dropped")
        assert hub.connected


def test_update_users_drops_a_client_whose_password_changed(store: Store) -> None:
    with store.client("tab-01") as tab:
        store.passwords["tab-01"] = new_password()
        asyncio.run(store.broker.update_users(store.users()))

        wait_until(lambda: not tab.connected, 1.0, "the device with the old password to be dropped")
        with store.client("tab-01") as again:
            assert again.connected


def test_new_kds_stations_apply_to_a_connected_screen(store: Store) -> None:
    with store.client("hub") as hub, store.client("kds-grill") as kds:
        kds.subscribe(TOPICS.kds("grill"))
        kds.subscribe(TOPICS.kds("fry"))
        store.stations["kds-grill"] = ("fry",)
        asyncio.run(store.broker.update_users(store.users()))

        hub.publish(TOPICS.kds("grill"), b"burger")
        hub.publish(TOPICS.kds("fry"), b"fries")
        wait_until(lambda: kds.received(TOPICS.kds("fry")))

        assert kds.connected
        assert [m.topic for m in kds.messages] == [TOPICS.kds("fry")]


# -- files -----------------------------------------------------------------------------------------


def test_write_broker_files_writes_private_secrets_and_the_conf(tmp_path: Path) -> None:
    config = BrokerConfig(conf_dir=tmp_path / "new", port=18830, websockets_port=18831, persistence=True)
    files = write_broker_files(config, [hub_user(TOPICS, hash_password("pw"))])

    assert stat.S_IMODE(files.passwd.stat().st_mode) == 0o640
    assert stat.S_IMODE(files.acl.stat().st_mode) == 0o640
    assert files.passwd.read_text(encoding="utf-8").startswith("hub:$7$101$")
    conf = files.conf.read_text(encoding="utf-8")
    assert conf == render_mosquitto_conf(config, broker_files(config))
    assert conf.startswith("# Generated by the StoreHub hub")
    lines = conf.splitlines()
    for line in (
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {files.passwd}",
        f"acl_file {files.acl}",
        "set_tcp_nodelay true",
        "max_packet_size 16777216",
        "persistence true",
        f"persistence_location {tmp_path / 'new'}/",
        f"log_dest file {files.log}",
        "listener 18830 127.0.0.1",
        "listener 18831 127.0.0.1",
        "protocol websockets",
    ):
        assert line in lines
    assert lines.count("use_username_as_clientid true") == 2  # a listener option: one per listener
    assert sorted(p.name for p in files.conf.parent.iterdir()) == ["acl", "mosquitto.conf", "passwd"]


def test_user_root_only_when_asked(tmp_path: Path) -> None:
    def conf_lines(*, run_as_root: bool) -> list[str]:
        config = BrokerConfig(conf_dir=tmp_path, run_as_root=run_as_root)
        return render_mosquitto_conf(config, broker_files(config)).splitlines()

    assert "user root" in conf_lines(run_as_root=True)
    assert "user root" not in conf_lines(run_as_root=False)


# -- lifecycle -------------------------------------------------------------------------------------


def test_start_waits_for_the_websockets_listener_too(tmp_path: Path) -> None:
    config = BrokerConfig(conf_dir=tmp_path, port=free_port(), websockets_port=free_port())
    broker = ManagedBroker(config)
    asyncio.run(broker.start([hub_user(TOPICS, hash_password("pw"))]))
    try:
        assert config.websockets_port is not None
        client = MqttClient(config.websockets_port, "hub", "pw", transport="websockets")
        assert not client.connect().is_failure
        client.close()
    finally:
        asyncio.run(broker.stop())


def test_stop_reaps_the_broker_and_it_removes_its_pid_file(store: Store) -> None:
    pid = store.broker.pid
    assert pid is not None
    assert store.broker.files.pid.read_text(encoding="ascii").strip() == str(pid)

    asyncio.run(store.broker.stop())

    assert store.broker.pid is None
    assert not Path(f"/proc/{pid}").exists()  # reaped: no zombie left
    assert not store.broker.files.pid.exists()


def test_start_reports_a_port_in_use_with_the_log_tail(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        broker = ManagedBroker(BrokerConfig(conf_dir=tmp_path, port=port))

        with pytest.raises(BrokerError, match="Address already in use"):
            asyncio.run(broker.start([hub_user(TOPICS, hash_password("pw"))]))
        assert broker.pid is None


def test_a_missing_mosquitto_says_how_to_install_it(tmp_path: Path) -> None:
    assert Path(find_mosquitto()).name == "mosquitto"
    broker = ManagedBroker(BrokerConfig(conf_dir=tmp_path, port=free_port()), executable="no-such-mosquitto")
    with pytest.raises(BrokerError, match="apt-get install -y mosquitto"):
        asyncio.run(broker.start([]))


_OWNER = """
import asyncio, sys
from pathlib import Path
from hub.broker import BrokerConfig, ManagedBroker, hash_password, hub_user
from hub.contract.topics import Topics

async def main() -> None:
    broker = ManagedBroker(BrokerConfig(conf_dir=Path(sys.argv[1]), port=int(sys.argv[2])))
    await broker.start([hub_user(Topics("s1"), hash_password("pw"))])
    print(broker.pid, flush=True)
    await asyncio.sleep(30)

asyncio.run(main())
"""


@pytest.mark.parametrize("kill", ["owner", "process_group"])
def test_the_broker_dies_with_its_owner_and_the_port_is_free_again(tmp_path: Path, kill: str) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(tmp_path), str(port)],
        stdout=subprocess.PIPE,
        env=env,
        start_new_session=kill == "process_group",
    ) as owner:
        try:
            assert owner.stdout is not None
            broker_pid = int(owner.stdout.readline())
            assert _alive(broker_pid)
            if kill == "process_group":
                assert os.getpgid(broker_pid) == owner.pid  # the broker stayed in its owner's group
                os.killpg(owner.pid, signal.SIGKILL)
            else:
                owner.kill()
            assert owner.wait(timeout=2) == -signal.SIGKILL
        finally:
            owner.kill()
    wait_until(lambda: not _alive(broker_pid), 2.0, "the orphaned broker to die")

    broker = ManagedBroker(BrokerConfig(conf_dir=tmp_path, port=port))
    asyncio.run(broker.start([hub_user(TOPICS, hash_password("pw"))]))
    try:
        with connect_client(port, "hub", "pw") as client:
            assert client.connected
    finally:
        asyncio.run(broker.stop())


def test_start_ends_a_broker_an_earlier_run_left_behind(tmp_path: Path) -> None:
    config = BrokerConfig(conf_dir=tmp_path, port=free_port())
    users = [hub_user(TOPICS, hash_password("pw"))]
    files = write_broker_files(config, users)
    # Started without the death signal, as an older hub or a crashed shell would have left it.
    with subprocess.Popen([find_mosquitto(), "-c", str(files.conf)], stderr=subprocess.DEVNULL) as stale:
        try:
            wait_until(lambda: _pid_in(files.pid) == stale.pid and _accepts(config.port), 2.0, "stale broker")
            broker = ManagedBroker(config)
            asyncio.run(broker.start(users))
            try:
                assert stale.wait(timeout=1) is not None
                assert broker.pid not in {None, stale.pid}
                with connect_client(config.port, "hub", "pw") as client:
                    assert client.connected
            finally:
                asyncio.run(broker.stop())
        finally:
            stale.kill()


def test_a_pid_file_of_another_program_is_left_alone(tmp_path: Path) -> None:
    config = BrokerConfig(conf_dir=tmp_path, port=free_port())
    with subprocess.Popen(["sleep", "5"]) as other:
        try:
            broker_files(config).pid.parent.mkdir(parents=True, exist_ok=True)
            broker_files(config).pid.write_text(f"{other.pid}\n", encoding="ascii")
            broker = ManagedBroker(config)
            asyncio.run(broker.start([hub_user(TOPICS, hash_password("pw"))]))
            asyncio.run(broker.stop())
            assert other.poll() is None
        finally:
            other.kill()


# -- helpers ---------------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie (PID 1 may be slow to reap orphans, or never)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return False
    return status.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
