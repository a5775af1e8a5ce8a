"""Request smuggling against a real `remora proxy` (issue 21, item 6): each attempt hides a second
request, `GET /smuggled`, where a proxy and its upstream could disagree about the framing. An
upstream that records the raw bytes it receives, framed by RFC 9112 as a server would frame
them, says which requests reached it: `/smuggled` never may, and the proxy stays healthy.
(PortSwigger's CL.TE / TE.CL / TE.TE families; RFC 9112 §6.1, §6.3, §7.1.)"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.meshkit import (
    Proxy,
    RecordingUpstream,
    closed_by_peer,
    connect,
    exchange,
    open_fds,
    recording_upstream,
    run_proxy,
    send_and_read,
    service_yaml,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)

HOST = "reviews:9080"
SMUGGLED = f"GET /smuggled HTTP/1.1\r\nHost: {HOST}\r\n\r\n"


@dataclass
class Battery:
    proxy: Proxy
    upstream: RecordingUpstream


@pytest.fixture(scope="module")
def battery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Battery]:
    tmp = tmp_path_factory.mktemp("smuggling")
    config = tmp / "config"
    config.mkdir()
    with recording_upstream() as upstream:
        (config / "reviews.yaml").write_text(service_yaml("reviews", 9080, [(upstream.port, {})]))
        with run_proxy(config, tmp=tmp, env={"ISTIO_META_HTTP10": "1"}) as proxy:
            yield Battery(proxy, upstream)
            assert proxy.process.poll() is None, proxy.logs()


def head(method: str = "POST", version: str = "HTTP/1.1") -> str:
    return f"{method} /first {version}\r\nHost: {HOST}\r\n"


ATTEMPTS = {
    # CL.TE: a front end reading Content-Length forwards the smuggled request inside the
    # body; one reading Transfer-Encoding ends the body at the last chunk
    "cl-te": head() + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
             + SMUGGLED,
    # TE.CL: the reverse disagreement
    "te-cl": head() + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
             + f"{len(SMUGGLED):x}\r\n{SMUGGLED}\r\n0\r\n\r\n",
    # TE.TE: Transfer-Encoding obfuscated so that one side does not see "chunked"
    "te-xchunked": head() + "Transfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"
                   + SMUGGLED,
    "te-space-before-colon": head() + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "te-tab": head() + "Transfer-Encoding:\tchunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"
              + SMUGGLED,
    "te-twice": head() + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n"
                "0\r\n\r\n" + SMUGGLED,
    "te-obs-fold": head() + "Transfer-Encoding:\r\n chunked\r\nContent-Length: 4\r\n\r\n"
                   "0\r\n\r\n" + SMUGGLED,
    "te-http-1.0": head(version="HTTP/1.0") + "Connection: keep-alive\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    # duplicate and malformed Content-Length
    "cl-twice": head() + "Content-Length: 0\r\nContent-Length: 44\r\n\r\n" + SMUGGLED,
    "cl-plus": head() + "Content-Length: +0\r\n\r\n" + SMUGGLED,
    "cl-list": head() + "Content-Length: 0, 44\r\n\r\n" + SMUGGLED,
    # chunk-size tricks
    "chunk-size-overflow": head() + "Transfer-Encoding: chunked\r\n\r\n"
                           "10000000000000000000000000000\r\nA\r\n0\r\n\r\n" + SMUGGLED,
    "chunk-extension-lf": head() + "Transfer-Encoding: chunked\r\n\r\n"
                          "0;x=\n\r\n" + SMUGGLED,
    # line ends and bytes a lenient parser would accept
    "bare-lf-in-header": head() + "X-A: b\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
    "bare-cr": head() + "X-A: b\rTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
                        "0\r\n\r\n" + SMUGGLED,
    "nul-in-header": head() + "X-A: b\x00c\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + SMUGGLED,
}


@pytest.mark.parametrize("name", list(ATTEMPTS))
def test_nothing_is_smuggled_to_the_upstream(battery: Battery, name: str) -> None:
    recording = battery.upstream.recording
    with recording.lock:
        before = len(recording.targets)
    answer = send_and_read(battery.proxy.outbound, ATTEMPTS[name].encode("latin-1"))
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    with recording.lock:
        reached = recording.targets[before:]
    assert "/smuggled" not in reached, (name, reached, answer[:300])
    # healthy afterwards: a plain request still goes through
    response = exchange(battery.proxy.outbound,
                        f"GET /after HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    assert response.status == 200


def test_an_attempt_refused_closes_the_connection(battery: Battery) -> None:
    with connect(battery.proxy.outbound) as sock:
        sock.sendall(ATTEMPTS["cl-te"].encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 400")
        assert closed_by_peer(sock, timeout=5)


def test_aborted_uploads_leave_no_socket_behind(battery: Battery) -> None:
    """Issue 21: a client that sends a large Content-Length, a few bytes, and goes used to leave
    its socket in CLOSE_WAIT and its upstream connection open, for ever (after 100 aborts 102
    sockets); now the proxy's descriptors are back where they were."""
    pid = battery.proxy.process.pid
    exchange(battery.proxy.outbound, f"GET /warm HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    baseline = open_fds(pid)
    for _ in range(100):
        with connect(battery.proxy.outbound) as sock:
            sock.sendall(head().encode() + b"Content-Length: 100000\r\n\r\n" + b"x" * 10)
    wait_for(lambda: open_fds(pid) <= baseline + 2, timeout=5)


def test_the_recording_upstream_would_see_a_smuggled_request(tmp_path: Path) -> None:
    """The oracle can fail: bytes sent straight to the recording upstream (no proxy) that
    carry a second request are read as two requests."""
    with recording_upstream() as upstream:
        send_and_read(upstream.port, (head("GET") + "\r\n" + SMUGGLED).encode())
        assert upstream.recording.targets == ["/first", "/smuggled"]


def test_above_max_connections_new_ones_are_closed_and_counted(tmp_path: Path) -> None:
    """Envoy's global downstream connection limit (`--max-connections`): the connections
    being served go on, one more is closed at once, and /stats/prometheus counts it."""
    config = tmp_path / "config"
    config.mkdir()
    with recording_upstream() as upstream:
        (config / "reviews.yaml").write_text(service_yaml("reviews", 9080, [(upstream.port, {})]))
        with run_proxy(config, "--max-connections", "3", tmp=tmp_path) as proxy:
            held = [connect(proxy.outbound) for _ in range(3)]
            try:
                wait_for(lambda: b'downstream_cx_active{listener_address="127.0.0.1_'
                         + str(proxy.outbound).encode() + b'"} 3' in stats(proxy), timeout=5)
                with connect(proxy.outbound) as refused:
                    assert closed_by_peer(refused, timeout=5)
                held[0].sendall(f"GET /held HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
                assert held[0].recv(65536).startswith(b"HTTP/1.1 200")
                assert (b'envoy_listener_downstream_global_cx_overflow{listener_address='
                        b'"127.0.0.1_' + str(proxy.outbound).encode() + b'"} 1') in stats(proxy)
            finally:
                for sock in held:
                    sock.close()


def stats(proxy: Proxy) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{proxy.admin}/stats/prometheus",
                                timeout=5) as answer:
        return bytes(answer.read())
