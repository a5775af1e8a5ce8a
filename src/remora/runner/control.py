"""Driving a `remora up` supervisor from outside: detach it, wait for it, stop it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from remora.errors import RemoraError
from remora.runner import procfs
from remora.runner.process import signal_group
from remora.runner.state import StateDir, alive, recorded_processes

POLL = 0.1
LEFTOVER_GRACE = 5.0


def log_tail(state: StateDir, lines: int = 15) -> str:
    try:
        text = state.supervisor_log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def spawn_detached(argv: Sequence[str], state: StateDir) -> subprocess.Popen[bytes]:
    """Start the supervisor in its own session, its output in <state>/supervisor.log."""
    state.root.mkdir(parents=True, exist_ok=True)
    state.status_file.unlink(missing_ok=True)
    with state.supervisor_log.open("wb") as out:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def wait_until_ready(state: StateDir, process: subprocess.Popen[bytes], *,
                     timeout: float) -> dict[str, Any]:
    """The status once the mesh is Ready; RemoraError when it fails, exits or takes too long
    (then it keeps running: `remora status` shows what is not ready)."""
    deadline = time.monotonic() + timeout
    while True:
        status = state.read_status() or {}
        if status.get("phase") == "Ready":
            return status
        if status.get("phase") == "Failed" or process.poll() is not None:
            process.wait()
            reason = status.get("error") or f"the supervisor exited with {process.returncode}"
            raise RemoraError(f"{reason}\n{log_tail(state)}".rstrip())
        if time.monotonic() > deadline:
            waiting = [i["name"] for i in status.get("instances", []) if not i.get("ready")]
            raise RemoraError(f"not ready after {timeout:.0f} s (waiting for: "
                              f"{', '.join(waiting) or 'the control plane and gateways'}); "
                              "it keeps running: see `remora status`, stop it with `remora down`")
        time.sleep(POLL)


def stop(state: StateDir, *, timeout: float) -> int:
    """Stop the supervisor of `state` (SIGTERM: it stops everything in order) and kill what a
    dead supervisor left behind. Returns how many processes were found running."""
    status = state.read_status() or {}
    running = [p for p in recorded_processes(status) if alive(p)]
    pid = state.running_supervisor()
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while procfs.is_alive(pid) and time.monotonic() < deadline:  # not just its pid file
            time.sleep(POLL)
        if procfs.is_alive(pid):
            raise RemoraError(f"the supervisor (pid {pid}) did not stop within {timeout:.0f} s")
    leftovers = [p for p in running if alive(p)]
    for process in leftovers:  # a supervisor killed with SIGKILL could not stop them
        signal_group(int(process["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + LEFTOVER_GRACE
    while any(alive(p) for p in leftovers) and time.monotonic() < deadline:
        time.sleep(POLL)
    for process in leftovers:
        signal_group(int(process["pid"]), signal.SIGKILL)
    _remove_network(state)
    state.release()
    return len(running) + (pid is not None)


def _remove_network(state: StateDir) -> None:
    """What a dead supervisor left of its pod network (its record names the prefix)."""
    record = state.root / "network.json"
    try:
        prefix = str(json.loads(record.read_text())["prefix"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    from remora.runner import netns  # noqa: PLC0415 - only with a pod network

    asyncio.run(netns.remove_leftovers(prefix))
    record.unlink(missing_ok=True)
