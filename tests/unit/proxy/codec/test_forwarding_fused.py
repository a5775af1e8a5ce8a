"""upstream_request_headers is strip_hop_by_hop + Envoy's sanitizing + forwarded_headers + a new
Host, in one pass (RFC 9110 §7.6.1 hop-by-hop; Envoy x-forwarded-for / x-request-id; Envoy
"HTTP header sanitizing" for the internal headers, at a gateway the edge ones too)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from remora.proxy.codec.forwarding import (
    EDGE_INTERNAL,
    ENVOY_INTERNAL,
    forwarded_headers,
    strip_hop_by_hop,
    upstream_request_headers,
)

NAMES = ["host", "expect", "connection", "keep-alive", "te", "upgrade", "x-forwarded-for",
         "x-forwarded-proto", "x-request-id", "accept", "x-custom", "transfer-encoding",
         "x-envoy-retry-on", "x-forwarded-client-cert", "x-envoy-downstream-service-node",
         "x-envoy-external-address", "x-envoy-peer-metadata"]
VALUES = ["close", "x-custom", "trailers", "a", "keep-alive, x-custom", "1.2.3.4", "id-1"]


@given(st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=8),
       st.booleans())
def test_fused_pass_equals_the_composition(headers: list[tuple[str, str]], edge: bool) -> None:
    fused, fused_id = upstream_request_headers(
        headers, authority="svc:80", client_ip="10.0.0.9", scheme="http",
        request_id_factory=lambda: "generated", edge=edge,
    )
    sanitized = ENVOY_INTERNAL | (EDGE_INTERNAL if edge else frozenset())
    composed, composed_id = forwarded_headers(
        [h for h in strip_hop_by_hop(headers) if h[0] not in sanitized],
        client_ip="10.0.0.9", scheme="http", request_id_factory=lambda: "generated",
    )
    composed = [("host", "svc:80")] + [h for h in composed if h[0] not in ("host", "expect")]
    if edge:
        composed.append(("x-envoy-external-address", "10.0.0.9"))
    assert fused == composed
    assert fused_id == composed_id
