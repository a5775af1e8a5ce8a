"""`remora controlplane` as a subprocess on a free port, driven over HTTP with httpx.

What Kubernetes users expect of an API server (kubernetes.io/docs/reference/using-api/
api-concepts/): objects at /apis/{group}/{version}/namespaces/{ns}/{plural}/{name}, failures as
`kind: Status` bodies with a reason and field causes, resourceVersion preconditions (409),
watches as JSON lines of {type, object}. Then a bounded schemathesis run: no 500s.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from tests.e2e.meshkit import REMORA, ControlPlaneProcess, run_controlplane

VS_PATH = "/apis/networking.istio.io/v1/namespaces/default/virtualservices"


def vs(name: str, *, subset: str = "v1", **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": name, **meta},
        "spec": {"hosts": [name],
                 "http": [{"route": [{"destination": {"host": name, "subset": subset}}]}]},
    }


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    with run_controlplane(tmp_path_factory.mktemp("cp")) as running:
        yield running


@pytest.fixture
def client(plane: ControlPlaneProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=plane.url, timeout=10, headers=plane.headers) as http:
        yield http


def assert_status(response: httpx.Response, code: int, reason: str) -> dict[str, Any]:
    assert response.status_code == code, response.text
    body: dict[str, Any] = response.json()
    assert (body["kind"], body["status"], body["code"], body["reason"]) == \
        ("Status", "Failure", code, reason)
    return body


def test_health_and_openapi(client: httpx.Client) -> None:
    assert client.get("/healthz").text == "ok"
    paths = client.get("/openapi.json").json()["paths"]
    assert "/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}" in paths
    assert "/api/v1/namespaces/{namespace}/{plural}" in paths


def test_create_get_replace_delete(client: httpx.Client) -> None:
    created = client.post(VS_PATH, json=vs("crud", labels={"app": "crud"}))
    assert created.status_code == 201, created.text
    meta = created.json()["metadata"]
    assert meta["generation"] == 1 and meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert_status(client.post(VS_PATH, json=vs("crud")), 409, "AlreadyExists")

    got = client.get(f"{VS_PATH}/crud").json()
    assert got["metadata"]["resourceVersion"] == meta["resourceVersion"]
    old = client.get("/apis/networking.istio.io/v1alpha3/namespaces/default/virtualservices/crud")
    assert old.json()["apiVersion"] == "networking.istio.io/v1alpha3"

    update = vs("crud", subset="v2", labels={"app": "crud"},
                resourceVersion=meta["resourceVersion"])
    replaced = client.put(f"{VS_PATH}/crud", json=update)
    assert replaced.status_code == 200 and replaced.json()["metadata"]["generation"] == 2
    stale = assert_status(client.put(f"{VS_PATH}/crud", json=update), 409, "Conflict")
    assert stale["details"]["causes"][0]["field"] == "metadata.resourceVersion"

    listed = client.get(VS_PATH, params={"labelSelector": "app=crud"}).json()
    assert listed["kind"] == "VirtualServiceList"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["crud"]
    everywhere = client.get("/apis/networking.istio.io/v1/virtualservices").json()
    assert "crud" in [i["metadata"]["name"] for i in everywhere["items"]]

    assert client.delete(f"{VS_PATH}/crud").json()["metadata"]["name"] == "crud"
    assert_status(client.get(f"{VS_PATH}/crud"), 404, "NotFound")
    assert_status(client.delete(f"{VS_PATH}/crud"), 404, "NotFound")


def test_generic_apply_reports_actions(client: httpx.Client) -> None:
    text = "\n---\n".join(json.dumps(d) for d in (
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}},
        vs("cart", namespace="shop")))
    first = client.post("/api/remora/apply", content=text,
                        headers={"content-type": "application/yaml"}).json()
    assert [(i["resource"], i["action"]) for i in first["items"]] == [
        ("namespace", "created"), ("virtualservice.networking.istio.io", "created")]
    again = client.post("/api/remora/apply", content=text).json()
    assert [i["action"] for i in again["items"]] == ["unchanged", "unchanged"]
    listed = client.get("/api/v1/namespaces/shop/services").json()
    assert listed["items"] == []


def test_invalid_object_is_422_with_field_paths(client: httpx.Client) -> None:
    bad = vs("bad")
    bad["spec"]["http"][0]["route"][0]["weight"] = "heavy"
    bad["spec"]["hostz"] = []
    body = assert_status(client.post(VS_PATH, json=bad), 422, "Invalid")
    fields = {c["field"] for c in body["details"]["causes"]}
    assert {"spec.http[0].route[0].weight", "spec.hostz"} <= fields
    bulk = assert_status(client.post("/api/remora/apply", json=bad), 422, "Invalid")
    assert bulk["details"]["causes"]


def test_unknown_things_are_404(client: httpx.Client) -> None:
    assert_status(client.get("/apis/example.com/v1/namespaces/default/widgets"), 404, "NotFound")
    assert_status(client.get("/apis/networking.istio.io/v9/virtualservices"), 404, "NotFound")
    missing_ns = assert_status(
        client.post("/apis/networking.istio.io/v1/namespaces/nowhere/virtualservices",
                    json=vs("x")), 404, "NotFound")
    assert 'namespaces "nowhere" not found' in missing_ns["message"]
    unserved = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert_status(client.post("/api/remora/apply", json=unserved), 404, "NotFound")
    assert_status(client.get("/no/such/path"), 404, "NotFound")


def test_malformed_oversized_and_unsupported_bodies(client: httpx.Client) -> None:
    yaml_headers = {"content-type": "application/yaml"}
    assert_status(client.post(VS_PATH, content="a: [", headers=yaml_headers), 400, "BadRequest")
    assert_status(client.post(VS_PATH, content="{", headers={"content-type": "application/json"}),
                  400, "BadRequest")
    assert_status(client.post(VS_PATH, content="NaN", headers={"content-type":
                                                                "application/json"}),
                  400, "BadRequest")
    assert_status(client.post(VS_PATH, content="x", headers={"content-type": "text/plain"}),
                  415, "UnsupportedMediaType")
    big = b"# " + b"x" * (4 * 1024 * 1024)
    assert_status(client.post("/api/remora/apply", content=big), 413, "RequestEntityTooLarge")
    assert_status(client.get(VS_PATH, params={"labelSelector": "a in b"}), 400, "BadRequest")
    mismatch = vs("m", namespace="other")
    assert_status(client.post(VS_PATH, json=mismatch), 400, "BadRequest")


def test_watch_streams_changes_from_a_resource_version(client: httpx.Client) -> None:
    start = client.post(VS_PATH, json=vs("w0")).json()["metadata"]["resourceVersion"]
    client.post(VS_PATH, json=vs("w1"))
    client.put(f"{VS_PATH}/w1", json=vs("w1", subset="v2"))
    client.delete(f"{VS_PATH}/w1")
    params = {"watch": "true", "resourceVersion": start, "timeoutSeconds": "10"}
    events = []
    with client.stream("GET", VS_PATH, params=params) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():
            event = json.loads(line)
            events.append((event["type"], event["object"]["metadata"]["name"]))
            if len(events) == 3:
                break
    assert events == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_sigterm_drains_and_exits_cleanly(tmp_path: Path) -> None:
    with run_controlplane(tmp_path) as own:
        own.process.send_signal(signal.SIGTERM)
        assert own.process.wait(timeout=20) == 0


def test_port_in_use_is_one_clear_line(plane: ControlPlaneProcess, tmp_path: Path) -> None:
    listen = plane.url.removeprefix("http://")
    done = subprocess.run([*REMORA, "controlplane", "--listen", listen, "--data-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=30,
                          check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"Error: cannot listen on {listen}: Address already in use (another process is using "
        "it; choose another with --listen)"]


# ---------------------------------------------------------------------------------------------
# schemathesis: whatever the OpenAPI document allows a client to send, never a 500
# ---------------------------------------------------------------------------------------------

STREAMS = "(/discovery|/listener)$"  # push stream, Nacos long poll: open by design


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with run_controlplane(tmp_path_factory.mktemp("fuzz")) as fuzzed:
        schema = schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")
        yield schema.exclude(path_regex=STREAMS)


def test_no_request_gets_a_500(api_schema: Any) -> None:
    """Every operation, a few generated requests each (positive and negative data), bounded."""
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 20
    for operation in operations:
        _fuzz(operation)


def _fuzz(operation: Any) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        if case.query and "watch" in case.query:  # a watch streams until its timeout
            case.query["timeoutSeconds"] = 0.2
        response = case.call(timeout=15)
        assert response.status_code < 500, (case.method, case.formatted_path,
                                             response.text[:500])

    check()
