"""End to end: the Sidecar resource (istio.io/latest/docs/reference/config/networking/sidecar/)
changes what a real sidecar fed by files does: its outboundTrafficPolicy REGISTRY_ONLY answers
502 for an unknown host though MeshConfig allows any, and its inboundConnectionPool is the
circuit breaker of the inbound cluster (503 UO past the limits)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.meshkit import EchoServer, echo_servers, run_proxy, service_yaml

pytestmark = pytest.mark.timeout(60)


def sidecar_yaml(name: str, namespace: str, spec: str) -> str:
    return (f"apiVersion: networking.istio.io/v1\nkind: Sidecar\n"
            f"metadata: {{name: {name}, namespace: {namespace}}}\nspec: {spec}\n---\n")


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, EchoServer]]:
    with echo_servers("reviews", "outside", "app") as servers:
        yield servers


def write_config(tmp: Path, upstreams: dict[str, EchoServer], sidecars: str) -> Path:
    config = tmp / "config"
    config.mkdir()
    reviews = upstreams["reviews"].port
    (config / "mesh.yaml").write_text(
        service_yaml("reviews", reviews, [(reviews, {"app": "reviews"})]) + "---\n" + sidecars)
    return config


def test_a_sidecar_registry_only_answers_502_for_unknown_hosts(
        upstreams: dict[str, EchoServer], tmp_path: Path) -> None:
    """Sidecar outboundTrafficPolicy REGISTRY_ONLY, MeshConfig's ALLOW_ANY (the default): the
    proxy's namespace's Sidecar wins; another namespace's ALLOW_ANY changes nothing."""
    config = write_config(tmp_path, upstreams, sidecar_yaml(
        "default", "default", "{outboundTrafficPolicy: {mode: REGISTRY_ONLY}}") + sidecar_yaml(
        "default", "other", "{outboundTrafficPolicy: {mode: ALLOW_ANY}}"))
    outside = upstreams["outside"]
    before = outside.hits
    with run_proxy(config, "--labels", "app=web", tmp=tmp_path) as proxy:
        blocked = httpx.get(f"{proxy.url}/x", headers={"host": f"127.0.0.1:{outside.port}"},
                            timeout=10)
        assert blocked.status_code == 502
        reviews = upstreams["reviews"].port
        known = httpx.get(f"{proxy.url}/x", headers={"host": f"reviews:{reviews}"}, timeout=10)
        assert known.status_code == 200 and known.json()["upstream"] == "reviews"
        dump = httpx.get(f"{proxy.admin_url}/config_dump", timeout=10).json()
        logs = proxy.logs()
    assert outside.hits == before
    assert dump["mesh"]["outboundTrafficPolicy"] == "REGISTRY_ONLY"
    assert "Sidecar is NOT enforced" not in logs


def test_inbound_connection_pool_is_the_inbound_cluster_s_circuit_breaker(
        upstreams: dict[str, EchoServer], tmp_path: Path) -> None:
    """inboundConnectionPool (Istio 1.22): "Settings controlling the volume of connections Envoy
    will accept from the network" — one connection to the app and one request waiting for it:
    of five concurrent slow requests two are served, three overflow (503, flag UO)."""
    config = write_config(tmp_path, upstreams, sidecar_yaml(
        "default", "default", "{inboundConnectionPool: {tcp: {maxConnections: 1}, "
                              "http: {http1MaxPendingRequests: 1}}}"))
    app = upstreams["app"]
    with run_proxy(config, "--labels", "app=web", "--app-port", str(app.port),
                   tmp=tmp_path) as proxy:
        def slow(_: int) -> httpx.Response:
            return httpx.get(f"http://127.0.0.1:{proxy.inbound}/slow/1",
                             headers={"host": "web"}, timeout=10)

        with ThreadPoolExecutor(5) as pool:
            answers = list(pool.map(slow, range(5)))
        rows = httpx.get(f"{proxy.admin_url}/clusters?format=json", timeout=5).json()
    assert sorted(a.status_code for a in answers) == [200, 200, 503, 503, 503]
    assert all(a.headers.get("x-envoy-overloaded") == "true"
               for a in answers if a.status_code == 503)
    (inbound,) = [row for row in rows["cluster_statuses"]
                  if row["name"] == f"inbound|{app.port}||"]
    limits = inbound["circuit_breakers"]["limits"]
    assert (limits["maxConnections"], limits["maxPendingRequests"]) == (1, 1)
