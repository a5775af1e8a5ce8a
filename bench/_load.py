"""Load generators: wrk at saturation, and an open-loop constant-rate client for latency.

wrk cannot hold a fixed rate, so latency comes from ConstantRate: N keep-alive connections, each
sending on its own fixed schedule (rate / N per second), one request in flight per connection.
A request's latency runs from the time it was *meant* to be sent, so a slow response delays the
next send on that connection and that delay is counted (no coordinated omission). The loop
sleeps in select() with microsecond timeouts rather than epoll's milliseconds.
"""

from __future__ import annotations

import math
import re
import select
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httptools

WRK = "/usr/bin/wrk"


@dataclass(frozen=True)
class WrkResult:
    rps: float
    requests: int
    non_2xx: int
    socket_errors: int


def run_wrk(port: int, *, host: str, path: str, connections: int, seconds: float) -> WrkResult:
    """One wrk run (1 thread) against 127.0.0.1:`port`."""
    argv = [WRK, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-H", f"Host: {host}",
            f"http://127.0.0.1:{port}{path}"]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30)
    text = out.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    if rps is None or total is None:
        raise RuntimeError(f"unexpected wrk output:\n{text}{out.stderr}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return WrkResult(
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


class _Connection:
    """One keep-alive client connection with its own send schedule."""

    def __init__(self, port: int, *, due_ns: int) -> None:
        self.port = port
        self.due_ns = due_ns  # when the next request is meant to go out
        self.intended_ns = 0  # when the request in flight was meant to go out
        self.busy = False
        self.done = False
        self.status = 0
        self.sock = self._connect()
        self.parser = httptools.HttpResponseParser(self)

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        return sock

    def reconnect(self) -> None:
        self.sock.close()
        self.sock = self._connect()
        self.parser = httptools.HttpResponseParser(self)
        self.busy = False

    # httptools callbacks
    def on_message_complete(self) -> None:
        self.done = True
        self.status = self.parser.get_status_code()


@dataclass
class LatencyRun:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0  # non-200 answers and broken connections
    late_sends: int = 0  # requests that left > 1 ms after their slot (client or server lag)


def constant_rate(
    port: int,
    *,
    host: str,
    path: str,
    rate: float,
    connections: int,
    seconds: float,
    tick: Callable[[], None] = lambda: None,
    tick_every_s: float = 0.1,
) -> LatencyRun:
    """Send `rate` requests/s for `seconds` over `connections`; latencies from intended times."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: remora-bench\r\n\r\n".encode()
    step_ns = int(1e9 / rate)
    start = time.perf_counter_ns() + 10_000_000
    conns = [_Connection(port, due_ns=start + i * step_ns) for i in range(connections)]
    interval_ns = step_ns * connections
    end = start + int(seconds * 1e9)
    run = LatencyRun()
    by_sock = {c.sock: c for c in conns}
    next_tick = start
    try:
        while True:
            now = time.perf_counter_ns()
            if now >= next_tick:
                tick()
                next_tick = now + int(tick_every_s * 1e9)
            idle = [c for c in conns if not c.busy and c.due_ns < end]
            busy = [c.sock for c in conns if c.busy]
            if not idle and not busy:
                break
            for c in idle:
                if c.due_ns <= now:
                    if now - c.due_ns > 1_000_000:
                        run.late_sends += 1
                    c.intended_ns = c.due_ns
                    c.due_ns += interval_ns
                    c.busy = True
                    c.done = False
                    c.sock.send(request)
            waits = [c.due_ns - now for c in conns if not c.busy and c.due_ns < end]
            timeout = max(0.0, min(waits) / 1e9) if waits else 0.05
            readable, _, _ = select.select([c.sock for c in conns if c.busy], [], [], timeout)
            for sock in readable:
                _receive(by_sock, sock, run)
    finally:
        for c in conns:
            c.sock.close()
    return run


def _receive(
    by_sock: dict[socket.socket, _Connection], sock: socket.socket, run: LatencyRun
) -> None:
    c = by_sock[sock]
    try:
        data = sock.recv(65536)
        if not data:
            raise ConnectionResetError("closed by peer")
        c.parser.feed_data(data)
    except (OSError, httptools.HttpParserError):
        run.errors += 1
        del by_sock[sock]
        c.reconnect()
        by_sock[c.sock] = c
        return
    if c.done:
        run.latencies_ms.append((time.perf_counter_ns() - c.intended_ns) / 1e6)
        if c.status != 200:
            run.errors += 1
        c.busy = False


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = math.ceil(q / 100 * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]
