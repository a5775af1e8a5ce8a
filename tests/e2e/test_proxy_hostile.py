"""Hostile clients against a real `remora proxy` (issue 21, item 6): limits, slow clients,
pipelining, protocol confusion and aborted exchanges, each case named. Every case checks what
reached the upstream (an upstream that records the raw bytes it receives), what the client got
(Envoy's answer, or what docs/proxy.md says where Remora differs), and that afterwards the proxy
still serves and holds nothing the case left behind: no active request, no client connection,
no descriptor beyond the connections it counts. Smuggling is in test_proxy_smuggling."""

from __future__ import annotations

import contextlib
import select
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.meshkit import (
    Proxy,
    RecordingUpstream,
    closed_by_peer,
    connect,
    exchange,
    open_fds,
    read_response,
    read_until_closed,
    recording_upstream,
    rss_bytes,
    run_proxy,
    send_and_read,
    service_yaml,
    wait_access_record,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)

HOST = "reviews:9080"
KIB = 1024
HEAD_LIMIT = 60 * KIB  # Envoy's max_request_headers_kb default


# the proxy's census ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Census:
    """What the proxy holds: its descriptors, and the connections and requests its admin counts."""

    fds: int
    upstream_connections: int
    client_connections: int
    active_requests: int

    @property
    def unaccounted(self) -> int:
        """Descriptors that are no connection the proxy counts (listeners, logs, its loop)."""
        return self.fds - self.upstream_connections - self.client_connections


def census(proxy: Proxy) -> Census:
    fds = open_fds(proxy.process.pid)
    rows = httpx.get(f"{proxy.admin_url}/clusters?format=json", timeout=5).json()
    upstream = active = 0
    for row in rows["cluster_statuses"]:
        breaker = row["circuit_breakers"]
        active += breaker["rq_active"] + breaker["rq_pending"]
        for host in row["hosts"]:
            upstream += host["cx_active"]
            active += host["rq_active"]
    metrics = httpx.get(f"{proxy.admin_url}/stats/prometheus", timeout=5).text
    clients = sum(int(float(line.rsplit(" ", 1)[1])) for line in metrics.splitlines()
                  if line.startswith("envoy_listener_downstream_cx_active{"))
    return Census(fds, upstream, clients, active)


def leftovers(now: Census, baseline: Census) -> dict[str, int]:
    """What the proxy still holds beyond its baseline once every client has gone."""
    extra = {"active requests": now.active_requests,
             "client connections": now.client_connections,
             "descriptors": now.unaccounted - baseline.unaccounted}
    return {name: count for name, count in extra.items() if count > 0}


# the battery -------------------------------------------------------------------------------------
@dataclass
class Battery:
    proxy: Proxy
    upstream: RecordingUpstream
    access_log: Path
    baseline: Census

    @property
    def port(self) -> int:
        return self.proxy.outbound


def settled(proxy: Proxy, baseline: Census | None = None) -> Census:
    """The census once the clients are gone: no client connection and no active request left
    (and, given a baseline, no more descriptors than it had), or the last one after 5 s."""
    seen = [census(proxy)]

    def quiet() -> bool:
        now = seen[-1] = census(proxy)
        return not leftovers(now, baseline or now)

    with contextlib.suppress(AssertionError):
        wait_for(quiet, timeout=5)
    return seen[-1]


@contextlib.contextmanager
def battery_proxy(upstream: RecordingUpstream, tmp: Path, *args: str) -> Iterator[Battery]:
    config = tmp / "config"
    config.mkdir()
    (config / "reviews.yaml").write_text(service_yaml("reviews", 9080, [(upstream.port, {})]))
    access_log = tmp / "access.log"
    with run_proxy(config, "--access-log", str(access_log), *args, tmp=tmp) as proxy:
        assert exchange(proxy.outbound, request("/warm")).status == 200
        wait_access_record(access_log, lambda r: r.get("path") == "/warm")  # the log is open
        yield Battery(proxy, upstream, access_log, settled(proxy))
        assert proxy.process.poll() is None, proxy.logs()


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    with recording_upstream() as recording:
        yield recording


@pytest.fixture(scope="module")
def battery(upstream: RecordingUpstream,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Battery]:
    """A proxy with its default timeouts, HTTP/1.0 refused as Envoy does."""
    with battery_proxy(upstream, tmp_path_factory.mktemp("hostile")) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def impatient(upstream: RecordingUpstream,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Battery]:
    """A proxy that gives a client 1 s for its head and lets a request sit still for 1 s."""
    with battery_proxy(upstream, tmp_path_factory.mktemp("impatient"),
                       "--headers-timeout", "1", "--stream-idle-timeout", "1") as proxy:
        yield proxy


def request(path: str, *, method: str = "GET", headers: str = "", version: str = "HTTP/1.1",
            body: bytes = b"") -> bytes:
    return f"{method} {path} {version}\r\nHost: {HOST}\r\n{headers}\r\n".encode() + body


def assert_healthy_and_leak_free(battery: Battery) -> None:
    """After a case: a plain request still goes through, and once its client has gone the
    proxy is back to its baseline (no request, client connection or descriptor left)."""
    proxy = battery.proxy
    assert proxy.process.poll() is None, proxy.logs()
    response = exchange(battery.port, request("/healthy"))
    assert (response.status, response.body) == (200, b"/healthy")
    assert leftovers(settled(proxy, battery.baseline), battery.baseline) == {}


def assert_refused(battery: Battery, data: bytes, status: int) -> None:
    """The proxy answers `status` with `connection: close`, closes, and forwards nothing."""
    recording = battery.upstream.recording
    mark = recording.mark()
    with connect(battery.port) as sock:
        sock.sendall(data)
        response = read_response(sock.makefile("rb"))
        assert (response.status, response.header("connection")) == (status, "close")
        assert closed_by_peer(sock, timeout=5)
    assert recording.raw_since(mark) == b""
    assert_healthy_and_leak_free(battery)


def request_dc_logged(battery: Battery, path: str) -> dict[str, object]:
    record = wait_access_record(battery.access_log, lambda r: r.get("path") == path)
    assert record["response_flags"] == "DC", record
    return record


# limits ------------------------------------------------------------------------------------------
def head_of(size: int, path: str) -> bytes:
    """A GET whose head is `size` bytes in all, most of them one header's value."""
    start, end = request(path, headers="X-Big: ").removesuffix(b"\r\n"), b"\r\n\r\n"
    return start + b"a" * (size - len(start) - len(end)) + end


def many_headers(path: str, count: int) -> bytes:
    return request(path, headers="".join(f"X-H{index}: v\r\n" for index in range(count)))


LIMIT_REFUSALS = {
    # Envoy's max_headers_count (100): Host and 100 more is one too many → 431
    "101-headers": (many_headers("/limit", 100), 431),
    # Envoy's max_request_headers_kb (60 KiB) → 431, for a header, for the request line, and
    # for a head a byte over (Envoy's balsa parser counts the head's bytes, line ends too)
    "header-of-61-kib": (request("/limit", headers=f"X-Big: {'a' * 61 * KIB}\r\n"), 431),
    "url-of-61-kib": (request("/" + "a" * 61 * KIB), 431),
    "head-a-byte-over-60-kib": (head_of(HEAD_LIMIT + 1, "/limit"), 431),
    # a chunk size of 17 hex digits does not fit 64 bits (Envoy's balsa: CHUNK_LENGTH_OVERFLOW)
    "chunk-size-over-64-bits": (request("/limit", method="POST",
                                        headers="Transfer-Encoding: chunked\r\n")
                                + b"10000000000000000\r\nabc\r\n0\r\n\r\n", 400),
    # 2^64 does not fit a 64-bit length either (balsa: CONTENT_LENGTH_OVERFLOW)
    "content-length-2^64": (request("/limit", method="POST",
                                    headers=f"Content-Length: {2 ** 64}\r\n", body=b"abc"), 400),
}


@pytest.mark.parametrize("name", list(LIMIT_REFUSALS))
def test_a_request_over_a_limit_is_refused_and_nothing_reaches_the_upstream(
        battery: Battery, name: str) -> None:
    data, status = LIMIT_REFUSALS[name]
    assert_refused(battery, data, status)


LIMIT_PASSES = {
    # Host and 99 more: at Envoy's max_headers_count, not over it
    "100-headers": (many_headers("/limit/100-headers", 99), b"X-H98: v\r\n"),
    # 60 KiB of head, request line and line ends counted: at the limit, not over it
    "head-of-60-kib": (head_of(HEAD_LIMIT, "/limit/head-of-60-kib"), b"a" * 61_000),
}


@pytest.mark.parametrize("name", list(LIMIT_PASSES))
def test_a_request_at_a_limit_reaches_the_upstream_whole(battery: Battery, name: str) -> None:
    data, part = LIMIT_PASSES[name]
    path = f"/limit/{name}"
    recording = battery.upstream.recording
    mark = recording.mark()
    response = exchange(battery.port, data)
    assert (response.status, response.body) == (200, path.encode())
    assert recording.completed_since(mark) == [path]
    assert part in recording.raw_since(mark)
    assert_healthy_and_leak_free(battery)


def test_trailers_over_60_kib_after_a_forwarded_head_are_431_and_the_upstream_request_reset(
        battery: Battery) -> None:
    """Envoy's max_request_headers_kb bounds trailers too: the head and the first chunk have
    gone upstream when the trailers break the limit; the client gets 431 and the upstream
    request is reset (its connection closed, the request never complete)."""
    recording = battery.upstream.recording
    mark = recording.mark()
    with connect(battery.port) as sock:
        sock.sendall(request("/trailers", method="POST", headers="Transfer-Encoding: chunked\r\n")
                     + b"3\r\nabc\r\n")
        wait_for(lambda: recording.targets_since(mark) == ["/trailers"], timeout=5)
        sock.sendall(b"0\r\nX-Trailer: " + b"t" * 61 * KIB + b"\r\n\r\n")
        response = read_response(sock.makefile("rb"))
        assert (response.status, response.header("connection")) == (431, "close")
        assert closed_by_peer(sock, timeout=5)
    upstream_side = recording.connection_with("/trailers")
    wait_for(lambda: upstream_side.ended is not None, timeout=5)
    assert upstream_side.raw.endswith(b"\r\n3\r\nabc\r\n")  # the chunk came, nothing after it
    assert recording.completed_since(mark) == []
    assert_healthy_and_leak_free(battery)


HUGE_BUT_VALID = {
    # 2^64 - 1 still fits balsa's chunk length: a chunk like any other, re-framed as it comes
    "chunk-size-2^64-1": (request("/huge/chunk-size", method="POST",
                                  headers="Transfer-Encoding: chunked\r\n")
                          + b"ffffffffffffffff\r\nabc", b"\r\n\r\n3\r\nabc\r\n"),
    # 2^63 fits an unsigned 64-bit length, as in Envoy: forwarded as sent
    "content-length-2^63": (request("/huge/content-length", method="POST",
                                    headers=f"Content-Length: {2 ** 63}\r\n", body=b"abc"),
                            f"content-length: {2 ** 63}\r\n".encode()),
}


@pytest.mark.parametrize("name", list(HUGE_BUT_VALID))
def test_a_length_near_2_64_streams_and_ends_with_the_client(battery: Battery, name: str) -> None:
    """A size that fits 64 bits is a body the client is still sending: it streams upstream,
    nothing after it is read as a request, and when the client goes the exchange ends (DC)."""
    data, forwarded = HUGE_BUT_VALID[name]
    path = data.split(b" ")[1].decode()
    recording = battery.upstream.recording
    mark = recording.mark()
    with connect(battery.port) as sock:
        sock.sendall(data)
        wait_for(lambda: forwarded in recording.raw_since(mark), timeout=5,
                 message=f"{forwarded!r} upstream")
        sock.shutdown(socket.SHUT_WR)
        assert read_until_closed(sock) == b""  # no answer: the request never ended
    upstream_side = recording.connection_with(path)
    wait_for(lambda: upstream_side.ended is not None, timeout=5)
    assert recording.targets_since(mark) == [path]
    assert recording.completed_since(mark) == []
    request_dc_logged(battery, path)
    assert_healthy_and_leak_free(battery)


# slow clients ------------------------------------------------------------------------------------
def drip(sock: socket.socket, data: bytes, *, interval: float) -> bytes | None:
    """Send `data` a byte at a time, `interval` apart, until the peer closes: what it sent
    before closing, or None if all of `data` went and the peer had not closed."""
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return b""
        readable, _, _ = select.select([sock], [], [], interval)
        if readable:
            return read_until_closed(sock)
    return None


def test_slowloris_is_closed_before_its_head_completes_and_nothing_reaches_the_upstream(
        impatient: Battery) -> None:
    """Envoy's request_headers_timeout: a head sent a byte every 20 ms (90 headers: 30 s of
    it) is cut when the 1 s for the head runs out, with Envoy's 408 "request header timeout"
    (conn_manager_impl onRequestHeaderTimeout), then the connection closes."""
    recording = impatient.upstream.recording
    mark = recording.mark()
    slow_head = request("/slowloris", headers="".join(f"X-Slow-{n}: b\r\n" for n in range(90)))
    with connect(impatient.port) as sock:
        answer = drip(sock, slow_head, interval=0.02)
    assert answer is not None and answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert answer.endswith(b"\r\n\r\nrequest header timeout")
    assert recording.raw_since(mark) == b""
    assert_healthy_and_leak_free(impatient)


def test_a_stalled_body_is_408_and_its_upstream_request_is_reset(impatient: Battery) -> None:
    """Envoy's stream_idle_timeout: a body that stops coming is answered 408 "stream timeout"
    (flag SI) and the upstream connection carrying the request is closed."""
    recording = impatient.upstream.recording
    mark = recording.mark()
    with connect(impatient.port) as sock:
        sock.sendall(request("/stalled", method="POST", headers="Content-Length: 100\r\n",
                             body=b"only ten b"))
        response = read_response(sock.makefile("rb"))
        assert (response.status, response.body) == (408, b"stream timeout")
        assert closed_by_peer(sock, timeout=5)
    upstream_side = recording.connection_with("/stalled")
    wait_for(lambda: upstream_side.ended is not None, timeout=5)
    assert upstream_side.raw.endswith(b"\r\n\r\nonly ten b")
    assert recording.completed_since(mark) == []
    record = wait_access_record(impatient.access_log, lambda r: r.get("path") == "/stalled")
    assert (record["response_code"], record["response_flags"]) == (408, "SI")
    assert_healthy_and_leak_free(impatient)


def test_a_partial_head_pipelined_behind_a_request_gets_the_headers_timeout(
        impatient: Battery) -> None:
    """Slowloris behind a valid request: the start of a second head, in the same segment as a
    complete request, must finish within the headers timeout (1 s) like any other head."""
    recording = impatient.upstream.recording
    mark = recording.mark()
    with connect(impatient.port) as sock:
        sock.sendall(request("/pipelined/first") + b"GET /pipelined/partial HTTP/1.1\r\nHost: ")
        response = read_response(sock.makefile("rb"))
        assert (response.status, response.body) == (200, b"/pipelined/first")
        assert closed_by_peer(sock, timeout=4)
    assert recording.targets_since(mark) == ["/pipelined/first"]
    assert_healthy_and_leak_free(impatient)


def slow_reader(port: int) -> socket.socket:
    """A connection whose client takes 64 KiB at most into its receive buffer, and reads none."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * KIB)  # before the handshake
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    return sock


def test_a_connection_cut_while_its_client_reads_nothing_is_released(impatient: Battery) -> None:
    """The stream idle timeout cuts a response its client does not read (SI, the upstream
    connection closed); the proxy must then let go of the client connection even though the
    client keeps it open and unread."""
    path = f"/big/{100 << 20}"
    recording = impatient.upstream.recording
    with slow_reader(impatient.port) as sock:
        sock.sendall(request(path))
        record = wait_access_record(impatient.access_log, lambda r: r.get("path") == path)
        assert record["response_flags"] == "SI"
        upstream_side = recording.connection_with(path)
        wait_for(lambda: upstream_side.ended is not None, timeout=15)
        assert upstream_side.ended == "reset"
        assert settled(impatient.proxy).client_connections == 0, (
            "the proxy still holds the connection of a client that reads nothing")
    assert_healthy_and_leak_free(impatient)


def settles(read: Callable[[], int], *, interval: float, timeout: float) -> int:
    """The value `read` stops at: the same twice, `interval` apart."""
    values = [read()]

    def same() -> bool:
        values.append(read())
        return values[-1] == values[-2]

    wait_for(same, timeout=timeout, interval=interval, message="a value that stops changing")
    return values[-1]


def test_a_client_that_reads_nothing_costs_the_proxy_a_bounded_buffer(battery: Battery) -> None:
    """Back-pressure: the upstream offers 200 MiB to a client that reads none of it; the proxy
    stops reading the upstream once its bounded buffer is full, so the upstream stalls far
    short of 200 MiB and the proxy's memory stays where it was. When the client goes, the
    upstream connection is closed (DC)."""
    total = 200 << 20
    path = f"/big/{total}"
    recording = battery.upstream.recording
    pid = battery.proxy.process.pid
    before, sent_before = rss_bytes(pid), recording.sent
    with slow_reader(battery.port) as sock:
        sock.sendall(request(path))
        wait_for(lambda: recording.sent > sent_before, timeout=10, message="the upstream sending")
        stalled_at = settles(lambda: recording.sent - sent_before, interval=0.5, timeout=30)
        grown = rss_bytes(pid) - before
    assert stalled_at < total // 4, f"the upstream sent {stalled_at} bytes nobody read"
    assert grown < 50 << 20, f"the proxy grew by {grown} bytes"
    upstream_side = recording.connection_with(path)
    wait_for(lambda: upstream_side.ended is not None, timeout=15)
    assert upstream_side.ended == "reset"  # its writes failed: the proxy closed it
    request_dc_logged(battery, path)
    assert_healthy_and_leak_free(battery)


# pipelining --------------------------------------------------------------------------------------
def pipelined(battery: Battery, data: bytes, count: int) -> list[tuple[int, bytes]]:
    """Send `data` in one write; the status and body of the `count` responses, in order."""
    with connect(battery.port) as sock:
        sock.sendall(data)
        reader = sock.makefile("rb")
        return [(r.status, r.body) for r in (read_response(reader) for _ in range(count))]


def test_pipelined_requests_in_one_write_are_answered_in_order(battery: Battery) -> None:
    """RFC 9112 §9.3.2: 20 requests in one segment, 20 responses in their order."""
    paths = [f"/pipelined/{index}" for index in range(20)]
    recording = battery.upstream.recording
    mark = recording.mark()
    answers = pipelined(battery, b"".join(request(path) for path in paths), len(paths))
    assert answers == [(200, path.encode()) for path in paths]
    assert recording.completed_since(mark) == paths
    assert_healthy_and_leak_free(battery)


def test_a_valid_request_then_a_malformed_one_are_answered_200_then_400_and_closed(
        battery: Battery) -> None:
    """docs/proxy.md: a broken request pipelined behind a valid one, in the same segment, is
    refused after the valid one's answer; only the valid one reaches the upstream."""
    recording = battery.upstream.recording
    mark = recording.mark()
    folded = request("/pipelined/folded", headers="X-Folded: a\r\n b\r\n")  # obs-fold: 400
    with connect(battery.port) as sock:
        sock.sendall(request("/pipelined/valid") + folded)
        reader = sock.makefile("rb")
        first, second = read_response(reader), read_response(reader)
        assert closed_by_peer(sock, timeout=5)
    assert (first.status, first.body) == (200, b"/pipelined/valid")
    assert (second.status, second.header("connection")) == (400, "close")
    assert recording.targets_since(mark) == ["/pipelined/valid"]
    assert_healthy_and_leak_free(battery)


def test_a_request_pipelined_behind_a_slow_response_waits_for_it(battery: Battery) -> None:
    """Envoy serves an HTTP/1.1 connection's requests one at a time: the second goes upstream
    only once the first (0.5 s slow) is answered, and the answers keep their order."""
    recording = battery.upstream.recording
    mark = recording.mark()
    answers = pipelined(battery, request("/slow/0.5") + request("/pipelined/after-slow"), 2)
    assert answers == [(200, b"/slow/0.5"), (200, b"/pipelined/after-slow")]
    events = recording.events_since(mark)
    assert events.index(("answered", "/slow/0.5")) < events.index(
        ("head", "/pipelined/after-slow")), events
    assert_healthy_and_leak_free(battery)


def test_requests_pipelined_after_connection_close_are_not_forwarded(battery: Battery) -> None:
    """RFC 9112 §9.6: after a request with `Connection: close` the server reads no more."""
    recording = battery.upstream.recording
    mark = recording.mark()
    closing = request("/pipelined/closing", headers="Connection: close\r\n")
    answer = send_and_read(battery.port, closing + request("/pipelined/never"))
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.count(b"HTTP/1.1") == 1 and b"connection: close\r\n" in answer
    assert recording.targets_since(mark) == ["/pipelined/closing"]
    assert_healthy_and_leak_free(battery)


# protocol confusion ------------------------------------------------------------------------------
TLS_CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256))
BINARY = bytes([0x8F, 0x01, 0xFF, 0x00, 0x13, 0x37]) * 50

CONFUSED = {
    # HTTP/2 prior knowledge on an HTTP/1.1 listener: PRI is no method HTTP/1 knows (Envoy's
    # HTTP/1 codec: 400; Remora speaks no HTTP/2, docs/proxy.md)
    "http2-preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00",
                      400),
    "tls-client-hello": (TLS_CLIENT_HELLO, 400),
    "ssh-banner": (b"SSH-2.0-OpenSSH_9.6\r\n", 400),
    "binary-with-a-line-end": (BINARY + b"\r\n", 400),
    # HTTP/0.9 (no version): docs/proxy.md answers 505 (Envoy without accept_http_10: 426)
    "http-0.9": (b"GET /\r\n\r\n", 505),
    # Envoy's accept_http_10 default (false)
    "http-1.0": (request("/ten", version="HTTP/1.0"), 426),
    # CONNECT is not implemented (docs/proxy.md: 501), and what follows is not tunnelled
    "connect": (f"CONNECT {HOST} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode() + request("/tunnel"),
                501),
}


@pytest.mark.parametrize("name", list(CONFUSED))
def test_another_protocol_is_refused_and_nothing_reaches_the_upstream(
        battery: Battery, name: str) -> None:
    data, status = CONFUSED[name]
    assert_refused(battery, data, status)


def test_binary_without_a_line_end_is_closed_when_the_client_goes(battery: Battery) -> None:
    recording = battery.upstream.recording
    mark = recording.mark()
    assert send_and_read(battery.port, BINARY) == b""
    assert recording.raw_since(mark) == b""
    assert_healthy_and_leak_free(battery)


UPGRADES = {
    # RFC 7540 §3.2: what an h2c client sends; Envoy strips it and answers in HTTP/1.1
    "h2c": "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
           "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
    # docs/proxy.md: WebSocket is not implemented; Upgrade is removed, the request forwarded
    "websocket": "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
}


@pytest.mark.parametrize("name", list(UPGRADES))
def test_an_upgrade_is_not_switched_and_the_connection_stays_http_1_1(
        battery: Battery, name: str) -> None:
    """No 101: the request reaches the upstream as plain HTTP/1.1 without Upgrade (nor
    HTTP2-Settings), and what follows it on the connection is the next request, not a tunnel."""
    path = f"/upgrade/{name}"
    recording = battery.upstream.recording
    mark = recording.mark()
    answers = pipelined(battery, request(path, headers=UPGRADES[name]) + request(f"{path}/next"),
                        2)
    assert answers == [(200, path.encode()), (200, f"{path}/next".encode())]
    assert recording.completed_since(mark) == [path, f"{path}/next"]
    upstream_head = recording.raw_since(mark).split(b"\r\n\r\n")[0].lower()
    assert b"\r\nupgrade:" not in upstream_head and b"http2-settings" not in upstream_head
    assert b"\r\nconnection:" not in upstream_head
    if name == "websocket":
        assert b"\r\nsec-websocket-key: dghlihnhbxbszsbub25jzq==" in upstream_head
    assert_healthy_and_leak_free(battery)


def test_an_absolute_form_target_wins_over_host(battery: Battery) -> None:
    """RFC 9112 §3.2.2: with an absolute-form target the Host header is ignored; the upstream
    gets the origin form and the target's authority (as Envoy forwards it)."""
    recording = battery.upstream.recording
    mark = recording.mark()
    response = exchange(battery.port, f"GET http://{HOST}/absolute HTTP/1.1\r\n"
                                      "Host: elsewhere.example\r\n\r\n".encode())
    assert (response.status, response.body) == (200, b"/absolute")
    upstream_head = recording.raw_since(mark).split(b"\r\n\r\n")[0]
    assert upstream_head.startswith(b"GET /absolute HTTP/1.1\r\n")
    assert f"\r\nhost: {HOST}\r\n".encode() in upstream_head and b"elsewhere" not in upstream_head
    assert_healthy_and_leak_free(battery)


# aborted exchanges -------------------------------------------------------------------------------
def upload_then_reset(battery: Battery, path: str) -> None:
    """Send a head with a large Content-Length and 10 bytes of body; once the head is upstream,
    leave with a TCP reset (SO_LINGER 0)."""
    recording = battery.upstream.recording
    with connect(battery.port) as sock:
        sock.sendall(request(path, method="POST", headers="Content-Length: 100000\r\n",
                             body=b"x" * 10))
        wait_for(lambda: path in recording.targets, timeout=5, message=f"{path} upstream")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_uploads_reset_mid_body_end_with_dc_and_leave_nothing(battery: Battery) -> None:
    """20 clients reset their connection in the middle of an upload: each exchange ends with DC
    and its upstream connection closed, the request never complete there."""
    recording = battery.upstream.recording
    mark = recording.mark()
    paths = [f"/reset/{index}" for index in range(20)]
    for path in paths:
        upload_then_reset(battery, path)
    wait_for(lambda: all(recording.connection_with(path).ended for path in paths), timeout=5,
             message="every upstream connection closed")
    for path in paths:
        request_dc_logged(battery, path)
    assert recording.completed_since(mark) == []
    assert_healthy_and_leak_free(battery)


def test_a_client_leaving_mid_response_closes_the_upstream_connection_dc(
        battery: Battery) -> None:
    """The client reads the start of a response the upstream is still sending (64 KiB every
    20 ms) and closes: the proxy closes the upstream connection, and logs the 200 with DC."""
    path = "/drip/500"
    recording = battery.upstream.recording
    with connect(battery.port) as sock:
        sock.sendall(request(path))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
    upstream_side = recording.connection_with(path)
    wait_for(lambda: upstream_side.ended is not None, timeout=5)
    assert upstream_side.ended == "reset"  # its writes failed: the proxy closed it
    assert request_dc_logged(battery, path)["response_code"] == 200
    assert_healthy_and_leak_free(battery)

