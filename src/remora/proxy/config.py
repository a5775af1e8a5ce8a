"""Where a proxy's snapshot comes from: files it reads itself, or a control plane's push.

Either way a `SnapshotSource` gives the first snapshot, then follows changes and hands each new
snapshot to the runtime. A control plane's snapshots arrive compiled (remora.proxy.discovery);
files are parsed and compiled here, so only a proxy run from files imports the validation and
YAML machinery. A resource with an issue is skipped and logged, and the rest applies
(one bad file never takes the proxy down); kinds and fields Remora does not enforce are logged
once (remora.api.unenforced).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from remora.errors import RemoraError
from remora.proxy.configlog import ConfigLog

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from remora.mesh.snapshot import ListenerPorts, ProxyIdentity, Snapshot


log = logging.getLogger("remora.proxy")


class InvalidConfigError(RemoraError):
    """The configuration has issues; the message lists them (file:line: resource: path: msg)."""


class SnapshotSource(Protocol):
    """What feeds a proxy its configuration."""

    async def first(self) -> Snapshot:
        """The snapshot to start with (InvalidConfigError / RemoraError when there is none)."""
        ...

    async def follow(self, apply: Callable[[Snapshot], None]) -> None:
        """Run until cancelled, calling `apply` with each new valid snapshot."""
        ...

    def reload(self) -> Snapshot | None:
        """SIGHUP: a fresh snapshot now, or None when this source has nothing to reread."""
        ...


class FileSource:
    """Static configuration from files and directories, recompiled when they change."""

    def __init__(
        self, paths: Sequence[str], *, identity: ProxyIdentity, ports: ListenerPorts,
        interval: float = 1.0,
    ) -> None:
        self.paths = list(paths)
        self.identity = identity
        self.ports = ports
        self.interval = interval
        self._versions = itertools.count(1)
        self._log = ConfigLog()
        self._signature = self._files_signature()

    async def first(self) -> Snapshot:
        return self.load()

    def reload(self) -> Snapshot | None:
        return self.load()

    async def follow(self, apply: Callable[[Snapshot], None]) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not self.changed():
                continue
            try:
                snapshot = self.load()
            except RemoraError as exc:
                log.error("config rejected, keeping the running one: %s", exc)
                continue
            apply(snapshot)

    def load(self) -> Snapshot:
        """Compile the files as they are now; resources with issues are skipped (and logged)."""
        # here, not at the top: a proxy fed by a control plane never loads these
        from remora.api.loader import load_paths  # noqa: PLC0415
        from remora.mesh.compile import compile_snapshot  # noqa: PLC0415
        from remora.mesh.documents import skipped_from_issues  # noqa: PLC0415

        self._signature = self._files_signature()
        result = load_paths(self.paths, namespace=self.identity.namespace)
        self._log.unsupported(result.unsupported)
        snapshot = compile_snapshot(
            result.resources,
            self.identity,
            version=str(next(self._versions)),
            listener_ports=self.ports,
            skipped=skipped_from_issues(result.issues),
        )
        self._log.snapshot(snapshot)
        return snapshot

    def changed(self) -> bool:
        return self._files_signature() != self._signature

    def _files_signature(self) -> tuple[tuple[str, int, int], ...]:
        from remora.api.loader import YAML_SUFFIXES  # noqa: PLC0415 - see load

        entries: list[tuple[str, int, int]] = []
        for raw in self.paths:
            path = Path(raw)
            files = (
                sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES)
                if path.is_dir()
                else [path]
            )
            for file in files:
                try:
                    stat = file.stat()
                except OSError:
                    continue
                entries.append((str(file), stat.st_mtime_ns, stat.st_size))
        return tuple(entries)
