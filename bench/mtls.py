"""Benchmark: Istio's mutual TLS between two sidecars against the same pair in plain text, in
the same run (issue 15).

    .venv/bin/python bench/mtls.py [--quick] [--pairs N] [--json]

The issue's target: with keep-alive, mTLS throughput ≥ 0.8× plain text's
(throughput_ratio = mtls / plain req/s); the rate of new connections is reported beside it.
(Certificate issuance, ≥ 200 CSRs/s, is bench/csr.py's.)

The path, all on 127.0.0.1: wrk → a client sidecar's outbound listener (`wrk -H 'Host:
back:9090'`) → a server sidecar's inbound listener → nginx (bench/_nginx.py's upstream: a
fixed 1 KiB body, one worker). The certificates are Istio's file-mounted ones (`remora proxy
--workload-certs DIR`: cert-chain.pem, key.pem, root-cert.pem), signed here by a root of
remora.controlplane.ca (trust domain cluster.local; the client is
spiffe://cluster.local/ns/default/sa/front, the server .../sa/back). The client's config is the
Service `back` (port 9090) whose one endpoint is a WorkloadEntry at the server sidecar's
inbound port, labelled `security.istio.io/tlsMode: istio` with serviceAccount `back`, as
auto mTLS wants it.

Two configurations, each a client sidecar and a server sidecar of its own:
  plain   the client's DestinationRule sets `tls.mode: DISABLE`; the server has a
          PeerAuthentication PERMISSIVE (Istio's default), so it still peeks at each
          connection's first byte as the mTLS server does;
  mtls    no tls in the DestinationRule: auto mTLS originates ISTIO_MUTUAL (SNI, the server's
          SPIFFE identity checked); the server's PeerAuthentication is STRICT.
and two ways of loading them:
  keepalive    wrk's 16 connections, and the client sidecar's pooled upstream connections;
  newconn      the same, with the client's DestinationRule `connectionPool.http.
               maxRequestsPerConnection: 1`: a new upstream connection per request (for mtls
               a TLS handshake: key exchange, ECDSA P-256 signatures, both chains verified).
The six sidecars (a server per configuration, a client per configuration and way) start
first and stay up; only the pair being measured has load. Each run is `wrk -t1 -c16` after a
warm-up on the same connections; it counts only if the server sidecar counted as many inbound
requests as wrk sent, with the security policy of its configuration (istio_requests_total,
connection_security_policy mutual_tls or none), and, for newconn, if the client opened at
least one upstream connection per request meanwhile (/clusters cx_total).
Pairs alternate their order (plain first, then mtls first, ...) for each way; the
ratio mtls / plain is taken per pair and its median reported. Beside req/s and wrk's p50/p99:
the CPU µs per request of each process (utime + stime from /proc: both sidecars, nginx, wrk)
and the cores the rest of the machine kept busy meanwhile (others_cores). The load's half
(wrk, the client sidecar) is pinned to one core and the serving half (the server sidecar,
nginx) to the other (bench/_mtlsmesh.py). The four processes need both cores at these rates,
so req/s follows the CPU a request costs and whatever else runs: the median of the pairs
where neither run had more than QUIET_OTHERS cores of other load is reported too
(throughput_ratio_quiet), and the ratio of the CPU per request, plain / mtls (cpu_ratio: the
throughput ratio with the cores all ours).

--instructions: then the same six sidecars again under `valgrind --tool=callgrind`, and per
configuration and way the instructions each sidecar executes per request (requests one after
the other on one connection; a window of 400 minus one of 100, over 300): deterministic to a
few per cent where req/s moves with whatever else the machine runs.

--quick: 2 pairs of 3 s runs (~1 min; the full run, 5 pairs of 10 s, ~5 min; --instructions
adds ~4 min); --json prints one JSON object as the last stdout line. A run that fails keeps
its directory (logs).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import _nginx
from _mtlsmesh import CALLGRIND, CONFIGS, WAYS, WRK_PREFIX, Mesh, Sidecar, start_mesh
from _procs import CLOCK_TICKS, cpu_seconds, per_request
from _wrk import WRK, wrk

WRK_THREADS = 1
WRK_CONNECTIONS = 16
SERVICE = "back:9090"
TARGET_RATIO = 0.8  # mTLS keep-alive req/s at least 0.8x plain text's
CSR_FIGURE = "bench/csr.py"  # where certificate issuance is measured
POLICY = {"plain": "none", "mtls": "mutual_tls"}  # connection_security_policy at the server
QUIET_OTHERS = 0.25  # cores of load not ours under which a run counts as quiet


@dataclass(frozen=True)
class Plan:
    pairs: int  # plain + mtls, alternating which goes first, for each way
    wrk_seconds: int
    warmup_seconds: int


QUICK = Plan(pairs=2, wrk_seconds=3, warmup_seconds=1)
FULL = Plan(pairs=5, wrk_seconds=10, warmup_seconds=2)


@dataclass
class Sample:
    """One measured wrk run through one pair of sidecars."""

    config: str  # plain | mtls
    way: str  # keepalive | newconn
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    counted: int  # requests the server sidecar counted inbound, with the config's policy
    upstream_cx: int  # connections the client sidecar opened to the server meanwhile
    cpu_us: dict[str, float] = field(default_factory=dict)  # per request, per process
    system_us: dict[str, float] = field(default_factory=dict)  # its kernel part (stime)
    others_cores: float = 0.0  # cores busy meanwhile that none of ours used


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- measuring ---------------------------------------------------------------------------------


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle (/proc/stat, all CPUs)."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS  # less idle and iowait


def measure(mesh: Mesh, config: str, way: str, plan: Plan) -> Sample:
    """One warm-up and one measured wrk run at the client sidecar of (`config`, `way`)."""
    client, server = mesh.clients[config, way], mesh.servers[config]
    url = f"http://127.0.0.1:{client.outbound}/"

    def load(seconds: float) -> Any:
        return wrk(url, headers=(("Host", SERVICE),), threads=WRK_THREADS,
                   connections=WRK_CONNECTIONS, seconds=seconds, prefix=WRK_PREFIX)

    load(plan.warmup_seconds)
    pids = {"client_sidecar": client.service.pid, "server_sidecar": server.service.pid,
            "nginx": mesh.nginx.pid}  # fmt: skip
    counted, opened = server.inbound_requests(POLICY[config]), client.upstream_connections()
    before, busy = cpu_seconds(pids, children="wrk"), busy_seconds()
    started = time.monotonic()
    result = load(plan.wrk_seconds)
    elapsed, busy = time.monotonic() - started, busy_seconds() - busy
    after = cpu_seconds(pids, children="wrk")
    counted = server.inbound_requests(POLICY[config]) - counted
    opened = client.upstream_connections() - opened
    used = per_request(before, after, max(1, result.requests))
    ours = sum(after[name][0] - before[name][0] for name in before)
    sample = Sample(config=config, way=way, rps=result.rps, p50_ms=result.p50_ms,
                    p99_ms=result.p99_ms, requests=result.requests, counted=counted,
                    upstream_cx=opened, others_cores=round(max(0.0, busy - ours) / elapsed, 2),
                    cpu_us={name: total for name, (total, _) in used.items()},
                    system_us={name: system for name, (_, system) in used.items()})
    bad = result.non_2xx + result.socket_errors
    if bad or not result.requests:
        raise RuntimeError(f"{config} {way}: {bad} bad answers of {result.requests}")
    if counted < result.requests:
        raise RuntimeError(f"{config} {way}: the server sidecar counted {counted} requests "
                           f"({POLICY[config]}) of {result.requests}")
    if way == "newconn" and opened < result.requests:
        raise RuntimeError(f"{config} newconn: {opened} upstream connections for "
                           f"{result.requests} requests")
    log(f"  {config} {way}: {sample.rps:,.0f} req/s, p50 {sample.p50_ms:.2f} ms, p99 "
        f"{sample.p99_ms:.2f} ms, upstream cx {opened}, CPU µs/request {sample.cpu_us}, "
        f"others {sample.others_cores}")
    return sample


def alternating(index: int) -> tuple[str, str]:
    return CONFIGS if index % 2 == 0 else CONFIGS[::-1]


def measure_pairs(mesh: Mesh, plan: Plan, pairs: dict[str, list[dict[str, Sample]]]) -> None:
    for index in range(plan.pairs):
        log(f"pair {index + 1}/{plan.pairs}: wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} "
            f"-d{plan.wrk_seconds}s")
        for way in WAYS:
            pair: dict[str, Sample] = {}
            pairs[way].append(pair)
            for config in alternating(index):
                pair[config] = measure(mesh, config, way, plan)


# -- instructions (--instructions): callgrind's counts, which other load does not move -------

INSTRUCTIONS_FEW, INSTRUCTIONS_MANY = 100, 400  # requests per counted window
_TOTALS = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def requests_in_a_row(sidecar: Sidecar, count: int) -> None:
    """`count` GETs one after the other on one keep-alive connection to the client sidecar."""
    connection = http.client.HTTPConnection("127.0.0.1", sidecar.outbound, timeout=60)
    try:
        for _ in range(count):
            connection.request("GET", "/", headers={"Host": SERVICE})
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"{answer.status} from the client sidecar")
    finally:
        connection.close()


def counted(sidecars: list[Sidecar], count: int) -> list[int]:
    """Each sidecar's instructions over `count` requests: zero the counters, send, dump."""
    for sidecar in sidecars:
        subprocess.run(["callgrind_control", "--zero", str(sidecar.service.pid)],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
    requests_in_a_row(sidecars[0], count)
    totals = []
    for sidecar in sidecars:
        dumps = set(sidecar.directory.glob("callgrind.*.*"))
        subprocess.run(["callgrind_control", "--dump", str(sidecar.service.pid)],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        deadline = time.monotonic() + 30
        while not (new := set(sidecar.directory.glob("callgrind.*.*")) - dumps):
            if time.monotonic() > deadline:
                raise RuntimeError(f"callgrind wrote no dump for {sidecar.service.name}")
            time.sleep(0.2)
        time.sleep(0.5)  # the dump is written whole before the next one is asked for
        found = _TOTALS.search(new.pop().read_text(errors="replace"))
        if found is None:
            raise RuntimeError(f"no totals in {sidecar.service.name}'s callgrind dump")
        totals.append(int(found.group(1)))
    return totals


def measure_instructions(workdir: Path) -> dict[str, Any]:
    """Instructions per request of each sidecar, per configuration and way: the difference of
    a window of INSTRUCTIONS_MANY requests and one of INSTRUCTIONS_FEW, over the difference in
    requests (what a window costs whatever its length cancels out)."""
    mesh = start_mesh(workdir, prefix=CALLGRIND, ready_timeout=600)
    out: dict[str, Any] = {}
    try:
        for way in WAYS:
            for config in CONFIGS:
                pair = [mesh.clients[config, way], mesh.servers[config]]
                requests_in_a_row(pair[0], 20)  # warm: pools, caches, lazily built objects
                few, many = counted(pair, INSTRUCTIONS_FEW), counted(pair, INSTRUCTIONS_MANY)
                per = [round((m - f) / (INSTRUCTIONS_MANY - INSTRUCTIONS_FEW))
                       for f, m in zip(few, many, strict=True)]  # fmt: skip
                out[f"{config}_{way}"] = {"client_sidecar": per[0], "server_sidecar": per[1]}
                log(f"  {config} {way}: instructions per request {out[f'{config}_{way}']}")
    finally:
        mesh.stop()
    for way in WAYS:
        plain, mtls = out[f"plain_{way}"], out[f"mtls_{way}"]
        out[f"ratio_{way}"] = round(sum(mtls.values()) / sum(plain.values()), 3)
    return out


# -- the report --------------------------------------------------------------------------------


def _median(values: list[float], digits: int) -> float | None:
    return round(statistics.median(values), digits) if values else None


def config_summary(samples: list[Sample]) -> dict[str, Any]:
    names = samples[0].cpu_us if samples else {}
    return {
        "rps": _median([s.rps for s in samples], 1),
        "p50_ms": _median([s.p50_ms for s in samples], 3),
        "p99_ms": _median([s.p99_ms for s in samples], 3),
        "cpu_us_per_request": {name: _median([s.cpu_us[name] for s in samples], 1)
                               for name in names},
        "cpu_us_per_request_total": _median([sum(s.cpu_us.values()) for s in samples], 1),
        "upstream_cx_per_request": _median([s.upstream_cx / s.requests for s in samples], 3),
        "rps_runs": [round(s.rps) for s in samples],
        "others_cores": [s.others_cores for s in samples],
    }


def way_summary(pairs: list[dict[str, Sample]]) -> dict[str, Any]:
    complete = [pair for pair in pairs if len(pair) == 2]
    ratios = [pair["mtls"].rps / pair["plain"].rps for pair in complete]
    quiet = [r for r, pair in zip(ratios, complete, strict=True)
             if max(s.others_cores for s in pair.values()) <= QUIET_OTHERS]  # fmt: skip
    # CPU per request of all four processes, plain / mtls, per pair: what the throughput ratio
    # would be if the machine's cores were all ours (the run is CPU-bound on 2 cores)
    cpu = [sum(pair["plain"].cpu_us.values()) / sum(pair["mtls"].cpu_us.values())
           for pair in complete]  # fmt: skip
    out: dict[str, Any] = {config: config_summary([p[config] for p in pairs if config in p])
                           for config in CONFIGS}  # fmt: skip
    used = [out[config]["cpu_us_per_request"] for config in CONFIGS]
    out |= {
        "throughput_ratio": _median(ratios, 3),  # mtls / plain req/s, median of the pairs
        "pair_ratios": [round(r, 3) for r in ratios],
        # the pairs in which neither run shared the machine with more than QUIET_OTHERS cores
        "throughput_ratio_quiet": _median(quiet, 3),
        "quiet_pairs": len(quiet),
        "cpu_ratio": _median(cpu, 3),  # plain / mtls CPU µs per request, median of the pairs
        "extra_cpu_us": {name: round(used[1][name] - used[0][name], 1)
                         for name in used[0] if used[0][name] is not None
                         and used[1].get(name) is not None},
    }  # fmt: skip
    return out


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")  # fmt: skip
    version = subprocess.run([WRK, "-v"], capture_output=True, text=True, check=False).stdout
    here = Path(__file__).resolve().parent.parent
    commit = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "src"],
                           capture_output=True, text=True, check=False).stdout.split("\n")
    return {"commit": commit, "src_changed": sorted(line[3:] for line in dirty if line),
            "cpu": model, "cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "wrk": version.split(" [", 1)[0].strip(),
            "openssl": ssl.OPENSSL_VERSION,
            "loadavg_1m_at_start": round(os.getloadavg()[0], 2)}  # fmt: skip


def build_report(pairs: dict[str, list[dict[str, Sample]]], *, plan: Plan, error: str | None,
                 started: dict[str, Any], instructions: dict[str, Any]) -> dict[str, Any]:
    ways = {way: way_summary(found) for way, found in pairs.items()}
    keepalive = ways["keepalive"]["throughput_ratio"]
    return {
        "throughput_ratio": keepalive,  # keep-alive mtls / plain req/s: the target's figure
        "newconn_ratio": ways["newconn"]["throughput_ratio"],
        "meets_target": keepalive is not None and keepalive >= TARGET_RATIO,
        **ways,
        "samples": [asdict(s) for found in pairs.values() for pair in found
                    for s in pair.values()],
        "instructions": instructions,  # per request, callgrind (--instructions); {} without
        "error": error,
        "machine": started,
        "settings": {"pairs": plan.pairs, "warmup_s": plan.warmup_seconds,
                     "wrk": f"-t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{plan.wrk_seconds}s",
                     "body_bytes": len(_nginx.BODY)},
        "targets": {"throughput_ratio": f">= {TARGET_RATIO}",
                    "csrs_per_s": f">= 200 ({CSR_FIGURE})"},
    }


def print_table(report: dict[str, Any]) -> None:
    table = Table(title="mTLS between two sidecars vs plain text: wrk → client sidecar → "
                        f"server sidecar → nginx, {report['settings']['wrk']}")
    for column in ("figure", "plain", "mtls", "mtls/plain"):
        table.add_column(column)
    for way in WAYS:
        found = report[way]
        plain, mtls, ratio = found["plain"], found["mtls"], found["throughput_ratio"]
        shown = "—" if ratio is None else str(ratio)
        if way == "keepalive" and ratio is not None:
            ok = ratio >= TARGET_RATIO
            shown += (" [green]✓[/]" if ok else " [red]✗[/]") + f" (target ≥ {TARGET_RATIO})"
        table.add_row(f"[bold]{way}[/]: req/s (median)", f"{plain['rps']:,.0f}" if plain["rps"]
                      else "—", f"{mtls['rps']:,.0f}" if mtls["rps"] else "—", shown)
        table.add_row("  req/s per run", str(plain["rps_runs"]), str(mtls["rps_runs"]),
                      f"per pair {found['pair_ratios']}")  # fmt: skip
        table.add_row(f"  quiet pairs (other load ≤ {QUIET_OTHERS} cores)", "", "",
                      f"{found['throughput_ratio_quiet']} (median of {found['quiet_pairs']})")
        table.add_row("  plain/mtls CPU per request (all four)", "", "", str(found["cpu_ratio"]))
        for key, label in (("p50_ms", "  wrk p50 ms"), ("p99_ms", "  wrk p99 ms"),
                           ("upstream_cx_per_request", "  upstream connections / request")):
            table.add_row(label, str(plain[key]), str(mtls[key]), "")
        for name in plain["cpu_us_per_request"]:
            table.add_row(f"  CPU µs/request, {name}", str(plain["cpu_us_per_request"][name]),
                          str(mtls["cpu_us_per_request"].get(name)),
                          f"{found['extra_cpu_us'].get(name, 0):+}")  # fmt: skip
        table.add_row("  CPU µs/request, all", str(plain["cpu_us_per_request_total"]),
                      str(mtls["cpu_us_per_request_total"]), "")  # fmt: skip
        table.add_row("  other load (cores)", str(plain["others_cores"]),
                      str(mtls["others_cores"]), "")  # fmt: skip
    console = Console(width=max(Console().width, 120))
    console.print(table)
    if report["instructions"]:
        print_instructions(console, report["instructions"])
    m = report["machine"]
    console.print(f"{m['cpu']}, {m['cpus']} CPUs, Linux {m['kernel']}, Python {m['python']}, "
                  f"{m['openssl']}, {m['wrk']}, load {m['loadavg_1m_at_start']}; commit "
                  f"{m['commit']}{' + uncommitted src changes' if m['src_changed'] else ''}; "
                  f"certificate issuance: {CSR_FIGURE}")
    if report["error"]:
        console.print(f"[red]not measured to the end:[/] {report['error']}")


def print_instructions(console: Console, found: dict[str, Any]) -> None:
    table = Table(title="instructions per request (callgrind; requests one after the other; "
                        f"{INSTRUCTIONS_MANY} minus {INSTRUCTIONS_FEW})")
    for column in ("way", "sidecar", "plain", "mtls", "mtls − plain"):
        table.add_column(column)
    for way in WAYS:
        plain, mtls = found[f"plain_{way}"], found[f"mtls_{way}"]
        for name in plain:
            table.add_row(way, name, f"{plain[name]:,}", f"{mtls[name]:,}",
                          f"{mtls[name] - plain[name]:+,}")  # fmt: skip
        table.add_row(way, "both: mtls / plain", "", "", str(found[f"ratio_{way}"]))
    console.print(table)


def run(plan: Plan, *, instructions: bool) -> dict[str, Any]:
    started = machine()
    pairs: dict[str, list[dict[str, Sample]]] = {way: [] for way in WAYS}
    error: str | None = None
    counts: dict[str, Any] = {}
    workdir = Path(tempfile.mkdtemp(prefix="remora-mtls-bench-"))
    try:
        mesh = start_mesh(workdir / "timed")
        try:
            measure_pairs(mesh, plan, pairs)
        finally:
            mesh.stop()
        if instructions:
            log("instructions: the six sidecars under valgrind --tool=callgrind (~3 min)")
            counts = measure_instructions(workdir / "callgrind")
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        error = str(exc)
        log(f"error: {error}\nthe sidecars' logs are kept in {workdir}")
    if error is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return build_report(pairs, plan=plan, error=error, started=started, instructions=counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run (~1 min)")
    parser.add_argument("--pairs", type=int, help="pairs of runs per way (default: 5, --quick 2)")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions per request under callgrind (~4 min)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    report = run(plan if args.pairs is None else replace(plan, pairs=args.pairs),
                 instructions=args.instructions)
    print_table(report)
    if args.json:
        print(json.dumps(report))
    return 1 if report["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
