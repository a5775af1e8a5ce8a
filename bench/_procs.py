"""Process plumbing for the benchmarks: process groups, readiness waits, /proc CPU and RSS."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")



class Service:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, argv: Sequence[str], *, log: Path, cwd: Path) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 12) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the whole group, SIGKILL what is left after `timeout`."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # stragglers in the group
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


def wait_for_port(port: int, service: Service, *, timeout: float = 10.0) -> None:
    """Return once 127.0.0.1:`port` accepts connections; raise if the service dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.alive():
            raise RuntimeError(f"{service.name} exited:\n{service.log_tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{service.name} did not listen on {port} in {timeout} s")


def wait_for_http(url: str, service: Service, *, timeout: float = 20.0) -> None:
    """Return once `url` answers 200; raise if the service dies or the time runs out."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not service.alive():
            raise RuntimeError(f"{service.name} exited:\n{service.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
                last = f"status {answer.status}"
        except urllib.error.HTTPError as exc:
            last = f"status {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"{service.name} not ready at {url} ({last}):\n{service.log_tail()}")


def family(pid: int) -> list[int]:
    """`pid` and its descendants (a proxy that forks workers is measured as a whole)."""
    found = [pid]
    for current in found:
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                found.extend(int(child) for child in task.read_text().split())
    return found


@dataclass(frozen=True)
class Usage:
    cpu_s: float  # user + system
    rss_mb: float
    system_s: float = 0.0  # the kernel's part of cpu_s (stime)


def usage(pid: int) -> Usage:
    """CPU time (utime+stime of /proc/PID/stat, and stime alone) and VmRSS of a process and its
    children."""
    ticks = system = 0
    rss_kb = 0
    for member in family(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{member}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
            system += int(fields[12])
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss_kb += int(line.split()[1])
    return Usage(cpu_s=ticks / CLOCK_TICKS, rss_mb=rss_kb / 1024, system_s=system / CLOCK_TICKS)


def cpu_seconds(pids: dict[str, int], *, children: str) -> dict[str, tuple[float, float]]:
    """(user + system, system) CPU seconds so far of each named process (with its children),
    and under the name `children` of this process's children it has waited for (a load tool run
    with subprocess.run, also through `ip netns exec`, which execs it)."""
    found = {name: (used.cpu_s, used.system_s) for name, pid in pids.items()
             for used in (usage(pid),)}  # fmt: skip
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    return found | {children: (waited.ru_utime + waited.ru_stime, waited.ru_stime)}


def per_request(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]],
                requests: int) -> dict[str, tuple[float, float]]:  # fmt: skip
    """(CPU µs, of which system µs) per request of each process, between two cpu_seconds."""
    return {name: (round((after[name][0] - total) / requests * 1e6, 1),
                   round((after[name][1] - system) / requests * 1e6, 1))
            for name, (total, system) in before.items()}  # fmt: skip
