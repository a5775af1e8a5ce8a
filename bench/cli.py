"""Benchmark: how long a `remora` command takes from exec to exit (its start-up, mostly).

Runs each command --runs times as a fresh process, in rounds of one run of each (after a
warm-up round, so that a busy moment slows every command alike), and prints the median wall
time in ms against two references measured in the same run: the interpreter alone (`python -c
pass`) and a one-command typer app (typer's own floor: typer converts every parameter through
pydantic, so no typer command starts faster). `get` asks a control plane started here (with
examples/bookinfo applied); `status` reads a `remora up` of one small app started here (skip it
with --no-up).

    .venv/bin/python bench/cli.py [--runs 10] [--no-up] [--json]

Goal (issue 12): `remora version`, `remora get KIND` and `remora status` in <= 300 ms.
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

from _procs import Service, wait_for_http
from remora.runner.ports import free_port

PYTHON = sys.executable
REMORA = str(Path(sys.executable).with_name("remora"))
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "bookinfo"
GOAL_MS = 300.0
SETTLE_S = 3.0
TYPER_FLOOR = """
import typer
app = typer.Typer(add_completion=False)
app.callback()(lambda: None)
app.command("version")(lambda: print("x"))
app(["version"])
"""
APP = "import http.server as s; s.test(s.SimpleHTTPRequestHandler, port=int(__import__('os')" \
      ".environ['PORT']), bind='127.0.0.1')"
MESH = f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web, version: v1}}}}
    spec:
      containers:
      - name: web
        image: python:3.11
        command: [{PYTHON}, -c, "{APP}"]
        ports: [{{containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 8080}}]
"""


def run_ms(argv: list[str]) -> float:
    """The wall time of one run of `argv`, in ms."""
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stderr.decode()}")
    return elapsed * 1000


def medians_ms(argvs: dict[str, list[str]], runs: int) -> dict[str, float]:
    """Each command's median wall time over `runs` rounds, one run of every command per
    round (after a warm-up round), so that a busy moment slows them all alike."""
    times: dict[str, list[float]] = {name: [] for name in argvs}
    for index in range(runs + 1):
        for name, argv in argvs.items():
            elapsed = run_ms(argv)
            if index:
                times[name].append(elapsed)
    return {name: round(statistics.median(values), 1) for name, values in times.items()}


def commands(server: str, state: Path | None) -> dict[str, list[str]]:
    found = {
        "python -c pass": [PYTHON, "-c", "pass"],
        "typer app (floor)": [PYTHON, "-c", TYPER_FLOOR],
        "remora version": [REMORA, "version"],
        "remora --help": [REMORA, "--help"],
        "remora get vs": [REMORA, "get", "vs", "--server", server],
        "remora get deploy": [REMORA, "get", "deploy", "--server", server],
        "remora get vs -o yaml": [REMORA, "get", "vs", "-o", "yaml", "--server", server],
    }
    if state is not None:
        found["remora status"] = [REMORA, "status", "--state-dir", str(state)]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--no-up", action="store_true", help="skip `remora status`")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="remora-cli-bench-") as tmp:
        folder = Path(tmp)
        port = free_port()
        server = f"http://127.0.0.1:{port}"
        cp = Service("remora controlplane", [REMORA, "controlplane", "--listen",
                     f"127.0.0.1:{port}", "--data-dir", str(folder / "cp"), "--no-auth"],
                     log=folder / "cp.log", cwd=folder)
        state = None if args.no_up else folder / "state"
        try:
            wait_for_http(f"{server}/healthz", cp)
            subprocess.run([REMORA, "apply", "-f", str(EXAMPLES), "--server", server],
                           capture_output=True, check=True)
            if state is not None:
                (folder / "mesh.yaml").write_text(MESH)
                subprocess.run([REMORA, "up", "-f", str(folder / "mesh.yaml"), "--detach",
                                "--state-dir", str(state), "--controlplane-port",
                                str(free_port())], capture_output=True, check=True, cwd=folder)
                time.sleep(SETTLE_S)  # the mesh's own start-up is not the CLI's
            report = medians_ms(commands(server, state), args.runs)
        finally:
            if state is not None:
                subprocess.run([REMORA, "down", "--state-dir", str(state)], capture_output=True,
                               check=False)
            cp.stop()
    floor = report["typer app (floor)"]
    print(f"{'command':<24}{'median ms':>10}{'/ typer':>9}  goal <= {GOAL_MS:.0f} ms")
    for name, ms in report.items():
        mark = "" if not name.startswith("remora") or name == "remora --help" else \
            ("ok" if ms <= GOAL_MS else "over")
        print(f"{name:<24}{ms:>10.1f}{ms / floor:>9.2f}  {mark}")
    if args.json:
        print(json.dumps({"median_ms": report, "runs": args.runs, "goal_ms": GOAL_MS}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
