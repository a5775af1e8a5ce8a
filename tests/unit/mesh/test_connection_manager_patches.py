"""EnvoyFilter NETWORK_FILTER MERGE patches of the HTTP connection manager: Istio's documented way
to set Envoy's downstream timeouts and limits (istio.io/latest/docs/reference/config/networking/
envoy-filter/; Envoy's HttpConnectionManager and HttpProtocolOptions protos). What Remora applies
reaches the listener it matches; every other field is reported with its path; a value Envoy
would refuse is refused with its path."""

from __future__ import annotations

import pytest

from remora.api.loader import load_text
from remora.api.unenforced import findings
from remora.mesh.snapshot import ConnectionManager, Listener
from tests.unit.mesh import gateway, sidecar

HCM_TYPE = ("type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
            "HttpConnectionManager")


def envoy_filter(name: str, typed_config: str, *, context: str = "SIDECAR_INBOUND",
                 port: int | None = None, namespace: str = "istio-system",
                 priority: int = 0) -> str:
    port_line = f"\n        portNumber: {port}" if port is not None else ""
    return f"""\
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  priority: {priority}
  configPatches:
  - applyTo: NETWORK_FILTER
    match:
      context: {context}
      listener:{port_line}
        filterChain:
          filter: {{name: envoy.filters.network.http_connection_manager}}
    patch:
      operation: MERGE
      value:
        typed_config: {{"@type": {HCM_TYPE}, {typed_config[1:-1]}}}
---
"""


def listener(snapshot_listeners: tuple[Listener, ...], direction: str) -> ConnectionManager:
    return next(x for x in snapshot_listeners if x.direction == direction).connection_manager


def test_a_merge_sets_the_timeouts_and_limits_of_the_listeners_it_matches() -> None:
    text = envoy_filter("timeouts", "{stream_idle_timeout: 30s, requestTimeout: 2.5s, "
                                    "max_request_headers_kb: 96, common_http_protocol_options: "
                                    "{idle_timeout: 60s, maxConnectionDuration: 600s, "
                                    "max_headers_count: 50}, http_protocol_options: "
                                    "{accept_http_10: true}}")
    snapshot = sidecar(text, app_port=8080)
    inbound = listener(snapshot.listeners, "inbound")
    assert inbound.set() == {"stream_idle_timeout": 30.0, "request_timeout": 2.5,
                             "max_request_headers_kb": 96, "idle_timeout": 60.0,
                             "max_connection_duration": 600.0, "max_headers_count": 50,
                             "accept_http_10": True}
    assert inbound.sources == ("EnvoyFilter istio-system/timeouts spec.configPatches[0]",)
    assert listener(snapshot.listeners, "outbound").set() == {}  # SIDECAR_INBOUND only


def test_later_patches_win_and_each_is_named_as_a_source() -> None:
    text = (envoy_filter("first", "{stream_idle_timeout: 30s, request_timeout: 5s}",
                         context="ANY", priority=-1)
            + envoy_filter("second", "{stream_idle_timeout: 10s}", context="SIDECAR_OUTBOUND"))
    outbound = listener(sidecar(text).listeners, "outbound")
    assert outbound.set() == {"stream_idle_timeout": 10.0, "request_timeout": 5.0}
    assert [s.split()[1] for s in outbound.sources] == ["istio-system/first",
                                                        "istio-system/second"]


def test_the_port_is_the_app_port_inbound_and_the_server_port_at_a_gateway() -> None:
    inbound = sidecar(envoy_filter("p", "{stream_idle_timeout: 7s}", port=8080), app_port=8080)
    other = sidecar(envoy_filter("p", "{stream_idle_timeout: 7s}", port=9999), app_port=8080)
    assert listener(inbound.listeners, "inbound").stream_idle_timeout == 7.0
    assert listener(other.listeners, "inbound").stream_idle_timeout is None
    gw = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
---
"""
    at_gateway = gateway(gw + envoy_filter("p", "{request_timeout: 3s}", context="GATEWAY",
                                           port=8080), labels={"istio": "ingressgateway"})
    assert listener(at_gateway.listeners, "gateway").request_timeout == 3.0


def test_an_outbound_patch_naming_a_port_applies_to_none_and_says_so() -> None:
    text = envoy_filter("p", "{stream_idle_timeout: 7s}", context="SIDECAR_OUTBOUND", port=9080)
    assert listener(sidecar(text).listeners, "outbound").set() == {}
    (resource,) = load_text(text, "f.yaml").resources
    assert [f.path for f in findings(resource)] == [
        "spec.configPatches[0].match.listener.portNumber"]


def test_fields_remora_does_not_apply_are_reported_with_their_path() -> None:
    text = envoy_filter("p", "{stream_idle_timeout: 7s, use_remote_address: true, "
                             "common_http_protocol_options: {headers_with_underscores_action: "
                             "REJECT_REQUEST}}")
    (resource,) = load_text(text, "f.yaml").resources
    base = "spec.configPatches[0].patch.value.typed_config"
    assert sorted(f.path for f in findings(resource)) == [
        f"{base}.common_http_protocol_options.headers_with_underscores_action",
        f"{base}.use_remote_address"]
    assert all("Remora applies only" in f.reason for f in findings(resource))
    # what it does apply is applied all the same
    assert listener(sidecar(text, app_port=8080).listeners, "inbound").stream_idle_timeout == 7.0


@pytest.mark.parametrize(("typed_config", "path", "message"), [
    ("{stream_idle_timeout: 5m}", "stream_idle_timeout", "is not a duration"),
    ("{request_timeout: -1s}", "request_timeout", "is not a duration"),
    ("{max_request_headers_kb: 9000}", "max_request_headers_kb", "between 1 and 8192"),
    ("{common_http_protocol_options: {max_headers_count: 0}}",
     "common_http_protocol_options.max_headers_count", "at least 1"),
    ("{http_protocol_options: {accept_http_10: yes-please}}",
     "http_protocol_options.accept_http_10", "true or false"),
])
def test_a_value_envoy_would_refuse_is_refused_with_its_path(typed_config: str, path: str,
                                                            message: str) -> None:
    result = load_text(envoy_filter("bad", typed_config), "f.yaml")
    (issue,) = result.issues
    assert issue.path == f"spec.configPatches[0].patch.value.typed_config.{path}"
    assert message in issue.message and issue.source is not None


def test_a_merge_into_another_network_filter_is_not_applied() -> None:
    text = envoy_filter("p", "{stream_idle_timeout: 7s}").replace(
        "envoy.filters.network.http_connection_manager", "envoy.filters.network.tcp_proxy"
    ).replace(HCM_TYPE, "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3."
                        "TcpProxy")
    assert listener(sidecar(text, app_port=8080).listeners, "inbound").set() == {}
    (resource,) = load_text(text, "f.yaml").resources
    assert "spec.configPatches[0].applyTo" in [f.path for f in findings(resource)]
