"""Benchmark: the Remora sidecar proxy against nginx, on 127.0.0.1, in one run.

Five targets answering with the same fixed 1 KiB body:
  (a) nginx returning the body itself (the upstream of b and c),
  (b) nginx as a reverse proxy in front of (a): 1 worker, upstream keepalive,
  (c) `remora proxy` (sidecar, 1 process) in front of (a) with a VirtualService of three match
      rules and a 90/10 subset split, metrics on, JSON access log to a file,
  (d) a uvloop byte relay with no HTTP logic (bench/_relay.py): the ceiling of any Python
      proxy on this event loop and machine (throughput only; relay_ratio_vs_nginx),
  (e) (c) with connectionPool, outlierDetection, a route timeout and retries configured
      (throughput only; throughput_ratio_vs_nginx_resilience).
Two more for the heavier chain, on a 4 KiB JSON answer of (a) (JSON_PATH), requested with
`Accept-Encoding: gzip` and the header the chain's route matches:
  (f) (c) plus a VirtualService rule matched by that header, with retries and
      headers.response.set, and envoy.filters.http.compressor (gzip library, Envoy's defaults)
      inserted by an EnvoyFilter before the router on SIDECAR_OUTBOUND,
  (g) (b) with `gzip on` for application/json at the same level (6: Envoy's
      DEFAULT_COMPRESSION is zlib's default) and min length (100), and add_header;
  (a') (a) on the JSON path, the latency baseline of (f) (`a_json` in the JSON).
Both (f) and (g) are checked to compress before they are measured (Content-Encoding: gzip, the
body gunzips to the JSON, (a) itself answers uncompressed) and after (wrk's bytes read per
response well under 4 KiB); a row that did not compress is reported as such, without a ratio.
Throughput: wrk (1 thread, 32 connections) at saturation, a/b/c alternating for several rounds,
medians; throughput_ratio_vs_nginx = rps(c) / rps(b). Latency: a constant 1,000 req/s over 4
keep-alive connections (Istio's published setup) against a, b, c, a', f and g, open loop,
measured from each request's intended send time; added_latency_pXX = pXX(c) - pXX(a) (for the
heavier chain pXX(f) - pXX(a')). rss_mb is the proxy's largest VmRSS under that load,
cpu_s_per_1000_req its utime+stime per 1,000 of those requests. `rows` in the JSON holds one
object per chain (default_chain: c against b, heavy_chain: f against g) with the same keys.

    .venv/bin/python bench/proxy.py [--quick] [--json]

--quick takes about 90 s; --json prints one JSON object as the last stdout line.
"""

from __future__ import annotations

import argparse
import gzip
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
from _latency import LATENCY_CONNECTIONS, RATE, LatencyRun, constant_load, percentile
from _procs import Service, usage
from _wrk_gzip import run_wrk_headers
from remora.runner.ports import free_port

PATH = "/products/42"  # matches none of the three rules: every request reaches the split
WRK_CONNECTIONS = 32
QUANTILES = (50, 90, 99, 99.9)
GZIP_HEADERS = (("Accept-Encoding", "gzip"), _remora.HEAVY_HEADER)  # (a'), (f), (g)
COMPRESSED_BELOW = 0.5  # of the JSON body: most a gzipped answer with its head may read

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
    path: str = PATH
    headers: tuple[tuple[str, str], ...] = ()  # sent besides Host (and, by loadgen, User-Agent)
    rps: list[float] = field(default_factory=list)
    wrk_requests: int = 0
    wrk_bytes: float = 0.0
    wrk_cpu_s: float = 0.0
    wrk_bad: int = 0  # non-2xx answers and socket errors under wrk
    latency: LatencyRun = field(default_factory=LatencyRun)
    latency_cpu_s: float = 0.0
    rss_mb: float = 0.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def check_answers(target: Target, *, gzipped: bool = False) -> None:
    """One request by hand: the target must answer 200 with the 1 KiB body, or on the JSON path
    the JSON body: `gzipped`, with Content-Encoding gzip and the heavier chain's response
    header, in a body that gunzips to it; else uncompressed although the client takes gzip."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{target.port}{target.path}",
        headers={"Host": _remora.HOST, **dict(target.headers)},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:  # urllib does not gunzip
        body = answer.read()
        encoding = answer.headers.get("Content-Encoding")
        route = answer.headers.get(_remora.HEAVY_RESPONSE_HEADER[0])
    if answer.status != 200:
        raise RuntimeError(f"{target.name}: status {answer.status}, {len(body)} body bytes")
    if target.path == PATH:
        if body != _nginx.BODY.encode():
            raise RuntimeError(f"{target.name}: {len(body)} body bytes, not the 1 KiB body")
        return
    if not gzipped:
        if encoding is not None or body != _nginx.JSON_BODY.encode():
            raise RuntimeError(f"{target.name}: Content-Encoding {encoding}, {len(body)} bytes "
                               "instead of the uncompressed JSON body")  # fmt: skip
        return
    if encoding != "gzip":
        raise RuntimeError(f"{target.name}: Content-Encoding {encoding!r}, not gzip, "
                           f"{len(body)} body bytes: the chain did not compress")  # fmt: skip
    if gzip.decompress(body) != _nginx.JSON_BODY.encode():
        raise RuntimeError(f"{target.name}: the gzipped body is not the JSON body")
    if route != _remora.HEAVY_RESPONSE_HEADER[1]:
        raise RuntimeError(f"{target.name}: {_remora.HEAVY_RESPONSE_HEADER[0]}: {route!r}, "
                           "the header-matched route's response header is missing")  # fmt: skip
    log(f"  {target.name}: Content-Encoding gzip, {len(body)} body bytes for "
        f"{len(_nginx.JSON_BODY)}, {_remora.HEAVY_RESPONSE_HEADER[0]}: {route}")  # fmt: skip


def measure_throughput(targets: list[Target], plan: Plan) -> None:
    for target in targets:  # warm-up: connection pools, caches
        run_wrk_headers(target.port, host=_remora.HOST, path=target.path, headers=target.headers,
                        connections=WRK_CONNECTIONS, seconds=plan.warmup_seconds)  # fmt: skip
    for round_no in range(plan.rounds):
        for target in targets:
            before = usage(target.service.pid).cpu_s
            result = run_wrk_headers(target.port, host=_remora.HOST, path=target.path,
                                     headers=target.headers, connections=WRK_CONNECTIONS,
                                     seconds=plan.wrk_seconds)  # fmt: skip
            target.wrk_cpu_s += usage(target.service.pid).cpu_s - before
            target.wrk_requests += result.requests
            target.wrk_bytes += result.bytes_read
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


def _constant(target: Target, seconds: float, *,
              tick: Callable[[], None] = lambda: None) -> LatencyRun:
    """RATE requests/s to `target` for `seconds` (_latency.constant_load); `tick` runs about
    every 0.1 s between answers."""
    return constant_load(target.port, seconds, host=_remora.HOST, path=target.path,
                         headers=target.headers, tick=tick)  # fmt: skip


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


def _per_1000(cpu_s: float, requests: int) -> float | None:
    return round(cpu_s / requests * 1000, 4) if requests else None


def chain_row(
    targets: dict[str, Target], *, remora: str, nginx: str, baseline: str, description: str
) -> dict[str, Any]:
    """One row of `rows`: Remora target `remora` against nginx target `nginx`, same figures
    for both sides; the added latency is against `baseline` (nginx answering directly)."""
    r, n, base = targets.get(remora), targets.get(nginx), targets.get(baseline)
    row: dict[str, Any] = {"description": description, "remora_target": remora,
                           "nginx_target": nginx}  # fmt: skip
    rps_r = statistics.median(r.rps) if r is not None and r.rps else None
    rps_n = statistics.median(n.rps) if n is not None and n.rps else None
    row["ratio"] = round(rps_r / rps_n, 3) if rps_r and rps_n else None
    row["remora_rps"] = round(rps_r, 1) if rps_r else None
    row["nginx_rps"] = round(rps_n, 1) if rps_n else None
    for prefix, t in (("", r), ("nginx_", n)):
        measured = t is not None and bool(t.latency.latencies_ms)
        row[f"{prefix}rss_mb"] = round(t.rss_mb, 1) if t is not None and measured else None
        row[f"{prefix}cpu_s_per_1000"] = (
            _per_1000(t.latency_cpu_s, len(t.latency.latencies_ms)) if t is not None else None
        )
    for q in (50, 90, 99):
        row[f"added_latency_p{q}_ms"] = None
        if r is not None and base is not None and r.latency.latencies_ms \
                and base.latency.latencies_ms:  # fmt: skip
            mine, theirs = latency_summary(r), latency_summary(base)
            row[f"added_latency_p{q}_ms"] = round(mine[f"p{q}"] - theirs[f"p{q}"], 4)
    for prefix, t in (("", r), ("nginx_", n)):
        row[f"{prefix}cpu_s_per_1000_saturated"] = (
            _per_1000(t.wrk_cpu_s, t.wrk_requests) if t is not None else None
        )
        row[f"{prefix}bytes_per_response"] = (
            round(t.wrk_bytes / t.wrk_requests) if t is not None and t.wrk_requests else None
        )
    return row


def check_compressed(row: dict[str, Any]) -> str | None:
    """wrk's bytes read per response, both sides: why the gzip row did not compress, or None."""
    limit = COMPRESSED_BELOW * len(_nginx.JSON_BODY)
    for side in ("remora", "nginx"):
        read = row[f"{'' if side == 'remora' else 'nginx_'}bytes_per_response"]
        if read is not None and read >= limit:
            return (f"{side} read {read} bytes per response under wrk, not below {limit:.0f}: "
                    "the answers were not compressed")  # fmt: skip
    return None


def build_report(
    targets: dict[str, Target], *, plan: Plan, error: str | None, observed: dict[str, int],
    heavy_error: str | None = None,
) -> dict[str, Any]:  # fmt: skip
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
    for name in ("a", "b", "c", "d", "e", "f", "g"):
        report[f"rps_{name}"] = round(rps[name], 1) if rps.get(name) else None
    if rps.get("d") and rps.get("b"):  # the ceiling: a relay with no HTTP logic at all
        report["relay_ratio_vs_nginx"] = round(rps["d"] / rps["b"], 3)
    if rps.get("e") and rps.get("b"):  # issue 4: the same with retries, pools, outliers on
        report["throughput_ratio_vs_nginx_resilience"] = round(rps["e"] / rps["b"], 3)
    default = chain_row(targets, remora="c", nginx="b", baseline="a",
                        description="(c) against (b): stats + access log, 1 KiB body")  # fmt: skip
    heavy = chain_row(
        targets, remora="f", nginx="g", baseline="a_json",
        description="(f) against (g): (c) + header match, retries, headers.response.set, "
        "gzip of a 4 KiB JSON body (Accept-Encoding: gzip)",
    )  # fmt: skip
    heavy_error = heavy_error or (check_compressed(heavy) if "f" in targets else None)
    heavy["compressed"] = heavy_error is None and heavy["remora_rps"] is not None
    if not heavy["compressed"]:
        heavy["ratio"] = None  # an uncompressed measurement is not the row's figure
    heavy |= {"body_bytes": len(_nginx.JSON_BODY), "gzip_level": _nginx.GZIP_LEVEL,
              "gzip_min_length": _nginx.GZIP_MIN_LENGTH}  # fmt: skip
    report["throughput_ratio_vs_nginx_heavy_chain"] = heavy["ratio"]
    report["rows"] = {"default_chain": default, "heavy_chain": heavy}
    report["heavy_chain_error"] = heavy_error
    report["rps_rounds"] = {name: [round(r) for r in t.rps] for name, t in targets.items()}
    for name in ("a", "b", "c", "a_json", "f", "g"):
        report[f"latency_{name}_ms"] = lat.get(name)
    report["cpu_s_per_1000_req_saturated"] = {
        name: _per_1000(t.wrk_cpu_s, t.wrk_requests) for name, t in targets.items()
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
        "host": _remora.HOST, "body_bytes": len(_nginx.BODY), "json_path": _nginx.JSON_PATH,
        "json_body_bytes": len(_nginx.JSON_BODY),
        "heavy_chain_headers": [f"{name}: {value}" for name, value in GZIP_HEADERS],
    }  # fmt: skip
    return report


def print_table(report: dict[str, Any]) -> None:
    table = Table(title="Remora proxy vs nginx (127.0.0.1; 1 KiB answers, heavy chain: 4 KiB "
                        "JSON, gzipped)")  # fmt: skip
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
    heavy = report["rows"]["heavy_chain"]
    for key, label in (("ratio", "throughput ratio (f/g)"),
                       ("added_latency_p90_ms", "added latency p90 ms (f - a')"),
                       ("rss_mb", "rss_mb (f)"), ("cpu_s_per_1000", "cpu_s_per_1000_req (f)")):
        value = heavy[key]
        nginx = heavy.get(f"nginx_{key}")
        table.add_row(f"heavy chain: {label}", "—" if value is None else str(value),
                      "" if nginx is None else f"nginx (g): {nginx}")  # fmt: skip
    for name, label in (("a", "nginx direct"), ("b", "nginx proxy"), ("c", "remora proxy"),
                        ("d", "uvloop relay (no HTTP)"), ("e", "remora + resilience"),
                        ("a_json", "nginx direct, 4 KiB JSON"), ("f", "remora, heavy chain"),
                        ("g", "nginx proxy, gzip")):
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
    if report["heavy_chain_error"]:
        console.print(f"[red]heavy chain not measured:[/] {report['heavy_chain_error']}")
    elif heavy["compressed"]:
        console.print(f"heavy chain compressed on both sides: {heavy['bytes_per_response']} "
                      f"(remora) and {heavy['nginx_bytes_per_response']} (nginx) bytes read per "
                      f"response for a {heavy['body_bytes']}-byte body, gzip level "
                      f"{heavy['gzip_level']}")  # fmt: skip


def start_heavy_chain(workdir: Path, targets: dict[str, Target], port_a: int) -> str | None:
    """Add (a'), (f) and (g) to `targets`, check every target's answer; return why (f) is not
    measured (it did not start, or did not compress), or None."""
    heavy_error: str | None = None
    gzip_route: dict[str, Any] = {"path": _nginx.JSON_PATH, "headers": GZIP_HEADERS}
    targets["a_json"] = Target("a_json", port_a, targets["a"].service, **gzip_route)
    try:
        heavy = _remora.start(workdir / "f", upstream=port_a, heavy=True)
        targets["f"] = Target("f", heavy.port, heavy.service, **gzip_route)
    except (RuntimeError, OSError) as exc:
        heavy_error = f"the heavy-chain proxy did not start: {exc}"
        log(f"remora proxy (f): {heavy_error}")
    port_g = free_port()
    targets["g"] = Target("g", port_g, _nginx.start_reverse_proxy(
        workdir / "g", port_g, upstream=port_a, gzip=True), **gzip_route)  # fmt: skip
    for name, target in list(targets.items()):
        try:
            check_answers(target, gzipped=name in ("f", "g"))
        except RuntimeError as exc:
            if name != "f":
                raise
            heavy_error = str(exc)  # not measured, and the run says so
            log(f"remora proxy (f): {heavy_error}")
            del targets["f"]
            target.service.stop()
    return heavy_error


def run(plan: Plan) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="remora-bench-") as tmp:
        workdir = Path(tmp)
        targets: dict[str, Target] = {}
        error: str | None = None
        proxy: _remora.RemoraProxy | None = None
        heavy_error: str | None = None
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
            heavy_error = start_heavy_chain(workdir, targets, port_a)
            started = time.monotonic()
            log(f"throughput: wrk -t1 -c{WRK_CONNECTIONS}, {plan.rounds} rounds")
            measure_throughput([t for name, t in targets.items() if name != "a_json"], plan)
            log(f"latency: {RATE:.0f} req/s over {LATENCY_CONNECTIONS} connections")
            measure_latency([targets[name] for name in ("a", "b", "c", "a_json", "f", "g")
                             if name in targets], plan)  # fmt: skip
            log(f"measured in {time.monotonic() - started:.0f} s")
            if proxy is not None:
                observed["remora_metrics_requests"] = proxy.requests_counted()
        finally:
            for name, target in reversed(list(targets.items())):
                if name != "a_json":  # (a) itself, stopped as (a)
                    target.service.stop()
        if proxy is not None:
            observed["remora_access_log_lines"] = proxy.access_log_lines()
        return build_report(targets, plan=plan, error=error, observed=observed,
                            heavy_error=heavy_error)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run (~90 s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    report = run(QUICK if args.quick else FULL)
    print_table(report)
    if args.json:
        print(json.dumps(report))
    return 1 if report["remora_error"] or report["heavy_chain_error"] else 0


if __name__ == "__main__":
    sys.exit(main())
