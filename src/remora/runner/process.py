"""One child process of `remora up`: own process group, output appended to a log file, stopped
with SIGTERM and, after a grace period, SIGKILL (Kubernetes' terminationGracePeriodSeconds)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from remora.errors import RemoraError
from remora.runner import procfs

_PR_SET_PDEATHSIG = 1


class StartError(RemoraError):
    """A process could not be started (no such command, no such directory...)."""


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the supervisor dies, so nothing outlives a `kill -9` of it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def signal_group(pid: int, signum: int) -> None:
    """Send `signum` to the process group led by `pid` (each child leads its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def exit_reason(code: int) -> str:
    """How a process ended, as a person says it: `completed`, `exited 1`, `killed by SIGKILL`
    (asyncio's returncode: negative for the signal that ended it)."""
    if code == 0:
        return "completed"
    if code > 0:
        return f"exited {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"killed by {name}"


class Child:
    """A process started in its own session; `stop()` ends its whole process group."""

    def __init__(self, name: str, argv: Sequence[str], *, log: Path,
                 env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = tuple(argv)
        self.log = log
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.process: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self.start_ticks: int | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} start: "
                      f"{' '.join(self.argv)}\n".encode())
            out.flush()
            try:
                self.process = await asyncio.create_subprocess_exec(
                    *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                    env=self.env, cwd=self.cwd, start_new_session=True,
                    preexec_fn=_die_with_parent)
            except OSError as exc:
                raise StartError(f"{self.name}: cannot start {self.argv[0]!r}: "
                                 f"{exc.strerror or exc}") from None
        self.started_at = time.time()
        self.start_ticks = procfs.start_ticks(self.process.pid)

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self, grace: float) -> None:
        """SIGTERM to the group, SIGKILL to what is left after `grace` seconds; then reap."""
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            signal_group(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                signal_group(process.pid, signal.SIGKILL)
                await process.wait()
        signal_group(process.pid, signal.SIGKILL)  # children the leader left behind
