"""The state directory of `remora up`: which processes run, on which ports, and their logs.

Layout (default `.remora/up`):

    supervisor.pid      the `remora up` process that owns everything below
    status.json         written by it on every change: phase, control plane, gateways, instances
    supervisor.log      its own output when detached
    controlplane/       the control plane's SQLite data
    logs/<pod>.log      an app's output; <pod>.sidecar.log its sidecar's; controlplane.log, ...
    data/<pod>/         a Deployment instance's scratch DATA_DIR
    volumes/<claim>-<pod>/   a StatefulSet instance's persistent DATA_DIR

`remora status`, `logs` and `down` read it; only the supervisor writes it.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remora.runner import procfs

DEFAULT_STATE_DIR = Path(".remora/up")


@dataclass(frozen=True, slots=True)
class StateDir:
    """Paths in one state directory."""

    root: Path

    @property
    def pid_file(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def status_file(self) -> Path:
        return self.root / "status.json"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def controlplane_data(self) -> Path:
        return self.root / "controlplane"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def identity_token(self, pod: str) -> Path:
        return self.root / "identity" / f"{pod}.token"

    def scratch(self, pod: str) -> Path:
        return self.root / "data" / pod

    def write_status(self, status: dict[str, Any]) -> None:
        """Replace status.json in one rename, so readers never see half a file."""
        self.root.mkdir(parents=True, exist_ok=True)
        temporary = self.status_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(status, indent=1, sort_keys=True))
        os.replace(temporary, self.status_file)

    def read_status(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def claim(self) -> None:
        """Record this process as the supervisor (call `running_supervisor` first)."""
        self.root.mkdir(parents=True, exist_ok=True)
        ticks = procfs.start_ticks(os.getpid())
        self.pid_file.write_text(f"{os.getpid()} {ticks}\n")

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()

    def running_supervisor(self) -> int | None:
        """The pid of the live supervisor of this directory, if there is one."""
        try:
            pid_text, _, ticks_text = self.pid_file.read_text().strip().partition(" ")
            pid, ticks = int(pid_text), int(ticks_text) if ticks_text.isdigit() else None
        except (OSError, ValueError):
            return None
        return pid if procfs.is_alive(pid, ticks) else None


def recorded_processes(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Every process the status names ({"role", "name", "pid", "started"}), in stop order:
    apps, sidecars, gateways, control plane."""
    apps: list[dict[str, Any]] = []
    sidecars: list[dict[str, Any]] = []
    gateways: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    for instance in status.get("instances", []):
        for role, bucket in (("app", apps), ("sidecar", sidecars)):
            process = instance.get(role) or {}
            if process.get("pid"):
                bucket.append({"role": role, "name": instance["name"], **process})
    for gateway in status.get("gateways", []):
        if (gateway.get("process") or {}).get("pid"):
            gateways.append({"role": "gateway", "name": gateway["name"], **gateway["process"]})
    controlplane = status.get("controlplane") or {}
    if (controlplane.get("process") or {}).get("pid"):
        others.append({"role": "controlplane", "name": "controlplane",
                       **controlplane["process"]})
    return apps + sidecars + gateways + others


def alive(process: dict[str, Any]) -> bool:
    """Whether a recorded process still runs (same pid and start time)."""
    return procfs.is_alive(int(process["pid"]), process.get("started"))
