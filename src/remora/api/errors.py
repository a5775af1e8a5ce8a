"""Configuration errors: where (file:line, resource, field path) and what went wrong."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from remora.errors import RemoraError


@dataclass(frozen=True, slots=True)
class Source:
    """Where a resource or a field came from: a file (or "-" for stdin) and a 1-based line.

    Line 0 means the file as a whole (it could not be found or read).
    """

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line > 0 else self.file


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in one place, e.g. `vs.yaml:12: VirtualService default/reviews: spec.x: msg`."""

    message: str
    source: Source | None = None
    subject: str = ""  # "VirtualService default/reviews"
    path: str = ""  # "spec.http[0].route[1].weight"

    def __str__(self) -> str:
        parts = [str(self.source)] if self.source else []
        if self.subject:
            parts.append(self.subject)
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return ": ".join(parts)


class ConfigError(RemoraError):
    """One or more configuration issues; str() gives one line per issue."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


def format_path(loc: Sequence[str | int]) -> str:
    """("spec", "http", 0, "route", 1, "weight") -> "spec.http[0].route[1].weight"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
