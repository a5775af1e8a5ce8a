"""What a proxy says about the configuration it applies: skipped and unenforced resources, once.

A snapshot is recompiled on every push (or file change); a resource that stays skipped, or a
field Remora does not enforce, is logged the first time it is seen with that reason, not on
every push.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from remora.api.loader import Unsupported
    from remora.mesh.snapshot import Snapshot

log = logging.getLogger("remora.proxy")


class ConfigLog:
    """Remembers what was logged, so each resource and reason is logged once."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def _first(self, line: str) -> bool:
        if line in self._seen:
            return False
        self._seen.add(line)
        return True

    def snapshot(self, snapshot: Snapshot) -> None:
        for item in snapshot.skipped:
            line = f"{item.subject}: {item.message}"
            if self._first(line):
                log.error("skipped %s (the rest of the configuration is applied)", line)
        for note in snapshot.notes:  # what was left out of the snapshot, and why
            if self._first(note):
                log.warning("not served: %s", note)
        for finding in snapshot.unenforced:
            line = str(finding)
            if self._first(line):
                log.warning("%s", line)

    def unsupported(self, items: list[Unsupported]) -> None:
        """Objects of kinds Remora does not model (file mode): named, with the reason."""
        from remora.api.unenforced import not_modelled  # noqa: PLC0415 - file mode only

        for item in items:
            entry = not_modelled(item.kind)
            reason = entry.reason if entry else "this kind is not modelled"
            line = f"{item.source}: {item.kind} {item.name} is NOT applied: {reason}"
            if self._first(line):
                log.warning("%s", line)
