"""The loop a fuzzed proxy's env sees (fuzzpath.py): every timer the proxy sets is kept, so
that after an input the fuzzer knows which are still pending, and can let time pass by running
them early instead of waiting for the clock."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.unit.proxy.harness import MemoryTransport


@dataclass(order=True)
class Timer:
    """A call_later of the proxy: pending until it ran or was cancelled."""

    delay: float
    seq: int
    callback: Callable[..., object] = field(compare=False)
    args: tuple[Any, ...] = field(compare=False)
    handle: asyncio.TimerHandle | None = field(default=None, compare=False)
    done: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.done = True
        if self.handle is not None:
            self.handle.cancel()

    def run(self) -> None:
        if not self.done:
            self.done = True
            self.callback(*self.args)

    def fire(self) -> None:
        """Run now, as if its time had come."""
        if self.handle is not None:
            self.handle.cancel()
        self.run()

    @property
    def benign(self) -> bool:
        """The delayed close of a transport already closed holds nothing of a request."""
        owner = getattr(self.callback, "__self__", None)
        return isinstance(owner, MemoryTransport) and owner.closed


class TimerLedger:
    """The loop the proxy's env sees: the real one, but every call_later is kept, so that the
    fuzzer knows what is still pending and can let time pass by running timers early."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.timers: list[Timer] = []
        self.seq = itertools.count()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loop, name)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        timer = Timer(delay, next(self.seq), callback, args)
        timer.handle = self.loop.call_later(delay, timer.run)
        self.timers.append(timer)
        return timer

    def pending(self) -> list[Timer]:
        return [t for t in self.timers if not t.done]

    def pass_time(self, seconds: float) -> None:
        """Run the pending timers due within `seconds`, soonest first (and those they set)."""
        for _ in range(100):
            due = [t for t in self.pending() if t.delay <= seconds]
            if not due:
                return
            min(due).fire()

    def clear(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
