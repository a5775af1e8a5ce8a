"""Benchmark: the fuzzed HTTP/1.1 codec and request path (issue 21, item 5) — a million inputs
with no crash, hang or leak.

Four targets, a quarter of the inputs each: the codec alone on client bytes (`request`) and on
upstream bytes (`response`: answers to GET, HEAD and POST on one connection, then maybe the
close), and the whole request path through a proxy on the in-memory transport, hostile from
the client (`client`) or from the upstream (`upstream`: retries and timeouts on the route).
The invariants are those of make test's small budget (tests/unit/proxy/fuzzkit.py for the
codec, fuzzpath.py for the path): nothing but the codec's ProtocolError escapes; the events
follow HTTP/1.1's grammar and do not depend on where the stream was cut; nothing reaches an
upstream that the codec did not accept, and strict peers (h11) read what each side received;
once the client has gone no connection, task, active or pending count, pooled socket or timer
is left; and, every 2,000 proxy inputs, no connection, stream or call object is still alive.

What does what:
- Hypothesis, the structured part: 2 % of each target's inputs (at most 2,000) come from the
  strategies make test uses, seeded with the run's seed; they are checked, and kept as the
  corpus.
- a seeded mutation engine (bench/_mutate.py), the bulk: each input is drawn from its own
  random.Random(seed/target/index): corpus entries, pipelined, mutated (bit flips, interesting
  tokens, huge numbers, mangled line ends, splices), then cut (not at all, at every byte, at
  every CR/LF/colon, at random). Hypothesis spends ~1.3 ms making an example, this ~20 µs.
- atheris (`--atheris RUNS`, optional, `pip install -e '.[fuzz]'`): coverage-guided runs of the
  two codec targets from the same corpus, in child processes (bench/_atheris.py).
Both cores: the inputs go out in chunks to `--workers` processes. Coverage (line and branch)
of src/remora/proxy is measured with coverage.py on the Hypothesis phase and on the first
chunk of each target, which run about three times slower under it. A finding is counted by
what broke, replayed on a fresh proxy, shrunk, and saved under bench/out/fuzz/ (`--replay
FILE` runs it again); any finding makes the exit status 1.

    .venv/bin/python bench/fuzz.py [--quick] [--inputs N] [--seed S] [--workers W] [--json]
                                   [--atheris RUNS] [--replay FILE]

--quick runs 100,000 inputs (about a minute on two cores); --json prints one JSON object as
the last stdout line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import multiprocessing
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import coverage
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository root: tests.*

# The proxy's module-level lines run when it is imported, once, before the workers fork:
# measured here, or every `def` would count as missed.
IMPORTED = coverage.Coverage(data_file=None, branch=True, config_file=False)
IMPORTED.start()
from tests.unit.proxy.fuzzkit import RequestCase, ResponseCase  # noqa: E402

import _atheris  # noqa: E402
import _fuzzrun  # noqa: E402
from _fuzzrun import Chunk, ChunkResult, Finding  # noqa: E402

IMPORTED.stop()

FULL = 1_000_000
QUICK = 100_000
SHARES = {"request": 0.25, "response": 0.25, "client": 0.25, "upstream": 0.25}
CHUNK = {"request": 10_000, "response": 10_000, "client": 1_000, "upstream": 1_000}
EXPLORED = 0.02  # of a target's inputs, from Hypothesis
MOST_EXPLORED = 2_000
HANG = 300.0  # seconds without a chunk done: a worker hangs
OUT = ROOT / "bench" / "out" / "fuzz"


@dataclass
class Run:
    seed: int
    workers: int
    totals: dict[str, ChunkResult]
    explored: dict[str, int]
    seconds: float = 0.0
    coverage_files: list[str] = field(default_factory=list)
    hung: bool = False


def plan(inputs: int) -> dict[str, tuple[int, int]]:
    """(Hypothesis examples, mutated inputs) of each target."""
    out = {}
    for name, share in SHARES.items():
        total = math.ceil(inputs * share)
        explored = min(MOST_EXPLORED, max(20, math.ceil(total * EXPLORED)))
        out[name] = (explored, max(0, total - explored))
    return out


def chunks(planned: dict[str, tuple[int, int]], tmp: Path) -> list[Chunk]:
    """The mutation phase in chunks, proxy targets first (the longest); the first chunk of
    each target runs under coverage."""
    out = []
    for name in ("upstream", "client", "request", "response"):
        bulk = planned[name][1]
        size = CHUNK[name]
        for first in range(0, bulk, size):
            cover = str(tmp / f"cov.{name}.bulk") if first == 0 else None
            out.append(Chunk(name, first, min(size, bulk - first), cover))
    return out


def fuzz(inputs: int, *, seed: int, workers: int, tmp: Path, log: Console) -> Run:
    planned = plan(inputs)
    run = Run(seed, workers, {n: ChunkResult(n) for n in SHARES}, {n: p[0] for n, p in
                                                                     planned.items()})
    started = time.monotonic()
    context = multiprocessing.get_context("fork")
    jobs = [(name, explored, str(tmp / f"cov.{name}.hypothesis"))
            for name, (explored, _) in planned.items()]
    with context.Pool(workers, _fuzzrun.start_worker, (seed, None)) as pool:
        explored_results = pool.map(_fuzzrun.run_explore, jobs)
    for result in explored_results:
        run.totals[result.target].merge(result)
    corpora = _fuzzrun.corpora(explored_results)
    log.print(f"fuzz: Hypothesis phase {sum(r.inputs for r in explored_results):,} inputs, "
              f"corpus {len(corpora[0]):,} requests / {len(corpora[1]):,} responses")
    work = chunks(planned, tmp)
    done = sum(r.inputs for r in explored_results)
    last = time.monotonic()
    with context.Pool(workers, _fuzzrun.start_worker, (seed, corpora)) as pool:
        results = pool.imap_unordered(_fuzzrun.run_chunk, work)
        for _ in work:
            try:
                result = results.next(timeout=HANG)
            except multiprocessing.TimeoutError:
                run.hung = True
                pool.terminate()
                break
            run.totals[result.target].merge(result)
            done += result.inputs
            if time.monotonic() - last > 15:
                last = time.monotonic()
                log.print(f"fuzz: {done:,} / {inputs:,} inputs, "
                          f"{done / (last - started):,.0f}/s")
    run.seconds = time.monotonic() - started
    run.coverage_files = [str(p) for p in tmp.glob("cov.*")]
    return run


# -- coverage -----------------------------------------------------------------------------
def coverage_figures(files: list[str], tmp: Path) -> dict[str, Any]:
    """Line and branch coverage of the codec's files, and of the proxy's other files that the
    inputs reached, from the sampled inputs and the imports."""
    combined = coverage.Coverage(data_file=str(tmp / "combined"), branch=True,
                                 config_file=False, include=[_fuzzrun.COVERED])
    combined.combine(files, keep=True)
    combined.get_data().update(IMPORTED.get_data())
    report = tmp / "coverage.json"
    combined.json_report(outfile=str(report))
    measured = json.loads(report.read_text())["files"]
    rows: dict[str, dict[str, int]] = {}
    reached: dict[str, int] = {}
    for path, entry in measured.items():
        absolute = Path(path).resolve()
        name = str(absolute.relative_to(ROOT / "src" / "remora" / "proxy"))
        summary = entry["summary"]
        rows[name] = {k: summary[k] for k in ("covered_lines", "num_statements",
                                              "covered_branches", "num_branches")}
        at_import = IMPORTED.get_data().lines(str(absolute)) or []
        reached[name] = len(set(entry["executed_lines"]) - set(at_import))
    codec = {n: r for n, r in rows.items() if n.startswith("codec/")}
    path_rows = {n: r for n, r in rows.items() if not n.startswith("codec/") and reached[n] > 0}
    return {"codec": total(codec), "path": total(path_rows),
            "files": {**codec, **dict(sorted(path_rows.items()))}}


def total(rows: dict[str, dict[str, int]]) -> dict[str, int]:
    return {k: sum(r[k] for r in rows.values())
            for k in ("covered_lines", "num_statements", "covered_branches", "num_branches")}


def percent(row: dict[str, int]) -> str:
    lines = row["covered_lines"] / max(1, row["num_statements"])
    branches = row["covered_branches"] / max(1, row["num_branches"])
    return (f"{lines:.1%} of {row['num_statements']} lines, "
            f"{branches:.1%} of {row['num_branches']} branches")


# -- findings -----------------------------------------------------------------------------
def settle_findings(run: Run, out: Path, log: Console) -> list[dict[str, Any]]:
    """Replay each finding on a fresh proxy, shrink it, save it; the summaries."""
    proxies = _fuzzrun.Proxies()
    saved = []
    for name, result in run.totals.items():
        target = _fuzzrun.TARGETS[name]
        for number, finding in enumerate(result.findings.values()):
            document = finding_document(run, finding)
            if finding.case is not None:
                wanted = "!" + finding.signature
                alone = _fuzzrun.outcome_of(target, proxies, finding.case) == wanted
                document["replays_alone"] = alone
                if alone:
                    shrunk = _fuzzrun.shrink(target, proxies, finding.case, wanted)
                    document["shrunk"] = _fuzzrun.encode(shrunk)
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"{name}-{number}.json"
            document["file"] = str(path.relative_to(ROOT))
            document["replay"] = f".venv/bin/python bench/fuzz.py --replay {document['file']}"
            path.write_text(json.dumps(document, indent=1) + "\n")
            log.print(f"fuzz: finding {name}: {finding.signature} ({finding.count:,}x) -> "
                      f"{document['file']}")
            saved.append({k: document[k] for k in ("target", "signature", "count", "file")})
    if run.hung:
        saved.append({"target": "?", "signature": f"no chunk done in {HANG:g} s: a worker "
                      "hangs or died", "count": 1, "file": None})
    return saved


def finding_document(run: Run, finding: Finding) -> dict[str, Any]:
    return {
        "target": finding.target, "signature": finding.signature, "count": finding.count,
        "message": finding.message, "seed": run.seed, "index": finding.index,
        "case": _fuzzrun.encode(finding.case) if finding.case is not None else None,
    }


def replay(path: Path, console: Console) -> int:
    """Run a saved finding again (its shrunk case when there is one) on a fresh proxy."""
    document = json.loads(path.read_text())
    case = _fuzzrun.decode(document.get("shrunk") or document["case"])
    console.print(f"{document['target']}: {case!r}")
    try:
        outcome = _fuzzrun.TARGETS[document["target"]].check(_fuzzrun.Proxies(), case, True)
    except Exception as exc:  # what broke, in full
        console.print(_fuzzrun.signature(exc)[1])
        return 1
    console.print(f"passes now: {outcome}")
    return 0


# -- atheris ------------------------------------------------------------------------------
def atheris_runs(runs: int, run: Run, tmp: Path, out: Path, log: Console) -> dict[str, Any]:
    """libFuzzer on each codec target, from the Hypothesis corpus: its own figures."""
    if importlib.util.find_spec("atheris") is None:
        log.print("fuzz: atheris is not installed (pip install -e '.[fuzz]'): skipped")
        return {}
    figures = {}
    for name in ("request", "response"):
        corpus = tmp / f"atheris-{name}"
        corpus.mkdir()
        for i, case in enumerate(run.totals[name].corpus[:500]):
            if isinstance(case, RequestCase | ResponseCase):
                data = case.data if isinstance(case.data, bytes) else b"".join(case.data)
                (corpus / f"seed{i}").write_bytes(_atheris.encode(i, case.cuts, data))
        artifacts = out / f"atheris-{name}"
        artifacts.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        child = subprocess.run([sys.executable, str(ROOT / "bench" / "_atheris.py"), name,
                                str(runs), str(corpus), str(artifacts)],
                               capture_output=True, text=True, check=False, timeout=3600)
        units = re.search(r"stat::number_of_executed_units:\s*(\d+)", child.stderr)
        done = [line for line in child.stderr.splitlines() if "DONE" in line or "cov:" in line]
        seconds = time.monotonic() - started
        executed = int(units.group(1)) if units else 0
        found = sorted(json.loads(p.read_text())["signature"] for p in artifacts.glob("*.json"))
        figures[name] = {
            "inputs": executed, "inputs_per_s": round(executed / max(seconds, 1e-9)),
            "seconds": round(seconds, 1), "last": done[-1].strip() if done else "",
            "findings": found, "crashed": child.returncode != 0,
            "artifacts": str(artifacts.relative_to(ROOT)),
        }
        if child.returncode != 0:
            log.print(child.stderr[-3000:])
    return figures


# -- the report ---------------------------------------------------------------------------
def report(run: Run, cover: dict[str, Any], findings: list[dict[str, Any]],
           atheris: dict[str, Any], console: Console) -> dict[str, Any]:
    inputs = sum(r.inputs for r in run.totals.values())
    table = Table(title=f"fuzzed codec and request path (seed {run.seed}, {run.workers} "
                        f"workers, {run.seconds:.0f} s)")
    for column in ("target", "inputs", "of them Hypothesis", "inputs/s per core",
                   "distinct outcomes", "findings"):
        table.add_column(column, justify="left" if column == "target" else "right")
    targets = {}
    for name, result in run.totals.items():
        rate = result.inputs / max(result.seconds, 1e-9)
        found = sum(f.count for f in result.findings.values())
        table.add_row(name, f"{result.inputs:,}", f"{run.explored[name]:,}", f"{rate:,.0f}",
                      f"{len(result.outcomes):,}", f"{found:,}")
        targets[name] = {"inputs": result.inputs, "hypothesis": run.explored[name],
                         "core_seconds": round(result.seconds, 1),
                         "inputs_per_core_s": round(rate), "distinct_outcomes":
                         len(result.outcomes), "top_outcomes": result.outcomes.most_common(12),
                         "findings": found}
    table.add_row("all", f"{inputs:,}", "", f"{inputs / max(run.seconds, 1e-9):,.0f} (wall)",
                  "", f"{sum(f['count'] for f in findings):,}")
    console.print(table)
    files = Table(title="coverage of src/remora/proxy (sampled inputs)")
    files.add_column("file")
    files.add_column("lines", justify="right")
    files.add_column("branches", justify="right")
    for name, row in cover["files"].items():
        files.add_row(name, f"{row['covered_lines']}/{row['num_statements']}",
                      f"{row['covered_branches']}/{row['num_branches']}")
    console.print(files)
    console.print(f"codec: {percent(cover['codec'])}; request path: {percent(cover['path'])}")
    for name, figures in atheris.items():
        console.print(f"atheris {name}: {figures['inputs']:,} inputs, "
                      f"{figures['inputs_per_s']:,}/s, {figures['last']}")
        for signature in figures["findings"]:
            console.print(f"[red]finding[/red] atheris {name}: {signature} "
                          f"{figures['artifacts']}")
    for finding in findings:
        console.print(f"[red]finding[/red] {finding['target']}: {finding['signature']} "
                      f"({finding['count']:,}x) {finding['file']}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"inputs": inputs, "seconds": round(run.seconds, 1),
            "inputs_per_s": round(inputs / max(run.seconds, 1e-9)), "seed": run.seed,
            "workers": run.workers, "targets": targets, "coverage": cover,
            "worker_peak_rss_mb": round(peak, 1), "atheris": atheris, "findings": findings,
            "target_inputs": FULL, "target_inputs_met": inputs >= FULL,
            "ok": not findings and not any(f["crashed"] or f["findings"]
                                           for f in atheris.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK:,} inputs (~1 min)")
    parser.add_argument("--inputs", type=int, help=f"inputs in all (default {FULL:,})")
    parser.add_argument("--seed", type=int, help="the run's seed (default: from the clock)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--atheris", type=int, default=0, metavar="RUNS",
                        help="also RUNS coverage-guided atheris inputs per codec target")
    parser.add_argument("--replay", type=Path, help="run a saved finding again")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    console = Console(stderr=args.json)
    if args.replay is not None:
        return replay(args.replay, console)
    inputs = args.inputs or (QUICK if args.quick else FULL)
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    console.print(f"fuzz: {inputs:,} inputs, seed {seed}, {args.workers} workers")
    with tempfile.TemporaryDirectory(prefix="remora-fuzz-") as tmp:
        run = fuzz(inputs, seed=seed, workers=args.workers, tmp=Path(tmp), log=console)
        cover = coverage_figures(run.coverage_files, Path(tmp))
        out = OUT / f"{time.strftime('%Y%m%d-%H%M%S')}-seed{seed}"
        findings = settle_findings(run, out, console)
        figures = (atheris_runs(args.atheris, run, Path(tmp), out, console) if args.atheris
                   else {})
    result = report(run, cover, findings, figures, console)
    if args.json:
        print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
