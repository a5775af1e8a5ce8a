"""Benchmark: `remora proxy` under hostile clients (issue 21), beside nginx as a reverse proxy in
the same run, each in front of an nginx upstream of its own (bench/_nginx.py's), on 127.0.0.1.

The proxy is bench/_remora.py's sidecar (fed by a control plane; VirtualService and subsets to
the upstream), with its defaults: --headers-timeout 10 s, --max-connections half its open-files
limit, which it raises to the hard limit. nginx is bench/_nginx.py's reverse proxy (1 worker,
worker_connections 4096, client_header_timeout 60 s by default).

1. Aborted uploads. Target: "after 10,000 aborted uploads the proxy's open file descriptors are
   back to their baseline within 5 s". Each client sends a POST head with Content-Length
   1,000,000 (under the upstream's client_max_body_size, which answers it 200 at once and waits
   for the body) and 16 body bytes, then goes: FIN or RST (SO_LINGER 0), at once or once the
   answer starts (at most 100 ms), in turn; 50 at a time (bench/_aborts.py). Measured from
   /proc: the front's descriptors (baseline, peak polled every 50 ms, when the last client
   went) and the seconds until they are back within RECOVERED_SLACK of the baseline (polled
   every 50 ms, at most recover_wait_s); its ESTABLISHED connections to the upstream port and
   the upstream's own (ESTABLISHED on its port); CLOSE_WAIT on the front's listener; for
   remora, the seconds until its admin port shows no request active (/clusters rq_active) and
   no client connection (envoy_listener_downstream_cx_active); the uploads that reached the
   upstream (its access log: nginx buffers a body before it connects upstream, so none of its
   aborts get there) and those aborted after the answer had started.
2. Slowloris. Target: "1,000 slowloris connections open while normal traffic runs at 1,000
   req/s: its p99 stays within 2x of a quiet run and nothing fails". The normal traffic is
   bench/_latency.py's (bench/proxy.py's latency load: 1,000 req/s open loop over 4 keep-alive
   connections, latency from each request's due time). A quiet run, then the same with 1,000
   slowloris connections held by a process of their own (bench/_slowloris.py: a partial head,
   a header line every 3 s, reconnect at once when closed). The attacked window starts
   `lead_s` after the 1,000 are open (2 s; 5 s with --quick, whose window is shorter), so that
   it holds the first wave of remora's headers timeout, 10 to 12.5 s after they opened (nginx's
   60 s falls outside). Rounds (3; 1 with --quick) alternate the fronts. Reported: p50/p99/max
   and errors of both runs; p99(attacked) / p99(quiet) against 2 as the median of the rounds'
   ratios (a round disturbed by the machine's other work weighs one round), also pooled over
   the rounds and without the requests answered in a wave (the attacker's 0.5 s samples in
   which the front closed connections, and 0.5 s after: the reconnections); the slowloris
   connections open during the window (min / median / max of those samples), how many the
   front closed and how long it had held them; the attacker's CPU time (it shares the cores
   with the load generator and the front), the other processes' CPU time in each run (the
   machine's other work, which moves p99 more than anything measured here) and the late sends.
3. The hostile battery: tests/e2e/test_proxy_smuggling.py's attempts (CL.TE, TE.CL, TE.TE,
   duplicate Content-Length, chunk-size and line-ending tricks), each hiding `GET /smuggled`,
   against each front in front of that test's recording upstream (bench/_battery.py): how many
   got /smuggled to the upstream, and how many of those the front did not answer as a request
   of its own (a desync). remora runs with ISTIO_META_HTTP10=1, as the test does.

    .venv/bin/python bench/hostile.py [--quick] [--json]

The full run takes about 4 minutes, --quick (2,000 aborts, 8 s windows, one round) under 2;
--json prints one JSON object as the last stdout line. The exit status is 1 when a front could
not be measured, not when a target is missed (the table and the JSON say so).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.*

from tests.e2e.meshkit import recording_upstream

import _nginx
import _remora
import _slowloris
import remora
from _aborts import Recovery, abort_uploads
from _battery import Outcome, run_attempts
from _hostile_table import print_table
from _latency import RATE, LatencyRun, constant_load, percentile
from _procs import CLOCK_TICKS, Service, family, usage
from _sockets import open_fds
from remora.proxy.process import connection_limit  # the proxy's default --max-connections
from remora.runner.ports import free_port

PATH = "/products/42"
UPLOAD_PATH = "/upload"
RECOVER_TARGET_S = 5.0
P99_RATIO_TARGET = 2.0
RECOVERED_SLACK = 2  # descriptors above the baseline still counted as back (the e2e test's)
SLOWLORIS_INTERVAL_S = 3.0
ATTACK_LEAD_S = 2.0


@dataclass(frozen=True)
class Plan:
    aborts: int
    concurrency: int
    recover_wait_s: float
    slowloris: int
    rounds: int
    window_s: float  # each quiet and attacked latency run
    warmup_s: float
    lead_s: float  # slowloris all open → the attacked window starts


QUICK = Plan(aborts=2000, concurrency=50, recover_wait_s=15, slowloris=1000, rounds=1,
             window_s=8, warmup_s=1, lead_s=5)  # fmt: skip
FULL = Plan(aborts=10_000, concurrency=50, recover_wait_s=30, slowloris=1000, rounds=3,
            window_s=15, warmup_s=2, lead_s=ATTACK_LEAD_S)  # fmt: skip


@dataclass
class Window:
    """One attacked window's view of the slowloris connections and of the front."""

    open_min: int
    open_median: float
    open_max: int
    closed: int  # by the front, during the window
    answered: int  # of those, after sending something first (remora: a 408)
    connects: int
    connect_errors: int
    front_fds: int
    attacker_cpu_s: float  # the slowloris process's CPU time in the window (it shares the cores)
    quiet_p99_ms: float  # this round's quiet run, for the ratio round by round
    attacked_p99_ms: float
    wave_s: float = 0.0  # time spans in which the front closed slowloris connections (and after)
    wave_requests: int = 0  # normal requests answered in them
    wave_max_ms: float | None = None
    outside_wave_p99_ms: float | None = None  # the attacked run without those requests
    others_cpu_s: tuple[float, float] = (0.0, 0.0)  # other work on the machine: quiet, attacked
    front_cx_active: int | None = None  # remora's envoy_listener_downstream_cx_active
    front_cx_overflow: int | None = None


@dataclass
class Front:
    name: str
    port: int
    service: Service
    upstream: Service  # nginx answering the 1 KiB body, this front's own
    upstream_port: int
    admin_port: int | None = None  # remora's
    quiet: LatencyRun = field(default_factory=LatencyRun)
    attacked: LatencyRun = field(default_factory=LatencyRun)
    quiet_cpu_s: float = 0.0
    attacked_cpu_s: float = 0.0
    windows: list[Window] = field(default_factory=list)
    held_median_s: float | None = None  # how long the front held the slowloris it closed
    recovery: Recovery | None = None
    uploads_reached: int = 0
    battery: dict[str, Outcome] = field(default_factory=dict)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def get(port: int, path: str, *, host: str = _remora.HOST) -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return bytes(answer.read())


def activity(admin_port: int) -> dict[str, int]:
    """remora's own view: requests and connections active to the upstreams (/clusters), client
    connections open and refused (/stats/prometheus)."""
    clusters = json.loads(get(admin_port, "/clusters?format=json"))
    hosts = [host for row in clusters["cluster_statuses"] for host in row["hosts"]]
    found = {"rq_active": sum(int(h.get("rq_active", 0)) for h in hosts),
             "upstream_cx_active": sum(int(h.get("cx_active", 0)) for h in hosts),
             "downstream_cx_active": 0, "downstream_cx_overflow": 0}  # fmt: skip
    names = {"envoy_listener_downstream_cx_active": "downstream_cx_active",
             "envoy_listener_downstream_global_cx_overflow": "downstream_cx_overflow"}
    for line in get(admin_port, "/stats/prometheus").decode().splitlines():
        name = line.split("{", 1)[0]
        if name in names:
            found[names[name]] += int(float(line.rsplit(" ", 1)[1]))
    return found


def quiet_remora(admin_port: int) -> bool:
    now = activity(admin_port)
    return now["rq_active"] == 0 and now["downstream_cx_active"] == 0


# 1. aborted uploads --------------------------------------------------------------------------
def measure_aborts(front: Front, plan: Plan) -> None:
    get(front.port, PATH)  # a pooled upstream connection, as a serving proxy has
    time.sleep(0.5)
    admin = front.admin_port
    front.recovery = abort_uploads(
        front.service.pid, port=front.port, upstream=front.upstream_port,
        upstream_pid=front.upstream.pid, path=UPLOAD_PATH, host=_remora.HOST, count=plan.aborts,
        concurrency=plan.concurrency, slack=RECOVERED_SLACK, wait_s=plan.recover_wait_s,
        quiet=(lambda: quiet_remora(admin)) if admin is not None else None,
    )  # fmt: skip
    r = front.recovery
    assert r.baseline is not None and r.end is not None and r.final is not None
    log(f"  {front.name}: {r.aborts:,} aborts in {r.seconds:.1f} s; fds {r.baseline.fds} → "
        f"peak {r.peak_fds}, {r.end.fds} at the end, {r.final.fds} after; back in "
        f"{'never' if r.recover_s is None else f'{r.recover_s:.2f} s'}")  # fmt: skip


# 2. slowloris --------------------------------------------------------------------------------
def cpu_by_process() -> dict[tuple[int, int], float]:
    """(pid, start time) → utime + stime of every process now alive."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            fields = text[text.rindex(")") + 2 :].split()
            key = (int(stat.parent.name), int(fields[19]))  # field 22, starttime
            found[key] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return found


def others_cpu_s(before: dict[tuple[int, int], float], after: dict[tuple[int, int], float],
                 ours: set[int]) -> float:  # fmt: skip
    """CPU time the processes not in `ours` spent between two cpu_by_process() (those that
    exited in between are not counted: a lower bound). Per task, as precise as `usage`;
    /proc/stat's per-CPU ticks miss the short bursts a proxy and a load generator run in."""
    return sum(cpu - before.get(key, 0.0) for key, cpu in after.items() if key[0] not in ours)


@dataclass(frozen=True)
class Measured:
    run: LatencyRun
    front_cpu_s: float
    others_cpu_s: float  # other processes' (alive at both ends): the machine's other work


def _latency_run(front: Front, plan: Plan) -> Measured:
    constant_load(front.port, plan.warmup_s, host=_remora.HOST, path=PATH)  # fresh connections
    front_cpu, before = usage(front.service.pid).cpu_s, cpu_by_process()
    run = constant_load(front.port, plan.window_s, host=_remora.HOST, path=PATH)
    after = cpu_by_process()
    ours = set(family(os.getpid()))  # the load generator, the fronts, the attacker
    return Measured(run, usage(front.service.pid).cpu_s - front_cpu,
                    round(others_cpu_s(before, after, ours), 2))  # fmt: skip


def _merge(into: LatencyRun, run: LatencyRun) -> None:
    into.latencies_ms.extend(run.latencies_ms)
    into.answered_at.extend(run.answered_at)
    into.errors += run.errors
    into.late_sends += run.late_sends
    into.failures.update(run.failures)


def wave_spans(samples: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """Where the front closed slowloris connections, from the attacker's samples: for each
    sample that counted closures, from the sample before it to REPORT_EVERY after it (the
    reconnections), in CLOCK_MONOTONIC seconds."""
    return [(before["monotonic"], after["monotonic"] + _slowloris.REPORT_EVERY)
            for before, after in itertools.pairwise(samples)
            if after["closed"] > before["closed"]]  # fmt: skip


def split_by_wave(run: LatencyRun, spans: list[tuple[float, float]]
                  ) -> tuple[list[float], list[float]]:  # fmt: skip
    """The latencies of `run` answered inside `spans`, and the others."""
    inside: list[float] = []
    outside: list[float] = []
    for latency, at in zip(run.latencies_ms, run.answered_at, strict=True):
        (inside if any(start <= at <= end for start, end in spans) else outside).append(latency)
    return inside, outside


def _p99(run: LatencyRun) -> float:
    return round(percentile(sorted(run.latencies_ms), 99), 4)


def _summary(run: LatencyRun) -> str:
    p = sorted(run.latencies_ms)
    return (f"p50 {percentile(p, 50):.3f} p99 {percentile(p, 99):.3f} ms, "
            f"{run.errors} errors")  # fmt: skip


def measure_slowloris(front: Front, plan: Plan, workdir: Path, round_no: int) -> None:
    measured = _latency_run(front, plan)
    quiet = measured.run
    _merge(front.quiet, quiet)
    front.quiet_cpu_s += measured.front_cpu_s
    log(f"  {front.name} quiet: {_summary(quiet)}")
    baseline = open_fds(front.service.pid)
    attacker = _slowloris.start(workdir, port=front.port, host=_remora.HOST,
                                connections=plan.slowloris, interval=SLOWLORIS_INTERVAL_S,
                                name=f"slowloris-{front.name}-{round_no}")  # fmt: skip
    try:
        attacker.wait_open(plan.slowloris, timeout=30)
        time.sleep(max(0.0, plan.lead_s - plan.warmup_s))
        first, attacker_cpu = attacker.last(), usage(attacker.pid).cpu_s
        under_attack = _latency_run(front, plan)
        attacked = under_attack.run
        last, attacker_cpu = attacker.last(), usage(attacker.pid).cpu_s - attacker_cpu
        window = [s for s in attacker.samples() if first["t"] <= s["t"] <= last["t"]]
        spans = wave_spans(window)
        inside, outside = split_by_wave(attacked, spans)
        opened = [s["open"] for s in window]
        seen = Window(open_min=min(opened), open_median=statistics.median(opened),
                      open_max=max(opened), closed=last["closed"] - first["closed"],
                      answered=last["answered"] - first["answered"],
                      connects=last["connects"] - first["connects"],
                      connect_errors=last["connect_errors"] - first["connect_errors"],
                      front_fds=open_fds(front.service.pid), attacker_cpu_s=attacker_cpu,
                      quiet_p99_ms=_p99(quiet), attacked_p99_ms=_p99(attacked),
                      wave_s=round(sum(end - start for start, end in spans), 2),
                      wave_requests=len(inside), wave_max_ms=max(inside, default=None),
                      outside_wave_p99_ms=round(percentile(sorted(outside), 99), 4),
                      others_cpu_s=(measured.others_cpu_s, under_attack.others_cpu_s))  # fmt: skip
        if front.admin_port is not None:
            now = activity(front.admin_port)
            seen.front_cx_active = now["downstream_cx_active"]
            seen.front_cx_overflow = now["downstream_cx_overflow"]
    finally:
        attacker.stop()
    front.held_median_s = attacker.last().get("held_median_s")
    _merge(front.attacked, attacked)
    front.attacked_cpu_s += under_attack.front_cpu_s
    front.windows.append(seen)
    log(f"  {front.name} with {plan.slowloris:,} slowloris: {_summary(attacked)}; open "
        f"{seen.open_min}–{seen.open_max}, {seen.closed} closed by {front.name} in the window")
    deadline = time.monotonic() + 15  # the attackers gone: their sockets released
    while open_fds(front.service.pid) > baseline + RECOVERED_SLACK and time.monotonic() < deadline:
        time.sleep(0.1)


# 3. the battery ------------------------------------------------------------------------------
def _battery_front(name: str, workdir: Path, upstream: int) -> tuple[int, Service]:
    """Another front of `name` in front of the recording upstream: its port, its process."""
    if name == "nginx":
        port = free_port()
        return port, _nginx.start_reverse_proxy(workdir / "battery-nginx", port, upstream=upstream)
    os.environ["ISTIO_META_HTTP10"] = "1"  # as the e2e test runs its proxy
    try:
        proxy = _remora.start(workdir / "battery-remora", upstream=upstream)
    finally:
        del os.environ["ISTIO_META_HTTP10"]
    return proxy.port, proxy.service


def run_battery(workdir: Path, fronts: dict[str, Front]) -> None:
    with recording_upstream() as upstream:
        for name, front in fronts.items():
            port, service = _battery_front(name, workdir, upstream.port)
            try:
                front.battery = run_attempts(upstream, port, host=_remora.HOST)
            finally:
                service.stop()
            outcomes = front.battery.values()
            log(f"  {name}: /smuggled reached the upstream in {sum(o.reached for o in outcomes)}"
                f" of {len(outcomes)} attempts, {sum(o.smuggled for o in outcomes)} desync")


# the report ----------------------------------------------------------------------------------
def latency(run: LatencyRun) -> dict[str, Any]:
    p = sorted(run.latencies_ms)
    return {"p50_ms": round(percentile(p, 50), 4), "p99_ms": round(percentile(p, 99), 4),
            "max_ms": round(p[-1], 4) if p else None, "count": len(p), "errors": run.errors,
            "failures": dict(run.failures), "late_sends": run.late_sends}  # fmt: skip


def limits(front: Front, workdir: Path) -> dict[str, Any]:
    """The open-files limit the front runs with, and its connection limit."""
    pids = family(front.service.pid)
    text = Path(f"/proc/{pids[-1]}/limits").read_text()  # nginx: its worker
    files = int(next(line for line in text.splitlines()
                     if line.startswith("Max open files")).split()[3])  # fmt: skip
    if front.name == "remora":
        return {"open_files": files, "max_connections": connection_limit(files)}
    conf = (workdir / "front" / "nginx.conf").read_text()
    per_worker = int(conf.split("worker_connections", 1)[1].split(";")[0])
    return {"open_files": files, "worker_connections": per_worker}


def front_report(front: Front, limits_: dict[str, Any]) -> dict[str, Any]:
    r = front.recovery
    aborts: dict[str, Any] | None = None
    if r is not None:
        aborts = asdict(r) | {"uploads_reached_upstream": front.uploads_reached,
                              "recover_ok": r.recover_s is not None
                              and r.recover_s <= RECOVER_TARGET_S}  # fmt: skip
        aborts["kinds"], aborts["client_errors"] = dict(r.kinds), dict(r.client_errors)
    quiet, attacked = latency(front.quiet), latency(front.attacked)
    pooled = (round(attacked["p99_ms"] / quiet["p99_ms"], 3)
              if front.quiet.latencies_ms and front.attacked.latencies_ms else None)  # fmt: skip
    ratio = _median_ratio(front.windows, "attacked_p99_ms")
    count = len(front.battery)
    return {
        "limits": limits_,
        "aborted_uploads": aborts,
        "slowloris": {
            "quiet": quiet, "attacked": attacked,
            "p99_ratio": ratio,  # the median of the rounds' ratios: the figure judged
            "p99_ratio_pooled": pooled,
            "p99_ratio_outside_wave": _median_ratio(front.windows, "outside_wave_p99_ms"),
            "p99_ok": ratio is not None and ratio <= P99_RATIO_TARGET,
            "errors_ok": front.attacked.errors == 0 and bool(front.attacked.latencies_ms),
            "windows": [asdict(w) for w in front.windows],
            "held_median_s": front.held_median_s,
            "cpu_s_per_1000_quiet": _per_1000(front.quiet_cpu_s, quiet["count"]),
            "cpu_s_per_1000_attacked": _per_1000(front.attacked_cpu_s, attacked["count"]),
        },
        "battery": {
            "attempts": count,
            "reached": sorted(n for n, o in front.battery.items() if o.reached),
            "smuggled": sorted(n for n, o in front.battery.items() if o.smuggled),
            "statuses": {n: o.status for n, o in front.battery.items()},
        } if count else None,
    }  # fmt: skip


def _median_ratio(windows: list[Window], attacked: str) -> float | None:
    """The median over rounds of p99(`attacked` figure) / p99(quiet): a round disturbed by the
    machine's other work (the quiet run or the attacked one) weighs one round only."""
    ratios = [getattr(w, attacked) / w.quiet_p99_ms for w in windows
              if getattr(w, attacked) is not None and w.quiet_p99_ms]  # fmt: skip
    return round(statistics.median(ratios), 3) if ratios else None


def _per_1000(cpu_s: float, requests: int) -> float | None:
    return round(cpu_s / requests * 1000, 4) if requests else None


def source() -> dict[str, Any]:
    """Which remora was measured: its path, and the commit and local changes of its checkout."""
    root = Path(remora.__file__).resolve().parents[2]
    found: dict[str, Any] = {"remora_path": str(root)}
    git = ["git", "-C", str(root)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False)  # fmt: skip
    if head.returncode == 0:
        found["commit"] = head.stdout.strip()
        changed = subprocess.run([*git, "status", "--porcelain", "--", "src"],
                                 capture_output=True, text=True, check=False).stdout  # fmt: skip
        found["src_files_changed"] = len(changed.splitlines())
    return found


def machine() -> dict[str, Any]:
    nginx = subprocess.run([_nginx.NGINX, "-v"], capture_output=True, text=True, check=False)
    return {"cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(),
            "nginx": nginx.stderr.strip().removeprefix("nginx version: "),
            "loadavg_1m_at_start": round(os.getloadavg()[0], 2)}  # fmt: skip


# the run -------------------------------------------------------------------------------------
def uploads_reached(access_log: Path) -> int:
    with access_log.open(errors="replace") as lines:
        return sum(f"POST {UPLOAD_PATH} " in line for line in lines)


def start_front(name: str, workdir: Path) -> Front:
    """`name` (remora or nginx) in front of an nginx upstream of its own, both started."""
    upstream_port = free_port()
    upstream = _nginx.start_upstream(workdir / "upstream", upstream_port)
    try:
        if name == "remora":
            proxy = _remora.start(workdir / "front", upstream=upstream_port)
            front = Front(name, proxy.port, proxy.service, upstream, upstream_port,
                          proxy.admin_port)  # fmt: skip
        else:
            port = free_port()
            front = Front(name, port, _nginx.start_reverse_proxy(
                workdir / "front", port, upstream=upstream_port), upstream, upstream_port)
        if get(front.port, PATH) != _nginx.BODY.encode():
            front.service.stop()
            raise RuntimeError(f"{name} did not answer the 1 KiB body")
    except BaseException:
        upstream.stop()
        raise
    return front


def run(plan: Plan, *, quick: bool) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": machine(), "source": source(), "errors": {}}
    fronts: dict[str, Front] = {}
    with tempfile.TemporaryDirectory(prefix="remora-hostile-") as tmp:
        workdir = Path(tmp)
        try:
            for name in ("remora", "nginx"):
                try:
                    fronts[name] = start_front(name, workdir / name)
                except (RuntimeError, OSError) as exc:
                    report["errors"][name] = str(exc)
                    log(f"{name}: {exc}")
            found = {name: limits(front, workdir / name) for name, front in fronts.items()}
            log(f"1. {plan.aborts:,} aborted uploads, {plan.concurrency} at a time")
            for front in fronts.values():
                measure_aborts(front, plan)
            log(f"2. {RATE:.0f} req/s quiet, then with {plan.slowloris:,} slowloris connections")
            for round_no in range(plan.rounds):
                for front in fronts.values():
                    measure_slowloris(front, plan, workdir / "slowloris", round_no)
            log("3. the hostile battery")
            run_battery(workdir, fronts)
        finally:
            for front in fronts.values():
                front.service.stop()
                front.upstream.stop()
        for name, front in fronts.items():
            front.uploads_reached = uploads_reached(workdir / name / "upstream" / "access.log")
    report["fronts"] = {name: front_report(front, found[name])
                        for name, front in fronts.items()}  # fmt: skip
    report["settings"] = asdict(plan) | {
        "quick": quick, "rate": RATE, "path": PATH, "slowloris_interval_s": SLOWLORIS_INTERVAL_S,
        "recovered_slack_fds": RECOVERED_SLACK, "recover_target_s": RECOVER_TARGET_S,
        "p99_ratio_target": P99_RATIO_TARGET,
    }  # fmt: skip
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run (under 2 min)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    report = run(QUICK if args.quick else FULL, quick=args.quick)
    print_table(report)
    if args.json:
        print(json.dumps(report))
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
