"""`remora apply | get | delete` against a `remora controlplane` subprocess, as kubectl users
type them: kubectl's output lines, tables, -o yaml/json that parse, errors and exit codes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from remora.cli.kubectl import human_duration
from remora.runner.ports import free_port
from tests.e2e.meshkit import REMORA, ControlPlaneProcess, run_controlplane

MESH = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop, labels: {app: reviews}}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
"""


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlaneProcess]:
    with run_controlplane(tmp_path_factory.mktemp("cp")) as running:
        yield running


def remora(plane: ControlPlaneProcess | None, *args: str,
           stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    server = plane.url if plane else f"http://127.0.0.1:{free_port()}"
    # without a plane, no credentials at all: the user's file may hold some saved for a port
    # that free_port() hands out again
    credentials = str(plane.credentials) if plane else "/nonexistent/remora-credentials.json"
    return subprocess.run([*REMORA, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, check=False, env={"REMORA_SERVER": server,
                                                        "PATH": "/usr/bin:/bin",
                                                        "REMORA_CREDENTIALS": credentials})


def test_apply_get_delete_round_trip(plane: ControlPlaneProcess, tmp_path: Path) -> None:
    manifest = tmp_path / "mesh.yaml"
    manifest.write_text(MESH)
    first = remora(plane, "apply", "-f", str(manifest))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "namespace/shop created",
        "virtualservice.networking.istio.io/reviews created",
        "destinationrule.networking.istio.io/reviews created",
    ]
    again = remora(plane, "apply", "-f", str(tmp_path))  # a directory, recursively
    assert again.stdout.splitlines()[1] == "virtualservice.networking.istio.io/reviews unchanged"
    changed = remora(plane, "apply", "-f", "-", stdin=MESH.replace("subset: v1", "subset: v2"))
    assert "virtualservice.networking.istio.io/reviews configured" in changed.stdout

    table = remora(plane, "get", "vs", "-n", "shop")
    assert table.returncode == 0
    header, row = table.stdout.splitlines()
    assert header.split() == ["NAME", "GATEWAYS", "HOSTS", "AGE"]
    assert row.split()[:3] == ["reviews", "<none>", "reviews"]
    wide = remora(plane, "get", "virtualservices", "-A", "-o", "wide")
    assert wide.stdout.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert "app=reviews" in wide.stdout

    as_yaml = yaml.safe_load(remora(plane, "get", "virtualservice", "reviews", "-n", "shop",
                                    "-o", "yaml").stdout)
    assert as_yaml["metadata"]["generation"] == 2
    assert as_yaml["spec"]["http"][0]["route"][0]["destination"]["subset"] == "v2"
    as_json = json.loads(remora(plane, "get", "dr", "-A", "-o", "json").stdout)
    assert as_json["kind"] == "List"
    assert [i["metadata"]["name"] for i in as_json["items"]] == ["reviews"]
    names = remora(plane, "get", "ns").stdout
    assert "shop" in names and "default" in names

    deleted = remora(plane, "delete", "dr", "reviews", "-n", "shop")
    assert deleted.stdout.strip() == 'destinationrule.networking.istio.io "reviews" deleted'
    gone = remora(plane, "get", "dr", "-n", "shop")
    assert gone.returncode == 0 and gone.stderr.strip() == "No resources found in shop namespace."
    by_file = remora(plane, "delete", "-f", str(manifest), "--ignore-not-found")
    assert by_file.returncode == 0, by_file.stderr
    assert 'namespace "shop" deleted' in by_file.stdout


def test_invalid_resource_prints_field_paths(plane: ControlPlaneProcess) -> None:
    bad = MESH.split("---\n")[1].replace("subset: v1", "subset: v1, weight: heavy")
    bad = bad.replace("namespace: shop", "namespace: default")
    done = remora(plane, "apply", "-f", "-", stdin=bad)
    assert done.returncode == 1
    assert "Error from server (Invalid)" in done.stderr
    assert "  spec.http[0].route[0].destination.weight: unknown field" in done.stderr


DENY = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: default}
spec: {action: DENY, rules: [{}]}
"""


def test_what_is_not_enforced_is_applied_with_a_plain_warning(plane: ControlPlaneProcess) -> None:
    """Issue 11 item 4: a user who applies a DENY policy must never believe it protects."""
    done = remora(plane, "apply", "-f", "-", stdin=DENY)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "Warning: [RMR0001] AuthorizationPolicy is NOT enforced by Remora: authorization is not "
        "implemented yet: requests this policy would DENY (or not ALLOW) are let through. It "
        "does NOT protect anything."]
    assert done.stdout.strip() == "authorizationpolicy.security.istio.io/deny-all created"
    # istio.io/latest/docs/reference/config/networking/envoy-filter/: a patch Remora does not
    # act on is applied with a warning naming its field; one inserting a filter Remora does not
    # implement is refused, never accepted and ignored
    cluster = remora(plane, "apply", "-f", "-", stdin=envoy_filter(
        "timeout", "{applyTo: CLUSTER, patch: {operation: MERGE, value: {connect_timeout: 1s}}}"))
    assert cluster.returncode == 0, cluster.stderr
    assert cluster.stderr.splitlines() == [
        "Warning: [RMR0001] spec.configPatches[0].applyTo is not enforced by Remora: only "
        "HTTP_FILTER patches, and NETWORK_FILTER MERGE patches of the HTTP connection manager's "
        "timeouts and limits, are applied (there are no Envoy listeners, clusters or route "
        "configurations to patch)"]
    assert cluster.stdout.strip() == "envoyfilter.networking.istio.io/timeout created"
    lua = remora(plane, "apply", "-f", "-", stdin=envoy_filter(
        "lua", "{applyTo: HTTP_FILTER, patch: {operation: INSERT_FIRST, value: "
               "{name: envoy.filters.http.lua}}}"))
    assert lua.returncode == 1
    assert "Error from server (Invalid)" in lua.stderr
    assert ("  spec.configPatches[0].patch.value.name: envoy.filters.http.lua is not an HTTP "
            "filter Remora implements (it implements: envoy.filters.http.cors, ") in lua.stderr


def envoy_filter(name: str, patch: str) -> str:
    return ("apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\n"
            f"metadata: {{name: {name}, namespace: default}}\nspec: {{configPatches: [{patch}]}}\n")


def test_not_found_and_unknown_kind(plane: ControlPlaneProcess) -> None:
    missing = remora(plane, "get", "vs", "nothing")
    assert missing.returncode == 1
    assert missing.stderr.strip() == \
        'Error: Error from server (NotFound): virtualservices.networking.istio.io "nothing" ' \
        "not found"
    unknown = remora(plane, "get", "widgets")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == 'Error: the server doesn\'t have a resource type "widgets"'
    no_ns = remora(plane, "apply", "-f", "-", stdin=MESH.split("---\n")[1])
    assert no_ns.returncode == 1 and 'namespaces "shop" not found' in no_ns.stderr


def test_server_unreachable_is_one_line() -> None:
    done = remora(None, "get", "vs")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot reach the control plane at")


@pytest.mark.parametrize(("seconds", "shown"), [
    (5, "5s"), (119, "119s"), (125, "2m5s"), (600, "10m"), (3 * 3600 + 60, "3h1m"),
    (20 * 3600, "20h"), (3 * 86400 + 3600, "3d1h"), (30 * 86400, "30d"), (800 * 86400, "2y70d"),
])
def test_age_column_as_kubectl_prints_it(seconds: int, shown: str) -> None:
    assert human_duration(seconds) == shown
