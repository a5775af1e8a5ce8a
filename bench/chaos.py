"""Benchmark: the success rate of requests through `remora proxy` while an upstream instance is
SIGKILLed and restarted over and over (the scenario of tests/e2e/test_proxy_chaos.py).

Three upstream processes behind one route with a 3 s timeout, retries {attempts: 3, retryOn:
5xx,reset,connect-failure, perTryTimeout: 1s} and outlierDetection; instance 0 is killed every
`--up` seconds and comes back `--down` seconds later, while `--clients` keep-alive clients send
`--rate` requests/s in all. Reported: requests, failures, success rate, latency p50/p99/max (ms,
each request from its send to its last byte), kills, the killed instance's failed tries and
connect failures (/clusters), outlier ejections (/stats/prometheus).

    .venv/bin/python bench/chaos.py [--seconds 20] [--rate 300] [--json]

--json prints one JSON object as the last stdout line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.*

from tests.e2e.meshkit import CHAOS_ROUTE_TIMEOUT, ChaosRun, chaos_run

TARGET_SUCCESS = 0.999  # the bar for the chaos test


def report(console: Console, run: ChaosRun, args: argparse.Namespace) -> dict[str, object]:
    summary = run.summary()
    table = Table(title=f"remora proxy under instance kills ({args.seconds:g} s, "
                        f"{args.rate:g} req/s, {args.clients} clients)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("requests", f"{summary['requests']:,}"),
        ("failures", f"{summary['failures']:,}"),
        ("success rate", f"{run.load.success_rate:.4%} (target >= {TARGET_SUCCESS:.1%})"),
        ("latency p50 / p99 / max",
         f"{summary['p50_ms']:.2f} / {summary['p99_ms']:.2f} / {summary['max_ms']:.2f} ms"),
        ("route timeout", f"{CHAOS_ROUTE_TIMEOUT * 1000:.0f} ms"),
        ("kills (SIGKILL + restart)", str(run.kills)),
        ("failed tries on the killed instance", str(run.victim_errors)),
        ("its connect failures", str(run.victim_connect_failures)),
        ("outlier ejections", str(run.ejections)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if run.load.failures:
        console.print("failures:", Counter(run.load.failures).most_common(5))
    return {**summary, "seconds": args.seconds, "rate": args.rate, "clients": args.clients,
            "target_success_rate": TARGET_SUCCESS,
            "success_ok": run.load.success_rate >= TARGET_SUCCESS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration")
    parser.add_argument("--rate", type=float, default=300.0, help="requests/s, all clients")
    parser.add_argument("--clients", type=int, default=4, help="keep-alive client connections")
    parser.add_argument("--up", type=float, default=0.5, help="seconds alive between kills")
    parser.add_argument("--down", type=float, default=0.3, help="seconds dead after a kill")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    console = Console(stderr=args.json)
    with tempfile.TemporaryDirectory(prefix="remora-chaos-") as tmp:
        run = chaos_run(Path(tmp), seconds=args.seconds, clients=args.clients, rate=args.rate,
                        down=args.down, up=args.up)
    result = report(console, run, args)
    if args.json:
        print(json.dumps(result))
    return 0 if result["success_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
