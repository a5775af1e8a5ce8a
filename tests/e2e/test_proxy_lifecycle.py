"""End to end: a proxy's life under traffic - config swaps (SIGHUP and file changes) with zero
failed requests, invalid resources skipped while the rest applies, and graceful drain on SIGTERM
or POST /drain (Envoy's drain: stop accepting, finish in-flight requests, then exit)."""

from __future__ import annotations

import json
import signal
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.meshkit import (
    Proxy,
    closed_by_peer,
    cluster_hosts,
    connect,
    echo_servers,
    exchange,
    read_response,
    run_proxy,
    service_yaml,
    wait_for,
)

pytestmark = pytest.mark.timeout(90)

HOST = "reviews:9080"
V1 = "outbound|9080|v1|reviews.default.svc.cluster.local"


def routes(v1: int, v2: int) -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - route:
    - {{destination: {{host: reviews, subset: v1}}, weight: {v1}}}
    - {{destination: {{host: reviews, subset: v2}}, weight: {v2}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
"""


@dataclass
class Setup:
    config: Path
    tmp: Path

    @property
    def routes(self) -> Path:
        return self.config / "routes.yaml"

    def route_to(self, subset: str) -> None:
        self.routes.write_text(routes(100, 0) if subset == "v1" else routes(0, 100))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("lifecycle")
    config = tmp / "config"
    config.mkdir()
    with echo_servers("v1", "v2") as servers:
        (config / "reviews.yaml").write_text(service_yaml("reviews", 9080, [
            (servers["v1"].port, {"version": "v1"}), (servers["v2"].port, {"version": "v2"})]))
        result = Setup(config, tmp)
        result.route_to("v1")
        yield result


def version(proxy: Proxy) -> str:
    """The snapshot version /config_dump shows (raw socket: cheap enough to poll)."""
    dump = exchange(proxy.admin, b"GET /config_dump HTTP/1.1\r\nHost: admin\r\n\r\n")
    return str(json.loads(dump.body)["version"])


def upstream_of(proxy: Proxy) -> str:
    """Which upstream a new request goes to now."""
    response = exchange(proxy.outbound, f"GET /probe HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    assert response.status == 200
    return response.header("x-upstream") or ""


class Load:
    """Clients sending requests back to back on keep-alive connections (httpx and a raw socket)
    until stopped; every answer that is not a 200 from an upstream is a failure."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.stop = threading.Event()
        self.seen: Counter[str] = Counter()
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self.httpx_loop),
                        threading.Thread(target=self.raw_loop)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def record(self, status: int, upstream: str | None) -> None:
        if status != 200 or upstream is None:
            self.failures.append(f"{status} {upstream}")
        else:
            self.seen[upstream] += 1

    def httpx_loop(self) -> None:
        with httpx.Client(base_url=self.proxy.url, headers={"host": HOST}, timeout=10) as client:
            while not self.stop.is_set():
                try:
                    response = client.get("/load")
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                self.record(response.status_code, response.headers.get("x-upstream"))

    def raw_loop(self) -> None:
        with connect(self.proxy.outbound) as sock:
            reader = sock.makefile("rb")
            while not self.stop.is_set():
                try:
                    sock.sendall(f"POST /raw HTTP/1.1\r\nHost: {HOST}\r\n"
                                 "Content-Length: 5\r\n\r\nhello".encode())
                    response = read_response(reader)
                except OSError as exc:
                    self.failures.append(repr(exc))
                    return
                self.record(response.status, response.header("x-upstream"))


# config swaps ----------------------------------------------------------------------------------
@pytest.mark.timeout(120)
def test_hundred_swaps_under_load_fail_no_request(setup: Setup) -> None:
    """Issue 3 item 8: a swap is atomic; requests in flight finish on their snapshot and
    keep-alive connections carry on. 100 SIGHUP swaps flip a VirtualService between 100/0 and
    0/100 over two subsets while clients send requests without pause."""
    setup.route_to("v1")
    with run_proxy(setup.config, tmp=setup.tmp) as proxy, Load(proxy) as load:
        for swap in range(100):
            subset = "v2" if swap % 2 == 0 else "v1"
            before = version(proxy)
            setup.route_to(subset)
            proxy.process.send_signal(signal.SIGHUP)
            wait_for(lambda before=before: version(proxy) != before, timeout=10,
                     interval=0.01, message=f"swap {swap} applied")
            assert upstream_of(proxy) == subset
        wait_for(lambda: sum(load.seen.values()) > 200, timeout=20, message="load ran")
    assert load.failures == []
    assert set(load.seen) == {"v1", "v2"}, load.seen
    assert proxy.process.returncode is not None  # stopped by run_proxy
    assert "Traceback" not in proxy.logs()


def test_file_change_is_picked_up_without_a_signal(setup: Setup) -> None:
    """`remora proxy -f DIR` watches its files: an edit is applied with no SIGHUP."""
    setup.route_to("v1")
    with run_proxy(setup.config, tmp=setup.tmp) as proxy:
        assert upstream_of(proxy) == "v1"
        setup.route_to("v2")
        wait_for(lambda: upstream_of(proxy) == "v2", timeout=15, message="file change applied")


@pytest.mark.parametrize(("name", "text", "line"), [
    ("bad-yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n"
                 "  name: broken\nspec: {hosts: [reviews]\n", None),
    ("unknown-field", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n"
                      "  name: broken\nspec:\n  hosts: [reviews]\n  colour: blue\n", 7),
])
def test_invalid_resource_is_skipped_with_file_and_line_and_the_rest_applies(
    setup: Setup, name: str, text: str, line: int | None
) -> None:
    """Issue 11 item 3: one bad resource never blocks the rest. It is logged (file:line) and
    skipped; the VirtualService change made with it still reaches the proxy."""
    setup.route_to("v1")
    broken = setup.config / f"{name}.yaml"
    try:
        with run_proxy(setup.config, tmp=setup.tmp) as proxy:
            before = version(proxy)
            setup.route_to("v2")
            broken.write_text(text)
            proxy.process.send_signal(signal.SIGHUP)
            wait_for(lambda: "skipped" in proxy.logs(), timeout=10, message="skip logged")
            skipped = proxy.logs().split("skipped", 1)[1]
            assert f"{broken.name}:{line or ''}" in skipped, skipped
            wait_for(lambda: upstream_of(proxy) == "v2", timeout=10,
                     message="the good change applied")
            assert version(proxy) != before
            assert proxy.process.poll() is None
            assert "Traceback" not in proxy.logs()
    finally:
        broken.unlink()


# drain -------------------------------------------------------------------------------------------
def slow_get(proxy: Proxy, index: int) -> httpx.Response:
    return httpx.get(f"{proxy.url}/slow/2?n={index}", headers={"host": HOST}, timeout=30)


def drain_while_in_flight(proxy: Proxy, start_drain: Callable[[], None]) -> list[httpx.Response]:
    """Hold an idle keep-alive connection and 5 slow requests in flight, then drain; check what
    a client sees while the requests still run, and return their responses."""
    with connect(proxy.outbound) as idle, ThreadPoolExecutor(5) as pool:
        idle.sendall(f"GET /idle HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        assert read_response(idle.makefile("rb")).status == 200
        futures = [pool.submit(slow_get, proxy, index) for index in range(5)]
        wait_for(lambda: cluster_hosts(proxy)[V1][0]["rq_active"] == 5, timeout=10,
                 message="5 requests in flight")
        start_drain()
        wait_for(lambda: health(proxy) == 503, timeout=5, message="/healthz/ready 503")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.outbound), timeout=5).close()
        assert closed_by_peer(idle, timeout=5)
        assert not any(future.done() for future in futures)  # all of this happened mid-flight
        return [future.result(timeout=30) for future in futures]


def health(proxy: Proxy) -> int:
    return httpx.get(f"http://127.0.0.1:{proxy.health}/healthz/ready", timeout=5).status_code


@pytest.mark.parametrize("how", ["SIGTERM", "POST /drain"])
def test_drain_finishes_in_flight_requests_and_exits_0(setup: Setup, how: str) -> None:
    """Istio/Envoy graceful drain (terminationDrainDuration; Envoy admin POST /drain_listeners):
    listeners stop accepting, in-flight requests complete, idle connections close, exit 0."""
    setup.route_to("v1")
    with run_proxy(setup.config, "--drain-timeout", "10", tmp=setup.tmp) as proxy:
        def start_drain() -> None:
            if how == "SIGTERM":
                proxy.process.send_signal(signal.SIGTERM)
            else:
                assert httpx.post(f"{proxy.admin_url}/drain", timeout=5).status_code == 200

        responses = drain_while_in_flight(proxy, start_drain)
        assert [r.status_code for r in responses] == [200] * 5
        assert all(json.loads(r.content)["upstream"] == "v1" for r in responses)
        assert all(r.headers.get("connection") == "close" for r in responses)
        assert proxy.process.wait(timeout=15) == 0, proxy.logs()
        assert "drained and stopped" in proxy.logs()


def test_drain_timeout_bounds_the_exit_even_with_requests_still_running(setup: Setup) -> None:
    """Istio's terminationDrainDuration is an upper bound: a request longer than it is cut (the
    client sees the connection close) and the proxy still exits 0 once the time is up."""
    setup.route_to("v1")
    with run_proxy(setup.config, "--drain-timeout", "1", tmp=setup.tmp) as proxy, \
            connect(proxy.outbound, timeout=30) as sock:
        sock.sendall(f"GET /slow/6 HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        wait_for(lambda: cluster_hosts(proxy)[V1][0]["rq_active"] == 1, timeout=10,
                 message="request in flight")
        proxy.process.send_signal(signal.SIGTERM)
        assert proxy.process.wait(timeout=5) == 0, proxy.logs()
        assert closed_by_peer(sock, timeout=5)
