"""Hostile clients (issue 21): what a smuggling attempt or an aborted upload does to the proxy,
through the in-memory transport — nothing smuggled upstream, nothing left behind."""

from __future__ import annotations

import resource
from dataclasses import replace
from pathlib import Path

import pytest

from remora.proxy.process import connection_limit, raise_open_files_limit
from tests.unit.proxy.harness import (
    ProxyHarness,
    access_log_lines,
    requests_total,
    run,
    service_entry,
)

REVIEWS = service_entry("reviews")
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def test_transfer_encoding_on_http_1_0_is_a_400_and_nothing_is_smuggled() -> None:
    """RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing; the bytes
    after its last chunk must not become a second request upstream."""
    async def body() -> None:
        proxy = ProxyHarness(REVIEWS, accept_http_10=True)  # Istio's ISTIO_META_HTTP10=1
        client = proxy.client()
        smuggled = b"GET /admin HTTP/1.1\r\nHost: reviews:9080\r\n\r\n"
        client.send(b"POST /r HTTP/1.0\r\nHost: reviews:9080\r\nConnection: keep-alive\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled)
        await proxy.settle()
        response = client.response()
        assert response.status == 400
        assert client.transport.eof_written  # and closes (a delayed close: see below)
        assert not proxy.network.opened  # nothing reached an upstream

    run(body)


def test_an_aborted_upload_ends_the_exchange_with_dc_and_leaves_nothing(tmp_path: Path) -> None:
    """The client sends a head with a large Content-Length, a few bytes, and goes (FIN): the
    exchange ends at once with Envoy's DC, the upstream request is reset (its connection
    closed, not pooled), and no request stays active."""
    async def body() -> None:
        log = str(tmp_path / "access.log")
        proxy = ProxyHarness(REVIEWS, access_log=log)
        client = proxy.client()
        client.send(b"POST /upload HTTP/1.1\r\nHost: reviews:9080\r\n"
                    b"Content-Length: 100000\r\n\r\n" + b"x" * 10)
        await proxy.settle()
        upstream = proxy.network.last
        assert upstream.request().startswith(b"POST /upload HTTP/1.1\r\n")
        client.half_close()
        await proxy.settle()
        assert client.transport.closed and upstream.transport.closed
        assert not proxy.connections
        state = proxy.env.active.tables.states["outbound|9080||reviews.default.svc.cluster.local"]
        assert state.breaker.requests == 0 and all(pool.active == 0 for pool in state.pools)
        (record,) = access_log_lines(proxy, log)
        assert record["response_flags"] == "DC"
        ((labels, count),) = requests_total(proxy)
        assert (labels["response_flags"], count) == ("DC", 1)

    run(body)


def test_a_client_that_half_closes_after_a_whole_request_still_gets_its_response() -> None:
    async def body() -> None:
        proxy = ProxyHarness(REVIEWS)
        client = proxy.client()
        client.send(b"POST /r HTTP/1.1\r\nHost: reviews:9080\r\nContent-Length: 2\r\n\r\nhi",
                    method="POST")
        client.half_close()
        await proxy.settle()
        assert not client.transport.closed
        proxy.network.last.respond(OK)
        assert client.response().status == 200
        assert client.transport.closed  # then the connection closes, as the client asked

    run(body)


def test_a_refusal_half_closes_and_drops_what_follows_before_closing() -> None:
    """Envoy's delayed close: after a 431 the proxy sends FIN and reads on, so a client still
    sending the rest of its head reads the 431 instead of a reset; it closes when the client
    does, or after delayed_close_timeout (1 s)."""
    async def body() -> None:
        proxy = ProxyHarness(REVIEWS)
        client = proxy.client()
        client.send(b"GET / HTTP/1.1\r\nHost: reviews:9080\r\nX-Big: " + b"a" * 70_000)
        assert client.response().status == 431
        assert client.transport.eof_written and not client.transport.closed
        client.connection.data_received(b"a" * 10_000 + b"\r\n\r\n")  # read and dropped
        assert client.transport.take() == b""
        await proxy.settle(proxy.env.options.delayed_close_timeout + 0.05)
        assert client.transport.closed
        assert not proxy.network.opened

        early = proxy.client()
        early.send(b"GET / HTTP/1.1\r\nHost: reviews:9080\r\nX-Big: " + b"a" * 70_000)
        assert early.response().status == 431
        early.half_close()  # the client read the refusal and went: closed at once
        assert early.transport.closed and early.connection not in proxy.connections

    run(body)


def test_a_stalled_body_is_408_si_after_the_stream_idle_timeout(tmp_path: Path) -> None:
    """Envoy's stream_idle_timeout (5 min by default): a request whose body stops coming is
    answered 408 "stream timeout" with flag SI, and its upstream request is reset."""
    async def body() -> None:
        log = str(tmp_path / "access.log")
        proxy = ProxyHarness(REVIEWS, access_log=log)
        options = proxy.env.options
        client = proxy.client()
        client.send(b"POST /upload HTTP/1.1\r\nHost: reviews:9080\r\n"
                    b"Content-Length: 100\r\n\r\n" + b"x" * 10, method="POST")
        await proxy.settle()
        upstream = proxy.network.last
        now = proxy.env.loop.time()
        client.connection.expire(now + options.stream_idle_timeout - 1)
        assert client.transport.take() == b"" and not upstream.transport.closed  # not yet
        client.connection.expire(now + options.stream_idle_timeout + 1)
        response = client.response()
        assert (response.status, response.body) == (408, b"stream timeout")
        assert upstream.transport.closed
        (record,) = access_log_lines(proxy, log)
        assert (record["response_code"], record["response_flags"]) == (408, "SI")

    run(body)


def test_a_stalled_response_is_reset_with_si_and_zero_turns_the_timeout_off() -> None:
    async def body() -> None:
        proxy = ProxyHarness(REVIEWS)
        options = proxy.env.options
        client = proxy.client()
        client.get("/slow", host="reviews:9080")
        await proxy.settle()
        proxy.network.last.respond(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"x" * 10)
        assert client.transport.take().startswith(b"HTTP/1.1 200")
        later = proxy.env.loop.time() + options.stream_idle_timeout + 1
        client.connection.options = replace(options, stream_idle_timeout=0)
        client.connection.expire(later)
        assert not client.transport.closed  # 0: no stream idle timeout
        client.connection.options = options
        client.connection.expire(later)
        assert client.transport.closed  # the response had started: a reset
        assert proxy.network.last.transport.closed

    run(body)


def test_a_connection_opened_for_an_aborted_request_is_closed_not_pooled() -> None:
    """The client goes while the upstream connection is still being made: when it is made,
    no request needs it, so it is closed (Envoy's CloseExcess), not kept idle — a flood of
    aborted requests would otherwise pile up idle upstream connections."""
    async def body() -> None:
        proxy = ProxyHarness(REVIEWS)
        client = proxy.client()
        client.send(b"POST /upload HTTP/1.1\r\nHost: reviews:9080\r\n"
                    b"Content-Length: 100000\r\n\r\n" + b"x" * 10)
        client.half_close()  # before the connect has completed
        await proxy.settle()
        (upstream,) = proxy.network.opened
        assert upstream.transport.closed
        state = proxy.env.active.tables.states["outbound|9080||reviews.default.svc.cluster.local"]
        assert not state.pools[0].idle and not state.pools[0].connections

    run(body)


def test_above_the_connection_limit_a_connection_is_closed_and_counted() -> None:
    """Envoy's overload manager global downstream connection limit: the connections being
    served go on; a new one above the limit is closed before a byte is read, and counted
    (downstream_global_cx_overflow)."""
    async def body() -> None:
        proxy = ProxyHarness(REVIEWS)
        proxy.env.options = replace(proxy.env.options, max_connections=2)
        first, second = proxy.client(), proxy.client()
        third = proxy.client()
        assert third.transport.closed
        assert not first.transport.closed and not second.transport.closed
        assert third.connection not in proxy.connections
        listener = first.connection.listener.name
        assert proxy.env.cx_overflow == {listener: 1}
        first.get("/", host="reviews:9080")
        await proxy.settle()
        proxy.network.last.respond(OK)
        assert first.response().status == 200

    run(body)


def test_the_open_files_limit_is_raised_and_bounds_the_connections() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
        limit = raise_open_files_limit()
        assert limit == (hard if hard != resource.RLIM_INFINITY else 1 << 20)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert connection_limit(1024) == 448  # a connection may hold an upstream one too
    assert connection_limit(100) == 64


CUT_RESPONSES = {
    # Envoy's router: a reset after the response started closes the client connection, with
    # the flag and details of the reset reason (connection_termination: UC, protocol_error: UPE)
    "closed-mid-content-length": (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf", True,
                                  "UC", "{connection_termination}"),
    "closed-mid-chunk": (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n8\r\nhalf", True,
                         "UC", "{connection_termination}"),
    "closed-mid-close-delimited-body": None,  # not a cut: the close ends such a body
    "garbage-chunk-size": (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nhalf"
                           b"\r\n|zz\r\n", False, "UPE", "{protocol_error}"),
    "a-response-head-where-a-chunk-belongs": (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked"
                                              b"\r\n\r\n4\r\nhalf\r\n|HTTP/1.1 200 OK\r\n\r\n",
                                              False, "UPE", "{protocol_error}"),
}


@pytest.mark.parametrize("name", [n for n, case in CUT_RESPONSES.items() if case is not None])
def test_an_upstream_that_dies_mid_response_ends_the_exchange_and_leaves_nothing(
        tmp_path: Path, name: str) -> None:
    """What the client got so far stays; then its connection closes (the response cannot be
    completed), the upstream connection is closed, not pooled, the access log and
    istio_requests_total carry Envoy's flag, and no request stays counted."""
    response, close, flag, reason = CUT_RESPONSES[name]  # type: ignore[misc]

    async def body() -> None:
        log = str(tmp_path / "access.log")
        proxy = ProxyHarness(REVIEWS, access_log=log)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        upstream = proxy.network.last
        for piece in response.split(b"|"):  # one read each: the head goes out before the rest
            upstream.respond(piece)
            await proxy.settle()
        if close:
            upstream.close()
        await proxy.settle()
        assert client.transport.take().startswith(b"HTTP/1.1 200 OK\r\n")
        assert client.transport.closed and upstream.transport.closed
        client.lose()  # the in-memory transport reports the close the proxy made
        assert not proxy.connections
        state = proxy.env.active.tables.states["outbound|9080||reviews.default.svc.cluster.local"]
        assert state.breaker.requests == 0 and all(pool.active == 0 for pool in state.pools)
        assert not any(pool.idle for pool in state.pools)
        (record,) = access_log_lines(proxy, log)
        assert (record["response_flags"], record["response_code_details"]) == (
            flag, "upstream_reset_after_response_started" + reason)
        ((labels, _),) = requests_total(proxy)
        assert labels["response_flags"] == flag

    run(body)


def test_an_upstream_closing_a_close_delimited_body_completes_the_response() -> None:
    async def body() -> None:
        proxy = ProxyHarness(REVIEWS)
        client = proxy.client()
        client.get("/r", host="reviews:9080")
        await proxy.settle()
        upstream = proxy.network.last
        upstream.respond(b"HTTP/1.1 200 OK\r\n\r\nall of it")
        upstream.close()
        await proxy.settle()
        response = client.response()
        assert (response.status, response.body) == (200, b"all of it")

    run(body)


def test_pipelined_requests_wait_while_the_client_does_not_read_the_responses() -> None:
    """A client that pipelines requests and never reads would have their responses pile up
    in the proxy's memory: while the socket is over its write high-water mark, the next
    pipelined request is not started (nor is more read); it starts once the client reads."""
    async def body() -> None:
        proxy = ProxyHarness(REVIEWS)
        client = proxy.client()
        get = b"GET /p HTTP/1.1\r\nHost: reviews:9080\r\n\r\n"
        client.send(get * 3)
        client.pending += ["GET", "GET"]
        await proxy.settle()
        upstream = proxy.network.last
        client.connection.pause_writing()  # the first response fills the client's socket
        upstream.respond(OK)
        await proxy.settle()
        assert client.response().status == 200
        assert upstream.request().count(b"GET /p") == 1  # the second one waits
        assert not client.transport.reading
        client.connection.resume_writing()
        await proxy.settle()
        for _ in range(2):  # on the same upstream connection, back in the pool first
            assert upstream.request().startswith(b"GET /p HTTP/1.1\r\n")
            upstream.respond(OK)
            await proxy.settle()
            assert client.response().status == 200
        assert len(proxy.network.opened) == 1

    run(body)
