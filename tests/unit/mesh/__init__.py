"""Tests of remora.mesh: YAML in, snapshot out; helpers shared by the test modules."""

from __future__ import annotations

from collections.abc import Mapping

from remora.api.loader import load_text
from remora.api.resource import Resource
from remora.mesh.compile import compile_snapshot
from remora.mesh.snapshot import ListenerPorts, ProxyIdentity, Route, RouteAction, Snapshot


def load(text: str) -> list[Resource]:
    """Resources from YAML; the test fails on any load issue."""
    result = load_text(text, "test.yaml")
    assert not result.issues, [str(issue) for issue in result.issues]
    return result.resources


def sidecar(
    text: str, *, namespace: str = "default", labels: Mapping[str, str] | None = None,
    app_port: int | None = None,
) -> Snapshot:  # fmt: skip
    identity = ProxyIdentity(
        mode="sidecar", namespace=namespace, labels=dict(labels or {}), app_port=app_port
    )
    return compile_snapshot(load(text), identity, version="1", listener_ports=ListenerPorts())


def gateway(text: str, *, labels: Mapping[str, str], namespace: str = "istio-system") -> Snapshot:
    identity = ProxyIdentity(mode="gateway", namespace=namespace, labels=dict(labels))
    return compile_snapshot(load(text), identity, version="1", listener_ports=ListenerPorts())


def targets(route: Route) -> list[tuple[str, int]]:
    """(cluster, weight) of a forwarding route."""
    assert isinstance(route.action, RouteAction)
    return [(c.cluster, c.weight) for c in route.action.clusters]


def service(name: str, namespace: str = "default", *, ports: str = "[{name: http, port: 9080}]",
            selector: str = "{app: NAME}", cluster_ip: str = "") -> str:  # fmt: skip
    """A Service document (selector `app: <name>` by default)."""
    ip = f"\n  clusterIP: {cluster_ip}" if cluster_ip else ""
    return f"""\
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  selector: {selector.replace("NAME", name)}
  ports: {ports}{ip}
---
"""


def mesh(text: str) -> str:
    """The mesh config ConfigMap (istio-system/istio, key `mesh`) holding `text`."""
    body = "".join(f"    {line}\n" for line in text.splitlines())
    return f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: istio, namespace: istio-system}}
data:
  mesh: |
{body}---
"""


def unknown_host(snap: Snapshot, port: int) -> tuple[str, object]:
    """(name, action) of the sidecar virtual host a host no service has gets on `port`."""
    table = snap.outbound_table(port)
    assert table is not None
    vhost = table.find("unknown.example.com")
    assert vhost is not None
    return vhost.name, vhost.routes[0].action
