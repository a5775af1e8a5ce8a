"""Benchmark: `remora up` of the e-commerce demo — seconds until everything is ready, and the
memory of the whole local mesh (control plane, gateway, every app and its sidecar).

    .venv/bin/python bench/up.py [--runs N] [--network host|namespace] [--json]

Goal (issue 6): ready in ≤ 3 s. The summed RSS is the VmRSS of every process `remora status`
lists (and their children), read from /proc while the mesh is up and idle. `--network` is
passed to `remora up` (host, the default here: apps on 127.0.0.1 behind http_proxy, the mode
this figure has always measured; namespace: a network namespace per pod, root only, with CIDRs
of its own, NAMESPACE). After each `remora down` the run's network prefix is looked for in
`ip netns list` and `ip link`: anything left is reported. bench/capture.py times both modes
with `running`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from _netlab import names_with_prefix
from _procs import usage
from remora.runner.podnet import ClusterNetwork
from remora.runner.ports import free_port, port_is_free

REMORA = Path(sys.executable).with_name("remora")
DEMO = Path(__file__).resolve().parents[1] / "examples" / "ecommerce"
DEMO_GATEWAY_PORT = 8080  # examples/ecommerce/gateway.yaml: a fixed port, a test may hold it
GOAL_S = 3.0
HOST = ("--network", "host")
# CIDRs of the benchmarks' own, apart from the defaults a test run may be using at the time
NAMESPACE = ("--network", "namespace", "--pod-cidr", "10.231.0.0/16",
             "--service-cidr", "10.232.0.0/16")  # fmt: skip
NETWORKS = {"host": HOST, "namespace": NAMESPACE}


def remora(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REMORA), *args], capture_output=True, text=True, check=False)


def pids_in(status: object) -> list[int]:
    if isinstance(status, dict):
        found = [status["pid"]] if isinstance(status.get("pid"), int) else []
        return found + [pid for value in status.values() for pid in pids_in(value)]
    if isinstance(status, list):
        return [pid for value in status for pid in pids_in(value)]
    return []


def leftover_network(state: Path) -> list[str]:
    """Network namespaces and links with the prefix of the run kept in `state`."""
    if shutil.which("ip") is None:
        return []
    return names_with_prefix(ClusterNetwork.for_state(state).prefix)


@dataclass
class Run:
    """A detached `remora up`: the wall seconds of the command, its status once ready, and
    what was left of its network after `remora down`."""

    state: Path
    seconds: float = 0.0
    status: dict[str, Any] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)

    def pod(self, workload: str) -> dict[str, Any]:
        found: dict[str, Any] = next(i for i in self.status["instances"]
                                     if i["workload"] == workload)  # fmt: skip
        return found


@contextmanager
def running(mesh: Path, state: Path, *, network: Sequence[str]) -> Iterator[Run]:
    """`remora up -f mesh --detach` with `network` options and a free control-plane port,
    timed; always `remora down` after, then the run's network prefix looked for."""
    run = Run(state)
    started = time.perf_counter()
    up = remora("up", "-f", str(mesh), "--detach", "--state-dir", str(state),
                "--controlplane-port", str(free_port()), *network)  # fmt: skip
    run.seconds = time.perf_counter() - started
    try:
        if up.returncode != 0:
            raise RuntimeError(f"remora up failed:\n{up.stdout}{up.stderr}")
        shown = remora("status", "-o", "json", "--state-dir", str(state))
        if shown.returncode != 0:
            raise RuntimeError(f"remora status failed:\n{shown.stderr}")
        run.status = json.loads(shown.stdout)
        yield run
    finally:
        remora("down", "--state-dir", str(state))
        run.leftovers = leftover_network(state)


def wait_until_free(port: int, *, timeout: float = 180.0) -> None:
    """Return once 127.0.0.1:`port` is free (another run of the demo, a test's, may hold it
    for a while), saying so when it waits; RuntimeError after `timeout`."""
    deadline = time.monotonic() + timeout
    if not port_is_free(port):
        print(f"waiting for port {port} (in use) ...", file=sys.stderr, flush=True)
    while not port_is_free(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"port {port} still in use after {timeout:.0f} s")
        time.sleep(0.5)


def one_run(state: Path, *, network: Sequence[str] = HOST) -> dict[str, Any]:
    wait_until_free(DEMO_GATEWAY_PORT)
    with running(DEMO, state, network=network) as run:
        pids = pids_in(run.status)
        rss = sum(usage(pid).rss_mb for pid in pids)
        ready_after = run.status.get("ready_after")
    return {"ready_s": round(run.seconds, 2),
            "ready_after_s": round(ready_after, 2) if ready_after is not None else None,
            "rss_mb": round(rss, 1), "processes": len(pids),
            "leftovers": run.leftovers}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--network", choices=sorted(NETWORKS), default="host")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="remora-up-bench-") as tmp:
        for index in range(args.runs):
            runs.append(one_run(Path(tmp) / f"state-{index}", network=NETWORKS[args.network]))
            print(f"run {index + 1}: {runs[-1]}", file=sys.stderr)
    report = {
        "ready_s": statistics.median(r["ready_s"] for r in runs),
        "rss_mb": statistics.median(r["rss_mb"] for r in runs),
        "processes": runs[-1]["processes"],
        "network": args.network,
        "leftovers": sorted({name for r in runs for name in r["leftovers"]}),
        "runs": runs,
        "goal_ready_s": GOAL_S,
    }
    table = Table(title=f"remora up examples/ecommerce (--network {args.network})")
    for column in ("figure", "value", "goal"):
        table.add_column(column)
    ok = "[green]✓[/]" if report["ready_s"] <= GOAL_S else "[red]✗[/]"
    table.add_row("seconds to all ready (median)", f"{report['ready_s']} {ok}", f"<= {GOAL_S}")
    table.add_row("RSS of the whole mesh", f"{report['rss_mb']} MB", "")
    table.add_row("processes", str(report["processes"]), "")
    Console().print(table)
    if report["leftovers"]:
        Console().print(f"[red]left after remora down:[/] {' '.join(report['leftovers'])}")
    if args.json:
        print(json.dumps(report))
    return 1 if report["leftovers"] else 0


if __name__ == "__main__":
    sys.exit(main())
