"""The upstream call's state machine (remora.proxy.call) through the harness: Envoy's router
retries (router_filter.rst x-envoy-retry-on: 5xx, connect-failure, reset; per_try_timeout;
URX when retries ran out), the route timeout (504 UT, or a cut once the response started),
the client going away (DC), the cluster circuit breakers ("Circuit breaking": 503 UO with
x-envoy-overloaded) and the keep-alive connection pool."""

from __future__ import annotations

from pathlib import Path

from tests.unit.proxy.harness import (
    ProxyHarness,
    Upstream,
    access_log_lines,
    request_bytes,
    run,
    service_entry,
)

REVIEWS_HOST = "reviews.default.svc.cluster.local"
SERVICE = service_entry("reviews")
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
UNAVAILABLE = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\n\r\nbusy"
TRY_GAP = 0.03  # more than a retry's jittered back-off: HTTPRetry backoff 1ms (caps 1, 2, 4 ms),
#                 and Istio's default 25 ms before a first retry


def route(extra: str = "", *, policy: str = "") -> str:
    """reviews with one VirtualService rule carrying `extra` (retries, timeout) and, if given,
    a DestinationRule trafficPolicy `policy`."""
    yaml = SERVICE + f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [{REVIEWS_HOST}]
  http:
  - route: [{{destination: {{host: {REVIEWS_HOST}}}}}]
{extra}"""
    if policy:
        yaml += f"""\
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: {REVIEWS_HOST}
  trafficPolicy:
{policy}"""
    return yaml


def pool(proxy: ProxyHarness) -> tuple[int, int]:
    """(connections opened, connect failures) of the reviews endpoint."""
    endpoint = proxy.env.pools.get("10.0.0.1", 9080)
    return endpoint.cx_total, endpoint.cx_connect_fail


async def next_try(proxy: ProxyHarness, seen: int) -> Upstream:
    """The connection of the next try, once the back-off has passed."""
    await proxy.settle(TRY_GAP)
    assert len(proxy.network.opened) == seen + 1, "expected one more try"
    return proxy.network.last


# retries -------------------------------------------------------------------------------------
RETRY_5XX = "    retries: {attempts: 2, retryOn: 5xx, backoff: 1ms}\n"


def test_5xx_is_retried_the_configured_number_of_times_then_urx(tmp_path: Path) -> None:
    """HTTPRetry attempts 2 on 5xx: three tries in all; the last 503 reaches the client with
    flags URX (upstream retry limit exceeded)."""
    log = str(tmp_path / "access.log")

    async def body() -> None:
        proxy = ProxyHarness(route(RETRY_5XX), access_log=log)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        for tries in range(3):
            upstream = await next_try(proxy, tries)
            assert upstream.request().startswith(b"GET /r HTTP/1.1\r\n")
            upstream.respond(UNAVAILABLE)
        await proxy.settle(TRY_GAP)
        assert len(proxy.network.opened) == 3
        response = client.response()
        assert (response.status, response.body) == (503, b"busy")  # the upstream's own
        [record] = access_log_lines(proxy, log)
        assert record["response_flags"] == "URX"
        # a retried try's connection is closed, not reused
        assert all(u.transport.closed for u in proxy.network.opened[:2])

    run(body)


def test_a_5xx_then_a_success_is_the_success() -> None:
    async def body() -> None:
        proxy = ProxyHarness(route(RETRY_5XX))
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        (await next_try(proxy, 0)).respond(UNAVAILABLE)
        (await next_try(proxy, 1)).respond(OK)
        response = client.response()
        assert (response.status, response.body) == (200, b"ok")

    run(body)


def test_5xx_is_not_retried_under_istios_default_policy() -> None:
    """Istio's default retryOn (connect-failure,refused-stream,unavailable,cancelled,
    retriable-status-codes) has no status codes: a 503 goes straight to the client."""
    async def body() -> None:
        proxy = ProxyHarness(SERVICE)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        (await next_try(proxy, 0)).respond(UNAVAILABLE)
        await proxy.settle(TRY_GAP)
        assert len(proxy.network.opened) == 1
        assert client.response().status == 503

    run(body)


def test_retry_on_status_codes_retries_only_those() -> None:
    """retryOn "502": Istio's bare codes become retriable-status-codes."""
    async def body() -> None:
        proxy = ProxyHarness(route("    retries: {attempts: 3, retryOn: '502', backoff: 1ms}\n"))
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        (await next_try(proxy, 0)).respond(b"HTTP/1.1 502 Bad\r\ncontent-length: 0\r\n\r\n")
        (await next_try(proxy, 1)).respond(UNAVAILABLE)
        await proxy.settle(TRY_GAP)
        assert len(proxy.network.opened) == 2
        assert client.response().status == 503

    run(body)


def test_connect_failure_is_retried_then_503_uf_urx(tmp_path: Path) -> None:
    log = str(tmp_path / "access.log")

    async def body() -> None:
        proxy = ProxyHarness(route(
            "    retries: {attempts: 3, retryOn: connect-failure, backoff: 1ms}\n"),
            access_log=log)
        proxy.network.refused.add(9080)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle(0.05)  # back-off caps 1, 2, 4 ms
        assert pool(proxy) == (4, 4)
        response = client.response()
        assert response.status == 503
        assert response.body.endswith(b"reset reason: connection failure")
        [record] = access_log_lines(proxy, log)
        assert record["response_flags"] == "UF,URX"
        assert record["response_code_details"] == (
            "upstream_reset_before_response_started{connection_failure}")

    run(body)


def test_connect_failure_then_a_connection_that_works() -> None:
    async def body() -> None:
        # Istio's default back-off (25 ms) leaves time to let the next connect through
        proxy = ProxyHarness(route("    retries: {attempts: 2, retryOn: connect-failure}\n"))
        proxy.network.refused.add(9080)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        assert pool(proxy) == (1, 1)
        proxy.network.refused.clear()
        (await next_try(proxy, 0)).respond(OK)
        assert client.response().status == 200

    run(body)


def test_a_reset_before_the_response_is_retried_on_retry_on_reset() -> None:
    async def body() -> None:
        proxy = ProxyHarness(route("    retries: {attempts: 1, retryOn: reset, backoff: 1ms}\n"))
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        (await next_try(proxy, 0)).close()
        (await next_try(proxy, 1)).respond(OK)
        assert client.response().status == 200

    run(body)


def test_a_reset_before_the_response_is_503_uc_without_retry_on_reset(tmp_path: Path) -> None:
    """Envoy's body for a reset before headers: "... reset reason: connection termination"."""
    log = str(tmp_path / "access.log")

    async def body() -> None:
        proxy = ProxyHarness(SERVICE, access_log=log)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        (await next_try(proxy, 0)).close()
        await proxy.settle(TRY_GAP)
        assert len(proxy.network.opened) == 1
        response = client.response()
        assert response.status == 503
        assert response.body.endswith(b"reset reason: connection termination")
        [record] = access_log_lines(proxy, log)
        assert record["response_flags"] == "UC"

    run(body)


def test_a_retry_replays_the_request_body() -> None:
    """Envoy buffers the request body for retries: the second try gets all of it again."""
    async def body() -> None:
        proxy = ProxyHarness(route(RETRY_5XX))
        client = proxy.client()
        client.send(request_bytes("POST", "/r", host="reviews:9080", body=b"payload-123"),
                    method="POST")
        first = await next_try(proxy, 0)
        assert first.request().endswith(b"\r\n\r\npayload-123")
        first.respond(UNAVAILABLE)
        second = await next_try(proxy, 1)
        sent = second.request()
        assert sent.startswith(b"POST /r HTTP/1.1\r\n")
        assert sent.endswith(b"\r\n\r\npayload-123")
        assert b"content-length: 11" in sent.lower()
        second.respond(OK)
        assert client.response().status == 200

    run(body)


def test_a_retry_replays_a_body_that_arrived_after_the_head() -> None:
    async def body() -> None:
        proxy = ProxyHarness(route(RETRY_5XX))
        client = proxy.client()
        whole = request_bytes("PUT", "/r", host="reviews:9080", body=b"abcdef")
        head, rest = whole[:-6], whole[-6:]
        client.send(head, method="PUT")
        await proxy.settle()
        client.connection.data_received(rest[:3])
        client.connection.data_received(rest[3:])
        first = await next_try(proxy, 0)
        assert first.request().endswith(b"abcdef")
        first.respond(UNAVAILABLE)
        second = await next_try(proxy, 1)
        assert second.request().endswith(b"\r\n\r\nabcdef")

    run(body)


def test_per_try_timeout_starts_another_try_then_504_ut_urx(tmp_path: Path) -> None:
    """HTTPRetry perTryTimeout: a try without a response head in time is given up and, under
    a retryOn covering resets (5xx), retried; the last one's timeout is Envoy's 504 UT."""
    log = str(tmp_path / "access.log")

    async def body() -> None:
        proxy = ProxyHarness(route(
            "    retries: {attempts: 1, retryOn: 5xx, perTryTimeout: 0.04s, backoff: 1ms}\n"),
            access_log=log)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        assert len(proxy.network.opened) == 1
        await proxy.settle(0.06)  # the first try timed out at 40 ms, the second times out at 80
        assert len(proxy.network.opened) == 2
        assert proxy.network.opened[0].transport.closed  # the timed-out try's connection
        assert client.responses() == []
        await proxy.settle(0.04)
        response = client.response()
        assert (response.status, response.body) == (504, b"upstream request timeout")
        [record] = access_log_lines(proxy, log)
        assert record["response_flags"] == "UT,URX"
        assert record["response_code_details"] == "upstream_per_try_timeout"

    run(body)


def test_per_try_timeout_then_a_try_that_answers() -> None:
    async def body() -> None:
        proxy = ProxyHarness(route(
            "    retries: {attempts: 1, retryOn: 5xx, perTryTimeout: 0.1s}\n"))
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        # the first try times out at 100 ms, the second starts < 25 ms later: answer it then
        for _ in range(60):
            await proxy.settle(0.005)
            if len(proxy.network.opened) == 2:
                break
        late, second = proxy.network.opened
        assert late.transport.closed
        second.respond(OK)
        assert client.response().status == 200

    run(body)


def test_an_upstream_protocol_error_is_502_upe() -> None:
    """Envoy answers a malformed upstream response with 502 (flag UPE)."""
    async def body() -> None:
        proxy = ProxyHarness(SERVICE)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        (await next_try(proxy, 0)).respond(b"NOT HTTP AT ALL\r\n\r\n")
        response = client.response()
        assert response.status == 502
        assert proxy.network.last.transport.closed

    run(body)


# a pooled connection the upstream closed ------------------------------------------------------
async def pooled(proxy: ProxyHarness, client_method: str, *, body: bytes = b"") -> Upstream:
    """One request answered with keep-alive, then a second one sent on the pooled connection."""
    client = proxy.client()
    client.get("/first", host="reviews:9080")
    await proxy.settle()
    connection = proxy.network.last
    connection.request()
    connection.respond(OK)
    assert client.response().status == 200
    proxy.second = client  # type: ignore[attr-defined]
    client.send(request_bytes(client_method, "/second", host="reviews:9080", body=body),
                method=client_method)
    await proxy.settle()
    assert len(proxy.network.opened) == 1, "the pooled connection is reused"
    assert connection.request().startswith(f"{client_method} /second".encode())
    return connection


def test_a_pooled_connection_closed_by_the_upstream_is_retried_on_a_fresh_one() -> None:
    """An idempotent request on a keep-alive connection the upstream had just closed goes
    again, once, on a new connection (RFC 9110 §9.2.2), whatever the retry policy."""
    async def body() -> None:
        proxy = ProxyHarness(route("    retries: {attempts: 0}\n"))
        stale = await pooled(proxy, "GET")
        stale.close()
        await proxy.settle()
        assert len(proxy.network.opened) == 2
        fresh = proxy.network.last
        assert fresh.request().startswith(b"GET /second HTTP/1.1\r\n")
        fresh.respond(OK)
        assert proxy.second.response().status == 200  # type: ignore[attr-defined]

    run(body)


def test_a_fresh_connection_closed_too_is_not_retried_again() -> None:
    async def body() -> None:
        proxy = ProxyHarness(route("    retries: {attempts: 0}\n"))
        stale = await pooled(proxy, "GET")
        stale.close()
        await proxy.settle()
        proxy.network.last.close()
        await proxy.settle(TRY_GAP)
        assert len(proxy.network.opened) == 2
        assert proxy.second.response().status == 503  # type: ignore[attr-defined]

    run(body)


def test_a_non_idempotent_request_on_a_closed_pooled_connection_is_not_sent_again() -> None:
    """POST may have reached the application: a proxy must not retry it on its own."""
    async def body() -> None:
        proxy = ProxyHarness(route("    retries: {attempts: 0}\n"))
        stale = await pooled(proxy, "POST", body=b"x")
        stale.close()
        await proxy.settle(TRY_GAP)
        assert len(proxy.network.opened) == 1
        response = proxy.second.response()  # type: ignore[attr-defined]
        assert response.status == 503
        assert response.body.endswith(b"connection termination")

    run(body)


# the route timeout ----------------------------------------------------------------------------
TIMEOUT = "    timeout: 0.05s\n"


def test_the_route_timeout_before_a_response_is_504_ut(tmp_path: Path) -> None:
    """VirtualService `timeout` (Envoy route timeout): 504 "upstream request timeout", UT; the
    upstream connection of the abandoned request is closed."""
    log = str(tmp_path / "access.log")

    async def body() -> None:
        proxy = ProxyHarness(route(TIMEOUT), access_log=log)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        upstream = proxy.network.last
        await proxy.settle(0.07)
        response = client.response()
        assert (response.status, response.body) == (504, b"upstream request timeout")
        assert upstream.transport.closed
        assert not client.transport.closed
        [record] = access_log_lines(proxy, log)
        assert record["response_flags"].split(",")[0] == "UT"

    run(body)


def test_the_route_timeout_after_the_response_started_cuts_the_client_off(
        tmp_path: Path) -> None:
    """Once the response head went out, Envoy cannot replace it: the client connection is
    closed mid-body, flag UT."""
    log = str(tmp_path / "access.log")

    async def body() -> None:
        proxy = ProxyHarness(route(TIMEOUT), access_log=log)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        upstream = proxy.network.last
        upstream.respond(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
        await proxy.settle(0.07)
        assert client.transport.closed
        assert client.transport.take().startswith(b"HTTP/1.1 200")
        assert upstream.transport.closed
        [record] = access_log_lines(proxy, log)
        assert (record["response_code"], record["response_flags"]) == (200, "UT")

    run(body)


def test_a_response_within_the_route_timeout_is_not_touched() -> None:
    async def body() -> None:
        proxy = ProxyHarness(route(TIMEOUT))
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        proxy.network.last.respond(OK)
        assert client.response().status == 200
        await proxy.settle(0.07)
        assert not client.transport.closed
        assert client.responses() == []

    run(body)


def test_an_upstream_cut_after_the_response_started_closes_the_client_uc(
        tmp_path: Path) -> None:
    log = str(tmp_path / "access.log")

    async def body() -> None:
        proxy = ProxyHarness(route(RETRY_5XX), access_log=log)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        upstream = proxy.network.last
        upstream.respond(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
        upstream.close()
        await proxy.settle(TRY_GAP)
        assert client.transport.closed
        assert len(proxy.network.opened) == 1  # nothing to retry once the response started
        [record] = access_log_lines(proxy, log)
        assert record["response_flags"] == "UC"

    run(body)


# the client goes away -------------------------------------------------------------------------
def test_a_client_gone_mid_response_closes_the_upstream_connection_dc(tmp_path: Path) -> None:
    """Flag DC (downstream connection termination); the half-read upstream connection cannot
    carry another request, so it is closed, not pooled."""
    log = str(tmp_path / "access.log")

    async def body() -> None:
        proxy = ProxyHarness(SERVICE, access_log=log)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        upstream = proxy.network.last
        upstream.respond(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf")
        client.lose()
        await proxy.settle()
        assert upstream.transport.closed
        assert not proxy.env.pools.get("10.0.0.1", 9080).idle
        [record] = access_log_lines(proxy, log)
        assert record["response_flags"] == "DC"

        other = proxy.client()
        other.get("/r", host="reviews:9080")
        await proxy.settle()
        assert len(proxy.network.opened) == 2

    run(body)


def test_a_client_gone_before_the_response_closes_the_upstream_connection() -> None:
    async def body() -> None:
        proxy = ProxyHarness(SERVICE)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        client.lose()
        await proxy.settle()
        assert proxy.network.last.transport.closed

    run(body)


# circuit breakers -----------------------------------------------------------------------------
def breaker(settings: str) -> str:
    return route("    retries: {attempts: 0}\n",
                 policy=f"    connectionPool: {settings}\n")


def assert_overflow(response: object) -> None:
    assert response.status == 503  # type: ignore[attr-defined]
    assert response.headers["x-envoy-overloaded"] == "true"  # type: ignore[attr-defined]
    assert response.body.endswith(b"reset reason: overflow")  # type: ignore[attr-defined]


def test_max_connections_and_pending_requests_overflow_is_503_uo(tmp_path: Path) -> None:
    """tcp.maxConnections 1 and http.http1MaxPendingRequests 1: the first request holds the
    connection, the second waits for it, the third overflows (upstream_rq_pending_overflow,
    503 UO with x-envoy-overloaded); the waiting one then gets the released connection."""
    log = str(tmp_path / "access.log")

    async def body() -> None:
        proxy = ProxyHarness(breaker("{tcp: {maxConnections: 1}, http: "
                                     "{http1MaxPendingRequests: 1}}"), access_log=log)
        first, second, third = proxy.client(), proxy.client(), proxy.client()
        for client in (first, second, third):
            client.get("/r", host="reviews:9080")
            await proxy.settle()
        assert len(proxy.network.opened) == 1
        assert first.responses() == [] and second.responses() == []
        assert_overflow(third.response())
        upstream = proxy.network.last
        upstream.request()
        upstream.respond(OK)
        assert first.response().status == 200
        await proxy.settle()
        assert upstream.request().startswith(b"GET /r HTTP/1.1\r\n")  # the queued one
        upstream.respond(OK)
        assert second.response().status == 200
        assert len(proxy.network.opened) == 1
        flags = [r["response_flags"] for r in access_log_lines(proxy, log)]
        assert sorted(flags) == ["-", "-", "UO"]

    run(body)


def test_max_requests_overflow_is_503_uo() -> None:
    """http.http2MaxRequests (Envoy max_requests): outstanding requests to the cluster."""
    async def body() -> None:
        proxy = ProxyHarness(breaker("{http: {http2MaxRequests: 1}}"))
        first, second = proxy.client(), proxy.client()
        first.get("/r", host="reviews:9080")
        await proxy.settle()
        second.get("/r", host="reviews:9080")
        await proxy.settle()
        assert_overflow(second.response())
        proxy.network.last.respond(OK)
        assert first.response().status == 200
        second.get("/r", host="reviews:9080")  # the slot is free again
        await proxy.settle()
        proxy.network.last.respond(OK)
        assert second.response().status == 200

    run(body)


def test_a_queued_request_gets_a_slot_when_a_connection_closes() -> None:
    async def body() -> None:
        proxy = ProxyHarness(breaker("{tcp: {maxConnections: 1}}"))
        first, second = proxy.client(), proxy.client()
        first.get("/r", host="reviews:9080")
        await proxy.settle()
        second.get("/r", host="reviews:9080")
        await proxy.settle()
        assert len(proxy.network.opened) == 1
        proxy.network.last.respond(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n"
                                   b"connection: close\r\n\r\nok")
        assert first.response().status == 200
        await proxy.settle()
        assert len(proxy.network.opened) == 2  # the closed one's slot went to the waiter
        proxy.network.last.respond(OK)
        assert second.response().status == 200

    run(body)


def test_max_retries_overflow_gives_up_without_retrying() -> None:
    """http.maxRetries (Envoy max_retries): a retry beyond it is not attempted, the failed
    try's answer goes to the client."""
    async def body() -> None:
        proxy = ProxyHarness(route("    retries: {attempts: 2, retryOn: 5xx}\n",
                                   policy="    connectionPool: {http: {maxRetries: 1}}\n"))
        first, second = proxy.client(), proxy.client()
        first.get("/r", host="reviews:9080")
        second.get("/r", host="reviews:9080")
        await proxy.settle()
        a, b = proxy.network.opened
        a.respond(UNAVAILABLE)  # first's retry takes the only retry slot
        b.respond(UNAVAILABLE)  # second may not retry
        assert second.response().status == 503
        assert first.responses() == []
        await proxy.settle(TRY_GAP)
        # first's retry: on the connection second's answer left idle
        assert len(proxy.network.opened) == 2 and a.transport.closed
        assert b.request().count(b"GET /r HTTP/1.1") == 2
        b.respond(OK)
        assert first.response().status == 200

    run(body)


# keep-alive -----------------------------------------------------------------------------------
def test_sequential_requests_reuse_one_upstream_connection() -> None:
    async def body() -> None:
        proxy = ProxyHarness(SERVICE)
        for _ in range(3):
            client = proxy.client()
            client.get("/r", host="reviews:9080")
            await proxy.settle()
            proxy.network.last.respond(OK)
            assert client.response().status == 200
        assert len(proxy.network.opened) == 1
        assert not proxy.network.last.transport.closed

    run(body)


def test_an_upstream_connection_close_response_is_not_reused() -> None:
    async def body() -> None:
        proxy = ProxyHarness(SERVICE)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        first = proxy.network.last
        first.respond(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        response = client.response()
        assert response.status == 200
        assert "connection" not in response.headers  # hop-by-hop: not passed on
        assert first.transport.closed
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        assert len(proxy.network.opened) == 2

    run(body)


def test_max_requests_per_connection_retires_a_connection() -> None:
    """DestinationRule http.maxRequestsPerConnection 2: a third request gets a new one."""
    async def body() -> None:
        proxy = ProxyHarness(route(policy="    connectionPool: "
                                   "{http: {maxRequestsPerConnection: 2}}\n"))
        client = proxy.client()
        for _ in range(3):
            client.get("/r", host="reviews:9080")
            await proxy.settle()
            proxy.network.last.respond(OK)
            assert client.response().status == 200
        first, second = proxy.network.opened
        assert first.transport.closed and not second.transport.closed

    run(body)


def test_an_upstream_response_without_a_length_is_not_reused() -> None:
    """A body delimited by the close (no Content-Length, no chunking) ends the connection."""
    async def body() -> None:
        proxy = ProxyHarness(SERVICE)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        upstream = proxy.network.last
        upstream.respond(b"HTTP/1.1 200 OK\r\n\r\nstream")
        upstream.close()
        response = client.response()
        assert (response.status, response.body) == (200, b"stream")
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        assert len(proxy.network.opened) == 2

    run(body)


def test_a_queued_request_whose_client_left_gives_its_pending_slot_back() -> None:
    """A pending request abandoned by its client leaves the queue: the next one may wait."""
    async def body() -> None:
        proxy = ProxyHarness(breaker("{tcp: {maxConnections: 1}, http: "
                                     "{http1MaxPendingRequests: 1}}"))
        first, gone, third = proxy.client(), proxy.client(), proxy.client()
        first.get("/r", host="reviews:9080")
        await proxy.settle()
        gone.get("/r", host="reviews:9080")
        await proxy.settle()
        gone.lose()
        third.get("/r", host="reviews:9080")
        await proxy.settle()
        assert third.responses() == []  # queued, not refused
        upstream = proxy.network.last
        upstream.request()
        upstream.respond(OK)
        assert first.response().status == 200
        await proxy.settle()
        assert upstream.request().startswith(b"GET /r HTTP/1.1\r\n")
        upstream.respond(OK)
        assert third.response().status == 200

    run(body)


def test_a_client_gone_during_the_retry_back_off_stops_the_retries() -> None:
    async def body() -> None:
        proxy = ProxyHarness(route("    retries: {attempts: 2, retryOn: 5xx, backoff: 100ms}\n"))
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        (await next_try(proxy, 0)).respond(UNAVAILABLE)
        client.lose()
        await proxy.settle(0.11)  # the back-off (< 100 ms) is over
        assert len(proxy.network.opened) == 1

    run(body)


TWO_HOSTS = SERVICE.replace("endpoints: [{address: 10.0.0.1}]",
                            "endpoints: [{address: 10.0.0.1}, {address: 10.0.0.2}]")


def test_route_timeouts_count_towards_outlier_detection() -> None:
    """Envoy's Filter::onResponseTimeout: a try still awaiting headers is reported to outlier
    detection as LocalOriginTimeout (the 504 it answers), so a host that hangs is ejected by
    consecutive5xxErrors like one that answers 5xx."""
    async def body() -> None:
        yaml = TWO_HOSTS.replace("---\n", "", 1) + f"""\
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [{REVIEWS_HOST}]
  http:
  - route: [{{destination: {{host: {REVIEWS_HOST}}}}}]
    timeout: 0.02s
    retries: {{attempts: 0}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: {REVIEWS_HOST}
  trafficPolicy:
    outlierDetection: {{consecutive5xxErrors: 2, maxEjectionPercent: 100}}
"""
        proxy = ProxyHarness(yaml)
        hanging = "10.0.0.1"
        timeouts = 0
        for _ in range(20):
            client = proxy.client()
            client.get("/r", host="reviews:9080")
            await proxy.settle()
            upstream = proxy.network.last
            if upstream.host == hanging:
                await proxy.settle(0.03)
                assert client.response().status == 504
                timeouts += 1
                if timeouts == 2:
                    break
            else:
                upstream.respond(OK)
                client.responses()
        assert timeouts == 2
        state = proxy.env.active.tables.states[f"outbound|9080||{REVIEWS_HOST}"]
        assert state.detector is not None and state.detector.is_ejected(0)

    run(body)


def test_a_retry_goes_to_another_host() -> None:
    """Istio sets Envoy's previous_hosts retry predicate (retry_host_predicate, with
    host_selection_retry_max_attempts 5): a retry avoids the hosts already tried."""
    async def body() -> None:
        three = SERVICE.replace("endpoints: [{address: 10.0.0.1}]", "endpoints: [{address: "
                                "10.0.0.1}, {address: 10.0.0.2}, {address: 10.0.0.3}]")
        for seed in range(3):
            proxy = ProxyHarness(three.replace("---\n", "", 1) + "---\n" + route(
                RETRY_5XX).removeprefix(SERVICE), seed=seed)
            client = proxy.client()
            client.get("/r", host="reviews:9080")
            for tries in range(3):
                (await next_try(proxy, tries)).respond(UNAVAILABLE)
            assert client.response().status == 503
            assert sorted(u.host for u in proxy.network.opened) == [
                "10.0.0.1", "10.0.0.2", "10.0.0.3"]

    run(body)
