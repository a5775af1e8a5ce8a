"""wrk at saturation: the throughput load, the same tool for nginx and for Remora.

wrk cannot hold a fixed rate, so the latency load is remora.loadgen's (bench/proxy.py: PINNED
connections on a select() loop, latency from each request's due time).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

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
