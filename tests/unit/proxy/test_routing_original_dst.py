"""Routing a captured connection (Envoy's virtual outbound listener with use_original_dst: the
port the app dialled, SO_ORIGINAL_DST, picks the route table, as the listener for that port
would; the Host header picks the virtual host within it, a Service's ClusterIP among its
domains; a host the registry does not know goes to the PassthroughCluster)."""

from __future__ import annotations

import random

from remora.mesh.snapshot import PASSTHROUGH_CLUSTER
from remora.proxy.codec.events import RequestHead
from remora.proxy.filter import LocalReply
from remora.proxy.routing import Memo, RouteDecision, decide
from tests.unit.mesh import service, sidecar

REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"
SNAP = sidecar(service("reviews", cluster_ip="10.96.0.20"))
OUTBOUND = next(li for li in SNAP.listeners if li.direction == "outbound")


def cluster(host: str, destination_port: int | None, memo: Memo | None = None) -> str | None:
    head = RequestHead("GET", "/", [("host", host)], "1.1", True, False, False, None)
    decision = decide(SNAP, OUTBOUND, head, scheme="http", rng=random.Random(0), memo=memo,
                      destination_port=destination_port)
    if isinstance(decision, LocalReply) or decision.target is None:
        return None
    assert isinstance(decision, RouteDecision)
    return decision.target.cluster


def test_the_dialled_port_picks_the_route_table_when_the_host_names_none() -> None:
    # curl http://reviews:9080/ sends Host: reviews:9080; a client may send only `reviews`
    assert cluster("reviews", 9080) == REVIEWS
    assert cluster("reviews:9080", 9080) == REVIEWS
    # without capture (an http_proxy client) the authority's port is all there is: 80
    assert cluster("reviews", None) != REVIEWS


def test_a_cluster_ip_is_a_domain_of_its_service() -> None:
    assert cluster("10.96.0.20:9080", 9080) == REVIEWS
    assert cluster("10.96.0.20", 9080) == REVIEWS


def test_an_unknown_host_on_a_service_port_passes_through() -> None:
    assert cluster("10.244.0.9:9080", 9080) == PASSTHROUGH_CLUSTER
    assert cluster("example.com", 443) == PASSTHROUGH_CLUSTER


def test_decisions_are_remembered_per_dialled_port() -> None:
    memo: Memo = {}
    assert cluster("reviews", 9080, memo) == REVIEWS
    assert cluster("reviews", 9081, memo) == PASSTHROUGH_CLUSTER
    assert cluster("reviews", 9080, memo) == REVIEWS
