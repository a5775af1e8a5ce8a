"""Benchmark: instructions per proxied request, counted by valgrind's callgrind (not timed).

Runs bench/hotpath.py (the real proxy objects, in-memory transports) under
`valgrind --tool=callgrind` twice, with a few and with many requests, and prints the
difference in instructions divided by the difference in requests: the per-request cost with
start-up, imports and warm-up cancelled out. Deterministic to a few instructions
(PYTHONHASHSEED=0), so a hot-path change can be judged on a busy machine.

    .venv/bin/python bench/instructions.py [--few 500] [--many 2500] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HOTPATH = Path(__file__).with_name("hotpath.py")
TOTALS = re.compile(r"^(?:summary|totals):\s+(\d+)", re.M)


def instructions(requests: int, workdir: Path) -> int:
    """Instructions executed by a hotpath run of `requests` requests."""
    out = workdir / f"callgrind.{requests}"
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
         str(HOTPATH), "--requests", str(requests)],
        check=True, capture_output=True, timeout=1800,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )  # fmt: skip
    found = TOTALS.search(out.read_text(errors="replace"))
    if found is None:
        raise SystemExit(f"no totals in {out}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--few", type=int, default=500)
    parser.add_argument("--many", type=int, default=2500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # one plain run first: it writes the .pyc files, whose compiling would otherwise be counted
    # in whichever measured run imports a changed module first
    subprocess.run([sys.executable, str(HOTPATH), "--requests", "1"], check=True,
                   capture_output=True, timeout=300)
    with tempfile.TemporaryDirectory() as tmp:
        few, many = instructions(args.few, Path(tmp)), instructions(args.many, Path(tmp))
    per_request = (many - few) / (args.many - args.few)
    if args.json:
        print(json.dumps({"instructions_per_request": round(per_request), "few": few,
                          "many": many, "requests": [args.few, args.many]}))
    else:
        print(f"{per_request:,.0f} instructions per request "
              f"(callgrind, {args.few} and {args.many} requests through bench/hotpath.py)")


if __name__ == "__main__":
    main()
