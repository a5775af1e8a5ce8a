"""End to end: Istio's metadata exchange through a real sidecar (istio/proxy peer_metadata
filter as pilot configures it for sidecars: IstioHeaders discovery and propagation, with
skip_external_clusters on the outbound side; istio.io "Istio Standard Metrics" source_*)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from remora.telemetry.peer import PEER_METADATA, PEER_METADATA_ID, PeerMetadata, decode, encode
from tests.e2e.meshkit import EchoServer, Proxy, echo_servers, run_proxy, service_yaml

pytestmark = pytest.mark.timeout(60)

EXTERNAL = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: api}}
spec:
  hosts: [api.example.com]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]
"""
CALLER = PeerMetadata(workload="productpage-v1", namespace="shop", cluster="Kubernetes",
                      labels={"app": "productpage", "version": "v1"})


@pytest.fixture(scope="module")
def app() -> Iterator[EchoServer]:
    with echo_servers("app") as servers:
        yield servers["app"]


@pytest.fixture(scope="module")
def sidecar(app: EchoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """The sidecar of workload reviews-v1: `app` is its app, and the upstream of `reviews`
    (a Kubernetes Service) and of api.example.com (a MESH_EXTERNAL ServiceEntry)."""
    tmp = tmp_path_factory.mktemp("peer")
    config = tmp / "config"
    config.mkdir()
    (config / "mesh.yaml").write_text(
        service_yaml("reviews", 9080, [(app.port, {"version": "v1"})]) + "---\n"
        + EXTERNAL.format(port=app.port))
    with run_proxy(config, "--labels", "app=reviews,version=v1", "--workload", "reviews-v1",
                   "--app-port", str(app.port), tmp=tmp) as running:
        yield running


def test_outbound_requests_carry_this_workload_but_not_to_external_services(
        sidecar: Proxy, app: EchoServer) -> None:
    """The app's own x-envoy-peer-metadata is replaced by the sidecar's; none goes to a
    MESH_EXTERNAL service (skip_external_clusters)."""
    forged = {PEER_METADATA: encode(CALLER), PEER_METADATA_ID: "forged"}
    with httpx.Client(base_url=sidecar.url, timeout=10) as client:
        assert client.get("/internal", headers={"host": "reviews:9080", **forged}).is_success
        assert client.get("/external", headers={"host": "api.example.com"}).is_success
    internal = app.headers["/internal"]
    described = decode(internal[PEER_METADATA])
    assert described is not None
    assert (described.workload, described.namespace) == ("reviews-v1", "default")
    assert described.labels["app"] == "reviews"
    assert internal[PEER_METADATA_ID].startswith("sidecar~127.0.0.1~reviews-v1-")
    assert PEER_METADATA not in app.headers["/external"]


def test_inbound_reads_the_caller_hides_it_from_the_app_and_answers_with_its_own(
        sidecar: Proxy, app: EchoServer) -> None:
    inbound = f"http://127.0.0.1:{sidecar.inbound}"
    answer = httpx.get(f"{inbound}/from-productpage", timeout=10,
                       headers={PEER_METADATA: encode(CALLER), PEER_METADATA_ID: "caller"})
    assert answer.status_code == 200
    assert not {PEER_METADATA, PEER_METADATA_ID} & app.headers["/from-productpage"].keys()
    answered = decode(answer.headers[PEER_METADATA])
    assert answered is not None and answered.workload == "reviews-v1"

    text = httpx.get(f"{sidecar.admin_url}/stats/prometheus", timeout=5).text
    reported = [dict(s.labels) for family in text_string_to_metric_families(text)
                for s in family.samples
                if s.name == "istio_requests_total" and s.labels["reporter"] == "destination"]
    assert {(r["source_workload"], r["source_workload_namespace"], r["source_app"],
             r["source_version"], r["destination_workload"]) for r in reported} == {
        ("productpage-v1", "shop", "productpage", "v1", "reviews-v1")}


def test_a_caller_that_says_nothing_is_unknown_and_hears_nothing(
        sidecar: Proxy, app: EchoServer) -> None:
    answer = httpx.get(f"http://127.0.0.1:{sidecar.inbound}/anonymous", timeout=10)
    assert answer.status_code == 200
    assert PEER_METADATA not in answer.headers
