"""MeshConfig as Istio reads it: ConfigMap istio-system/istio key `mesh`, or a file
(istioctl analyze --meshConfigFile); defaults are pilot's DefaultMeshConfig
(pkg/config/mesh/mesh.go), field names those of istio.io/api mesh/v1alpha1/config.proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from remora.api.errors import ConfigError
from remora.api.loader import load_text
from remora.api.meshconfig import DEFAULT_MESH_CONFIG, mesh_config_of, parse_mesh_config
from remora.api.unenforced import findings

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |
    rootNamespace: mesh-root
    outboundTrafficPolicy:
      mode: REGISTRY_ONLY
{extra}"""


def test_defaults_are_istios() -> None:
    mesh = DEFAULT_MESH_CONFIG
    assert mesh.root == "istio-system"
    assert mesh.domain == "cluster.local"
    assert mesh.connect_timeout_seconds == 10.0
    assert mesh.outbound_mode == "ALLOW_ANY"
    assert mesh.normalization == "BASE"  # DEFAULT: "Currently, this is BASE"
    assert mesh.file_access_log() == ("", "", "TEXT")  # accessLogFile "" disables the log
    assert mesh.provider("envoy") is not None  # built-in envoyFileAccessLog at /dev/stdout


def test_configmap_in_istio_system_is_the_mesh_config() -> None:
    result = load_text(CONFIGMAP.format(extra=""), "mesh.yaml")
    assert not result.issues
    mesh = mesh_config_of(result.resources)
    assert (mesh.root, mesh.outbound_mode) == ("mesh-root", "REGISTRY_ONLY")


def test_configmap_elsewhere_is_just_a_configmap() -> None:
    text = CONFIGMAP.format(extra="").replace("istio-system", "default")
    assert mesh_config_of(load_text(text).resources) is DEFAULT_MESH_CONFIG


def test_bad_mesh_config_is_refused_with_file_line_and_field_path() -> None:
    result = load_text(CONFIGMAP.format(extra="    connectTimeout: 0.5ms\n"
                                              "    accessLogEncoding: XML\n"), "mesh.yaml")
    assert not result.resources
    lines = sorted(str(issue) for issue in result.issues)
    assert lines == [
        "mesh.yaml:11: ConfigMap istio-system/istio: data.mesh.connectTimeout: "
        "duration must be at least 1ms",
        "mesh.yaml:12: ConfigMap istio-system/istio: data.mesh.accessLogEncoding: "
        "must be one of 'TEXT' or 'JSON', got string 'XML'",
    ]


def test_unknown_field_is_an_error_as_in_istio() -> None:
    with pytest.raises(ConfigError, match=r"f\.yaml:2: MeshConfig: outboundTraficPolicy"):
        parse_mesh_config("rootNamespace: x\noutboundTraficPolicy: {mode: ALLOW_ANY}\n",
                          file="f.yaml")


def test_access_log_from_default_provider() -> None:
    """defaultProviders.accessLogging naming an envoyFileAccessLog provider turns the log on;
    `envoy` is a built-in provider (DefaultMeshConfig)."""
    mesh = parse_mesh_config("defaultProviders: {accessLogging: [envoy]}\n")
    assert mesh.file_access_log() == ("/dev/stdout", "", "TEXT")
    mesh = parse_mesh_config(
        "extensionProviders:\n- name: json\n  envoyFileAccessLog:\n    path: /tmp/a.log\n"
        "    logFormat: {labels: {code: '%RESPONSE_CODE%'}}\n"
        "defaultProviders: {accessLogging: [json]}\n")
    assert mesh.file_access_log() == ("/tmp/a.log", "", "JSON")


def test_what_is_not_acted_on_is_reported_with_its_path() -> None:
    extra = ("    enableTracing: true\n    accessLogFile: /dev/stdout\n"
             "    defaultConfig: {concurrency: 4, holdApplicationUntilProxyStarts: true}\n"
             "    extensionProviders:\n    - name: otel\n"
             "      opentelemetry: {service: otel.observability.svc.cluster.local, port: 4317}\n"
             "    - name: log\n      envoyFileAccessLog: {path: /dev/stdout}\n")
    (configmap,) = load_text(CONFIGMAP.format(extra=extra)).resources
    paths = sorted(found.path for found in findings(configmap))
    # `remora up` reads holdApplicationUntilProxyStarts: only the rest of defaultConfig
    assert paths == ["data.mesh.defaultConfig.concurrency", "data.mesh.enableTracing",
                     "data.mesh.extensionProviders[0]"]


def test_defaults_written_out_are_not_reported() -> None:
    extra = ("    enableTracing: false\n    proxyListenPort: 15001\n"
             "    h2UpgradePolicy: DO_NOT_UPGRADE\n")
    (configmap,) = load_text(CONFIGMAP.format(extra=extra)).resources
    assert findings(configmap) == []


def run_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "remora.cli.main", "analyze", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_analyze_mesh_config_file(tmp_path: Path) -> None:
    """istioctl analyze --meshConfigFile: its root namespace is the one analyzers use, and what
    it sets that Remora ignores is an RMR0001 warning."""
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text("rootNamespace: mesh-root\nenableTracing: true\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        "metadata: {name: web, namespace: mesh-root}\n"
        "spec: {selector: {matchLabels: {app: web}}}\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n"
        "spec:\n  selector: {matchLabels: {app: web}}\n  template:\n"
        "    metadata: {labels: {app: web}}\n"
        "    spec: {containers: [{name: web, image: web}]}\n")
    done = run_analyze("--meshConfigFile", str(mesh), "-A", str(policy))
    assert f"(MeshConfig {mesh}:1) enableTracing is not enforced" in done.stdout
    # a policy in the root namespace selects workloads in every namespace (IST0127 otherwise)
    assert "IST0127" not in done.stdout
    without = run_analyze("-A", str(policy))
    assert "IST0127" in without.stdout


def test_analyze_bad_mesh_config_file(tmp_path: Path) -> None:
    mesh = tmp_path / "mesh.yaml"
    mesh.write_text("outboundTrafficPolicy:\n  mode: nope\n")
    done = run_analyze("--meshConfigFile", str(mesh), str(mesh))
    assert done.returncode == 65
    assert f"{mesh}:2: MeshConfig: outboundTrafficPolicy.mode: must be one of" in done.stderr
    assert "Traceback" not in done.stderr


def test_values_not_acted_on_are_reported() -> None:
    """A JSON accessLogFormat (a map of fields) is not applied; perTryTimeout is the one
    setting Istio does not take from defaultHttpRetryPolicy."""
    extra = ("    accessLogEncoding: JSON\n    accessLogFormat: '{\"code\": \"%RESPONSE_CODE%\"}'\n"
             "    defaultHttpRetryPolicy: {attempts: 2, perTryTimeout: 1s}\n")
    (configmap,) = load_text(CONFIGMAP.format(extra=extra)).resources
    assert sorted(found.path for found in findings(configmap)) == [
        "data.mesh.accessLogFormat", "data.mesh.defaultHttpRetryPolicy.perTryTimeout"]
