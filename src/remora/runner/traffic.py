"""What each proxy of `remora up` answers, for `remora status`: sampled every second.

Every sidecar and gateway is read at its admin port's /stats/prometheus (remora.runner.metrics):
a sidecar's inbound side (reporter `destination`: what reached its pod), a gateway's everything
(reporter `source`). A proxy's counters are zero when it starts, so its start is the first
sample: a rate is there from the first read on. REQ/S is the rate over the last WINDOW seconds;
ERRORS the 5xx responses since the proxy started, by code and response flags.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from remora.runner.metrics import Traffic, answered, requests_per_second
from remora.runner.ports import HOST

INTERVAL = 1.0
WINDOW = 10.0


@dataclass(frozen=True, slots=True)
class Proxy:
    """A proxy to read: its name, admin port, how it reports, and since when it runs."""

    name: str
    admin_port: int
    reporter: str  # "destination" (a sidecar's inbound side) or "source" (a gateway)
    started: float  # time.time() of its start; 0 while it does not run
    address: str = HOST  # a sidecar in its own pod network: the pod IP


@dataclass
class TrafficWatch:
    """The recent samples of every proxy, by name."""

    http: httpx.AsyncClient
    samples: dict[str, deque[Traffic]] = field(default_factory=dict)
    _started: dict[str, float] = field(default_factory=dict)

    async def sample(self, proxies: Sequence[Proxy], now: float) -> None:
        """Read every running proxy once; forget the ones that are gone."""
        running = [p for p in proxies if p.started]
        texts = await asyncio.gather(*(self._read(p) for p in running))
        for proxy, text in zip(running, texts, strict=True):
            if self._started.get(proxy.name) != proxy.started:  # new, or restarted
                self._started[proxy.name] = proxy.started
                self.samples[proxy.name] = deque(
                    [Traffic(at=proxy.started, requests=0.0, errors={})])
            if text is not None:
                kept = self.samples[proxy.name]
                kept.append(answered(text, reporter=proxy.reporter, at=now))
                while len(kept) > 2 and kept[1].at < now - WINDOW:
                    kept.popleft()
        names = {p.name for p in proxies}
        for gone in [name for name in self.samples if name not in names]:
            del self.samples[gone]
            self._started.pop(gone, None)

    async def _read(self, proxy: Proxy) -> str | None:
        try:
            response = await self.http.get(
                f"http://{proxy.address}:{proxy.admin_port}/stats/prometheus", timeout=2.0)
        except httpx.HTTPError:
            return None
        return response.text if response.status_code == 200 else None

    def of(self, name: str) -> dict[str, Any]:
        """`rps`, `errors` and `error_codes` of one proxy for status.json (None: not read)."""
        kept = self.samples.get(name)
        if not kept:
            return {"rps": None, "errors": None, "error_codes": {}}
        newest = kept[-1]
        return {"rps": requests_per_second(list(kept), window=WINDOW),
                "errors": int(newest.error_count),
                "error_codes": {k: int(v) for k, v in sorted(newest.errors.items())}}

    async def forever(self, proxies: Callable[[], Sequence[Proxy]],
                      clock: Callable[[], float], changed: Callable[[], None]) -> None:
        while True:
            await self.sample(proxies(), clock())
            changed()
            await asyncio.sleep(INTERVAL)
