"""Free local ports: for the processes `remora up` starts (never the same one twice per run),
and the one `free_port()` the tests and benchmarks use too."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port on `host` that nothing listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a listener could bind `host:port` now."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class PortAllocator:
    """Hands out ports the kernel reports free and remembers them, so two processes started in
    the same run never get the same port even before either of them binds it."""

    def __init__(self, host: str = HOST) -> None:
        self._host = host
        self._given: set[int] = set()

    def take(self) -> int:
        while True:
            port = free_port(self._host)
            if port not in self._given:
                self._given.add(port)
                return port

    def prefer(self, port: int) -> int:
        """`port` when it is free and not yet given, else any free port."""
        if port not in self._given and port_is_free(port, self._host):
            self._given.add(port)
            return port
        return self.take()
