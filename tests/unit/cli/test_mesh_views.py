"""The pure parts of get pods, describe, proxy-config and proxy-status: what a row says."""

from __future__ import annotations

import pytest

from remora.cli.describe import fqdn, host_matches, title
from remora.cli.pods import pod_from_instance, pod_rows, ready_column, selects, status_column
from remora.cli.proxyconfig import domains_column, match_column, vs_column
from remora.cli.proxystatus import display_name, sync_state


def instance(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "back-1", "workload": "back", "kind": "Deployment", "namespace": "default",
        "labels": {"app": "back"}, "phase": "Running", "ready": True, "restarts": 0,
        "created": 0.0, "ports": {"admin": 1, "app": {"9090": 2}},
        "app": {"pid": 10, "alive": True}, "sidecar": {"pid": 11, "alive": True}}
    return {**base, **changes}


@pytest.mark.parametrize(("changes", "ready", "status"), [
    ({}, "2/2", "Running"),
    ({"ready": False}, "1/2", "Running"),  # readiness probe failing: the app is not ready
    ({"phase": "CrashLoopBackOff", "ready": False, "app": {}}, "1/2", "CrashLoopBackOff"),
    ({"phase": "ContainerCreating", "ready": False, "app": {}, "sidecar": {}}, "0/2",
     "ContainerCreating"),
    ({"phase": "Terminating"}, "2/2", "Terminating"),
])
def test_pod_columns_follow_the_runner_phase(changes: dict[str, object], ready: str,
                                             status: str) -> None:
    pod = pod_from_instance(instance(**changes))
    assert (ready_column(pod), status_column(pod)) == (ready, status)


def test_restarts_add_up_and_the_header_is_kubectls() -> None:
    pod = pod_from_instance(instance(restarts=3, last_exit="app exited with 1"))
    header, row = pod_rows([pod], all_namespaces=True, wide=False)
    assert header == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert row[:5] == ["default", "back-1", "2/2", "Running", "3"]


@pytest.mark.parametrize(("written", "namespace", "expected"), [
    ("reviews", "shop", "reviews.shop.svc.cluster.local"),
    ("reviews.shop", "default", "reviews.shop.svc.cluster.local"),
    ("reviews.shop.svc", "default", "reviews.shop.svc.cluster.local"),
    ("reviews.shop.svc.cluster.local", "default", "reviews.shop.svc.cluster.local"),
    ("*.shop.svc.cluster.local", "default", "*.shop.svc.cluster.local"),
])
def test_hosts_resolve_in_the_rules_namespace(written: str, namespace: str,
                                              expected: str) -> None:
    assert fqdn(written, namespace) == expected


def test_a_rule_applies_by_name_or_wildcard_but_not_from_another_namespace() -> None:
    service = "reviews.shop.svc.cluster.local"
    assert host_matches("reviews", "shop", service)
    assert not host_matches("reviews", "default", service)
    assert host_matches("*.shop.svc.cluster.local", "default", service)
    assert title("creationTimestamp") == "Creation Timestamp"


def test_route_columns_are_istioctls() -> None:
    assert domains_column(["a", "a.ns", "a.ns.svc"]) == "a, a.ns + 1 more..."
    assert domains_column(["*"]) == "*"
    assert match_column({"uri": {"prefix": "/v1"}}) == "/v1*"
    assert match_column({"uri": {"exact": "/x"}}) == "/x"
    assert match_column({}) == "/*"
    assert vs_column("default/reviews") == "reviews.default" and vs_column("") == ""


@pytest.mark.parametrize(("proxy", "state"), [
    ({"sent": "", "acked": "", "synced": True}, "NOT SENT"),
    ({"sent": "v1", "acked": "v1", "synced": True}, "SYNCED"),
    ({"sent": "v2", "acked": "v1", "synced": False}, "STALE"),
    ({"sent": "v1", "acked": "", "synced": False}, "STALE (Never Acknowledged)"),
    ({"sent": "v2", "acked": "v1", "nacked": "v2", "error": "bad", "synced": False}, "NACKED"),
])
def test_sync_states_are_istioctls(proxy: dict[str, object], state: str) -> None:
    assert sync_state(proxy) == state


def test_a_proxy_is_named_pod_dot_namespace() -> None:
    node = "sidecar~127.0.0.1~front-3101.shop~shop.svc.cluster.local"
    assert display_name(node) == "front-3101.shop"
    assert display_name(node, {"3101": "front-5f7d-x2"}) == "front-5f7d-x2.shop"
    assert display_name("sidecar~b") == "sidecar~b"


@pytest.mark.parametrize(("selector", "chosen"), [
    ("", True), ("app=back", True), ("app==back", True), ("app=front", False),
    ("app!=front", True), ("app!=back", False), ("version", False), ("!version", True),
    ("app=back,version=v1", False),
])
def test_get_pods_selector_is_kubectls(selector: str, chosen: bool) -> None:
    assert selects(selector, {"app": "back"}) is chosen
