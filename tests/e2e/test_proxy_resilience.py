"""End to end: resilience as Istio configures it and Envoy applies it - route and per-try
timeouts, retries, circuit breaking, outlier detection, fault injection and mirroring - through a
real `remora proxy` to real upstreams on 127.0.0.1 (istio.io reference: virtual-service,
destination-rule; envoyproxy.io: router filter, circuit breaking, outlier detection, fault
injection)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from remora.runner.ports import free_port
from tests.e2e.meshkit import (
    EchoServer,
    Proxy,
    cluster_hosts,
    echo_servers,
    run_proxy,
    service_yaml,
    wait_access_record,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)

PORT = 8000


def cluster(service: str) -> str:
    return f"outbound|{PORT}||{service}.default.svc.cluster.local"


def prefixed(prefix: str, extra: str) -> str:
    """A VirtualService rule for /<prefix>/..., rewritten to /... upstream."""
    return (f"  - match: [{{uri: {{prefix: /{prefix}/}}}}]\n    rewrite: {{uri: /}}\n"
            f"    {extra}\n")


def virtual_service(name: str, rules: str) -> str:
    return (f"apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            f"metadata: {{name: {name}}}\nspec:\n  hosts: [{name}]\n  http:\n{rules}")


def routed(host: str) -> str:
    return f"route: [{{destination: {{host: {host}}}}}]"


TIMEOUTS = virtual_service("timeouts", (
    prefixed("route-timeout", "timeout: 0.5s\n    " + routed("timeouts"))
    + prefixed("per-try", "retries: {attempts: 3, perTryTimeout: 0.3s, retryOn: 5xx}\n    "
               + routed("timeouts"))
    + f"  - {routed('timeouts')}\n"
))
RETRIES = virtual_service("retries", (
    prefixed("a3-5xx", "retries: {attempts: 3, retryOn: 5xx}\n    " + routed("retries"))
    + prefixed("a2-5xx", "retries: {attempts: 2, retryOn: 5xx}\n    " + routed("retries"))
    + prefixed("gateway", "retries: {attempts: 2, retryOn: gateway-error}\n    "
               + routed("retries"))
    + prefixed("codes", "retries: {attempts: 2, retryOn: \"retriable-status-codes,503\"}\n    "
               + routed("retries"))
    + prefixed("bare", "retries: {attempts: 2, retryOn: \"503\"}\n    " + routed("retries"))
    + prefixed("fault", "fault: {delay: {fixedDelay: 0.1s, percentage: {value: 0}}}\n    "
               "retries: {attempts: 3, retryOn: 5xx}\n    " + routed("retries"))
    + f"  - {routed('retries')}\n"
))
DEAD_LIVE = virtual_service("deadlive", (
    f"  - retries: {{attempts: 1, retryOn: connect-failure}}\n    {routed('deadlive')}\n"
))
BREAKERS = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: breaker}
spec:
  host: breaker
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: onecx}
spec:
  host: onecx
  trafficPolicy:
    connectionPool:
      http: {maxRequestsPerConnection: 1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: outlier}
spec:
  host: outlier
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 2
      interval: 1s
      baseEjectionTime: 3s
      maxEjectionPercent: 100
"""
FAULTS = virtual_service("faults", (
    prefixed("abort", "fault: {abort: {httpStatus: 418, percentage: {value: 100}}}\n    "
             + routed("faults"))
    + prefixed("delay", "fault: {delay: {fixedDelay: 1s, percentage: {value: 100}}}\n    "
               + routed("faults"))
    + prefixed("half", "fault: {abort: {httpStatus: 503, percentage: {value: 50}}}\n    "
               + routed("faults"))
    + prefixed("nopct", "fault: {abort: {httpStatus: 418}}\n    " + routed("faults"))
))
MIRRORS = virtual_service("mirrored", (
    prefixed("copy", "mirror: {host: shadow}\n    mirrorPercentage: {value: 100}\n    "
             + routed("mirrored"))
    + prefixed("slowcopy", "mirror: {host: slowshadow}\n    " + routed("mirrored"))
    + prefixed("deadcopy", "mirror: {host: deadshadow}\n    " + routed("mirrored"))
    + prefixed("nocopy", "mirror: {host: shadow}\n    mirrorPercentage: {value: 0}\n    "
               + routed("mirrored"))
))

# service name → upstream servers behind it ("dead": a port nothing listens on)
SERVICES = {
    "timeouts": ["timeouts"], "retries": ["retries"], "deadlive": ["dead", "live"],
    "alldead": ["dead"], "breaker": ["breaker"], "unlimited": ["unlimited"], "onecx": ["onecx"],
    "outlier": ["bad", "good"], "faults": ["faults"], "mirrored": ["primary"],
    "shadow": ["shadow"], "slowshadow": ["slowshadow"], "deadshadow": ["dead"],
}


@dataclass
class Mesh:
    proxy: Proxy
    servers: dict[str, EchoServer]
    access_log: Path
    dead_port: int

    def get(self, service: str, path: str, *, timeout: float = 10.0,
            request_id: str | None = None) -> httpx.Response:
        headers = {"host": f"{service}:{PORT}"}
        if request_id is not None:
            headers["x-request-id"] = request_id
        return httpx.get(f"{self.proxy.url}{path}", headers=headers, timeout=timeout)

    def flags(self, request_id: str) -> set[str]:
        """The response flags of the access-log record of a request (after the 1 s flush)."""
        record = wait_access_record(self.access_log, lambda r: r.get("request_id") == request_id)
        return set(str(record["response_flags"]).split(","))

    def host(self, service: str, server: str) -> dict[str, object]:
        port = self.dead_port if server == "dead" else self.servers[server].port
        rows = cluster_hosts(self.proxy)[cluster(service)]
        return next(row for row in rows if row["address"] == f"127.0.0.1:{port}")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    tmp = tmp_path_factory.mktemp("resilience")
    config = tmp / "config"
    config.mkdir()
    dead_port = free_port()
    names = sorted({name for names in SERVICES.values() for name in names} - {"dead"})
    with echo_servers(*names) as servers:
        servers["bad"].fail_status = 503
        servers["slowshadow"].stall = 3.0
        for service, upstreams in SERVICES.items():
            endpoints: list[tuple[int, dict[str, str]]] = [
                (dead_port if name == "dead" else servers[name].port, {}) for name in upstreams
            ]
            (config / f"{service}.yaml").write_text(service_yaml(service, PORT, endpoints))
        rules = [TIMEOUTS, RETRIES, DEAD_LIVE, BREAKERS, FAULTS, MIRRORS]
        (config / "rules.yaml").write_text("---\n".join(rules))
        access_log = tmp / "access.log"
        with run_proxy(config, "--access-log", str(access_log), tmp=tmp) as proxy:
            yield Mesh(proxy, servers, access_log, dead_port)


def connect_failures(mesh: Mesh, service: str) -> int:
    """/clusters cx_connect_fail of the service's refused endpoint."""
    return int(str(mesh.host(service, "dead")["cx_connect_fail"]))


def unique() -> str:
    return uuid.uuid4().hex[:12]


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = call()
    return response, time.monotonic() - start


# timeouts (VirtualService HTTPRoute.timeout, HTTPRetry.perTryTimeout) -----------------------------
def test_route_timeout_answers_504_ut_in_time(mesh: Mesh) -> None:
    """HTTPRoute.timeout 0.5s vs a 2 s upstream: Envoy's route timeout, 504 "upstream request
    timeout" with flag UT, sent when the timeout fires (not when the upstream answers)."""
    rid = unique()
    response, took = timed(lambda: mesh.get("timeouts", "/route-timeout/slow/2", request_id=rid))
    assert response.status_code == 504
    assert response.text == "upstream request timeout"
    assert took < 1.5
    assert "UT" in mesh.flags(rid)


def test_no_route_timeout_by_default(mesh: Mesh) -> None:
    """HTTPRoute.timeout: "timeout for HTTP requests, default is disabled" - a 2 s answer
    arrives (Istio sets Envoy's route timeout to 0)."""
    response, took = timed(lambda: mesh.get("timeouts", "/slow/2"))
    assert response.status_code == 200
    assert took >= 2.0


def test_per_try_timeout_cuts_each_try_and_retries(mesh: Mesh) -> None:
    """HTTPRetry.perTryTimeout 0.3s, retryOn 5xx (Envoy: 5xx covers a per-try timeout): the two
    stalled tries are cut, the third answers; the upstream saw three requests."""
    path = f"/stall/2/1?id={unique()}"
    response, took = timed(lambda: mesh.get("timeouts", f"/per-try{path}"))
    assert response.status_code == 200
    assert mesh.servers["timeouts"].paths[path] == 3
    assert took < 1.9  # two cut tries, not two full 1 s stalls


# retries (HTTPRetry; Envoy x-envoy-retry-on semantics) --------------------------------------------
def test_retry_on_5xx_until_success(mesh: Mesh) -> None:
    """attempts 3, retryOn 5xx: 503, 503, then 200 - the client sees 200 (at most 1 + attempts
    requests; here 3 were needed)."""
    path = f"/flaky/2/503?id={unique()}"
    response = mesh.get("retries", f"/a3-5xx{path}")
    assert response.status_code == 200
    assert mesh.servers["retries"].paths[path] == 3


def test_retries_exhausted_returns_last_answer_with_urx(mesh: Mesh) -> None:
    """attempts 2 against an always-503 upstream: exactly 1 + 2 tries, the last 503 goes to the
    client, flag URX (Envoy: upstream retry limit exceeded)."""
    path, rid = f"/status/503?id={unique()}", unique()
    response = mesh.get("retries", f"/a2-5xx{path}", request_id=rid)
    assert response.status_code == 503
    assert mesh.servers["retries"].paths[path] == 3
    assert "URX" in mesh.flags(rid)


def test_gateway_error_retries_502_503_504_only(mesh: Mesh) -> None:
    """retryOn gateway-error: Envoy retries 502, 503 and 504 but not a 500."""
    server = mesh.servers["retries"]
    plain = f"/status/500?id={unique()}"
    assert mesh.get("retries", f"/gateway{plain}").status_code == 500
    assert server.paths[plain] == 1
    flaky = f"/flaky/1/502?id={unique()}"
    assert mesh.get("retries", f"/gateway{flaky}").status_code == 200
    assert server.paths[flaky] == 2


@pytest.mark.parametrize("prefix", ["codes", "bare"])
def test_retriable_status_codes(mesh: Mesh, prefix: str) -> None:
    """retryOn "retriable-status-codes,503" and a bare "503" (Istio turns bare codes into
    retriable-status-codes): a 503 is retried, a 500 is not."""
    server = mesh.servers["retries"]
    flaky = f"/flaky/1/503?id={unique()}"
    assert mesh.get("retries", f"/{prefix}{flaky}").status_code == 200
    assert server.paths[flaky] == 2
    plain = f"/status/500?id={unique()}"
    assert mesh.get("retries", f"/{prefix}{plain}").status_code == 500
    assert server.paths[plain] == 1


def test_default_policy_does_not_retry_503(mesh: Mesh) -> None:
    """No retries field: Istio's default policy (connect-failure, refused-stream, unavailable,
    cancelled, retriable-status-codes; 503 excluded since EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY)
    leaves a 503 alone: one request upstream."""
    path = f"/status/503?id={unique()}"
    assert mesh.get("retries", path).status_code == 503
    assert mesh.servers["retries"].paths[path] == 1


def test_fault_route_gets_no_retries(mesh: Mesh) -> None:
    """istio/api HTTPRoute.fault: "timeouts or retries will not be enabled when faults are
    enabled" - even a fault that never fires (percentage 0) turns the route's retries off."""
    path = f"/flaky/2/503?id={unique()}"
    assert mesh.get("retries", f"/fault{path}").status_code == 503
    assert mesh.servers["retries"].paths[path] == 1


def test_connect_failure_retry_goes_to_the_other_host(mesh: Mesh) -> None:
    """attempts 1, retryOn connect-failure, one refused endpoint and one live: the previous-hosts
    predicate (retryIgnorePreviousHosts, default true; Istio's host_selection_retry_max_attempts
    5) sends the one retry to the live host. Without it a quarter of the requests would fail
    (dead first pick, dead retry); with it only those whose 5 re-picks all land on the dead host
    (1 in 64 requests), so at most 4 of 40 fail, while about 20 first picks hit the dead one."""
    before = connect_failures(mesh, "deadlive")
    statuses = [mesh.get("deadlive", f"/?n={n}").status_code for n in range(40)]
    assert statuses.count(200) >= 36, statuses
    assert connect_failures(mesh, "deadlive") - before >= 8


def test_default_policy_retries_connect_failure_then_uf_urx(mesh: Mesh) -> None:
    """Istio's default policy retries connect-failure twice: a refused endpoint is tried three
    times, then Envoy answers 503 with flags UF (connect failure) and URX."""
    before = connect_failures(mesh, "alldead")
    rid = unique()
    response = mesh.get("alldead", "/", request_id=rid)
    assert response.status_code == 503
    assert mesh.flags(rid) == {"UF", "URX"}
    assert connect_failures(mesh, "alldead") - before == 3


# circuit breaking (DestinationRule connectionPool; Envoy circuit breakers) ------------------------
def concurrent_gets(mesh: Mesh, service: str, path: str, *, clients: int
                    ) -> list[tuple[int, float, str]]:
    """`clients` simultaneous requests: (status, seconds, request id) each; a 503 carries
    x-envoy-overloaded only when a circuit breaker dropped it (then as "true")."""
    def one(index: int) -> tuple[int, float, str]:
        rid = unique()
        response, took = timed(lambda: mesh.get(service, f"{path}?c={index}", request_id=rid))
        overloaded = response.headers.get("x-envoy-overloaded")
        assert overloaded == ("true" if response.status_code == 503 else None)
        return response.status_code, took, rid

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, range(clients)))


def test_overflow_is_an_immediate_503_uo(mesh: Mesh) -> None:
    """tcp.maxConnections 1 and http.http1MaxPendingRequests 1, five concurrent 1 s requests:
    one is served, one waits for the connection, the rest overflow the pending queue - Envoy
    answers them 503 with flag UO and x-envoy-overloaded: true (router filter docs) at once
    instead of queueing them."""
    results = concurrent_gets(mesh, "breaker", "/slow/1", clients=5)
    served = [r for r in results if r[0] == 200]
    overflowed = [r for r in results if r[0] == 503]
    assert len(served) + len(overflowed) == 5
    assert 1 <= len(served) <= 2 and overflowed
    # answered at once: each before the served request's 1 s answer (an order, not a clock)
    assert max(took for _, took, _ in overflowed) < min(took for _, took, _ in served)
    assert all(mesh.flags(rid) == {"UO"} for _, _, rid in overflowed)


def test_unset_limits_do_not_overflow(mesh: Mesh) -> None:
    """No connectionPool: Istio's defaults are effectively unlimited (2^32-1), so the same five
    concurrent requests all get 200, served side by side."""
    results = concurrent_gets(mesh, "unlimited", "/slow/1", clients=5)
    assert [status for status, _, _ in results] == [200] * 5
    # side by side, not one after the other (which would spread them over 1..5 s)
    times = [took for _, took, _ in results]
    assert max(times) < 2 * min(times)


def test_max_requests_per_connection_1_disables_keep_alive(mesh: Mesh) -> None:
    """http.maxRequestsPerConnection 1 ("setting this parameter to 1 disables keep alive"): each
    request opens its own upstream connection, as /clusters cx_total shows."""
    before = int(str(mesh.host("onecx", "onecx")["cx_total"]))
    with httpx.Client(headers={"host": f"onecx:{PORT}"}) as client:
        for n in range(4):
            assert client.get(f"{mesh.proxy.url}/?n={n}").status_code == 200
    assert int(str(mesh.host("onecx", "onecx")["cx_total"])) - before == 4


# outlier detection (DestinationRule outlierDetection; Envoy outlier detection) --------------------
def ejected_in_admin(mesh: Mesh, server: str) -> bool:
    """/clusters shows the host with Envoy's health flag /failed_outlier_check."""
    return "failed_outlier_check" in str(mesh.host("outlier", server)["health_flags"])


def test_outlier_ejected_host_gets_no_traffic_until_base_ejection_time(mesh: Mesh) -> None:
    """consecutive5xxErrors 2, interval 1s, baseEjectionTime 3s, maxEjectionPercent 100, one of
    two endpoints always 503: Envoy ejects it on its 2nd consecutive 5xx, all later requests go
    to the good one, /clusters flags it, and after baseEjectionTime (checked every interval) it
    gets traffic again."""
    bad, good = mesh.servers["bad"], mesh.servers["good"]
    with httpx.Client(headers={"host": f"outlier:{PORT}"}) as client:
        def get() -> int:
            return client.get(f"{mesh.proxy.url}/").status_code

        statuses = [get() for _ in range(30)]
        assert statuses.count(503) == 2 == bad.hits  # ejected on its second consecutive 5xx
        ejected_at = time.monotonic()
        assert ejected_in_admin(mesh, "bad") and not ejected_in_admin(mesh, "good")
        served = good.hits
        assert [get() for _ in range(20)] == [200] * 20
        assert good.hits == served + 20 and bad.hits == 2
        wait_for(lambda: get() == 503, timeout=6, interval=0.05,
                 message="the ejected host back in rotation")
        assert time.monotonic() - ejected_at >= 2.9  # not before baseEjectionTime
        assert bad.hits == 3
        assert not ejected_in_admin(mesh, "bad")  # until its next two 5xx


# fault injection (HTTPFaultInjection; Envoy fault filter) -----------------------------------------
def test_abort_fault_answers_the_status_with_fi(mesh: Mesh) -> None:
    """abort {httpStatus: 418, percentage 100}: the proxy answers 418 "fault filter abort" itself
    (flag FI); the upstream never sees the request."""
    rid, hits = unique(), mesh.servers["faults"].hits
    response = mesh.get("faults", "/abort/x", request_id=rid)
    assert response.status_code == 418
    assert response.text == "fault filter abort"
    assert mesh.flags(rid) == {"FI"}
    assert mesh.servers["faults"].hits == hits


def test_delay_fault_delays_then_forwards_with_di(mesh: Mesh) -> None:
    """delay {fixedDelay: 1s, percentage 100}: the request reaches the upstream after 1 s (flag
    DI) and its answer comes back."""
    rid = unique()
    response, took = timed(lambda: mesh.get("faults", "/delay/x", request_id=rid))
    assert response.status_code == 200
    assert 1.0 <= took < 3.0
    assert mesh.flags(rid) == {"DI"}


def test_fault_percentage_is_a_fraction_of_requests(mesh: Mesh) -> None:
    """abort percentage 50 over 200 requests: binomial(200, 0.5), mean 100, sd 7.1 - within
    5 sd; the others reach the upstream."""
    hits = mesh.servers["faults"].hits
    with httpx.Client(headers={"host": f"faults:{PORT}"}) as client:
        statuses = [client.get(f"{mesh.proxy.url}/half/?n={n}").status_code for n in range(200)]
    aborted = statuses.count(503)
    assert 65 <= aborted <= 135
    assert statuses.count(200) == 200 - aborted == mesh.servers["faults"].hits - hits


def test_fault_without_percentage_never_fires(mesh: Mesh) -> None:
    """abort without percentage: Istio translates the unset (deprecated integer) percent, 0, so
    no request is aborted."""
    with httpx.Client(headers={"host": f"faults:{PORT}"}) as client:
        statuses = [client.get(f"{mesh.proxy.url}/nopct/?n={n}").status_code for n in range(20)]
    assert statuses == [200] * 20


# mirroring (HTTPRoute mirror / mirrorPercentage; Envoy request mirror policy) ---------------------
def test_mirror_copies_the_request_with_shadow_authority(mesh: Mesh) -> None:
    """mirror {host: shadow}, mirrorPercentage 100: the shadow upstream gets a copy whose
    authority is the request's host with Envoy's "-shadow" suffix, port kept."""
    path = f"/?id={unique()}"
    response = mesh.get("mirrored", f"/copy{path}")
    assert response.status_code == 200
    assert response.json()["upstream"] == "primary"
    shadow = mesh.servers["shadow"]
    wait_for(lambda: shadow.paths[path] == 1, timeout=5, message="the mirrored copy")
    assert shadow.headers[path]["host"] == f"mirrored-shadow:{PORT}"


@pytest.mark.parametrize("prefix", ["slowcopy", "deadcopy"])
def test_slow_or_dead_mirror_never_affects_the_primary(mesh: Mesh, prefix: str) -> None:
    """Mirroring is fire-and-forget: a mirror that takes 3 s, or whose endpoint refuses
    connections, changes neither the primary's status nor its timing."""
    for path in (f"/{prefix}/?n={n}" for n in range(3)):
        response, took = timed(lambda: mesh.get("mirrored", path))  # noqa: B023 - called now
        assert response.status_code == 200
        assert took < 1.0


def test_mirror_percentage_zero_sends_no_copy(mesh: Mesh) -> None:
    """mirrorPercentage 0: no request is mirrored (a later 100 % copy shows the shadow is
    reachable and that copies arrive)."""
    tag = unique()
    for n in range(20):
        assert mesh.get("mirrored", f"/nocopy/?id={tag}&n={n}").status_code == 200
    barrier = f"/?id={tag}"
    assert mesh.get("mirrored", f"/copy{barrier}").status_code == 200
    shadow = mesh.servers["shadow"]
    wait_for(lambda: shadow.paths[barrier] == 1, timeout=5, message="the mirrored barrier")
    assert not [p for p in shadow.paths if tag in p and p != barrier]


def test_request_lost_on_a_reused_connection_is_a_reset_not_a_replay(mesh: Mesh) -> None:
    """A POST sent on a pooled keep-alive connection whose upstream closes it without answering:
    the request may have reached the application, so it is not sent again behind the retry
    policy's back (RFC 9110 §9.2.2: a proxy MUST NOT automatically retry non-idempotent
    requests). Istio's default policy does not retry a reset: Envoy answers 503, flag UC."""
    path, rid = f"/drop/1?id={unique()}", unique()
    with httpx.Client(headers={"host": f"retries:{PORT}"}) as client:
        assert client.get(f"{mesh.proxy.url}/?warm").status_code == 200  # a pooled connection
        response = client.post(f"{mesh.proxy.url}{path}", content=b"order #1",
                               headers={"x-request-id": rid})
    assert response.status_code == 503
    assert mesh.servers["retries"].paths[path] == 1
    assert mesh.flags(rid) == {"UC"}
