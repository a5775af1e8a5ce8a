"""Benchmark: `remora up` of the e-commerce demo — seconds until everything is ready, and the
memory of the whole local mesh (control plane, gateway, every app and its sidecar).

    .venv/bin/python bench/up.py [--runs N] [--json]

Goal (issue 6): ready in ≤ 3 s. The summed RSS is the VmRSS of every process `remora status`
lists (and their children), read from /proc while the mesh is up and idle.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from _procs import usage
from remora.runner.ports import free_port

REMORA = Path(sys.executable).with_name("remora")
DEMO = Path(__file__).resolve().parents[1] / "examples" / "ecommerce"
GOAL_S = 3.0


def pids_in(status: object) -> list[int]:
    if isinstance(status, dict):
        found = [status["pid"]] if isinstance(status.get("pid"), int) else []
        return found + [pid for value in status.values() for pid in pids_in(value)]
    if isinstance(status, list):
        return [pid for value in status for pid in pids_in(value)]
    return []


def one_run(state: Path) -> dict[str, Any]:
    started = time.perf_counter()
    up = subprocess.run([str(REMORA), "up", "-f", str(DEMO), "--detach", "--state-dir",
                         str(state), "--controlplane-port", str(free_port())],
                        capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    try:
        if up.returncode != 0:
            raise RuntimeError(f"remora up failed:\n{up.stdout}{up.stderr}")
        status = json.loads(subprocess.run(
            [str(REMORA), "status", "-o", "json", "--state-dir", str(state)],
            capture_output=True, text=True, check=True).stdout)
        pids = pids_in(status)
        rss = sum(usage(pid).rss_mb for pid in pids)
        return {"ready_s": round(seconds, 2), "rss_mb": round(rss, 1), "processes": len(pids)}
    finally:
        subprocess.run([str(REMORA), "down", "--state-dir", str(state)], capture_output=True,
                       check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="remora-up-bench-") as tmp:
        for index in range(args.runs):
            runs.append(one_run(Path(tmp) / f"state-{index}"))
            print(f"run {index + 1}: {runs[-1]}", file=sys.stderr)
    report = {
        "ready_s": statistics.median(r["ready_s"] for r in runs),
        "rss_mb": statistics.median(r["rss_mb"] for r in runs),
        "processes": runs[-1]["processes"],
        "runs": runs,
        "goal_ready_s": GOAL_S,
    }
    table = Table(title="remora up examples/ecommerce")
    for column in ("figure", "value", "goal"):
        table.add_column(column)
    ok = "[green]✓[/]" if report["ready_s"] <= GOAL_S else "[red]✗[/]"
    table.add_row("seconds to all ready (median)", f"{report['ready_s']} {ok}", f"<= {GOAL_S}")
    table.add_row("RSS of the whole mesh", f"{report['rss_mb']} MB", "")
    table.add_row("processes", str(report["processes"]), "")
    Console().print(table)
    if args.json:
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
