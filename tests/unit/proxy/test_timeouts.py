"""The connection manager's timeouts and limits (issue 21, item 3), as Envoy's HTTP connection
manager has them: request_timeout, max_connection_duration, and a listener's own settings from an
EnvoyFilter MERGE patch, through the in-memory transport with the clock moved by hand."""

from __future__ import annotations

import json
from dataclasses import replace

from remora.proxy.admin import config_dump
from tests.unit.proxy.harness import (
    ProxyHarness,
    access_log_lines,
    run,
    service_entry,
)

REVIEWS = service_entry("reviews")
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
HCM_TYPE = ("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
            "HttpConnectionManager")


def merge(typed_config: str) -> str:
    return f"""\
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {{name: limits, namespace: istio-system}}
spec:
  configPatches:
  - applyTo: NETWORK_FILTER
    match:
      listener:
        filterChain: {{filter: {{name: envoy.filters.network.http_connection_manager}}}}
    patch:
      operation: MERGE
      value:
        typed_config: {{"@type": {HCM_TYPE}, {typed_config}}}
"""


def test_request_timeout_is_a_408_when_the_whole_request_has_not_arrived(tmp_path) -> None:
    """Envoy's request_timeout (off by default): from the head to the request's end; the
    body trickles, so the stream idle timeout never fires, but this one does."""
    async def body() -> None:
        log = str(tmp_path / "access.log")
        proxy = ProxyHarness(REVIEWS + merge("request_timeout: 5s"), access_log=log)
        client = proxy.client()
        assert client.connection.options.request_timeout == 5.0
        client.send(b"POST /upload HTTP/1.1\r\nHost: reviews:9080\r\n"
                    b"Content-Length: 100\r\n\r\n" + b"x" * 10, method="POST")
        await proxy.settle()
        upstream = proxy.network.last
        start = proxy.env.loop.time()
        for second in range(1, 5):  # a byte a second: never idle, never whole
            client.connection.data_received(b"x")
            client.connection.active_at = start + second
            client.connection.expire(start + second)
        assert client.transport.take() == b""
        client.connection.expire(start + 5.5)
        response = client.response()
        assert (response.status, response.body) == (408, b"request timeout")
        assert upstream.transport.closed  # the upstream request is reset
        (record,) = access_log_lines(proxy, log)
        assert (record["response_code"], record["response_flags"],
                record["response_code_details"]) == (408, "-", "request_overall_timeout")

    run(body)


def test_request_timeout_does_not_cut_a_response_once_the_request_is_whole() -> None:
    async def body() -> None:
        proxy = ProxyHarness(REVIEWS + merge("request_timeout: 5s"))
        client = proxy.client()
        client.get("/slow", host="reviews:9080")
        await proxy.settle()
        client.connection.expire(proxy.env.loop.time() + 60)
        proxy.network.last.respond(OK)
        assert client.response().status == 200

    run(body)


def test_max_connection_duration_closes_an_idle_connection() -> None:
    async def body() -> None:
        proxy = ProxyHarness(REVIEWS + merge(
            "common_http_protocol_options: {max_connection_duration: 30s}"))
        client = proxy.client()
        client.get("/a", host="reviews:9080")
        await proxy.settle()
        proxy.network.last.respond(OK)
        assert client.response().status == 200
        now = proxy.env.loop.time()
        client.connection.expire(now + 29)
        assert not client.transport.closed
        client.connection.expire(now + 31)
        assert client.transport.closed

    run(body)


def test_max_connection_duration_lets_the_response_in_flight_end_with_connection_close() -> None:
    """Envoy drains an HTTP/1 connection past max_connection_duration: the response in flight
    carries `connection: close`, and the connection closes after it."""
    async def body() -> None:
        proxy = ProxyHarness(REVIEWS, seed=1)
        options = replace(proxy.env.options, max_connection_duration=30.0)
        client = proxy.client(options=options)
        client.get("/slow", host="reviews:9080")
        await proxy.settle()
        client.connection.expire(proxy.env.loop.time() + 31)
        assert not client.transport.closed  # a request is in flight
        proxy.network.last.respond(OK)
        response = client.response()
        assert response.status == 200
        assert ("connection", "close") in response.head.headers
        assert client.transport.closed

    run(body)


def test_a_listener_takes_the_header_limits_its_patch_sets() -> None:
    """max_headers_count and max_request_headers_kb from the patch: 431 above them."""
    async def body() -> None:
        proxy = ProxyHarness(REVIEWS + merge(
            "max_request_headers_kb: 2, common_http_protocol_options: {max_headers_count: 5}"))
        many = proxy.client()
        many.send(b"GET / HTTP/1.1\r\nHost: reviews:9080\r\n"
                  + b"".join(b"X-%d: v\r\n" % i for i in range(5)) + b"\r\n")
        assert many.response().status == 431  # 6 fields with Host
        big = proxy.client()
        big.send(b"GET / HTTP/1.1\r\nHost: reviews:9080\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n")
        assert big.response().status == 431
        fits = proxy.client()
        fits.send(b"GET / HTTP/1.1\r\nHost: reviews:9080\r\nX-A: " + b"a" * 1500 + b"\r\n\r\n")
        await proxy.settle()
        assert proxy.network.opened  # forwarded

    run(body)


def test_config_dump_shows_each_listeners_effective_settings() -> None:
    """The proxy's defaults (Envoy's) where nothing is set, the patch's values where it is."""
    class Runtime:  # what admin.config_dump reads of a ProxyRuntime
        def __init__(self, proxy: ProxyHarness) -> None:
            self.env = proxy.env
            self.options = proxy.env.options
            self.snapshot = proxy.env.active.snapshot

    async def body() -> None:
        proxy = ProxyHarness(REVIEWS + merge("stream_idle_timeout: 30s"))
        status, _, raw = config_dump(Runtime(proxy))  # type: ignore[arg-type]
        (outbound,) = json.loads(raw)["listeners"]
        effective = outbound["httpConnectionManager"]
        assert status == 200
        assert effective["stream_idle_timeout"] == "30s"
        assert effective["request_timeout"] == "0s"  # Envoy's default: off
        assert effective["common_http_protocol_options"] == {
            "idle_timeout": "3600s", "max_connection_duration": "0s", "max_headers_count": 100}
        assert effective["max_request_headers_kb"] == 60
        assert effective["delayed_close_timeout"] == "1s"
        assert outbound["connectionManagerPatch"]["sources"] == [
            "EnvoyFilter istio-system/limits spec.configPatches[0]"]

    run(body)


def test_a_head_not_finished_in_time_is_a_408_then_a_close(tmp_path) -> None:
    """Envoy's request_headers_timeout: 408 "request header timeout" (details
    request_header_timeout, no response flag), then the delayed close."""
    async def body() -> None:
        log = str(tmp_path / "access.log")
        proxy = ProxyHarness(REVIEWS, access_log=log)
        client = proxy.client()
        client.send(b"GET /slow HTTP/1.1\r\nHost: rev")
        started = proxy.env.loop.time()
        client.connection.expire(started + proxy.env.options.headers_timeout - 1)
        assert client.transport.take() == b""
        client.connection.expire(started + proxy.env.options.headers_timeout + 1)
        response = client.response()
        assert (response.status, response.body) == (408, b"request header timeout")
        assert client.transport.eof_written and not proxy.network.opened
        (record,) = access_log_lines(proxy, log)
        assert (record["response_code"], record["response_flags"],
                record["response_code_details"]) == (408, "-", "request_header_timeout")

    run(body)
