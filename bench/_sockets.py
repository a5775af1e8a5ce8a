"""What a server process holds open, read from /proc: its file descriptors and its TCP sockets
by state and port (the sockets of /proc/net/tcp{,6} whose inodes its descriptors name)."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from pathlib import Path

from _procs import family

# /proc/net/tcp's st column (include/net/tcp_states.h)
STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
          6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
          11: "CLOSING"}  # fmt: skip


def open_fds(pid: int) -> int:
    """File descriptors open in `pid` and its children."""
    total = 0
    for member in family(pid):
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{member}/fd"))
    return total


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for member in family(pid):
        fds = Path(f"/proc/{member}/fd")
        with contextlib.suppress(OSError):
            for fd in fds.iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:["):
                        inodes.add(int(link[8:-1]))
    return inodes


def tcp_sockets(pid: int) -> Counter[tuple[str, int, int]]:
    """The TCP sockets `pid` and its children hold: (state, local port, remote port) → count."""
    inodes = _socket_inodes(pid)
    found: Counter[tuple[str, int, int]] = Counter()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)  # the header
            for line in lines:
                fields = line.split()
                if int(fields[9]) not in inodes:
                    continue
                local, remote = fields[1], fields[2]
                state = STATES.get(int(fields[3], 16), fields[3])
                found[state, int(local.rsplit(":", 1)[1], 16),
                      int(remote.rsplit(":", 1)[1], 16)] += 1  # fmt: skip
    return found


def to_port(sockets: Counter[tuple[str, int, int]], port: int, state: str) -> int:
    """How many of `sockets` in `state` go to remote `port` (the connections to an upstream)."""
    return sum(n for (st, _, remote), n in sockets.items() if st == state and remote == port)


def on_port(sockets: Counter[tuple[str, int, int]], port: int, state: str) -> int:
    """How many of `sockets` in `state` are on local `port` (accepted on a listener)."""
    return sum(n for (st, local, _), n in sockets.items() if st == state and local == port)


def listen_overflows() -> int:
    """TcpExt ListenOverflows of this network namespace: connections dropped because a
    listener's accept queue was full (a server too slow to accept, or a backlog too short)."""
    with open("/proc/net/netstat") as table:
        lines = table.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["ListenOverflows"])
    return 0
