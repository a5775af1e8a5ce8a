"""Aborted uploads for bench/hostile.py: clients that send a POST head with a large
Content-Length and a few body bytes, then go; and how long the server takes to let go of what
they left behind (its descriptors, its connections to the upstream).

Four ways to go, in turn: FIN or RST (SO_LINGER 0), at once or once the answer starts (the
upstream answers such a POST at once, before its body: the upload is then in the middle of an
exchange with it), waiting at most HOLD_S for it.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from _sockets import listen_overflows, on_port, open_fds, tcp_sockets, to_port

CONTENT_LENGTH = 1_000_000  # announced, never sent (under nginx's client_max_body_size 1m)
BODY_BYTES = 16  # what is sent of it
HOLD_S = 0.1
POLL_S = 0.05
SOCKETS_EVERY = 10  # polls between two reads of the socket tables (they list every TIME_WAIT)
KINDS = (("fin", 0.0), ("rst", 0.0), ("fin", HOLD_S), ("rst", HOLD_S))


@dataclass(frozen=True)
class Held:
    """What a server holds at one moment."""

    fds: int  # its descriptors (and its children's)
    upstream_cx: int  # its connections to the upstream port, ESTABLISHED
    upstream_accepted: int  # the upstream's view: connections ESTABLISHED on its port
    close_wait: int  # CLOSE_WAIT on the server's listener: the client gone, the socket kept


@dataclass
class Recovery:
    """One server's descriptors and sockets around a burst of aborted uploads."""

    baseline: Held | None = None
    end: Held | None = None  # when the last client had gone
    final: Held | None = None  # when recovered and quiet, or when the wait ran out
    peak_fds: int = 0
    peak_upstream_cx: int = 0  # sampled every SOCKETS_EVERY polls only
    recover_s: float | None = None  # from the last client gone to fds <= baseline + slack
    quiet_s: float | None = None  # from the last client gone to the server's own view quiet
    aborts: int = 0
    answered: int = 0  # aborted once the answer had started: the upstream had the request
    kinds: Counter[str] = field(default_factory=Counter)
    client_errors: Counter[str] = field(default_factory=Counter)  # connect refused, reset...
    seconds: float = 0.0  # the burst, first connect to last close
    listen_overflows: int = 0  # connects dropped by a full accept queue (any listener) meanwhile


def _head(path: str, host: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/octet-stream"
            f"\r\nContent-Length: {CONTENT_LENGTH}\r\n\r\n").encode() + b"x" * BODY_BYTES


async def _abort_one(port: int, data: bytes, *, rst: bool, hold: float) -> bool:
    """One aborted upload; whether an answer had started when it went."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        if not hold:
            return False
        try:
            return bool(await asyncio.wait_for(reader.read(1), hold))
        except TimeoutError:
            return False
    finally:
        if rst:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.close()


async def _burst(port: int, *, path: str, host: str, count: int, concurrency: int,
                 recovery: Recovery, sample: Callable[[int], None]) -> None:  # fmt: skip
    data = _head(path, host)
    done = asyncio.Event()

    async def worker(first: int) -> None:
        for index in range(first, count, concurrency):
            kind, hold = KINDS[index % len(KINDS)]
            recovery.kinds[f"{kind}{' after the answer' if hold else ''}"] += 1
            try:
                answered = await _abort_one(port, data, rst=kind == "rst", hold=hold)
                recovery.answered += answered  # not `+= await`: that reads before it waits
            except OSError as exc:
                recovery.client_errors[type(exc).__name__] += 1
            recovery.aborts += 1

    async def poll() -> None:
        polls = 0
        while not done.is_set():
            sample(polls)
            polls += 1
            await asyncio.sleep(POLL_S)

    poller = asyncio.create_task(poll())
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    done.set()
    await poller


def abort_uploads(pid: int, *, port: int, upstream: int, upstream_pid: int, path: str,
                  host: str, count: int, concurrency: int, slack: int, wait_s: float,
                  quiet: Callable[[], bool] | None = None) -> Recovery:  # fmt: skip
    """`count` aborted uploads of `path` to 127.0.0.1:`port`, `concurrency` at a time, against
    the server `pid` whose upstream (`upstream_pid`) listens on `upstream`; then poll every
    POLL_S until the server's descriptors are back within `slack` of the baseline, then until
    `quiet()` (its own view: no request active), for at most `wait_s` after the last client
    went."""
    recovery = Recovery()

    def held() -> Held:
        fds = open_fds(pid)
        sockets = tcp_sockets(pid)
        return Held(fds=fds, upstream_cx=to_port(sockets, upstream, "ESTABLISHED"),
                    upstream_accepted=on_port(tcp_sockets(upstream_pid), upstream, "ESTABLISHED"),
                    close_wait=on_port(sockets, port, "CLOSE_WAIT"))  # fmt: skip

    baseline = recovery.baseline = held()
    recovery.peak_fds, recovery.peak_upstream_cx = baseline.fds, baseline.upstream_cx

    def sample(polls: int) -> None:
        recovery.peak_fds = max(recovery.peak_fds, open_fds(pid))
        if polls % SOCKETS_EVERY == 0:
            upstream_cx = to_port(tcp_sockets(pid), upstream, "ESTABLISHED")
            recovery.peak_upstream_cx = max(recovery.peak_upstream_cx, upstream_cx)

    overflows = listen_overflows()
    began = time.monotonic()
    asyncio.run(_burst(port, path=path, host=host, count=count, concurrency=concurrency,
                       recovery=recovery, sample=sample))  # fmt: skip
    gone = time.monotonic()
    recovery.seconds = gone - began
    end = recovery.end = held()
    recovery.peak_fds = max(recovery.peak_fds, end.fds)
    recovery.peak_upstream_cx = max(recovery.peak_upstream_cx, end.upstream_cx)
    while time.monotonic() - gone < wait_s:
        if recovery.recover_s is None and open_fds(pid) <= baseline.fds + slack:
            recovery.recover_s = time.monotonic() - gone
        if recovery.recover_s is not None and (quiet is None or quiet()):
            recovery.quiet_s = time.monotonic() - gone if quiet is not None else None
            break
        time.sleep(POLL_S)
    recovery.final = held()
    recovery.listen_overflows = listen_overflows() - overflows
    return recovery
