"""The I/O half of the load generator: keep-alive connections and the open-loop driver.

Every request has a due time (`plan.schedule`) and its latency counts from that time, so time
spent waiting behind a slow server is in the percentiles (no coordinated omission). At most
`concurrency` requests are in flight. Two ways to hand due requests to connections:

  POOLED  a due request takes the first free slot and an idle connection (or opens one):
          `remora load`, as wrk2 offers load; few connections when the server keeps up.
  PINNED  request i goes out on connection i mod concurrency, after that connection's previous
          answer, each connection on its own fixed schedule (fortio -c N -qps R, Istio's
          published latency setup): the benchmarks and the chaos tests. With every request
          due at the start (`BackToBack`), `concurrency` closed loops (bench/controlplane.py).

Connections are raw sockets driven by the proxy's own HTTP/1.1 codec, so the generator spends
little CPU per request. `run_load` runs on uvloop, as the proxy does, or with `precise=True` on
an event loop over select(), whose sleeps have microsecond resolution (uvloop's and epoll's
count whole milliseconds: too coarse for 1,000 requests/s measured in tenths of a millisecond).
"""

from __future__ import annotations

import asyncio
import enum
import math
import selectors
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import uvloop

from remora.loadgen.plan import Result, Target, answered
from remora.proxy.codec.events import Data, EndOfMessage, ProtocolError, ResponseEvent, ResponseHead
from remora.proxy.codec.http1 import ResponseDecoder

READ_SIZE = 65536


class Dispatch(enum.Enum):
    POOLED = "pooled"
    PINNED = "pinned"


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends the target's request and reads answers.

    The answer is decoded as its bytes arrive (`data_received`) and timed there, when its last
    byte comes in, not when the waiting task next runs.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.decoder = ResponseDecoder()
        self.transport: asyncio.Transport | None = None
        self.reusable = True
        self.closed = False
        self.expires = math.inf  # when the answer in progress counts as timed out
        self._waiter: asyncio.Future[tuple[int, bytes, float]] | None = None
        self._status = 0
        self._body = bytearray()
        self._got_any = False

    @classmethod
    async def open(cls, target: Target, clock: Callable[[], float]) -> Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(lambda: cls(clock), target.host,
                                                     target.port)  # fmt: skip
        return connection

    async def exchange(
        self, request: bytes, method: str, *, expires: float = math.inf
    ) -> tuple[int, bytes, float]:
        """Send `request`, read the whole response: (status, body, when its end came); a
        TimeoutError when `expire()` is called first (the Watchdog does, after `expires`)."""
        if self.closed or self.transport is None:
            raise EOFError("connection closed before a response")
        self.expires = expires
        self._waiter = asyncio.get_running_loop().create_future()
        self._status, self._body, self._got_any = 0, bytearray(), False
        self.decoder.start(method=method)
        self.transport.write(request)
        return await self._waiter

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.reusable = False  # bytes nobody asked for: do not trust this connection again
            return
        self._got_any = True
        try:
            self._take(self.decoder.feed(data))
        except ProtocolError as exc:
            waiter.set_exception(exc)

    def eof_received(self) -> bool:
        waiter = self._waiter
        if waiter is not None and not waiter.done() and self._got_any:
            try:
                self._take(self.decoder.feed_eof())
            except ProtocolError as exc:
                waiter.set_exception(exc)
        return False  # close the transport: connection_lost reports what is still missing

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if exc is None and not self._got_any:
                exc = EOFError("connection closed before a response")
            elif exc is None:
                exc = ConnectionResetError("connection closed in the middle of a response")
            waiter.set_exception(exc)

    def _take(self, events: list[ResponseEvent]) -> None:
        for event in events:
            if isinstance(event, ResponseHead) and event.status >= 200:
                self._status, self.reusable = event.status, event.keep_alive
            elif isinstance(event, Data):
                self._body += event.data
            elif isinstance(event, EndOfMessage) and self._status:
                assert self._waiter is not None
                self._waiter.set_result((self._status, bytes(self._body), self.clock()))
                return

    def expire(self) -> None:
        """The answer took too long: fail it with TimeoutError and close the connection."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError("no answer in time"))
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Watchdog:
    """Times answers out: one periodic check of every connection waiting for one (every
    timeout / 20, within 10 to 100 ms), instead of a timer per request."""

    def __init__(self, timeout: float, clock: Callable[[], float]) -> None:
        self.timeout = timeout
        self.clock = clock
        self.waiting: set[Connection] = set()

    async def run(self) -> None:
        tick = max(0.01, min(0.1, self.timeout / 20))
        while True:
            await asyncio.sleep(tick)
            now = self.clock()
            for connection in [c for c in self.waiting if c.expires <= now]:
                connection.expire()


def error_word(exc: BaseException) -> str:
    """A short name for why a request got no response."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError | EOFError | BrokenPipeError):
        return "connection closed"
    if isinstance(exc, ProtocolError):
        return "bad response"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__


def _ignore(result: Result) -> None:
    pass


@dataclass
class LoadRun:
    """The open-loop driver: due times in, one Result per request out (also to `on_result`).

    `request_for(i)`: the bytes of request i when they differ from one request to the next
    (same method and server as `target`). `deadline`: seconds after the start after which no
    request is sent any more (a run bounded in time; with every request due at 0 and PINNED,
    `concurrency` closed loops). `versions`: read Result.version from JSON bodies.
    `retry_stale`: a request that finds its reused keep-alive connection closed before any
    byte of the answer is sent again once on a new connection (the server closed it while it
    sat idle, as clients such as browsers assume); off, that counts as "connection closed".
    """

    target: Target
    due: Sequence[float]
    concurrency: int
    timeout: float
    on_result: Callable[[Result], None] = _ignore
    dispatch: Dispatch = Dispatch.POOLED
    retry_stale: bool = True
    request_for: Callable[[int], bytes] | None = None
    deadline: float = math.inf
    versions: bool = True
    idle: list[Connection] = field(default_factory=list)

    async def run(self) -> tuple[list[Result], float]:
        """Send every request on time (waiting only for a free slot); results and elapsed s."""
        if self.dispatch is Dispatch.PINNED:
            return await self._run_pinned()
        clock = time.perf_counter  # uvloop's loop.time() counts whole milliseconds
        slots = asyncio.Semaphore(self.concurrency)
        results: list[Result] = []
        tasks: set[asyncio.Task[None]] = set()
        watchdog = Watchdog(self.timeout, clock)
        guard = asyncio.create_task(watchdog.run())
        start = clock()

        async def one(index: int, due_at: float) -> None:
            try:
                result = await self._request(index, due_at, watchdog, self.idle)
            finally:
                slots.release()
            results.append(result)
            self.on_result(result)

        try:
            for index, offset in enumerate(self.due):
                delay = start + offset - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                await slots.acquire()
                if clock() - start >= self.deadline:
                    slots.release()
                    break
                task = asyncio.create_task(one(index, start + offset))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            guard.cancel()
            for task in tasks:
                task.cancel()
            _close_all(self.idle)
        return results, clock() - start

    async def _run_pinned(self) -> tuple[list[Result], float]:
        """One worker per connection, each sending its share of the due times in turn; the
        connections are opened before the clock starts (one that fails is retried on use)."""
        clock = time.perf_counter
        count = max(1, min(self.concurrency, len(self.due)))
        pools: list[list[Connection]] = [[] for _ in range(count)]
        results: list[Result] = []

        async def open_into(pool: list[Connection]) -> None:
            async with asyncio.timeout(self.timeout):
                pool.append(await Connection.open(self.target, clock))

        await asyncio.gather(*(open_into(pool) for pool in pools), return_exceptions=True)
        watchdog = Watchdog(self.timeout, clock)
        guard = asyncio.create_task(watchdog.run())
        start = clock()

        async def worker(first: int) -> None:
            pool = pools[first]
            for index in range(first, len(self.due), count):
                delay = start + self.due[index] - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                if clock() - start >= self.deadline:
                    break
                result = await self._request(index, start + self.due[index], watchdog, pool)
                results.append(result)
                self.on_result(result)

        try:
            await asyncio.gather(*(worker(i) for i in range(count)))
        finally:
            guard.cancel()
            for pool in pools:
                _close_all(pool)
        return results, clock() - start

    async def _request(
        self, index: int, due_at: float, watchdog: Watchdog, idle: list[Connection]
    ) -> Result:
        """Request `index` on an idle connection from `idle` (or a new one, left there after),
        `timeout` seconds for connecting and answering."""
        clock = watchdog.clock
        began = clock()
        wait = began - due_at
        request = self.target.request if self.request_for is None else self.request_for(index)
        for _attempt in range(2):
            connection = idle.pop() if idle else None
            reused = connection is not None
            try:
                if connection is None:
                    async with asyncio.timeout(began + self.timeout - clock()):
                        connection = await Connection.open(self.target, clock)
                watchdog.waiting.add(connection)
                try:
                    status, body, done = await connection.exchange(
                        request, self.target.method, expires=began + self.timeout)
                finally:
                    watchdog.waiting.discard(connection)
            except (OSError, ProtocolError, EOFError) as exc:
                if connection is not None:
                    connection.close()
                if reused and isinstance(exc, EOFError) and self.retry_stale:
                    continue  # a stale keep-alive connection: the server closed it while idle
                return Result(clock() - due_at, error=error_word(exc), wait=wait)
            latency = done - due_at
            if connection.reusable:
                idle.append(connection)
            else:
                connection.close()
            return answered(latency, status, body, wait=wait, versions=self.versions)
        return Result(clock() - due_at, error="connection closed", wait=wait)


def _close_all(connections: list[Connection]) -> None:
    for connection in connections:
        connection.close()
    connections.clear()


def run_load(run: LoadRun, *, precise: bool = False) -> tuple[list[Result], float]:
    """Drive `run` to the end: on uvloop, as the proxy runs, or (`precise`) on a select() loop
    whose timers keep microseconds (for at most a few hundred connections)."""
    factory: Callable[[], asyncio.AbstractEventLoop] = (
        (lambda: asyncio.SelectorEventLoop(selectors.SelectSelector()))
        if precise else uvloop.new_event_loop
    )  # fmt: skip
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(run.run())
