"""wrk at saturation: the throughput load, the same tool for nginx and for Remora.

wrk cannot hold a fixed rate, so the latency load is remora.loadgen's (bench/proxy.py: PINNED
connections on a select() loop, latency from each request's due time). Its own latency
quantiles (`--latency`: the closed loop's, each request timed from its send) are kept for the
benchmarks that compare two paths under the same saturating load (bench/capture.py).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

WRK = "/usr/bin/wrk"
_TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}  # wrk's, to milliseconds


@dataclass(frozen=True)
class WrkResult:
    rps: float
    requests: int
    non_2xx: int
    socket_errors: int


@dataclass(frozen=True)
class WrkLatency(WrkResult):
    p50_ms: float
    p99_ms: float


def run_wrk(port: int, *, host: str, path: str, connections: int, seconds: float) -> WrkResult:
    """One wrk run (1 thread) against 127.0.0.1:`port`."""
    return wrk(f"http://127.0.0.1:{port}{path}", headers=(("Host", host),),
               connections=connections, seconds=seconds)  # fmt: skip


def wrk(
    url: str, *, connections: int, seconds: float, threads: int = 1,
    headers: Sequence[tuple[str, str]] = (), prefix: Sequence[str] = (),
) -> WrkLatency:  # fmt: skip
    """One wrk run against `url` with `headers`, started through `prefix` (e.g. `ip netns exec
    NS`: wrk resolves the URL's host and connects from there)."""
    argv = [*prefix, WRK, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            "--latency"]  # fmt: skip
    for name, value in headers:
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30)
    text = out.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    quantiles = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s|m))$", text, re.MULTILINE))
    if rps is None or total is None or len(quantiles) != 2:
        raise RuntimeError(f"unexpected wrk output:\n{text}{out.stderr}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return WrkLatency(
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        p50_ms=_milliseconds(quantiles["50"]),
        p99_ms=_milliseconds(quantiles["99"]),
    )


def _milliseconds(text: str) -> float:
    """wrk's "3.46ms", "812.00us", "1.02s" in milliseconds."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if found is None:
        raise RuntimeError(f"unexpected wrk time {text!r}")
    return float(found.group(1)) * _TIME_UNITS[found.group(2)]
