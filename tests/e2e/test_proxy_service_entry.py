"""End to end: a ServiceEntry whose host is in the cluster domain answers its short names
through a real sidecar, as a Kubernetes Service does (pilot GenerateAltVirtualHosts builds the
route config domains from the host, whatever registry it comes from), and a VirtualService on
that host serves them."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.meshkit import REGISTRY_ONLY, EchoServer, Proxy, echo_servers, run_proxy

pytestmark = pytest.mark.timeout(60)


def _config(upstream: int) -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {upstream}}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews]
  http:
  - headers: {{response: {{set: {{x-route: reviews-vs}}}}}}
    route: [{{destination: {{host: reviews}}}}]
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[EchoServer]:
    with echo_servers("reviews") as servers:
        yield servers["reviews"]


@pytest.fixture(scope="module")
def sidecars(upstream: EchoServer,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Proxy]]:
    """A sidecar in the ServiceEntry host's namespace (`default`), and one in `qa`."""
    tmp = tmp_path_factory.mktemp("service-entry")
    config = tmp / "config"
    config.mkdir()
    (config / "reviews.yaml").write_text(_config(upstream.port))
    (config / "mesh.yaml").write_text(REGISTRY_ONLY)
    with contextlib.ExitStack() as stack:
        yield {namespace: stack.enter_context(run_proxy(config, "--namespace", namespace,
                                                        tmp=tmp))
               for namespace in ("default", "qa")}  # fmt: skip


def _get(proxy: Proxy, host: str) -> httpx.Response:
    return httpx.get(f"{proxy.url}/any", headers={"host": host}, timeout=10)


@pytest.mark.parametrize("namespace", ["default", "qa"])
@pytest.mark.parametrize("host", ["reviews.default:9080", "reviews.default.svc:9080",
                                  "reviews.default.svc.cluster.local:9080"])
def test_qualified_names_reach_the_service_entry_from_any_namespace(
        sidecars: dict[str, Proxy], namespace: str, host: str) -> None:
    answer = _get(sidecars[namespace], host)
    assert answer.status_code == 200, answer.text
    assert answer.json()["upstream"] == "reviews"
    assert answer.headers["x-route"] == "reviews-vs"


def test_bare_name_reaches_it_only_from_the_host_namespace(sidecars: dict[str, Proxy]) -> None:
    """From `qa`, `reviews` would be reviews.qa...: not a host of the registry, so not the
    entry (the proxy's mesh config is REGISTRY_ONLY: blocked, 502)."""
    home = _get(sidecars["default"], "reviews:9080")
    assert home.status_code == 200, home.text
    assert home.headers["x-route"] == "reviews-vs"
    assert _get(sidecars["qa"], "reviews:9080").status_code == 502


def test_curl_as_http_proxy_reaches_the_short_name(sidecars: dict[str, Proxy]) -> None:
    """curl -x sends the absolute form http://reviews:9080/ (RFC 9112 §3.2.2)."""
    done = subprocess.run(
        ["curl", "-s", "-i", "-x", sidecars["default"].url, "http://reviews:9080/via-curl"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert done.stdout.startswith("HTTP/1.1 200"), done.stdout
    assert "x-route: reviews-vs" in done.stdout.lower()
