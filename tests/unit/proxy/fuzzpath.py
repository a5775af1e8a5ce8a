"""The fuzzed request path (issue 21, item 5): hostile bytes through a whole proxy on the
in-memory transport (harness.py), in both directions, and what must hold after each input.

- `client_case`: a client sends arbitrary bytes, split at arbitrary points; the upstream answers
  each request it reads (or not). Every request that reached an upstream is one the codec
  accepted from the client, and an independent strict server (h11) reads what the upstream got
  without error; what the client got, a strict client (h11) reads too.
- `upstream_case`: a client sends valid requests; the upstream answers with arbitrary bytes,
  split, then maybe closes, and maybe time passes (back-offs, try and route timeouts fire).
  Every response the client reads is one the codec accepted from the upstream for that request
  (status, body, no field the upstream did not send but the ones a proxy adds), or one of the
  proxy's own replies; the upstream got only the client's requests.
Both: no exception escapes the proxy's protocols, and once the client has gone nothing is left
— no client connection, no task, no request counted active or pending at a cluster or pool, no
upstream connection open but idle in its pool, no timer pending but the delayed close.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import h11
from hypothesis import strategies as st

from remora.policy.pathnorm import normalize_path
from remora.proxy.codec.events import ProtocolError, RequestHead, ResponseHead
from remora.proxy.codec.http1 import DEFAULT_MAX_HEADER_BYTES, RequestDecoder
from remora.proxy.server import DownstreamConnection
from tests.unit.proxy.fuzzkit import (
    InvariantError,
    RequestGrammar,
    ResponseCase,
    cut_lists,
    read_responses,
    request_streams,
    response_streams,
    split,
)
from tests.unit.proxy.harness import MemoryTransport, ProxyHarness, Upstream, service_entry
from tests.unit.proxy.ledger import TimerLedger

REVIEWS_HOST = "reviews.default.svc.cluster.local"
REVIEWS = service_entry("reviews")
# the upstream direction retries and times out, so that hostile answers reach call.py's paths
RETRYING = REVIEWS + f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [{REVIEWS_HOST}]
  http:
  - route: [{{destination: {{host: {REVIEWS_HOST}}}}}]
    timeout: 30s
    retries: {{attempts: 2, retryOn: "5xx,reset,connect-failure", perTryTimeout: 10s}}
"""
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
OK_TO_HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
# the replies the proxy makes itself (Envoy's local replies) when an upstream fails it
LOCAL_STATUSES = frozenset({502, 503, 504})
LOCAL_BODIES = (b"upstream ", b"no healthy upstream")
# fields a proxy adds to a response it forwards
ADDED = frozenset({"connection", "transfer-encoding", "content-length", "date", "server",
                   "x-envoy-upstream-service-time", "x-envoy-overloaded", "set-cookie"})
LATER = 60.0  # seconds "time passes" covers: the try and route timeouts of RETRYING fire


Drive = Callable[[ProxyHarness, TimerLedger, Any], Coroutine[Any, Any, str]]  # an input's run


def fresh(yaml: str) -> tuple[ProxyHarness, TimerLedger]:
    """A proxy of `yaml` whose timers a ledger keeps (inside a running loop)."""
    proxy = ProxyHarness(yaml, accept_http_10=True)
    ledger = TimerLedger(proxy.env.loop)
    proxy.env.loop = ledger  # type: ignore[assignment]
    return proxy, ledger


def reuse(proxy: ProxyHarness, ledger: TimerLedger) -> None:
    """Make a proxy that passed `nothing_left` ready for the next input: idle upstream
    connections closed, the network and timers forgotten (compiling a proxy costs more than
    an input)."""
    proxy.env.pools.close_idle()
    proxy.network.opened.clear()
    ledger.clear()


# -- what strict peers read -------------------------------------------------------------------
@dataclass(frozen=True)
class Received:
    method: str
    target: str
    body: bytes | None  # None: the message had not ended


def server_reads(raw: bytes) -> list[Received]:
    """The requests an independent strict server (h11) reads from what an upstream received;
    it answers each with an empty 200, as an upstream would before the next one."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=2 * DEFAULT_MAX_HEADER_BYTES)
    conn.receive_data(raw)
    out: list[Received] = []
    head: h11.Request | None = None
    body = bytearray()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise InvariantError(f"an upstream received what a server cannot read: {exc}; "
                                 f"{raw[:300]!r}") from None
        if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
            break
        if event is h11.PAUSED:
            conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
            conn.send(h11.EndOfMessage())
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                if conn.trailing_data[0]:
                    raise InvariantError(f"an upstream received bytes after a request that closes: "
                                         f"{conn.trailing_data[0][:100]!r}")
                break
            conn.start_next_cycle()
        elif isinstance(event, h11.Request):
            head = event
            body.clear()
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            out.append(Received(head.method.decode(), head.target.decode("latin-1"),
                                bytes(body)))
            head = None
    if head is not None:
        out.append(Received(head.method.decode(), head.target.decode("latin-1"), None))
    return out


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    names: frozenset[str]


def client_reads(raw: bytes, methods: list[str], *, closed: bool) -> list[Answer]:
    """The final responses a strict client (h11) reads from what the proxy wrote, for requests
    of `methods` (a refusal after them reads as the answer to one more GET); the last may be
    cut off by a close."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=2 * DEFAULT_MAX_HEADER_BYTES)
    answers: list[Answer] = []
    fed = False
    for method in [*methods, "GET"]:
        conn.send(h11.Request(method=method, target="/", headers=[("host", "fuzz")]))
        conn.send(h11.EndOfMessage())
        if not fed:
            if raw:
                conn.receive_data(raw)
            if closed:
                conn.receive_data(b"")  # h11's end of stream
            fed = True
        head: h11.Response | None = None
        body = bytearray()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if closed and (head is not None or "ConnectionClosed" in str(exc)):
                    return answers  # closed without (all of) an answer
                raise InvariantError(f"the client received what it cannot read: {exc}; "
                                     f"{raw[:300]!r}") from None
            if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return answers
            if isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                names = frozenset(k.decode().lower() for k, _ in head.headers)
                answers.append(Answer(head.status_code, bytes(body), names))
                break
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            if conn.trailing_data[0]:
                raise InvariantError(f"the client received bytes after a response that closes: "
                                     f"{conn.trailing_data[0][:100]!r}")
            return answers
        conn.start_next_cycle()
    if conn.trailing_data[0]:
        raise InvariantError(f"the client received more responses than requests: "
                             f"{conn.trailing_data[0][:100]!r}")
    return answers


def origin_form(target: str) -> str:
    """The path and query a proxy forwards for `target`: of an absolute-form target, what
    follows its authority (RFC 9112 §3.2.2, RFC 3986 §3.2: the authority ends at /, ? or #)."""
    for scheme in ("http://", "https://"):
        if target[:len(scheme)].lower() == scheme:
            rest = target[len(scheme):]
            ends = [i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0]
            path = rest[min(ends):] if ends else ""
            return path if path.startswith("/") else "/" + path
    return target


def accepted(pieces: list[bytes]) -> list[RequestHead]:
    """The request heads the codec accepts from the client's bytes, up to the first error."""
    decoder = RequestDecoder(accept_http_10=True)
    grammar = RequestGrammar(accept_http_10=True, max_bytes=DEFAULT_MAX_HEADER_BYTES,
                             max_count=100)
    heads: list[RequestHead] = []
    for piece in pieces:
        try:
            events = decoder.feed(piece)
        except ProtocolError:
            break
        for event in events:
            if grammar.closed:
                break  # the proxy closes after that request (see fuzzkit's findings)
            grammar.event(event)
            if isinstance(event, RequestHead):
                heads.append(event)
        if decoder.error is not None or grammar.closed:
            break
    return heads


# -- after the client has gone ------------------------------------------------------------
def nothing_left(proxy: ProxyHarness, ledger: TimerLedger) -> None:
    if proxy.connections:
        raise InvariantError("a client connection is still open after the client left")
    if proxy.tasks:
        raise InvariantError(f"tasks still running after the client left: {len(proxy.tasks)}")
    for name, state in proxy.env.active.tables.states.items():
        breaker = state.breaker
        if breaker.requests or breaker.pending or breaker.retries:
            raise InvariantError(f"a cluster counts requests after the client left: {name} "
                                 f"requests={breaker.requests} pending={breaker.pending} "
                                 f"retries={breaker.retries}")
        open_ = sum(c.breaker is breaker for pool in state.pools for c in pool.connections)
        if breaker.connections != open_:
            raise InvariantError(f"a cluster counts connections that are not open: {name} counts "
                                 f"{breaker.connections}, {open_} open")
    for upstream in proxy.network.opened:
        connection, pool = upstream.protocol, upstream.protocol.pool
        if pool.active or pool.waiters:
            raise InvariantError(f"a pool counts requests after the client left: active="
                                 f"{pool.active} waiters={len(pool.waiters)}")
        if connection.closed and not upstream.transport.closed:
            raise InvariantError("an upstream connection is closed but its socket is not")
        if not upstream.transport.closed and (connection not in pool.idle
                                              or connection.sink is not None):
            raise InvariantError("an upstream connection is open, and not idle in its pool")
    pending = [t for t in ledger.pending() if not t.benign]
    if pending:
        names = sorted({getattr(t.callback, "__qualname__", repr(t.callback)) for t in pending})
        raise InvariantError(f"timers still pending after the client left: {', '.join(names)}")


async def settled(proxy: ProxyHarness) -> None:
    """Let the connects the proxy spawned finish. Nothing else in the path waits for the loop
    (the in-memory transports act at once), so without them the loop is not turned: an input
    cut at every byte would spend most of its time there."""
    for _ in range(10):
        if not proxy.tasks:
            return
        await proxy.settle()


async def client_leaves(proxy: ProxyHarness, connection: DownstreamConnection,
                        transport: MemoryTransport) -> None:
    """FIN, then the socket goes, as a client that leaves does."""
    if connection.eof_received() and not transport.closed:
        await settled(proxy)
    transport.closed = True
    connection.connection_lost(None)
    await settled(proxy)


# -- a hostile client ---------------------------------------------------------------------
@dataclass(frozen=True)
class ClientCase:
    """Client bytes split at `cuts`; `respond`: the upstream answers each request it reads."""

    data: bytes
    cuts: tuple[int, ...] = ()
    respond: bool = True


def answer_requests(proxy: ProxyHarness, answered: dict[int, tuple[int, int]]) -> bool:
    """Each upstream answers the next request it has read completely and not answered (OK);
    `answered`: for each, how much it had read when last looked at, and how many answered.
    Whether any answered."""
    before = sum(count for _, count in answered.values())
    for index, upstream in enumerate(proxy.network.opened):
        size, count = answered.get(index, (0, 0))
        if upstream.transport.closed or len(upstream.transport.written) == size:
            continue
        done = [r for r in server_reads(bytes(upstream.transport.written)) if r.body is not None]
        if len(done) > count:
            upstream.respond(OK_TO_HEAD if done[count].method == "HEAD" else OK)
            count += 1
        answered[index] = (len(upstream.transport.written) if len(done) == count else -1, count)
    return sum(count for _, count in answered.values()) > before


async def client_case(proxy: ProxyHarness, ledger: TimerLedger, case: ClientCase) -> str:
    """Run one hostile client; returns the statuses it was answered with (the outcome)."""
    client = proxy.client()
    pieces = split(case.data, case.cuts)
    answered: dict[int, tuple[int, int]] = {}
    for piece in pieces:
        client.connection.data_received(piece)
        await settled(proxy)
        if case.respond:
            answer_requests(proxy, answered)
            await settled(proxy)
    for _ in range(8):  # the rest of what was pipelined
        if not case.respond or not answer_requests(proxy, answered):
            break
        await settled(proxy)
    heads = accepted(pieces)
    forwarded: Counter[tuple[str, str | None]] = Counter()
    for upstream in proxy.network.opened:
        received = server_reads(bytes(upstream.transport.written))
        forwarded.update((r.method, r.target) for r in received)
    mode = proxy.snapshot.mesh.path_normalization
    sent = Counter((h.method, normalize_path(origin_form(h.target), mode)) for h in heads)
    if forwarded - sent:
        raise InvariantError(f"forwarded what the codec did not accept: {dict(forwarded - sent)}")
    answers = client_reads(bytes(client.transport.written), [h.method for h in heads],
                           closed=client.transport.closed)
    await client_leaves(proxy, client.connection, client.transport)
    nothing_left(proxy, ledger)
    return outcome(answers)


# -- a hostile upstream -------------------------------------------------------------------
# what the client sends (valid): method, target, bytes
CLIENT_REQUESTS: list[tuple[str, str, bytes]] = [
    ("GET", "/r0", b"GET /r0 HTTP/1.1\r\nHost: reviews:9080\r\n\r\n"),
    ("HEAD", "/r1", b"HEAD /r1 HTTP/1.1\r\nHost: reviews:9080\r\n\r\n"),
    ("POST", "/r2", b"POST /r2 HTTP/1.1\r\nHost: reviews:9080\r\nContent-Length: 3\r\n\r\nabc"),
    ("POST", "/r3", b"POST /r3 HTTP/1.1\r\nHost: reviews:9080\r\nTransfer-Encoding: chunked\r\n"
                    b"\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("GET", "/r4", b"GET /r4 HTTP/1.0\r\nHost: reviews:9080\r\n\r\n"),
    ("PUT", "/r5", b"PUT /r5 HTTP/1.1\r\nHost: reviews:9080\r\nExpect: 100-continue\r\n"
                   b"Content-Length: 2\r\n\r\nab"),
    ("GET", "/r6", b"GET /r6 HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n"),
]


@dataclass(frozen=True)
class UpstreamCase:
    """Valid requests (indexes into CLIENT_REQUESTS); the upstream's answer, split at `cuts`,
    on whichever connection carries a request; `close`: the upstream closes after it; `wait`:
    time passes before the client goes."""

    requests: tuple[int, ...]
    data: bytes
    cuts: tuple[int, ...] = ()
    close: bool = False
    wait: bool = False


def carrying(proxy: ProxyHarness) -> Upstream | None:
    """The connection a request is on, else the last one still open (an idle one)."""
    open_ = [u for u in proxy.network.opened if not u.transport.closed]
    candidates = [u for u in open_ if u.protocol.sink is not None] or open_
    return candidates[-1] if candidates else None


async def upstream_case(proxy: ProxyHarness, ledger: TimerLedger, case: UpstreamCase) -> str:
    """Run one hostile upstream; returns the statuses the client was answered with."""
    client = proxy.client()
    requests = [CLIENT_REQUESTS[i % len(CLIENT_REQUESTS)] for i in case.requests]
    client.connection.data_received(b"".join(r[2] for r in requests))
    await settled(proxy)
    delivered: dict[int, list[bytes]] = {}
    for piece in split(case.data, case.cuts):
        upstream = carrying(proxy)
        if upstream is None:
            break
        delivered.setdefault(proxy.network.opened.index(upstream), []).append(piece)
        upstream.respond(piece)
        await settled(proxy)
    if case.close:
        for upstream in proxy.network.opened:
            if not upstream.transport.closed:
                upstream.close()
        await settled(proxy)
    if case.wait:
        ledger.pass_time(LATER)
        await settled(proxy)
    said: list[Answer] = []  # the responses the upstream began, ended or not
    ended = False  # one it ended that no retry replaces (retryOn 5xx)
    for index, upstream in enumerate(proxy.network.opened):
        received = server_reads(bytes(upstream.transport.written))
        if any((r.method, r.target) not in {r[:2] for r in requests} for r in received):
            raise InvariantError(f"an upstream received what the client did not send: {received}")
        pieces = delivered.get(index, [])
        response = ResponseCase(tuple(r.method for r in received), (b"".join(pieces),),
                                eof=upstream.transport.closed and case.close)
        read, _ = read_responses(response, [pieces] if pieces else [])
        heard = read.messages + ([read.partial] if read.partial is not None else [])
        said += [Answer(head.status, body, frozenset(k for k, _ in head.headers))
                 for head, body, _ in heard if isinstance(head, ResponseHead)]
        ended = ended or any(isinstance(head, ResponseHead) and head.status < 500
                             for head, _, _ in read.messages)
    answers = client_reads(bytes(client.transport.written), [r[0] for r in requests],
                           closed=client.transport.closed)
    if len(answers) > len(requests):
        raise InvariantError(f"the client got {len(answers)} responses to {len(requests)} requests")
    if ended and not answers and not client.transport.closed:
        raise InvariantError("the upstream answered and the client got nothing")
    for got, (method, _, _) in zip(answers, requests, strict=False):
        if not forwarded_or_local(got, said, head=method == "HEAD"):
            raise InvariantError(f"the client got a response the upstream did not send: "
                                 f"{got.status} {got.body[:60]!r} {sorted(got.names)}")
    await client_leaves(proxy, client.connection, client.transport)
    nothing_left(proxy, ledger)
    return outcome(answers)


def outcome(answers: list[Answer]) -> str:
    """The statuses the client got, with the first line of the last one's body if an error."""
    text = " ".join(str(a.status) for a in answers) or "no answer"
    if answers and answers[-1].status >= 400:
        text += f" ({answers[-1].body[:40].decode('latin-1').partition(chr(10))[0]})"
    return text


def forwarded_or_local(got: Answer, said: list[Answer], *, head: bool) -> bool:
    """`got` is one of the upstream's responses, or a local reply (bodiless to HEAD)."""
    if got.status in LOCAL_STATUSES and (not got.body if head
                                         else got.body.startswith(LOCAL_BODIES)):
        return True
    # a body the close delimits may have been cut: then it is the start of what was said
    cut = not {"content-length", "transfer-encoding"} & got.names
    return any(got.status == s.status and got.names - ADDED <= s.names
               and (s.body.startswith(got.body) if cut else got.body == s.body) for s in said)


client_cases = st.builds(ClientCase, request_streams, cut_lists, st.booleans())
upstream_cases = st.builds(
    UpstreamCase, st.lists(st.integers(0, len(CLIENT_REQUESTS) - 1), min_size=1,
                           max_size=2).map(tuple),
    response_streams, cut_lists, st.booleans(), st.booleans())
