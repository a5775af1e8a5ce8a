"""The latency load of the benchmarks: a constant request rate, open loop, measured from each
request's due time (remora.loadgen, PINNED connections on the select() loop).

bench/proxy.py measures added latency with it, bench/hostile.py the proxy's latency while hostile
clients hold connections open.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from remora.loadgen import Dispatch, LoadRun, Result, run_load, schedule
from remora.loadgen import Target as Request
from remora.loadgen import percentile as nearest_rank

RATE = 1000.0
LATENCY_CONNECTIONS = 4  # Istio's published setup: 1,000 req/s over 4 keep-alive connections


@dataclass
class LatencyRun:
    latencies_ms: list[float] = field(default_factory=list)
    answered_at: list[float] = field(default_factory=list)  # perf_counter() of each, in order
    errors: int = 0  # non-200 answers and broken connections
    late_sends: int = 0  # requests that left > 1 ms after their slot (client or server lag)
    failures: Counter[str] = field(default_factory=Counter)  # the errors' outcomes ("503", ...)


def constant_load(port: int, seconds: float, *, host: str, path: str,
                  headers: Sequence[tuple[str, str]] = (),
                  tick: Callable[[], None] = lambda: None,
                  tick_every_s: float = 0.1) -> LatencyRun:  # fmt: skip
    """RATE requests/s for `seconds` to 127.0.0.1:`port` over LATENCY_CONNECTIONS keep-alive
    connections, each on its own schedule (remora.loadgen, PINNED, on the select() loop); `tick`
    runs about every `tick_every_s` between answers."""
    request = Request.build(f"http://127.0.0.1:{port}{path}",
                            headers=[("Host", host), ("User-Agent", "remora-bench"),
                                     *headers])  # fmt: skip
    run = LatencyRun()
    next_tick = 0.0

    def record(result: Result) -> None:
        nonlocal next_tick
        now = time.perf_counter()
        if result.status is not None:
            run.latencies_ms.append(result.latency * 1000)
            run.answered_at.append(now)
        run.errors += result.status != 200
        if result.status != 200:
            run.failures[result.outcome] += 1
        run.late_sends += result.wait > 0.001
        if now >= next_tick:
            tick()
            next_tick = now + tick_every_s

    load = LoadRun(request, schedule(RATE, seconds), LATENCY_CONNECTIONS, 10.0, record,
                   dispatch=Dispatch.PINNED)  # fmt: skip
    gc.collect()
    gc.disable()  # a collection in the client would show up as latency
    try:
        run_load(load, precise=True)
    finally:
        gc.enable()
    return run


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100), NaN for none."""
    value = nearest_rank(ordered, q)
    return float("nan") if value is None else value
