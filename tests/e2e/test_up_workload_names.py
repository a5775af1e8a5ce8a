"""`remora up`: Istio's standard metrics name workloads, not pods or registry entries.

istio.io "Istio Standard Metrics": `source_workload` / `destination_workload` are the workload
names (pilot: the pod's owner, a Deployment, unless the `service.istio.io/workload-name` label
says otherwise); the client sidecar reports the server's, the server sidecar the client's, which
it learns from the client sidecar's `x-envoy-peer-metadata` (Istio's metadata exchange), a
header the apps never see.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_up import Up, wait_for

pytestmark = pytest.mark.timeout(120)

APP = textwrap.dedent('''
    """GET /call/HOST calls http://HOST/ through http_proxy and tells what both sides saw;
    GET / answers with the request headers it received."""
    import json, os, urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            out = {"headers": {k.lower(): v for k, v in self.headers.items()}}
            if self.path.startswith("/call/"):
                with urllib.request.urlopen("http://" + self.path[6:] + "/", timeout=5) as r:
                    out["got"] = json.loads(r.read())
                    out["response_headers"] = {k.lower(): v for k, v in r.headers.items()}
            body = json.dumps(out).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
''')


def _deployment(name: str, app: str, port: int) -> str:
    return textwrap.dedent(f'''\
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: {name}}}
        spec:
          selector: {{matchLabels: {{app: {app}}}}}
          template:
            metadata: {{labels: {{app: {app}, version: v1}}}}
            spec:
              containers:
              - {{name: {app}, image: python:3.11, command: [python3, app.py],
                  ports: [{{containerPort: {port}, name: http}}]}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: {app}}}
        spec:
          selector: {{app: {app}}}
          ports: [{{name: http, port: {port}, targetPort: http}}]
        ''')


MESH = _deployment("front-v1", "front", 8080) + "---\n" + _deployment("back-v1", "back", 9090)


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Up]:
    mesh = Up(tmp_path, app=APP, mesh=MESH)
    yield mesh
    mesh.down()


def requests_total(admin_port: int) -> list[dict[str, str]]:
    text = httpx.get(f"http://127.0.0.1:{admin_port}/stats/prometheus", timeout=5).text
    return [dict(sample.labels) for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == "istio_requests_total"]


def test_metrics_name_the_workloads_on_both_sides(shop: Up) -> None:
    shop.start("--network", "host")  # this test calls the front app at its local port
    front, back = shop.pods("front-v1")[0], shop.pods("back-v1")[0]
    answer = shop.http.get(f"http://127.0.0.1:{front['ports']['app']['8080']}/call/back:9090")
    assert answer.status_code == 200, answer.text
    seen = answer.json()
    # the metadata exchange stays between the sidecars
    assert not {"x-envoy-peer-metadata", "x-envoy-peer-metadata-id"} & (
        seen["got"]["headers"].keys() | seen["response_headers"].keys())

    wanted = {"source_workload": "front-v1", "source_workload_namespace": "default",
              "source_app": "front", "source_version": "v1",
              "source_canonical_service": "front", "destination_workload": "back-v1",
              "destination_workload_namespace": "default", "destination_app": "back",
              "destination_version": "v1", "response_code": "200"}

    def reported(admin_port: int, reporter: str) -> dict[str, str] | None:
        return next((labels for labels in requests_total(admin_port)
                     if labels["reporter"] == reporter and labels["destination_app"] == "back"),
                    None)

    source = wait_for(lambda: reported(front["ports"]["admin"], "source"), timeout=10,
                      what="the client sidecar's report")
    destination = wait_for(lambda: reported(back["ports"]["admin"], "destination"), timeout=10,
                           what="the server sidecar's report")
    assert {key: source[key] for key in wanted} == wanted
    assert {key: destination[key] for key in wanted} == wanted
    # both sides name the service the request went to, though the app listens on a port of
    # remora up's choosing: the server sidecar knows the containerPort it stands for
    for labels in (source, destination):
        assert labels["destination_service"] == "back.default.svc.cluster.local"
        assert labels["destination_service_name"] == "back"
