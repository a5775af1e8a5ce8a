"""`remora load URL`: a bounded open-loop HTTP load generator with a latency summary.

The generator is `remora.loadgen` (its docstring tells how it offers load and counts latency);
this module parses the options, shows progress and prints the summary: status codes (and
connection errors), latency p50/p90/p99/max, and, for JSON bodies carrying a "version" field (as
the e-commerce demo's answers do), how many came from each version: a 90/10 canary split shows
up there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from remora.cli.output import OutputFormat, render
from remora.loadgen import LoadRun, Result, Summary, Target, run_load, schedule, summarize


def parse_header(text: str) -> tuple[str, str]:
    """`name: value` (curl's -H form) → (name, value)."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise typer.BadParameter(f"{text!r} is not name:value", param_hint="--header")
    return name.strip(), value.strip()


def target_of(
    url: str, *, method: str, headers: Sequence[tuple[str, str]], body: bytes
) -> Target:
    """The request to send, a bad URL reported as typer reports a bad argument."""
    try:
        return Target.build(url, method=method, headers=headers, body=body)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="URL") from None


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    app.command("load")(load)


def load(
    url: Annotated[str, typer.Argument(help="http://host:port/path to send requests to.")],
    rps: Annotated[float, typer.Option("--rps", min=0.1, help="Requests per second.")] = 10,
    duration: Annotated[float, typer.Option(
        "--duration", min=0.1, help="Seconds to send requests for.")] = 10,
    header: Annotated[list[str] | None, typer.Option(
        "--header", "-H", help="name:value, sent with every request. Repeatable.")] = None,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", "-c", min=1, help="Most requests in flight at once.")] = 50,
    method: Annotated[str, typer.Option("--method", "-X", help="HTTP method.")] = "GET",
    data: Annotated[str | None, typer.Option(
        "--data", help="Request body (JSON unless a Content-Type header says otherwise).")] = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", min=0.1, help="Seconds before a request counts as an error.")] = 10,
    output: Annotated[OutputFormat, typer.Option(
        "-o", "--output", help="text (tables), json or yaml (one object).")] = OutputFormat.TEXT,
) -> None:
    """Send --rps requests per second to URL for --duration seconds, then summarize them."""
    headers = [parse_header(h) for h in header or ()]
    target = target_of(url, method=method.upper(), headers=headers,
                       body=(data or "").encode())  # fmt: skip
    due = schedule(rps, duration)
    stderr = Console(stderr=True, highlight=False)
    with Progress(
        TextColumn("[bold]load[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[errors]} errors"), TimeElapsedColumn(),
        console=stderr, transient=True, disable=not stderr.is_terminal,
    ) as progress:  # fmt: skip
        task = progress.add_task(f"{rps:g} req/s", total=len(due), errors=0)
        errors = 0

        def advance(result: Result) -> None:
            nonlocal errors
            errors += result.status is None or result.status >= 500
            progress.update(task, advance=1, errors=errors)

        results, elapsed = run_load(LoadRun(target, due, concurrency, timeout, advance))
    summary = summarize(url, len(due), results, elapsed)
    if output is OutputFormat.TEXT:
        print_summary(Console(highlight=False), summary)
    else:
        typer.echo(render(summary.to_dict(), output), nl=False)
    if results and all(r.status is None for r in results):
        raise typer.Exit(1)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def print_summary(console: Console, summary: Summary) -> None:
    """The text summary: totals, status codes, latency percentiles, versions."""
    console.print(
        f"{summary.completed}/{summary.planned} requests to {summary.url} in "
        f"{summary.elapsed:.1f} s ({summary.achieved_rps:.1f} req/s)", markup=False,
    )  # fmt: skip
    statuses = Table("status", "count", "share", title="Responses", title_justify="left")
    for outcome, count in summary.outcomes.items():
        statuses.add_row(outcome, str(count), f"{count / summary.completed:.1%}")
    console.print(statuses)
    latency = Table(*summary.latency, title="Latency", title_justify="left")
    latency.add_row(*(_ms(v) for v in summary.latency.values()))
    console.print(latency)
    if summary.versions:
        answered = sum(summary.versions.values())
        versions = Table("version", "count", "share", title="Versions", title_justify="left")
        for version, count in summary.versions.items():
            versions.add_row(version, str(count), f"{count / answered:.1%}")
        console.print(versions)
