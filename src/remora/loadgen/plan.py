"""The pure half of the load generator: when requests are due, the one request they send, what
each one got back, and the summary of a run. No I/O, no clock: `driver.py` does both.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, overload
from urllib.parse import urlsplit

from remora.proxy.codec.http1_encode import encode_request_head

PERCENTILES = (50, 90, 99)
EXCERPT = 80  # bytes of an unsuccessful answer's body kept for diagnostics


def schedule(rps: float, duration: float) -> list[float]:
    """When each request is due, in seconds from the start: i / rps for every i below
    rps × duration (a rounding hair under a whole number still counts as that number)."""
    if rps <= 0 or duration <= 0:
        return []
    count = math.floor(rps * duration + 1e-9)
    return [i / rps for i in range(count)]


class BackToBack(Sequence[float]):
    """`count` requests all due at the start, without a list of them: with PINNED dispatch,
    `concurrency` closed loops, each sending its next request when the last one is answered."""

    def __init__(self, count: int) -> None:
        self._count = count

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> float: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[float]: ...
    def __getitem__(self, index: int | slice) -> float | Sequence[float]:
        if isinstance(index, slice):
            return BackToBack(len(range(self._count)[index]))
        if not -self._count <= index < self._count:
            raise IndexError(index)
        return 0.0


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
    wait: float = 0.0  # seconds from when it was due until it was sent (slot busy, timer late)
    excerpt: bytes = b""  # the start of the body of an answer that was not 2xx

    @property
    def outcome(self) -> str:
        return str(self.status) if self.status is not None else f"error: {self.error}"

    @property
    def service_time(self) -> float:
        """Seconds from sending the request to its last response byte (or to the error)."""
        return self.latency - self.wait


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


def answered(latency: float, status: int, body: bytes, *, wait: float,
             versions: bool = True) -> Result:  # fmt: skip
    """The Result of a request that got a whole response (its version read if `versions`)."""
    ok = 200 <= status < 300
    return Result(latency, status=status, version=version_of(body) if versions else None,
                  wait=wait, excerpt=b"" if ok else body[:EXCERPT])  # fmt: skip


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
    latencies = sorted(r.latency for r in results if r.status is not None)
    latency: dict[str, float | None] = {f"p{p}": percentile(latencies, p) for p in PERCENTILES}
    latency["max"] = latencies[-1] if latencies else None
    outcomes = Counter(r.outcome for r in results)
    versions = Counter(r.version for r in results if r.version is not None)
    return Summary(
        url=url, planned=planned, completed=len(results), elapsed=elapsed,
        outcomes=dict(sorted(outcomes.items())), latency=latency,
        versions=dict(sorted(versions.items())),
    )  # fmt: skip


@dataclass(frozen=True)
class Target:
    """Where requests go and the bytes of the request (the same for every request)."""

    host: str
    port: int
    request: bytes
    method: str

    @classmethod
    def build(
        cls, url: str, *, method: str = "GET", headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Target:  # fmt: skip
        """The request for `url` (http://host[:port]/path only; ValueError otherwise), with a
        Host header unless `headers` has one, Content-Length when there is a body or the method
        usually has one, and a JSON Content-Type for a body unless `headers` give one."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{url!r}: only http://host:port/path")
        try:
            port = parts.port or 80
        except ValueError as exc:
            raise ValueError(f"{url!r}: {exc}") from None
        names = {name.lower() for name, _ in headers}
        fields = [] if "host" in names else [("Host", parts.netloc)]
        fields += list(headers)
        if body or method in ("POST", "PUT", "PATCH"):
            fields.append(("Content-Length", str(len(body))))
        if body and "content-type" not in names:
            fields.append(("Content-Type", "application/json"))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = encode_request_head(method, target, fields)
        return cls(parts.hostname, port, head + body, method)
