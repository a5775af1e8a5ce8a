"""End to end: HTTP/1.1 through a sidecar proxy on real sockets (raw sockets, curl, httpx) -
keep-alive, pipelining, framing, 100-continue, forwarding headers, large bodies, bad input,
timeouts and upstream failures, each as RFC 9112/9110 or Envoy's docs describe it."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remora.runner.ports import free_port
from tests.e2e.meshkit import (
    REGISTRY_ONLY,
    EchoServer,
    Proxy,
    closed_by_peer,
    cluster_hosts,
    connect,
    echo_servers,
    exchange,
    peak_rss_bytes,
    read_response,
    run_proxy,
    service_yaml,
    wait_access_record,
)

pytestmark = pytest.mark.timeout(120)

HOST = "reviews:9080"
REVIEWS_V1 = "outbound|9080||reviews.default.svc.cluster.local"
# Large transfers: 1 GiB (about 2 s each way on 2 cores); REMORA_E2E_BIG_MIB=N to change it.
BIG = int(os.environ.get("REMORA_E2E_BIG_MIB", "1024")) << 20
RSS_LIMIT = 200 << 20

FAILURES = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: lonely}
spec:
  hosts: [lonely]
  http:
  - route: [{destination: {host: lonely, subset: v9}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: lonely}
spec:
  host: lonely
  subsets: [{name: v9, labels: {version: v9}}]
"""


@dataclass
class Mesh:
    proxy: Proxy
    upstream: EchoServer
    access_log: Path
    tmp: Path


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    tmp = tmp_path_factory.mktemp("http")
    config = tmp / "config"
    config.mkdir()
    access_log = tmp / "access.log"
    with echo_servers("v1", "fresh") as servers:
        port = servers["v1"].port
        (config / "reviews.yaml").write_text(service_yaml("reviews", 9080, [(port, {})]))
        (config / "mesh.yaml").write_text(REGISTRY_ONLY)  # unknown hosts: a local 502
        # its own upstream, so its first request finds no pooled connection
        (config / "fresh.yaml").write_text(
            service_yaml("fresh", 9080, [(servers["fresh"].port, {})]))
        # an endpoint nobody listens on (connection refused) and a subset without endpoints
        (config / "dead.yaml").write_text(service_yaml("dead", 9080, [(free_port(), {})]))
        (config / "lonely.yaml").write_text(
            service_yaml("lonely", 9080, [(port, {"version": "v1"})]) + "---\n" + FAILURES)
        # HTTP/1.0 accepted (Istio's ISTIO_META_HTTP10=1 proxy metadata; Envoy's default 426 is
        # tested in test_proxy_downstream), so its framing is tested here
        with run_proxy(config, "--access-log", str(access_log), tmp=tmp,
                       env={"ISTIO_META_HTTP10": "1"}) as proxy:
            yield Mesh(proxy, servers["v1"], access_log, tmp)
            assert proxy.process.poll() is None, proxy.logs()


def request(path: str = "/", *, method: str = "GET", headers: str = "", body: bytes = b"",
            version: str = "HTTP/1.1", host: str = HOST) -> bytes:
    head = f"{method} {path} {version}\r\nHost: {host}\r\n{headers}"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def upstream_view(mesh: Mesh, raw: bytes) -> dict[str, object]:
    """What the echo upstream saw for one raw request (its JSON answer)."""
    response = exchange(mesh.proxy.outbound, raw)
    assert response.status == 200, response
    return httpx.Response(200, content=response.body).json()  # type: ignore[no-any-return]


def assert_serves(mesh: Mesh) -> None:
    assert mesh.proxy.process.poll() is None, mesh.proxy.logs()
    assert exchange(mesh.proxy.outbound, request("/alive")).status == 200


# keep-alive and pipelining ----------------------------------------------------------------------
def test_keep_alive_reuses_client_and_upstream_connections_rfc9112_9_3(mesh: Mesh) -> None:
    """RFC 9112 §9.3: HTTP/1.1 connections persist; the proxy pools its upstream side (Envoy
    connection pooling), so /clusters' cx_total does not grow with each request."""
    exchange(mesh.proxy.outbound, request("/warm"))
    before = cluster_hosts(mesh.proxy)[REVIEWS_V1][0]["cx_total"]
    with connect(mesh.proxy.outbound) as sock:
        reader = sock.makefile("rb")
        for index in range(10):
            sock.sendall(request(f"/keep/{index}"))
            response = read_response(reader)
            assert response.status == 200
            assert response.header("connection") != "close"
    with httpx.Client(base_url=mesh.proxy.url, headers={"host": HOST}) as client:
        for index in range(10):
            assert client.get(f"/httpx/{index}").json()["path"] == f"/httpx/{index}"
        assert client.get("/").json()["headers"]["host"] == HOST
    assert cluster_hosts(mesh.proxy)[REVIEWS_V1][0]["cx_total"] - before <= 1


def test_pipelined_requests_answered_in_order_rfc9112_9_3_2(mesh: Mesh) -> None:
    """RFC 9112 §9.3.2: responses to pipelined requests come in the order of the requests, even
    when the first is the slowest."""
    paths = ["/slow/0.3", "/one", "/two?x=1", "/three"]
    with connect(mesh.proxy.outbound) as sock:
        sock.sendall(b"".join(request(path) for path in paths))
        reader = sock.makefile("rb")
        seen = [httpx.Response(200, content=read_response(reader).body).json()["path"]
                for _ in paths]
    assert seen == paths


def test_pipelined_bodies_and_local_replies_keep_their_order_rfc9112_9_3_2(mesh: Mesh) -> None:
    """Pipelined POSTs with bodies and a request answered by the proxy itself (502, an unknown
    host under REGISTRY_ONLY) interleave on one connection; every response comes in request
    order."""
    raw = (request("/p1", method="POST", body=b"abc") + request("/nr", host="nowhere:9080")
           + request("/p2", method="POST", body=b"defgh") + request("/g3"))
    with connect(mesh.proxy.outbound) as sock:
        sock.sendall(raw)
        reader = sock.makefile("rb")
        first, missing, second, third = (read_response(reader) for _ in range(4))
    assert httpx.Response(200, content=first.body).json()["received"] == 3
    assert missing.status == 502
    assert httpx.Response(200, content=second.body).json()["received"] == 5
    assert httpx.Response(200, content=third.body).json()["path"] == "/g3"


def test_local_reply_keeps_the_connection_alive_rfc9112_9_3(mesh: Mesh) -> None:
    """A 404 (NR) or 503 (UH) written by the proxy is a complete response to a complete request:
    the connection stays usable (Envoy closes only when the request is unfinished)."""
    with connect(mesh.proxy.outbound) as sock:
        reader = sock.makefile("rb")
        for host in ("nowhere:9080", "lonely:9080", HOST):
            sock.sendall(request("/local", host=host))
            response = read_response(reader)
            assert response.header("connection") is None, response
        assert response.status == 200


def test_http10_persists_only_when_asked_rfc9112_9_3(mesh: Mesh) -> None:
    """RFC 9112 §9.3: an HTTP/1.0 connection persists only with `Connection: keep-alive` in the
    request and the response; otherwise the server closes after the response (HTTP/1.0 accepted
    with ISTIO_META_HTTP10=1, Envoy's accept_http_10)."""
    with connect(mesh.proxy.outbound) as sock:
        reader = sock.makefile("rb")
        sock.sendall(request("/ten", version="HTTP/1.0", headers="Connection: keep-alive\r\n"))
        assert read_response(reader).header("connection") == "keep-alive"
        sock.sendall(request("/ten", version="HTTP/1.0"))
        assert read_response(reader).header("connection") == "close"
        assert closed_by_peer(sock, timeout=5)


@pytest.mark.parametrize("path", ["/halfclose", "/slow/0.3"])
def test_half_closed_client_gets_its_answer_then_the_close_rfc9112_9_6(
    mesh: Mesh, path: str
) -> None:
    """A client that shuts down its sending side after the request (`nc -N`, RFC 9112 §9.6)
    still gets the response, and then the proxy closes rather than hold the connection."""
    with connect(mesh.proxy.outbound) as sock:
        sock.sendall(request(path))
        sock.shutdown(socket.SHUT_WR)
        assert read_response(sock.makefile("rb")).status == 200
        assert closed_by_peer(sock, timeout=10)


def test_head_response_has_headers_but_no_body_rfc9110_9_3_2(mesh: Mesh) -> None:
    """RFC 9110 §9.3.2: a HEAD response carries the GET headers (Content-Length too) and no
    body; the next response on the connection must parse cleanly after it."""
    with connect(mesh.proxy.outbound) as sock:
        reader = sock.makefile("rb")
        sock.sendall(request("/head", method="HEAD"))
        head = read_response(reader, method="HEAD")
        assert head.status == 200
        assert int(head.header("content-length") or 0) > 0
        sock.sendall(request("/after-head"))
        after = read_response(reader)
        assert httpx.Response(200, content=after.body).json()["path"] == "/after-head"


@pytest.mark.parametrize("status", [204, 304])
def test_204_and_304_carry_no_body_rfc9110_15_3_5(mesh: Mesh, status: int) -> None:
    """RFC 9110 §15.3.5/§15.4.5: 204 and 304 end at their header block; the proxy adds no
    chunked framing and the connection stays usable."""
    with connect(mesh.proxy.outbound) as sock:
        reader = sock.makefile("rb")
        sock.sendall(request(f"/empty/{status}"))
        response = read_response(reader)
        assert response.status == status
        assert response.header("transfer-encoding") is None
        assert response.header("x-upstream") == "v1"
        sock.sendall(request("/after"))
        assert read_response(reader).status == 200


# framing ----------------------------------------------------------------------------------------
def test_chunked_request_body_with_trailer_reaches_upstream_rfc9112_7_1(mesh: Mesh) -> None:
    raw = (f"POST /upload HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\nx-trailer: t\r\n\r\n").encode()
    seen = upstream_view(mesh, raw)
    assert seen["received"] == 12
    assert seen["headers"]["transfer-encoding"] == "chunked"  # type: ignore[index]


def test_chunked_response_stays_chunked_for_http11_rfc9112_7_1(mesh: Mesh) -> None:
    response = exchange(mesh.proxy.outbound, request("/chunked/5000"))
    assert response.framing == "chunked"
    assert response.body == b"c" * 5000


@pytest.mark.parametrize("path", ["/unframed/3000", "/chunked/3000"])
def test_response_without_length_chunked_for_11_close_delimited_for_10_rfc9112_6_3(
    mesh: Mesh, path: str
) -> None:
    """RFC 9112 §6.3: a body without Content-Length goes chunked to an HTTP/1.1 client and is
    delimited by closing the connection for an HTTP/1.0 client (which cannot read chunks)."""
    eleven = exchange(mesh.proxy.outbound, request(path))
    assert (eleven.framing, len(eleven.body)) == ("chunked", 3000)
    assert eleven.header("x-custom") == "kept"
    with connect(mesh.proxy.outbound) as sock:
        sock.sendall(request(path, version="HTTP/1.0"))
        ten = read_response(sock.makefile("rb"))
    assert (ten.framing, len(ten.body)) == ("close", 3000)
    assert ten.header("transfer-encoding") is None


def test_expect_100_continue_raw_rfc9110_10_1_1(mesh: Mesh) -> None:
    """RFC 9110 §10.1.1: a client that sends `Expect: 100-continue` waits for 100 before the body;
    Envoy answers it at the proxy."""
    body = b"b" * 70000
    with connect(mesh.proxy.outbound) as sock:
        sock.sendall(request("/expect", method="POST",
                             headers=f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n"))
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"HTTP/1.1 100")
        assert reader.readline() == b"\r\n"
        sock.sendall(body)
        response = read_response(reader)
    seen = httpx.Response(200, content=response.body).json()
    assert seen["received"] == len(body)
    assert "expect" not in seen["headers"]


def test_expect_100_continue_with_curl(mesh: Mesh) -> None:
    upload = mesh.tmp / "upload.bin"
    upload.write_bytes(os.urandom(300_000))
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "20", "-H", f"Host: {HOST}", "-H", "Expect: 100-continue",
         "--data-binary", f"@{upload}", f"{mesh.proxy.url}/curl-upload"],
        capture_output=True, text=True, check=True, timeout=30)
    assert httpx.Response(200, content=result.stdout).json()["received"] == 300_000


# forwarding headers ----------------------------------------------------------------------------
def test_hop_by_hop_headers_never_reach_the_upstream_rfc9110_7_6_1(mesh: Mesh) -> None:
    headers = ("Connection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n"
               "TE: gzip\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\nX-Kept: yes\r\n")
    seen = upstream_view(mesh, request("/hop", headers=headers))["headers"]
    assert isinstance(seen, dict)
    for name in ("x-secret", "keep-alive", "te", "upgrade", "proxy-connection"):
        assert name not in seen, name
    assert seen.get("connection", "keep-alive").lower() == "keep-alive"  # ours, to the pool
    assert seen["x-kept"] == "yes"


def test_x_forwarded_for_appended_and_proto_set_envoy_xff(mesh: Mesh) -> None:
    """Envoy config_http_conn_man_headers x-forwarded-for: the downstream address is appended;
    x-forwarded-proto is the scheme the client used."""
    seen = upstream_view(mesh, request("/xff", headers="X-Forwarded-For: 10.1.2.3\r\n"))
    headers = seen["headers"]
    assert isinstance(headers, dict)
    assert [part.strip() for part in headers["x-forwarded-for"].split(",")] == [
        "10.1.2.3", "127.0.0.1"]
    assert headers["x-forwarded-proto"] == "http"
    alone = upstream_view(mesh, request("/xff"))["headers"]
    assert isinstance(alone, dict)
    assert alone["x-forwarded-for"] == "127.0.0.1"


def test_x_request_id_generated_when_absent_and_kept_when_present_envoy(mesh: Mesh) -> None:
    """Envoy config_http_conn_man_headers x-request-id: generated (a UUID) unless the client sent
    one."""
    generated = upstream_view(mesh, request("/rid"))["headers"]
    assert isinstance(generated, dict)
    assert uuid.UUID(generated["x-request-id"]).version == 4
    kept = upstream_view(mesh, request("/rid", headers="X-Request-Id: my-id-1\r\n"))["headers"]
    assert isinstance(kept, dict)
    assert kept["x-request-id"] == "my-id-1"
    record = wait_access_record(mesh.access_log, lambda r: r.get("request_id") == "my-id-1")
    assert record["path"] == "/rid"


def test_response_keeps_upstream_headers(mesh: Mesh) -> None:
    response = httpx.get(f"{mesh.proxy.url}/chunked/10", headers={"host": HOST})
    assert response.headers["x-upstream"] == "v1"
    assert response.headers["x-custom"] == "kept"
    assert response.headers["server"].startswith("BaseHTTP")
    assert "x-envoy-upstream-service-time" in response.headers


# large bodies ----------------------------------------------------------------------------------
def test_large_download_streams_with_flat_memory(mesh: Mesh) -> None:
    """Issue 3: a large download passes with bounded buffers - the proxy's peak RSS stays far
    below the body size."""
    started = time.monotonic()
    with connect(mesh.proxy.outbound, timeout=60) as sock:
        sock.sendall(request(f"/bytes/{BIG}"))
        reader = sock.makefile("rb", buffering=0)
        head = b""
        while b"\r\n\r\n" not in head:
            head += reader.read(1)
        assert head.startswith(b"HTTP/1.1 200")
        assert f"content-length: {BIG}".encode() in head.lower()
        time.sleep(1)  # a stalled reader: the proxy must stop reading the upstream, not buffer
        assert peak_rss_bytes(mesh.proxy.process.pid) < RSS_LIMIT
        buffer = bytearray(1 << 20)
        total = 0
        while total < BIG:
            count = sock.recv_into(buffer)
            assert count, f"connection closed after {total} bytes"
            total += count
    assert total == BIG
    peak = peak_rss_bytes(mesh.proxy.process.pid)
    print(f"download {BIG >> 20} MiB in {time.monotonic() - started:.1f}s, VmHWM {peak >> 20} MiB")
    assert peak < RSS_LIMIT


def test_large_upload_streams_with_flat_memory(mesh: Mesh) -> None:
    started = time.monotonic()
    block = b"u" * (1 << 20)
    with connect(mesh.proxy.outbound, timeout=60) as sock:
        sock.sendall(request("/upload", method="POST", headers=f"Content-Length: {BIG}\r\n"))
        for _ in range(BIG // len(block)):
            sock.sendall(block)
        response = read_response(sock.makefile("rb"))
    assert httpx.Response(200, content=response.body).json()["received"] == BIG
    peak = peak_rss_bytes(mesh.proxy.process.pid)
    print(f"upload {BIG >> 20} MiB in {time.monotonic() - started:.1f}s, VmHWM {peak >> 20} MiB")
    assert peak < RSS_LIMIT


def test_upload_while_the_upstream_connection_opens_is_held_back(mesh: Mesh) -> None:
    """The first request to an endpoint waits for a new connection: its body is buffered only
    up to a bound (the client is paused meanwhile), then streams."""
    size = 32 << 20
    with connect(mesh.proxy.outbound, timeout=60) as sock:
        sock.sendall(request("/first", method="POST", host="fresh:9080",
                             headers=f"Content-Length: {size}\r\n"))
        sock.sendall(b"f" * size)
        response = read_response(sock.makefile("rb"))
    assert httpx.Response(200, content=response.body).json()["received"] == size


def test_chunked_upload_with_curl(mesh: Mesh) -> None:
    upload = mesh.tmp / "chunked.bin"
    upload.write_bytes(os.urandom(8 << 20))
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "30", "-H", f"Host: {HOST}",
         "-H", "Transfer-Encoding: chunked", "--data-binary", f"@{upload}",
         f"{mesh.proxy.url}/chunked-upload"],
        capture_output=True, text=True, check=True, timeout=40)
    seen = httpx.Response(200, content=result.stdout).json()
    assert seen["received"] == 8 << 20
    assert seen["headers"]["transfer-encoding"] == "chunked"


def test_client_leaving_mid_download_is_dc_and_harmless_envoy_response_flags(mesh: Mesh) -> None:
    """Envoy flag DC: the downstream connection closed before the response was complete."""
    with connect(mesh.proxy.outbound) as sock:
        sock.sendall(request("/bytes/50000000?leave"))
        assert sock.recv(65536)
    record = wait_access_record(mesh.access_log, lambda r: r.get("path") == "/bytes/50000000?leave")
    assert record["response_flags"] == "DC"
    assert_serves(mesh)


# bad input ---------------------------------------------------------------------------------------
BAD_REQUESTS = {
    # RFC 9112 §3: request-line = method SP request-target SP HTTP-version
    "malformed-request-line": (b"GARBAGE\r\n\r\n", 400),
    # HTTP/0.9 (no version) is refused, RFC 9110 §15.6.6
    "http-0.9": (b"GET /\r\nHost: x\r\n\r\n", 505),
    # Envoy max_request_headers_kb (60 KiB default) → 431 (RFC 6585 §5)
    "header-over-60k": (b"GET / HTTP/1.1\r\nHost: reviews:9080\r\nX-Big: "
                        + b"a" * (61 * 1024) + b"\r\n\r\n", 431),
    # RFC 9112 §6.1: Content-Length with Transfer-Encoding is a smuggling shape
    "cl-and-te": (b"POST / HTTP/1.1\r\nHost: reviews:9080\r\nContent-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    # RFC 9112 §6.3 rule 5: differing Content-Length values are unrecoverable
    "two-content-lengths": (b"POST / HTTP/1.1\r\nHost: reviews:9080\r\nContent-Length: 3\r\n"
                            b"Content-Length: 4\r\n\r\nabcd", 400),
    # RFC 9112 §7.1: chunk-size = 1*HEXDIG
    "bad-chunk-size": (b"POST / HTTP/1.1\r\nHost: reviews:9080\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
    # RFC 9112 §5.2: obs-fold in a request → 400
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: reviews:9080\r\nX-Folded: a\r\n b\r\n\r\n", 400),
    # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing (issue 21: what followed
    # the last chunk used to reach the upstream as a second request)
    "te-in-http-1.0": (b"POST / HTTP/1.0\r\nHost: reviews:9080\r\nConnection: keep-alive\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                       b"GET /smuggled HTTP/1.1\r\nHost: reviews:9080\r\n\r\n", 400),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_request_answered_and_connection_closed_rfc9112(mesh: Mesh, name: str) -> None:
    raw, status = BAD_REQUESTS[name]
    with connect(mesh.proxy.outbound) as sock:
        sock.sendall(raw)
        reader = sock.makefile("rb")
        response = read_response(reader)
        assert response.status == status
        assert response.header("connection") == "close"
        assert closed_by_peer(sock, timeout=5)
    assert_serves(mesh)


def test_a_client_still_sending_reads_the_431_then_a_clean_close_envoy_delayed_close(
        mesh: Mesh) -> None:
    """Envoy's delayed_close_timeout: after refusing a too large head the proxy half-closes
    and reads on, so a client still sending the rest of it gets the 431 and a FIN, not a
    reset that could discard the answer unread (issue 21)."""
    with connect(mesh.proxy.outbound) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: reviews:9080\r\nX-Big: " + b"a" * (61 * 1024))
        for _ in range(8):  # the rest of the header, after the proxy has refused it
            sock.sendall(b"a" * 32 * 1024)
        response = read_response(sock.makefile("rb"))
        assert response.status == 431
        sock.settimeout(5)
        assert sock.recv(65536) == b""  # FIN (a reset would raise ConnectionResetError)
    assert_serves(mesh)


GARBAGE = [
    b"\x00\x01\x02\xff" * 64,
    b"\r\n" * 1000,
    b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",
    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: reviews:9080\r\nContent-Length: -1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: reviews:9080\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: reviews:9080\r\n\r\n",
    b"CONNECT reviews:9080 HTTP/1.1\r\nHost: reviews:9080\r\n\r\n",
    b"GET http://[::1 HTTP/1.1\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),  # a TLS ClientHello
]


def send_and_hang_up(port: int, data: bytes) -> None:
    """Send bytes, half-close, and read whatever comes until the proxy closes."""
    with connect(port) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(1)
        except (BrokenPipeError, ConnectionResetError):
            return
        assert closed_by_peer(sock, timeout=10)


@pytest.mark.parametrize("data", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_never_kills_the_proxy(mesh: Mesh, data: bytes) -> None:
    send_and_hang_up(mesh.proxy.outbound, data)
    assert_serves(mesh)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(
    st.binary(min_size=1, max_size=2000),
    st.lists(st.sampled_from([b"GET / HTTP/1.1\r\n", b"Host: reviews:9080\r\n", b"\r\n",
                              b"Content-Length: 3\r\n", b"Transfer-Encoding: chunked\r\n",
                              b"abc", b"0\r\n", b"ff\r\n", b"\x00", b" ", b":", b"\n"]),
             max_size=30).map(b"".join),
))
def test_random_bytes_never_kill_the_proxy(mesh: Mesh, data: bytes) -> None:
    send_and_hang_up(mesh.proxy.outbound, data)
    assert mesh.proxy.process.poll() is None


def test_after_bad_input_the_proxy_still_serves(mesh: Mesh) -> None:
    assert_serves(mesh)


# timeouts ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def impatient(mesh: Mesh) -> Iterator[Proxy]:
    """A second proxy on the same config with 1 s header and idle timeouts."""
    with run_proxy(mesh.proxy.config, "--headers-timeout", "1", "--idle-timeout", "1",
                   tmp=mesh.tmp) as proxy:
        yield proxy


@pytest.mark.timeout(30)
def test_slow_header_sender_is_closed_after_headers_timeout(impatient: Proxy) -> None:
    """A client that sends half a head and stalls gets Envoy's 408 "request header timeout"
    and loses the connection (slowloris; Envoy's request_headers_timeout)."""
    with connect(impatient.outbound) as sock:
        sock.sendall(f"GET /slowloris HTTP/1.1\r\nHost: {HOST}\r\nX-Half".encode())
        sock.settimeout(15)
        response = read_response(sock.makefile("rb"))
        assert (response.status, response.body) == (408, b"request header timeout")
        assert closed_by_peer(sock, timeout=15)


@pytest.mark.timeout(30)
def test_idle_keep_alive_connection_is_closed_after_idle_timeout(impatient: Proxy) -> None:
    """Envoy's idle_timeout on downstream connections: no request in flight → closed."""
    with connect(impatient.outbound) as sock:
        sock.sendall(request("/once"))
        assert read_response(sock.makefile("rb")).status == 200
        assert closed_by_peer(sock, timeout=15)


@pytest.mark.timeout(30)
def test_slow_upstream_response_is_not_cut_by_idle_timeout(impatient: Proxy) -> None:
    """The idle timer only runs with no request in flight: a 2 s upstream answer still arrives."""
    response = exchange(impatient.outbound, request("/slow/2"))
    assert response.status == 200


@pytest.fixture(scope="module")
def stalled(mesh: Mesh) -> Iterator[Proxy]:
    """A proxy on the same config with a 1 s stream idle timeout."""
    with run_proxy(mesh.proxy.config, "--stream-idle-timeout", "1", tmp=mesh.tmp) as proxy:
        yield proxy


@pytest.mark.timeout(30)
def test_a_stalled_request_body_is_408_after_the_stream_idle_timeout(stalled: Proxy) -> None:
    """Envoy's stream_idle_timeout (issue 21: a stalled body was never timed out): 408
    "stream timeout", then the connection closes."""
    with connect(stalled.outbound) as sock:
        sock.sendall(f"POST /stall HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100\r\n\r\n"
                     "only ten b".encode())
        sock.settimeout(10)
        response = read_response(sock.makefile("rb"))
        assert (response.status, response.body) == (408, b"stream timeout")
        assert closed_by_peer(sock, timeout=5)
    assert exchange(stalled.outbound, request("/slow/0.2")).status == 200  # still moving: fine


# upstream failures -------------------------------------------------------------------------------
def test_refused_upstream_is_503_uf_envoy_response_flags(mesh: Mesh) -> None:
    """Envoy response flag UF (upstream connection failure) with Envoy's local reply body."""
    response = httpx.get(f"{mesh.proxy.url}/refused", headers={"host": "dead:9080"})
    assert response.status_code == 503
    assert response.text == ("upstream connect error or disconnect/reset before headers. "
                             "reset reason: connection failure")
    record = wait_access_record(mesh.access_log, lambda r: r.get("path") == "/refused")
    # Istio's default retry policy retries connect failures (twice); when they run out Envoy
    # reports both flags (retry.go DefaultPolicy; envoy response flags UF, URX)
    assert record["response_flags"] == "UF,URX"
    assert record["response_code"] == 503
    assert_serves(mesh)


def test_subset_without_endpoints_is_503_uh_envoy_response_flags(mesh: Mesh) -> None:
    response = httpx.get(f"{mesh.proxy.url}/nobody", headers={"host": "lonely:9080"})
    assert (response.status_code, response.text) == (503, "no healthy upstream")
    record = wait_access_record(mesh.access_log, lambda r: r.get("path") == "/nobody")
    assert record["response_flags"] == "UH"
    assert_serves(mesh)


def test_upstream_closing_mid_response_closes_the_client_uc(mesh: Mesh) -> None:
    """Envoy flag UC: the upstream closed after the response started; the client sees its
    connection closed before the declared Content-Length (httpx: RemoteProtocolError; curl: 18,
    CURLE_PARTIAL_FILE)."""
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{mesh.proxy.url}/close", headers={"host": HOST})
    result = subprocess.run(["curl", "-sS", "--max-time", "10", "-H", f"Host: {HOST}",
                             f"{mesh.proxy.url}/close?curl"],
                            check=False, capture_output=True, timeout=20)
    assert result.returncode == 18, result.stderr
    record = wait_access_record(mesh.access_log, lambda r: r.get("path") == "/close?curl")
    assert record["response_flags"] == "UC"
    assert record["response_code"] == 200
    assert_serves(mesh)

