"""Free TCP ports on loopback, for the benches, the demo and the tests (every server binds 127.0.0.1)."""

from __future__ import annotations

import contextlib
import socket
import threading

HOST = "127.0.0.1"
_handed_out: set[int] = set()
_lock = threading.Lock()


def free_port(preferred: int | None = None, host: str = HOST) -> int:
    """`preferred` when nothing listens there, else a port free right now and new to this process.

    The kernel may give the same ephemeral port to two binds in a row once the first socket is
    closed, so a bench asking for a broker port and then a web port could get one port twice and
    see its broker fail with "address already in use". Ports handed out before are skipped.
    """
    if preferred:
        with socket.socket() as sock, contextlib.suppress(OSError):
            # As the servers that will bind it do: connections of a run that just ended, still in
            # TIME_WAIT, do not make the port busy (only a listener does).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, preferred))
            with _lock:
                _handed_out.add(preferred)
            return preferred
    with _lock:
        while True:
            with socket.socket() as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port
