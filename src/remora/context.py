"""Where the current mesh is: the control plane a client talks to, as kubectl finds its context.

In order, the first that says something wins:

1. the command's flag (`--server` / `--controlplane`);
2. $REMORA_CONTROLPLANE (or the older $REMORA_SERVER);
3. a running `remora up` whose state directory is ./.remora/up, here or in a parent directory
   (its status.json names the control plane's URL; its supervisor.pid must be alive);
4. http://127.0.0.1:8848 (`remora controlplane`'s default, Nacos's port).

The credentials for that control plane are looked up next to it (remora.credentials): the
same state directories are where `remora controlplane` and `remora up` leave theirs. Standard
library only: every command and the proxy import this.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SERVER = "http://127.0.0.1:8848"
ENV_VARS = ("REMORA_CONTROLPLANE", "REMORA_SERVER")
LOCAL_DIR = Path(".remora")
"""`remora controlplane`'s default --data-dir; `remora up`'s state is under it."""
UP_STATE_DIR = LOCAL_DIR / "up"
"""`remora up`'s default --state-dir (remora.runner.state keeps its layout)."""
UP_STATUS = "status.json"
UP_SUPERVISOR = "supervisor.pid"
UP_CONTROLPLANE_DATA = "controlplane"


@dataclass(frozen=True, slots=True)
class Current:
    """The control plane to talk to, and why that one."""

    server: str
    origin: str  # "--server", "$REMORA_CONTROLPLANE", "remora up (<dir>)", "default"
    up_state: Path | None = None  # the state directory of the `remora up` it belongs to


def current(flag: str | None = None, *, cwd: Path | None = None) -> Current:
    """The current mesh, looked up as the module docstring says."""
    if flag:
        return Current(flag, "--server")
    for name in ENV_VARS:
        if value := os.environ.get(name, ""):
            return Current(value, f"${name}")
    state = running_up(cwd)
    if state is not None:
        url = up_controlplane(state)
        if url:
            return Current(url, f"remora up ({state})", state)
    return Current(DEFAULT_SERVER, "default")


def stopped_up(cwd: Path | None = None) -> Path | None:
    """A `remora up` state directory here or in a parent whose supervisor no longer runs (the
    reason an unreachable default may surprise: the mesh was stopped or crashed)."""
    here = (cwd or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        state = directory / UP_STATE_DIR
        if (state / UP_STATUS).exists():
            return None if supervisor_alive(state) else state
    return None


def running_up(cwd: Path | None = None) -> Path | None:
    """The state directory (.remora/up) of a running `remora up` in `cwd` or a parent."""
    here = (cwd or Path.cwd()).resolve()
    for directory in (here, *here.parents):
        state = directory / UP_STATE_DIR
        if (state / UP_SUPERVISOR).exists() and supervisor_alive(state):
            return state
    return None


def up_controlplane(state: Path) -> str | None:
    """The control plane URL a `remora up` state directory records (status.json)."""
    try:
        data = json.loads((state / UP_STATUS).read_text())
    except (OSError, ValueError):
        return None
    url = (data.get("controlplane") or {}).get("url") if isinstance(data, dict) else None
    return url if isinstance(url, str) and url else None


def supervisor_alive(state: Path) -> bool:
    """Whether the pid in supervisor.pid runs and started when it says (Linux /proc; elsewhere
    only whether the pid exists)."""
    try:
        pid_text, _, ticks_text = (state / UP_SUPERVISOR).read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self").exists():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    except OSError:
        return False
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return False
    return not ticks_text.isdigit() or fields[19] == ticks_text


def credential_files(cwd: Path | None = None) -> list[Path]:
    """The local credentials files, in the order clients read them: a control plane's data
    directory here, the running `remora up`'s (found as `current` finds it), this directory's
    `remora up` state (running or not)."""
    here = cwd or Path()
    name = "credentials.json"
    state = running_up(cwd)
    found = [here / LOCAL_DIR / name,
             *([state / UP_CONTROLPLANE_DATA / name] if state is not None else []),
             here / UP_STATE_DIR / UP_CONTROLPLANE_DATA / name]
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.absolute(), path)
    return list(unique.values())
