"""A fuzzed request path (issue 21, item 5; the small budget `make test` runs): random and
mutated byte streams, split at arbitrary points, fed to a proxy on the in-memory transport.
After each input: no exception escaped the connection, every request that reached an upstream
is one an RFC 9112 server reads cleanly and was in the input, and once the client has gone
nothing is left — no connection, no request counted active, no upstream connection open."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remora.proxy.codec.events import ProtocolError, RequestHead
from remora.proxy.codec.http1 import RequestDecoder
from tests.unit.proxy.harness import ProxyHarness, service_entry

REVIEWS = service_entry("reviews")
CLUSTER = "outbound|9080||reviews.default.svc.cluster.local"
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

# requests are built from the pieces they are made of (a fuzzer that only threw random bytes
# would rarely get past the request line), then mutated
LINES = [b"GET /a HTTP/1.1\r\n", b"POST /b HTTP/1.1\r\n", b"GET /c HTTP/1.0\r\n",
         b"HEAD /d HTTP/1.1\r\n", b"PUT /e HTTP/1.1\r\n"]
HEADERS = [b"Content-Length: 3\r\n", b"Content-Length: 0\r\n", b"Transfer-Encoding: chunked\r\n",
           b"Connection: close\r\n", b"Connection: keep-alive\r\n", b"Expect: 100-continue\r\n",
           b"X-A: b\r\n", b"Transfer-Encoding: gzip, chunked\r\n", b"Host: other\r\n",
           b"Content-Length: 99\r\n", b"X-B: \x00\r\n", b"X-C: a\r\n b\r\n"]
BODIES = [b"", b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"0\r\n\r\n", b"ff\r\nab", b"3\r\nabc\r\n"]
NOISE = [b"\n", b"\r", b"\x00", b" ", b":", b"\r\n", b"GET", b"0\r\n\r\n"]

requests = st.tuples(st.sampled_from(LINES), st.lists(st.sampled_from(HEADERS), max_size=3),
                     st.sampled_from(BODIES)).map(
    lambda r: r[0] + b"Host: reviews:9080\r\n" + b"".join(r[1]) + b"\r\n" + r[2])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = b"".join(draw(st.lists(requests, min_size=1, max_size=3)))
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(data)))
        choice = draw(st.integers(0, 2))
        if choice == 0:  # insert a bit of noise
            data = data[:at] + draw(st.sampled_from(NOISE)) + data[at:]
        elif choice == 1:  # drop a few bytes
            data = data[:at] + data[at + draw(st.integers(1, 4)):]
        elif at < len(data):  # flip one byte
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    return data


streams = st.one_of(st.binary(max_size=600), requests, mutated())


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def upstream_targets(raw: bytes) -> list[str]:
    """The request targets a strict server reads from what an upstream received (it must
    read all of it cleanly)."""
    decoder = RequestDecoder(accept_http_10=True)
    events = decoder.feed(raw) if raw else []
    return [e.target for e in events if isinstance(e, RequestHead)]


def accepted_targets(pieces: list[bytes]) -> list[str]:
    """The targets of the request heads the codec accepts from the client's bytes, up to the
    first error: nothing else may reach an upstream."""
    decoder = RequestDecoder(accept_http_10=True)
    targets: list[str] = []
    for piece in pieces:
        try:
            events = decoder.feed(piece)
        except ProtocolError:
            break
        targets += [e.target for e in events if isinstance(e, RequestHead)]
        if decoder.error is not None:
            break
    return targets


async def drive(data: bytes, cuts: list[int], respond: bool) -> None:
    proxy = ProxyHarness(REVIEWS, accept_http_10=True)
    client = proxy.client()
    pieces = split(data, cuts)
    for piece in pieces:
        client.connection.data_received(piece)  # must never raise
        await proxy.settle()
        if respond:
            for upstream in proxy.network.opened:
                if not upstream.transport.closed and upstream.transport.written:
                    upstream.respond(OK)
    await proxy.settle()
    forwarded: Counter[str] = Counter()
    for upstream in proxy.network.opened:
        try:
            forwarded.update(upstream_targets(bytes(upstream.transport.written)))
        except ProtocolError as exc:
            raise AssertionError(f"forwarded what a server cannot read: {exc}") from None
    assert not forwarded - Counter(accepted_targets(pieces)), "forwarded what was not accepted"
    client.half_close()
    client.lose()
    await proxy.settle()
    assert not proxy.connections
    state = proxy.env.active.tables.states[CLUSTER]
    assert state.breaker.requests == 0 and state.breaker.pending == 0
    assert all(pool.active == 0 for pool in state.pools)
    # what is still open upstream is idle in the pool, ready for the next request
    for upstream in proxy.network.opened:
        assert upstream.transport.closed or upstream.protocol in upstream.protocol.pool.idle


@settings(max_examples=500, deadline=None, derandomize=True,  # the same inputs on every run
          suppress_health_check=[HealthCheck.too_slow])
@given(data=streams, cuts=st.lists(st.integers(0, 1 << 16), max_size=6), respond=st.booleans())
def test_any_byte_stream_is_answered_or_refused_and_leaves_nothing(
        data: bytes, cuts: list[int], respond: bool) -> None:
    asyncio.run(drive(data, cuts, respond))
