"""Benchmark: the Remora sidecar proxy against nginx, on 127.0.0.1, in one run.

Five targets, all answering with the same fixed 1 KiB body:
  (a) nginx returning the body itself (the upstream of b and c),
  (b) nginx as a reverse proxy in front of (a): 1 worker, upstream keepalive,
  (c) `remora proxy` (sidecar, 1 process) in front of (a) with a VirtualService of three match
      rules and a 90/10 subset split, metrics on, JSON access log to a file,
  (d) a uvloop byte relay with no HTTP logic (bench/_relay.py): the ceiling of any Python
      proxy on this event loop and machine (throughput only; relay_ratio_vs_nginx),
  (e) (c) with connectionPool, outlierDetection, a route timeout and retries configured
      (throughput only; throughput_ratio_vs_nginx_resilience).
Throughput: wrk (1 thread, 32 connections) at saturation, a/b/c alternating for several rounds,
medians; throughput_ratio_vs_nginx = rps(c) / rps(b). Latency: a constant 1,000 req/s over 4
keep-alive connections (Istio's published setup) against a, b and c, open loop, measured from
each request's intended send time; added_latency_pXX = pXX(c) - pXX(a). rss_mb is the proxy's
largest VmRSS under that load, cpu_s_per_1000_req its utime+stime per 1,000 of those requests.

    .venv/bin/python bench/proxy.py [--quick] [--json]

--quick keeps the whole run under 60 s; --json prints one JSON object as the last stdout line.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import _nginx
import _relay
import _remora
from _procs import Service, usage
from _wrk import run_wrk
from remora.loadgen import Dispatch, LoadRun, Result, run_load, schedule
from remora.loadgen import Target as Request
from remora.loadgen import percentile as nearest_rank
from remora.runner.ports import free_port

PATH = "/products/42"  # matches none of the three rules: every request reaches the split
RATE = 1000.0
LATENCY_CONNECTIONS = 4
WRK_CONNECTIONS = 32
QUANTILES = (50, 90, 99, 99.9)

# The targets for (c) and the published anchors they are set against.
TARGETS = {
    "throughput_ratio_vs_nginx": (">=", 0.8),
    "added_latency_p90_ms": ("<=", 0.25),
    "rss_mb": ("<=", 40.0),
    "cpu_s_per_1000_req": ("<=", 0.1),
}
ANCHORS = {
    "added_latency_p90_ms": "Istio 1.20 sidecar pair +0.228 ms",
    "added_latency_p99_ms": "Istio 1.20 sidecar pair +0.298 ms",
    "rss_mb": "Istio 1.24 sidecar 60 MB; Linkerd2-proxy ~26 MB",
    "cpu_s_per_1000_req": "Istio 1.24 sidecar 0.20 vCPU per 1,000 req/s",
}


@dataclass
class LatencyRun:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0  # non-200 answers and broken connections
    late_sends: int = 0  # requests that left > 1 ms after their slot (client or server lag)


@dataclass(frozen=True)
class Plan:
    rounds: int  # wrk rounds of a, b, c
    wrk_seconds: int
    latency_rounds: int
    latency_seconds: float
    warmup_seconds: float


QUICK = Plan(rounds=2, wrk_seconds=3, latency_rounds=1, latency_seconds=5, warmup_seconds=1)
FULL = Plan(rounds=3, wrk_seconds=10, latency_rounds=2, latency_seconds=15, warmup_seconds=2)


@dataclass
class Target:
    name: str
    port: int
    service: Service
    rps: list[float] = field(default_factory=list)
    wrk_requests: int = 0
    wrk_cpu_s: float = 0.0
    wrk_bad: int = 0  # non-2xx answers and socket errors under wrk
    latency: LatencyRun = field(default_factory=LatencyRun)
    latency_cpu_s: float = 0.0
    rss_mb: float = 0.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def check_answers(target: Target) -> None:
    """One request by hand: the target must answer 200 with the 1 KiB body."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{target.port}{PATH}", headers={"Host": _remora.HOST}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        body = answer.read()
    if answer.status != 200 or body != _nginx.BODY.encode():
        raise RuntimeError(f"{target.name}: status {answer.status}, {len(body)} body bytes")


def measure_throughput(targets: list[Target], plan: Plan) -> None:
    for target in targets:  # warm-up: connection pools, caches
        run_wrk(target.port, host=_remora.HOST, path=PATH, connections=WRK_CONNECTIONS,
                seconds=plan.warmup_seconds)  # fmt: skip
    for round_no in range(plan.rounds):
        for target in targets:
            before = usage(target.service.pid).cpu_s
            result = run_wrk(target.port, host=_remora.HOST, path=PATH,
                             connections=WRK_CONNECTIONS, seconds=plan.wrk_seconds)  # fmt: skip
            target.wrk_cpu_s += usage(target.service.pid).cpu_s - before
            target.wrk_requests += result.requests
            target.wrk_bad += result.non_2xx + result.socket_errors
            target.rps.append(result.rps)
            log(f"  round {round_no + 1}/{plan.rounds} {target.name}: {result.rps:,.0f} req/s")


def measure_latency(targets: list[Target], plan: Plan) -> None:
    for round_no in range(plan.latency_rounds):
        for target in targets:
            _constant(target, plan.warmup_seconds)  # fresh connections, warm pools
            pid = target.service.pid

            def sample_rss(target: Target = target, pid: int = pid) -> None:
                target.rss_mb = max(target.rss_mb, usage(pid).rss_mb)

            before = usage(pid).cpu_s
            run = _constant(target, plan.latency_seconds, tick=sample_rss)
            target.latency_cpu_s += usage(pid).cpu_s - before
            target.latency.latencies_ms.extend(run.latencies_ms)
            target.latency.errors += run.errors
            target.latency.late_sends += run.late_sends
            p = sorted(run.latencies_ms)
            log(f"  latency {round_no + 1}/{plan.latency_rounds} {target.name}: "
                f"p50 {percentile(p, 50):.3f} p90 {percentile(p, 90):.3f} "
                f"p99 {percentile(p, 99):.3f} ms")  # fmt: skip


def _constant(target: Target, seconds: float, *, tick: Callable[[], None] = lambda: None,
              tick_every_s: float = 0.1) -> LatencyRun:
    """RATE requests/s for `seconds` over LATENCY_CONNECTIONS keep-alive connections, each on
    its own schedule (remora.loadgen, PINNED, on the select() loop); `tick` runs about every
    `tick_every_s` between answers."""
    request = Request.build(f"http://127.0.0.1:{target.port}{PATH}",
                           headers=[("Host", _remora.HOST), ("User-Agent", "remora-bench")])
    run = LatencyRun()
    next_tick = 0.0

    def record(result: Result) -> None:
        nonlocal next_tick
        if result.status is not None:
            run.latencies_ms.append(result.latency * 1000)
        run.errors += result.status != 200
        run.late_sends += result.wait > 0.001
        now = time.perf_counter()
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


def latency_summary(target: Target) -> dict[str, float]:
    values = sorted(target.latency.latencies_ms)
    summary = {f"p{q:g}": round(percentile(values, q), 4) for q in QUANTILES}
    summary["max"] = round(values[-1], 4) if values else float("nan")
    summary["count"] = len(values)
    summary["errors"] = target.latency.errors
    summary["late_sends"] = target.latency.late_sends
    return summary


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    nginx = subprocess.run(
        [_nginx.NGINX, "-v"], capture_output=True, text=True, check=False
    ).stderr.strip()
    wrk = subprocess.run(["/usr/bin/wrk", "-v"], capture_output=True, text=True, check=False).stdout
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": nginx.removeprefix("nginx version: "),
        "wrk": wrk.split(" [", 1)[0].strip(),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
    }


def build_report(
    targets: dict[str, Target], *, plan: Plan, error: str | None, observed: dict[str, int]
) -> dict[str, Any]:
    b, c = targets.get("b"), targets.get("c")
    rps = {name: statistics.median(t.rps) if t.rps else None for name, t in targets.items()}
    report: dict[str, Any] = dict.fromkeys(
        ["throughput_ratio_vs_nginx", "added_latency_p50_ms", "added_latency_p90_ms",
         "added_latency_p99_ms", "rss_mb", "cpu_s_per_1000_req"]
    )  # fmt: skip
    lat = {name: latency_summary(t) for name, t in targets.items()}
    if c is not None and c.rps and b is not None and rps["b"]:
        report["throughput_ratio_vs_nginx"] = round(rps["c"] / rps["b"], 3)
    if c is not None and c.latency.latencies_ms:
        for q in (50, 90, 99):
            report[f"added_latency_p{q}_ms"] = round(lat["c"][f"p{q}"] - lat["a"][f"p{q}"], 4)
        report["rss_mb"] = round(c.rss_mb, 1)
        report["cpu_s_per_1000_req"] = round(
            c.latency_cpu_s / len(c.latency.latencies_ms) * 1000, 4
        )
    for name in ("a", "b", "c", "d", "e"):
        report[f"rps_{name}"] = round(rps[name], 1) if rps.get(name) else None
    if rps.get("d") and rps.get("b"):  # the ceiling: a relay with no HTTP logic at all
        report["relay_ratio_vs_nginx"] = round(rps["d"] / rps["b"], 3)
    if rps.get("e") and rps.get("b"):  # issue 4: the same with retries, pools, outliers on
        report["throughput_ratio_vs_nginx_resilience"] = round(rps["e"] / rps["b"], 3)
    report["rps_rounds"] = {name: [round(r) for r in t.rps] for name, t in targets.items()}
    for name in ("a", "b", "c"):
        report[f"latency_{name}_ms"] = lat.get(name)
    report["cpu_s_per_1000_req_saturated"] = {
        name: round(t.wrk_cpu_s / t.wrk_requests * 1000, 4) if t.wrk_requests else None
        for name, t in targets.items()
    }
    report["wrk_bad_responses"] = {name: t.wrk_bad for name, t in targets.items()}
    report["rss_mb_nginx_proxy"] = round(b.rss_mb, 1) if b is not None else None
    report |= observed  # what (c) counted in its metrics and access log
    report["remora_error"] = error
    report["machine"] = machine()
    report["settings"] = {
        "rounds": plan.rounds, "wrk_seconds": plan.wrk_seconds, "wrk": f"-t1 -c{WRK_CONNECTIONS}",
        "latency_rate": RATE, "latency_connections": LATENCY_CONNECTIONS,
        "latency_seconds": plan.latency_seconds * plan.latency_rounds, "path": PATH,
        "host": _remora.HOST, "body_bytes": len(_nginx.BODY),
    }  # fmt: skip
    return report


def print_table(report: dict[str, Any]) -> None:
    table = Table(title="Remora proxy vs nginx (127.0.0.1, 1 KiB responses)")
    for column in ("figure", "value", "target", "anchor"):
        table.add_column(column)
    for key in ("throughput_ratio_vs_nginx", "added_latency_p50_ms", "added_latency_p90_ms",
                "added_latency_p99_ms", "rss_mb", "cpu_s_per_1000_req"):  # fmt: skip
        value = report[key]
        target = TARGETS.get(key)
        mark = ""
        if target is not None and value is not None:
            ok = value >= target[1] if target[0] == ">=" else value <= target[1]
            mark = " [green]✓[/]" if ok else " [red]✗[/]"
        shown = "—" if value is None else f"{value}{mark}"
        goal = f"{target[0]} {target[1]}" if target else ""
        table.add_row(key, shown, goal, ANCHORS.get(key, ""))
    for name, label in (("a", "nginx direct"), ("b", "nginx proxy"), ("c", "remora proxy"),
                        ("d", "uvloop relay (no HTTP)"), ("e", "remora + resilience")):
        rps = report.get(f"rps_{name}")
        lat = report.get(f"latency_{name}_ms") or {}
        detail = " / ".join(f"{lat[k]:.3f}" for k in ("p50", "p90", "p99") if k in lat)
        shown = "—" if rps is None else f"{rps:,.0f} req/s"
        table.add_row(f"({name}) {label}", shown, f"p50/p90/p99 {detail} ms" if detail else "")
    if "remora_metrics_requests" in report:
        table.add_row(
            "(c) telemetry",
            f"{report['remora_metrics_requests']:,} requests counted",
            f"{report.get('remora_access_log_lines', 0):,} access log lines",
        )
    console = Console(width=max(Console().width, 120))
    console.print(table)
    m = report["machine"]
    console.print(
        f"{m['cpu']}, {m['cpus']} CPUs, {m['memory_gb']} GB, Linux {m['kernel']}, "
        f"Python {m['python']}, nginx {m['nginx']}, load {m['loadavg_1m_at_start']}"
    )
    if report["remora_error"]:
        console.print(f"[red]remora proxy did not run:[/] {report['remora_error']}")


def run(plan: Plan) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="remora-bench-") as tmp:
        workdir = Path(tmp)
        targets: dict[str, Target] = {}
        error: str | None = None
        proxy: _remora.RemoraProxy | None = None
        observed: dict[str, int] = {}
        try:
            port_a, port_b = free_port(), free_port()
            targets["a"] = Target("a", port_a, _nginx.start_upstream(workdir / "a", port_a))
            targets["b"] = Target(
                "b", port_b, _nginx.start_reverse_proxy(workdir / "b", port_b, upstream=port_a)
            )
            try:
                proxy = _remora.start(workdir / "c", upstream=port_a)
                targets["c"] = Target("c", proxy.port, proxy.service)
            except (RuntimeError, OSError) as exc:
                error = str(exc)
                log(f"remora proxy: {error}")
            port_d = free_port()
            targets["d"] = Target("d", port_d, _relay.start(workdir / "d", port_d, upstream=port_a))
            if proxy is not None:
                resilient = _remora.start(workdir / "e", upstream=port_a, resilience=True)
                targets["e"] = Target("e", resilient.port, resilient.service)
            for target in targets.values():
                check_answers(target)
            started = time.monotonic()
            log(f"throughput: wrk -t1 -c{WRK_CONNECTIONS}, {plan.rounds} rounds")
            measure_throughput(list(targets.values()), plan)
            log(f"latency: {RATE:.0f} req/s over {LATENCY_CONNECTIONS} connections")
            measure_latency([t for name, t in targets.items() if name in "abc"], plan)
            log(f"measured in {time.monotonic() - started:.0f} s")
            if proxy is not None:
                observed["remora_metrics_requests"] = proxy.requests_counted()
        finally:
            for target in reversed(list(targets.values())):
                target.service.stop()
        if proxy is not None:
            observed["remora_access_log_lines"] = proxy.access_log_lines()
        return build_report(targets, plan=plan, error=error, observed=observed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run (< 60 s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    report = run(QUICK if args.quick else FULL)
    print_table(report)
    if args.json:
        print(json.dumps(report))
    return 1 if report["remora_error"] else 0


if __name__ == "__main__":
    sys.exit(main())
