"""Benchmark: captured traffic through a sidecar pair (`remora up --network namespace`) against
today's explicit-proxy path (`--network host`), in the same run; and `remora up` of the demo in
both modes.

    .venv/bin/python bench/capture.py [--quick] [--json]     # root: namespaces and iptables

The issue's targets: captured traffic costs ≤ 10 % more than the explicit-proxy path
(throughput_ratio = captured / explicit req/s ≥ 0.9), and `remora up` of examples/ecommerce
stays within 1 s of today's start-up time.

The mesh: Deployments `front` and `back`, each one pod of APP (a minimal asyncio server
answering BODY to every GET on a keep-alive connection: not the bottleneck), and a Service
`back` on port 9090. It is started twice, one after the other, never both at once (2 cores):

  explicit   `--network host`: wrk at front's sidecar outbound listener as an HTTP proxy,
             `wrk -H 'Host: back:9090' http://127.0.0.1:<front's outbound port>/`: the
             sidecar routes by Host to back's sidecar (inbound), which calls back's app;
  captured   `--network namespace` (CIDRs of its own, bench/up.py's NAMESPACE): wrk inside
             front's pod, `ip netns exec <front's netns> wrk http://back:9090/`; the pod's
             hosts file gives back's ClusterIP, the pod's nat rules REDIRECT the connection to
             its sidecar's 15001, the sidecar routes it by SO_ORIGINAL_DST to back's pod IP,
             where back's rules REDIRECT it to back's sidecar's 15006, which calls the app.

Same wrk for both (WRK_THREADS, WRK_CONNECTIONS, the plan's seconds, after a warm-up run on the
same connections count); before a run counts, back's sidecar must have counted as many inbound
requests (istio_requests_total, reporter destination) as wrk sent: the traffic went through
both sidecars. Pairs alternate their order (explicit first, then captured first, ...); the
ratio is taken per pair and its median reported (throughput_ratio; extra_cost = 1 - it). Beside
req/s and wrk's p50/p99: the CPU each process spent per request (utime + stime from /proc:
front's and back's sidecars, back's app, wrk) and its kernel part (stime: with no IRQ time
accounting the softirq work of loopback, veth, bridge and conntrack is charged to the process
it interrupts, mostly the sender), their sum's ratio (cpu_ratio) and difference, and the cores
the rest of the machine kept busy meanwhile (`others_cores`, from /proc/stat: load that is not
ours). On a shared machine that load moves req/s by tens of per cent, so the median of the
pairs where neither run had more than QUIET_OTHERS cores of it is reported too
(throughput_ratio_quiet).

The kernel's part alone (`kernel_path`): wrk with one connection straight at APP, no proxy,
along the four cases of bench/_netlab.py — loopback in the host's network (each hop of the
explicit path), loopback in a namespace with the pods' rules loaded (conntrack), veth + bridge
between two namespaces with no rules, and with the rules at both ends and REDIRECT (the
sidecar-to-sidecar hop) — and from them the extra CPU per request the captured path's three
hops should cost (one request in flight: an upper bound for the pairs' 16 connections, whose
wake-ups carry several packets), beside what the pairs measured.

Start-up: bench/up.py's `one_run` of examples/ecommerce in each mode, alternating; the wall
seconds of `remora up --detach` and the status's ready_after, medians, and namespace − host.
After every `remora down` the run's network prefix must be gone from `ip netns list` and
`ip link` (reported as leftovers, and the exit status is 1).

--quick: 2 pairs of 3 s runs and 1 start-up per mode (~1.5 min; the full run ~5 min);
--pairs N for more pairs; --json prints one JSON object as the last stdout line. Not root: says
so and exits 0 (`make bench` goes on). A run that fails keeps its state directories (logs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

import _netlab
import up
from _procs import CLOCK_TICKS, cpu_seconds, per_request
from _wrk import WRK, WrkLatency, wrk

WRK_THREADS = 1
WRK_CONNECTIONS = 16
SERVICE = "back:9090"
TARGET_EXTRA_COST = 0.10  # captured may cost at most 10 % of the explicit path's req/s
TARGET_STARTUP_S = 1.0  # `remora up` of the demo within 1 s of host mode
QUIET_OTHERS = 0.25  # cores of load not ours under which a run counts as quiet
BODY = b"hello from back\n" * 4  # 64 bytes

APP = f'''\
"""The benchmark's app: {len(BODY)} bytes to every GET, keep-alive, no parsing beyond the
blank line that ends a head (GETs have no body)."""
import asyncio, os

BODY = {BODY!r}
ANSWER = (b"HTTP/1.1 200 OK\\r\\ncontent-type: text/plain\\r\\ncontent-length: %d\\r\\n\\r\\n"
          % len(BODY)) + BODY


class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        self.buffer += data
        heads = self.buffer.count(b"\\r\\n\\r\\n")
        if heads:
            self.buffer = self.buffer[self.buffer.rindex(b"\\r\\n\\r\\n") + 4:]
            self.transport.write(ANSWER * heads)


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Answer, os.environ.get("BIND", "127.0.0.1"),
                                      int(os.environ["PORT"]))
    await server.serve_forever()


asyncio.run(main())
'''

_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: {name}
        image: python:3.11-slim
        command: [{python}, app.py]
        ports: [{{containerPort: {port}, name: http}}]
---
"""
MESH = "".join(_DEPLOYMENT.format(name=name, port=port, python=json.dumps(sys.executable))
               for name, port in (("front", 8080), ("back", 9090))) + """\
apiVersion: v1
kind: Service
metadata: {name: back}
spec:
  selector: {app: back}
  ports: [{name: http, port: 9090, targetPort: http}]
"""  # fmt: skip


@dataclass(frozen=True)
class Plan:
    pairs: int  # explicit + captured, alternating which goes first
    wrk_seconds: int
    warmup_seconds: int
    startups: int  # `remora up` of the demo per mode
    kernel_rounds: int  # of the kernel-path cases (bench/_netlab.py)
    kernel_seconds: int


QUICK = Plan(pairs=2, wrk_seconds=3, warmup_seconds=1, startups=1, kernel_rounds=1,
             kernel_seconds=2)
FULL = Plan(pairs=3, wrk_seconds=10, warmup_seconds=2, startups=3, kernel_rounds=3,
            kernel_seconds=5)
MODES = {"explicit": "host", "captured": "namespace"}  # the path measured: its --network


@dataclass
class Sample:
    """One measured wrk run through one mesh."""

    path: str  # explicit | captured
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad: int  # non-2xx answers and socket errors
    counted: int  # requests back's sidecar counted inbound meanwhile
    cpu_us: dict[str, float] = field(default_factory=dict)  # per request, per process
    system_us: dict[str, float] = field(default_factory=dict)  # its kernel part (stime)
    others_cores: float = 0.0  # cores busy meanwhile that none of ours used


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def inbound_requests(pod: dict[str, Any]) -> int:
    """istio_requests_total of the pod's sidecar as the destination reported them."""
    url = f"http://{pod['ip']}:{pod['ports']['admin']}/stats/prometheus"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with direct.open(url, timeout=5) as answer:
        text = answer.read().decode()
    return int(sum(sample.value for family in text_string_to_metric_families(text)
                   for sample in family.samples
                   if sample.name == "istio_requests_total"
                   and sample.labels.get("reporter") == "destination"))  # fmt: skip


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle (/proc/stat, all CPUs)."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS  # less idle and iowait


def load(path: str, front: dict[str, Any], seconds: float) -> WrkLatency:
    """wrk along `path` from the front pod: explicit, at its sidecar as a proxy; captured,
    from inside its network namespace to the Service's name."""
    if path == "explicit":
        return wrk(f"http://127.0.0.1:{front['ports']['outbound']}/",
                   headers=(("Host", SERVICE),), threads=WRK_THREADS,
                   connections=WRK_CONNECTIONS, seconds=seconds)  # fmt: skip
    return wrk(f"http://{SERVICE}/", prefix=("ip", "netns", "exec", front["network"]),
               threads=WRK_THREADS, connections=WRK_CONNECTIONS, seconds=seconds)  # fmt: skip


def measure(path: str, mesh: Path, state: Path, plan: Plan) -> Sample:
    """Start the mesh for `path`, warm it up, measure one wrk run; stop it."""
    with up.running(mesh, state, network=up.NETWORKS[MODES[path]]) as run:
        front, back = run.pod("front"), run.pod("back")
        load(path, front, plan.warmup_seconds)
        pids = {"front_sidecar": front["sidecar"]["pid"], "back_sidecar": back["sidecar"]["pid"],
                "back_app": back["app"]["pid"]}  # fmt: skip
        counted = inbound_requests(back)
        before, busy = cpu_seconds(pids, children="wrk"), busy_seconds()
        started = time.monotonic()
        result = load(path, front, plan.wrk_seconds)
        elapsed, busy = time.monotonic() - started, busy_seconds() - busy
        after = cpu_seconds(pids, children="wrk")
        counted = inbound_requests(back) - counted
    used = per_request(before, after, max(1, result.requests))
    ours = sum(after[name][0] - before[name][0] for name in before)
    sample = Sample(path=path, rps=result.rps, p50_ms=result.p50_ms, p99_ms=result.p99_ms,
                    requests=result.requests, bad=result.non_2xx + result.socket_errors,
                    counted=counted, others_cores=round(max(0.0, busy - ours) / elapsed, 2),
                    cpu_us={name: total for name, (total, _) in used.items()},
                    system_us={name: system for name, (_, system) in used.items()})
    if sample.bad or not result.requests:
        raise RuntimeError(f"{path}: {sample.bad} bad answers of {result.requests}")
    if counted < result.requests:
        raise RuntimeError(f"{path}: back's sidecar counted {counted} inbound requests of "
                           f"{result.requests}: the traffic did not go through both sidecars")
    log(f"  {path}: {sample.rps:,.0f} req/s, p50 {sample.p50_ms:.2f} ms, p99 "
        f"{sample.p99_ms:.2f} ms, CPU µs/request {sample.cpu_us} (kernel "
        f"{sum(sample.system_us.values()):.0f}), others {sample.others_cores}")
    return sample


def alternating(index: int) -> tuple[str, str]:
    return ("explicit", "captured") if index % 2 == 0 else ("captured", "explicit")


def measure_pairs(workdir: Path, plan: Plan, pairs: list[dict[str, Sample]],
                  leftovers: list[str]) -> None:  # fmt: skip
    """`plan.pairs` pairs into `pairs`, what each run left of its network into `leftovers`."""
    mesh = workdir / "mesh"
    mesh.mkdir()
    (mesh / "app.py").write_text(APP)
    (mesh / "mesh.yaml").write_text(MESH)
    for index in range(plan.pairs):
        log(f"pair {index + 1}/{plan.pairs}: wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} "
            f"-d{plan.wrk_seconds}s")
        pair: dict[str, Sample] = {}
        pairs.append(pair)
        for path in alternating(index):
            state = workdir / f"state-{path}-{index}"
            try:
                pair[path] = measure(path, mesh, state, plan)
            finally:
                leftovers += up.leftover_network(state)


def measure_startups(workdir: Path, plan: Plan, runs: dict[str, list[dict[str, Any]]],
                     leftovers: list[str]) -> None:  # fmt: skip
    """`plan.startups` runs of bench/up.py's `one_run` per mode into `runs`."""
    for index in range(plan.startups):
        for path in alternating(index):
            mode = MODES[path]
            state = workdir / f"state-demo-{mode}-{index}"
            try:
                runs[mode].append(up.one_run(state, network=up.NETWORKS[mode]))
            finally:
                leftovers += up.leftover_network(state)
            log(f"  remora up examples/ecommerce --network {mode}: {runs[mode][-1]}")


def _median(values: list[float], digits: int) -> float | None:
    return round(statistics.median(values), digits) if values else None


def _minus(after: float | None, before: float | None, digits: int = 1) -> float | None:
    return round(after - before, digits) if after is not None and before is not None else None


def path_summary(samples: list[Sample]) -> dict[str, Any]:
    names = samples[0].cpu_us if samples else {}
    return {
        "rps": _median([s.rps for s in samples], 1),
        "p50_ms": _median([s.p50_ms for s in samples], 3),
        "p99_ms": _median([s.p99_ms for s in samples], 3),
        "cpu_us_per_request": {name: _median([s.cpu_us[name] for s in samples], 1)
                               for name in names},
        "cpu_us_per_request_total": _median([sum(s.cpu_us.values()) for s in samples], 1),
        "kernel_us_per_request_total": _median([sum(s.system_us.values()) for s in samples], 1),
        "rps_runs": [round(s.rps) for s in samples],
        "others_cores": [s.others_cores for s in samples],
    }


def startup_summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode, found in runs.items():
        out[mode] = {key: _median([r[key] for r in found if r[key] is not None], 2)
                     for key in ("ready_s", "ready_after_s", "rss_mb")}  # fmt: skip
        out[mode]["runs"] = found
    for key in ("ready_s", "ready_after_s"):
        out[f"extra_{key}"] = _minus(out["namespace"][key], out["host"][key], 2)
    return out


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")  # fmt: skip
    version = subprocess.run([WRK, "-v"], capture_output=True, text=True, check=False).stdout
    return {"cpu": model, "cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "wrk": version.split(" [", 1)[0].strip(),
            "loadavg_1m_at_start": round(os.getloadavg()[0], 2)}  # fmt: skip


def build_report(pairs: list[dict[str, Sample]], startups: dict[str, list[dict[str, Any]]],
                 kernel: dict[str, Any], *, plan: Plan, leftovers: list[str], error: str | None,
                 started: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    complete = [pair for pair in pairs if len(pair) == 2]
    ratios = [pair["captured"].rps / pair["explicit"].rps for pair in complete]
    quiet = [r for r, pair in zip(ratios, complete, strict=True)
             if max(s.others_cores for s in pair.values()) <= QUIET_OTHERS]  # fmt: skip
    ratio = _median(ratios, 3)
    explicit = path_summary([pair["explicit"] for pair in pairs if "explicit" in pair])
    captured = path_summary([pair["captured"] for pair in pairs if "captured" in pair])
    cpu = explicit["cpu_us_per_request_total"], captured["cpu_us_per_request_total"]
    return {
        "throughput_ratio": ratio,  # captured / explicit req/s, median of the pairs
        "extra_cost": _minus(1.0, ratio, 3),
        "pair_ratios": [round(r, 3) for r in ratios],
        # the pairs in which neither run shared the machine with more than QUIET_OTHERS cores
        "throughput_ratio_quiet": _median(quiet, 3),
        "quiet_pairs": len(quiet),
        "cpu_ratio": round(cpu[1] / cpu[0], 3) if cpu[0] and cpu[1] else None,
        # captured − explicit, CPU µs per request of the four processes and its kernel part
        "extra_cpu_us": _minus(cpu[1], cpu[0]),
        "extra_kernel_us": _minus(captured["kernel_us_per_request_total"],
                                  explicit["kernel_us_per_request_total"]),
        "explicit": explicit,
        "captured": captured,
        "samples": [asdict(s) for pair in pairs for s in pair.values()],
        "kernel_path": kernel,
        "startup": startup_summary(startups),
        "leftovers": sorted(set(leftovers)),
        "error": error,
        "machine": started,
        "settings": {"pairs": plan.pairs, "wrk": f"-t{WRK_THREADS} -c{WRK_CONNECTIONS} "
                     f"-d{plan.wrk_seconds}s", "warmup_s": plan.warmup_seconds,
                     "startups_per_mode": plan.startups, "body_bytes": len(BODY),
                     "namespace_options": " ".join(up.NAMESPACE)},
        "targets": {"extra_cost": f"<= {TARGET_EXTRA_COST}",
                    "extra_ready_s": f"<= {TARGET_STARTUP_S}"},
    }


def _mark(ok: bool) -> str:
    return " [green]✓[/]" if ok else " [red]✗[/]"


def print_table(report: dict[str, Any]) -> None:
    table = Table(title="captured (--network namespace) vs explicit proxy (--network host), "
                        f"front → back through two sidecars, {report['settings']['wrk']}")
    for column in ("figure", "explicit (host)", "captured (namespace)", "captured/explicit"):
        table.add_column(column)
    e, c = report["explicit"], report["captured"]
    ratio, extra = report["throughput_ratio"], report["extra_cost"]
    shown = "—" if ratio is None or extra is None else \
        f"{ratio}{_mark(extra <= TARGET_EXTRA_COST)} (extra cost {extra:.1%}, target ≤ 10 %)"
    table.add_row("req/s (median)", f"{e['rps']:,.0f}" if e["rps"] else "—",
                  f"{c['rps']:,.0f}" if c["rps"] else "—", shown)  # fmt: skip
    table.add_row("req/s per run", str(e["rps_runs"]), str(c["rps_runs"]),
                  f"per pair {report['pair_ratios']}")  # fmt: skip
    table.add_row(f"quiet pairs (other load ≤ {QUIET_OTHERS} cores)", "", "",
                  f"{report['throughput_ratio_quiet']} (median of {report['quiet_pairs']})")
    for key, label in (("p50_ms", "wrk p50 ms"), ("p99_ms", "wrk p99 ms")):
        table.add_row(label, str(e[key]), str(c[key]), "")
    for name in e["cpu_us_per_request"]:
        table.add_row(f"CPU µs/request, {name}", str(e["cpu_us_per_request"][name]),
                      str(c["cpu_us_per_request"].get(name)), "")  # fmt: skip
    table.add_row("CPU µs/request, all four", str(e["cpu_us_per_request_total"]),
                  str(c["cpu_us_per_request_total"]),
                  f"{report['cpu_ratio']} ({report['extra_cpu_us']:+} µs)"
                  if report["extra_cpu_us"] is not None else "—")  # fmt: skip
    table.add_row("  of which in the kernel (stime)", str(e["kernel_us_per_request_total"]),
                  str(c["kernel_us_per_request_total"]),
                  f"{report['extra_kernel_us']:+} µs" if report["extra_kernel_us"] is not None
                  else "—")  # fmt: skip
    table.add_row("other load (cores)", str(e["others_cores"]), str(c["others_cores"]), "")
    s = report["startup"]
    for key, label in (("ready_s", "remora up ecommerce: wall s"),
                       ("ready_after_s", "remora up ecommerce: ready_after s")):
        extra_s = s[f"extra_{key}"]
        ok = "" if extra_s is None or key != "ready_s" else _mark(extra_s <= TARGET_STARTUP_S)
        table.add_row(label, str(s["host"][key]), str(s["namespace"][key]),
                      "—" if extra_s is None else f"{extra_s:+} s{ok}")  # fmt: skip
    table.add_row("remora up ecommerce: RSS MB", str(s["host"]["rss_mb"]),
                  str(s["namespace"]["rss_mb"]), "")  # fmt: skip
    console = Console(width=max(Console().width, 120))
    console.print(table)
    if report["kernel_path"]:
        console.print(_netlab.table(report))
    m = report["machine"]
    console.print(f"{m['cpu']}, {m['cpus']} CPUs, Linux {m['kernel']}, Python {m['python']}, "
                  f"{m['wrk']}, load {m['loadavg_1m_at_start']}")
    if report["leftovers"]:
        console.print(f"[red]left after remora down:[/] {' '.join(report['leftovers'])}")
    if report["error"]:
        console.print(f"[red]not measured to the end:[/] {report['error']}")


def run(plan: Plan) -> dict[str, Any]:
    started = machine()
    leftovers: list[str] = []
    pairs: list[dict[str, Sample]] = []
    startups: dict[str, list[dict[str, Any]]] = {"host": [], "namespace": []}
    kernel: dict[str, Any] = {}
    error: str | None = None
    workdir = Path(tempfile.mkdtemp(prefix="remora-capture-bench-"))
    try:
        measure_pairs(workdir, plan, pairs, leftovers)
        log(f"kernel path: wrk -t1 -c{_netlab.CONNECTIONS} -d{plan.kernel_seconds}s straight "
            "at the app, no proxy")
        kernel = _netlab.measure(workdir, APP, rounds=plan.kernel_rounds,
                                 seconds=plan.kernel_seconds, leftovers=leftovers)
        log("start-up: remora up -f examples/ecommerce --detach, then remora down")
        measure_startups(workdir, plan, startups, leftovers)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        error = str(exc)
        log(f"error: {error}\nthe runs' logs are kept in {workdir}")
    if error is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return build_report(pairs, startups, kernel, plan=plan, leftovers=leftovers, error=error,
                        started=started)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run (~1.5 min)")
    parser.add_argument("--pairs", type=int, help="pairs of runs (default: 3, --quick 2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/capture.py skipped: --network namespace needs root (network namespaces, "
              "iptables)", file=sys.stderr)  # fmt: skip
        return 0
    plan = QUICK if args.quick else FULL
    report = run(plan if args.pairs is None else replace(plan, pairs=args.pairs))
    print_table(report)
    if args.json:
        print(json.dumps(report))
    return 1 if report["error"] or report["leftovers"] else 0


if __name__ == "__main__":
    sys.exit(main())
