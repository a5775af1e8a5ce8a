"""`remora load URL`: a bounded open-loop HTTP load generator with a latency summary.

Open loop: request i is due at i / rps seconds whatever happened to the ones before, so a slow
server does not slow the offered load down (wrk2's model). Bounded: at most `--concurrency`
requests are in flight; a due request waits for a free slot, and its latency is counted from the
moment it was due, so time spent queued behind a slow server shows in the percentiles instead of
being left out (coordinated omission). Requests go over raw keep-alive connections, encoded and
decoded by the proxy's own HTTP/1.1 codec, so the generator spends little CPU per request.

The summary: status codes (and connection errors), latency p50/p90/p99/max, and, for JSON
bodies carrying a "version" field (as the e-commerce demo's answers do), how many came from
each version: a 90/10 canary split shows up there.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
import uvloop
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from remora.cli.output import OutputFormat, render
from remora.proxy.codec.events import Data, EndOfMessage, ProtocolError, ResponseHead
from remora.proxy.codec.http1 import ResponseDecoder
from remora.proxy.codec.http1_encode import encode_request_head

READ_SIZE = 65536
PERCENTILES = (50, 90, 99)

# ---------------------------------------------------------------------------------------------
# Pure parts: the schedule, percentiles, the summary
# ---------------------------------------------------------------------------------------------


def schedule(rps: float, duration: float) -> list[float]:
    """When each request is due, in seconds from the start: i / rps for every i below
    rps × duration (a rounding hair under a whole number still counts as that number)."""
    if rps <= 0 or duration <= 0:
        return []
    count = math.floor(rps * duration + 1e-9)
    return [i / rps for i in range(count)]


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile of an ascending sequence: the smallest value with at least
    p % of the values at or below it; None when there are none."""
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class Result:
    """One request's outcome: a status, or an error word when no response came back."""

    latency: float  # seconds from when the request was due to its last response byte
    status: int | None = None
    error: str | None = None
    version: str | None = None

    @property
    def outcome(self) -> str:
        return str(self.status) if self.status is not None else f"error: {self.error}"


def version_of(body: bytes) -> str | None:
    """The top-level "version" string of a JSON object body, else None."""
    if not body.startswith(b"{"):
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    version = value.get("version") if isinstance(value, dict) else None
    return version if isinstance(version, str) else None


@dataclass(frozen=True)
class Summary:
    """What a run did: counts by outcome and by version, latency percentiles in seconds."""

    url: str
    planned: int
    completed: int
    elapsed: float
    outcomes: dict[str, int]
    latency: dict[str, float | None]
    versions: dict[str, int] = field(default_factory=dict)

    @property
    def achieved_rps(self) -> float:
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The `-o json` object; latencies in milliseconds."""
        return {
            "url": self.url, "planned": self.planned, "completed": self.completed,
            "elapsedSeconds": round(self.elapsed, 3), "rps": round(self.achieved_rps, 2),
            "status": self.outcomes,
            "latencyMs": {k: None if v is None else round(v * 1000, 3)
                          for k, v in self.latency.items()},
            "versions": self.versions,
        }  # fmt: skip


def summarize(url: str, planned: int, results: Sequence[Result], elapsed: float) -> Summary:
    """Fold results into a Summary; latency covers the requests that got a response."""
    answered = sorted(r.latency for r in results if r.status is not None)
    latency: dict[str, float | None] = {f"p{p}": percentile(answered, p) for p in PERCENTILES}
    latency["max"] = answered[-1] if answered else None
    outcomes = Counter(r.outcome for r in results)
    versions = Counter(r.version for r in results if r.version is not None)
    return Summary(
        url=url, planned=planned, completed=len(results), elapsed=elapsed,
        outcomes=dict(sorted(outcomes.items())), latency=latency,
        versions=dict(sorted(versions.items())),
    )  # fmt: skip


def parse_header(text: str) -> tuple[str, str]:
    """`name: value` (curl's -H form) → (name, value)."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise typer.BadParameter(f"{text!r} is not name:value", param_hint="--header")
    return name.strip(), value.strip()


@dataclass(frozen=True)
class Target:
    """Where requests go and the bytes of the request (the same for every request)."""

    host: str
    port: int
    request: bytes
    method: str

    @classmethod
    def build(
        cls, url: str, *, method: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise typer.BadParameter(f"{url!r}: only http://host:port/path", param_hint="URL")
        try:
            port = parts.port or 80
        except ValueError as exc:
            raise typer.BadParameter(f"{url!r}: {exc}", param_hint="URL") from None
        names = {name.lower() for name, _ in headers}
        fields = [] if "host" in names else [("Host", parts.netloc)]
        fields += list(headers)
        if body or method in ("POST", "PUT", "PATCH"):
            fields.append(("Content-Length", str(len(body))))
            if "content-type" not in names:
                fields.append(("Content-Type", "application/json"))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = encode_request_head(method, target, fields)
        return cls(parts.hostname, port, head + body, method)


# ---------------------------------------------------------------------------------------------
# I/O: keep-alive connections and the open-loop driver
# ---------------------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection that sends the target's request and reads answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = ResponseDecoder()
        self.reusable = True

    @classmethod
    async def open(cls, target: Target) -> Connection:
        reader, writer = await asyncio.open_connection(target.host, target.port, limit=READ_SIZE)
        return cls(reader, writer)

    async def exchange(self, target: Target) -> tuple[int, bytes]:
        """Send the request, read the whole response: (status, body)."""
        self.writer.write(target.request)
        self.decoder.start(method=target.method)
        status, body, got_any = 0, bytearray(), False
        while True:
            data = await self.reader.read(READ_SIZE)
            if not data and not got_any:
                raise EOFError("connection closed before a response")
            got_any = True
            events = self.decoder.feed(data) if data else self.decoder.feed_eof()
            for event in events:
                if isinstance(event, ResponseHead) and event.status >= 200:
                    status, self.reusable = event.status, event.keep_alive
                elif isinstance(event, Data):
                    body += event.data
                elif isinstance(event, EndOfMessage) and status:
                    return status, bytes(body)
            if not data:
                raise ConnectionResetError("connection closed in the middle of a response")

    def close(self) -> None:
        self.writer.close()


def error_word(exc: BaseException) -> str:
    """A short name for why a request got no response."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError | EOFError | BrokenPipeError):
        return "connection closed"
    if isinstance(exc, ProtocolError):
        return "bad response"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__


@dataclass
class LoadRun:
    """The open-loop driver: due times in, one Result per request out (through `on_result`)."""

    target: Target
    due: Sequence[float]
    concurrency: int
    timeout: float
    on_result: Callable[[Result], None]
    idle: list[Connection] = field(default_factory=list)

    async def run(self) -> tuple[list[Result], float]:
        """Send every request on time (waiting only for a free slot); results and elapsed s."""
        clock = time.perf_counter  # uvloop's loop.time() counts whole milliseconds
        slots = asyncio.Semaphore(self.concurrency)
        results: list[Result] = []
        tasks: set[asyncio.Task[None]] = set()
        start = clock()

        async def one(due_at: float) -> None:
            try:
                result = await self._request(due_at, clock)
            finally:
                slots.release()
            results.append(result)
            self.on_result(result)

        try:
            for offset in self.due:
                delay = start + offset - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                await slots.acquire()
                task = asyncio.create_task(one(start + offset))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for connection in self.idle:
                connection.close()
        return results, clock() - start

    async def _request(self, due_at: float, clock: Callable[[], float]) -> Result:
        """One request, retried once on a fresh connection when a reused one was found closed."""
        for _attempt in range(2):
            connection = self.idle.pop() if self.idle else None
            reused = connection is not None
            try:
                async with asyncio.timeout(self.timeout):
                    connection = connection or await Connection.open(self.target)
                    status, body = await connection.exchange(self.target)
            except (OSError, ProtocolError, EOFError) as exc:
                if connection is not None:
                    connection.close()
                if reused and isinstance(exc, EOFError):
                    continue  # a stale keep-alive connection: the server closed it while idle
                return Result(clock() - due_at, error=error_word(exc))
            latency = clock() - due_at
            if connection.reusable:
                self.idle.append(connection)
            else:
                connection.close()
            return Result(latency, status=status, version=version_of(body))
        return Result(clock() - due_at, error="connection closed")


def run_load(run: LoadRun) -> tuple[list[Result], float]:
    """Drive `run` on uvloop, as the proxy runs."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run.run())


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
    target = Target.build(url, method=method.upper(), headers=headers,
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
