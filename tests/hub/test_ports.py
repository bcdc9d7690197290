"""Free ports for benches, the demo and tests: never the same port twice in one process."""

from __future__ import annotations

import socket

from hub.ports import free_port


def test_a_process_never_gets_the_same_port_twice() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    for port in ports[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free when handed out


def test_a_preferred_port_is_used_only_when_nothing_listens_there() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        other = free_port(taken)
        assert other != taken
    preferred = free_port()
    assert free_port(preferred) == preferred
