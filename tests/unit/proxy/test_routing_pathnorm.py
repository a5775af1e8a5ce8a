"""The router matches and forwards the normalized path, per MeshConfig `pathNormalization`:
Istio normalizes "before evaluating against the authorization policies and routing the
requests", and the normalized path is "forwarded to the backend application"
(istio.io/latest/docs/ops/best-practices/security/#understand-path-normalization-in-authorization-policy).
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from remora.mesh.snapshot import MeshSettings, PathNormalization, Snapshot
from remora.proxy.codec.events import RequestHead
from remora.proxy.filter import LocalReply
from remora.proxy.routing import RouteDecision, decide
from tests.unit.mesh import service, sidecar

# /admin is answered 403 by the proxy itself: whatever reaches the backend is "not admin".
CONFIG = service("reviews") + """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /admin}}]
    directResponse: {status: 403}
  - route: [{destination: {host: reviews}}]
"""

BASE_SNAPSHOT = sidecar(CONFIG)


def snapshot(mode: PathNormalization) -> Snapshot:
    return dataclasses.replace(BASE_SNAPSHOT, mesh=MeshSettings(path_normalization=mode))


def route(snap: Snapshot, target: str) -> LocalReply | RouteDecision:
    head = RequestHead("GET", target, [("host", "reviews:9080")], "1.1", True, False, False, None)
    outbound = next(li for li in snap.listeners if li.direction == "outbound")
    return decide(snap, outbound, head, scheme="http", rng=random.Random(0))


# (path, the modes under which it is the /admin route)
ADMIN_SPELLINGS = [
    ("/admin/", "NONE BASE MERGE_SLASHES DECODE_AND_MERGE_SLASHES"),
    ("/a/../admin/", "BASE MERGE_SLASHES DECODE_AND_MERGE_SLASHES"),
    ("/./admin/", "BASE MERGE_SLASHES DECODE_AND_MERGE_SLASHES"),
    ("/%2e%2e/admin/", "BASE MERGE_SLASHES DECODE_AND_MERGE_SLASHES"),
    ("/%61dmin", "BASE MERGE_SLASHES DECODE_AND_MERGE_SLASHES"),
    ("/x\\..\\admin", "BASE MERGE_SLASHES DECODE_AND_MERGE_SLASHES"),
    ("/x/..//admin", "MERGE_SLASHES DECODE_AND_MERGE_SLASHES"),  # BASE: //admin
    ("/\\admin", "MERGE_SLASHES DECODE_AND_MERGE_SLASHES"),
    ("/x%2F..%2Fadmin", "DECODE_AND_MERGE_SLASHES"),
]
MODES: tuple[PathNormalization, ...] = (
    "NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("path", "admin_in"), ADMIN_SPELLINGS)
def test_admin_spellings_match_the_admin_route_as_normalized(
    mode: PathNormalization, path: str, admin_in: str
) -> None:
    decision = route(snapshot(mode), path)
    assert isinstance(decision, RouteDecision), decision
    if mode in admin_in.split():
        assert decision.reply is not None and decision.reply.status == 403, decision
    else:
        assert decision.reply is None and decision.target is not None, decision


@pytest.mark.parametrize(("mode", "sent", "forwarded"), [
    ("NONE", "/p/./q//r?x=/../", "/p/./q//r?x=/../"),
    ("BASE", "/p/./q//r?x=/../", "/p/q//r?x=/../"),
    ("MERGE_SLASHES", "/p/./q//r?x=/../", "/p/q/r?x=/../"),
    ("DECODE_AND_MERGE_SLASHES", "/p%2F%2Fq?x=%2F", "/p/q?x=%2F"),
])
def test_upstream_gets_the_normalized_path_and_the_query_as_sent(
    mode: PathNormalization, sent: str, forwarded: str
) -> None:
    decision = route(snapshot(mode), sent)
    assert isinstance(decision, RouteDecision) and decision.request is not None
    assert decision.path == forwarded
    assert decision.request.path == forwarded  # what later policy (authz) sees


def test_a_path_normalization_rejects_gets_400() -> None:
    """Envoy: a path its normalizer refuses (%00) is answered 400, details
    path_normalization_failed (conn_manager_impl.cc, decodeHeaders)."""
    decision = route(BASE_SNAPSHOT, "/a%00b")
    assert isinstance(decision, LocalReply)
    assert (decision.status, decision.details) == (400, "path_normalization_failed")
    assert isinstance(route(snapshot("NONE"), "/a%00b"), RouteDecision)
