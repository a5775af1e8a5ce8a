"""An open-loop HTTP/1.1 load generator: `remora load`, the benchmarks and the tests' steady load.

Open loop: request i is due at i / rps seconds whatever happened to the ones before, so a slow
server does not slow the offered load down, and a request's latency counts from when it was due
(time queued behind a slow server is in the percentiles, not left out). `plan` holds the pure
parts (the schedule, the request, results and their summary), `driver` the connections and the
loop that sends on time. No typer or rich here: the command lives in `remora.cli.load`.

    due = schedule(rps=100, duration=10)
    results, elapsed = run_load(LoadRun(Target.build(url), due, concurrency=8, timeout=5))
    summary = summarize(url, len(due), results, elapsed)
"""

from remora.loadgen.driver import Dispatch, LoadRun, run_load
from remora.loadgen.plan import (
    BackToBack,
    Result,
    Summary,
    Target,
    percentile,
    schedule,
    summarize,
)

__all__ = ["BackToBack", "Dispatch", "LoadRun", "Result", "Summary", "Target", "percentile",
           "run_load", "schedule", "summarize"]  # fmt: skip
