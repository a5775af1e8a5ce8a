"""EnvoyFilter HTTP_FILTER patches: which select a proxy, in what order, and the chains they make
(istio.io/latest/docs/reference/config/networking/envoy-filter/; istiod's
pilot/pkg/model/push_context.go EnvoyFilters and core/envoyfilter/http_filter_patch.go)."""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType

import pytest

from remora.analysis.runner import analyze
from remora.api.loader import load_text
from remora.api.networking import httpfilters
from remora.mesh.filterpatch import (
    HttpFilterPatch,
    PatchContext,
    http_filter_chain,
    patch_http_filters,
)
from remora.mesh.snapshot import Snapshot
from remora.policy import filterconfig
from tests.unit.mesh import gateway, sidecar

CORS, FAULT, ROUTER = httpfilters.CORS, httpfilters.FAULT, httpfilters.ROUTER
GZIP, CACHE, COMPRESSOR = httpfilters.GZIP, httpfilters.CACHE, httpfilters.COMPRESSOR
HCM = httpfilters.HTTP_CONNECTION_MANAGER
EMPTY = MappingProxyType({})


def p(operation: str, name: str = "", anchor: str = "", *, context: PatchContext = "ANY",
      port: int | None = None) -> HttpFilterPatch:  # fmt: skip
    return HttpFilterPatch(context=context, port=port, operation=operation,  # type: ignore[arg-type]
                           filter_name=name, anchor=anchor, config=EMPTY, source="test",
                           implementation=name)


def names(patches: Sequence[HttpFilterPatch], context: httpfilters.Context = "SIDECAR_OUTBOUND",
          port: int = 9080) -> list[str]:  # fmt: skip
    return [name for name, _ in http_filter_chain(context, port, patches)]


# http_filter_patch.go, per operation, on Remora's chain (fault, cors, router)
CHAINS = [
    ("insert-first", [p("INSERT_FIRST", GZIP)], [GZIP, FAULT, CORS, ROUTER]),
    ("insert-before-anchor", [p("INSERT_BEFORE", GZIP, ROUTER)], [FAULT, CORS, GZIP, ROUTER]),
    ("insert-before-no-anchor-is-first", [p("INSERT_BEFORE", GZIP)], [GZIP, FAULT, CORS, ROUTER]),
    ("insert-after-anchor", [p("INSERT_AFTER", GZIP, FAULT)], [FAULT, GZIP, CORS, ROUTER]),
    ("remove", [p("REMOVE", anchor=CORS)], [FAULT, ROUTER]),
    ("remove-every-one", [p("INSERT_FIRST", CACHE), p("INSERT_AFTER", CACHE, CORS),
                          p("REMOVE", anchor=CACHE)], [FAULT, CORS, ROUTER]),
    ("replace", [p("REPLACE", GZIP, CORS)], [FAULT, GZIP, ROUTER]),
    ("replace-needs-anchor", [p("REPLACE", GZIP)], [FAULT, CORS, ROUTER]),
    ("remove-needs-anchor", [p("REMOVE")], [FAULT, CORS, ROUTER]),
    ("anchor-not-found", [p("INSERT_BEFORE", GZIP, httpfilters.RBAC)], [FAULT, CORS, ROUTER]),
    ("istio-stats-anchor", [p("INSERT_AFTER", GZIP, httpfilters.STATS)], [FAULT, CORS, ROUTER]),
    ("anchor-on-inserted", [p("INSERT_FIRST", CACHE), p("INSERT_AFTER", GZIP, CACHE)],
     [CACHE, GZIP, FAULT, CORS, ROUTER]),
    ("in-order", [p("INSERT_BEFORE", GZIP, ROUTER), p("INSERT_BEFORE", CACHE, ROUTER)],
     [FAULT, CORS, GZIP, CACHE, ROUTER]),
    ("deprecated-anchor-name", [p("INSERT_BEFORE", GZIP, "envoy.router")],
     [FAULT, CORS, ROUTER]),  # anchors are canonicalised by the model, not here
    # Envoy refuses a filter after the terminal router: that patch is left out
    ("add-after-router", [p("ADD", GZIP)], [FAULT, CORS, ROUTER]),
    ("insert-after-no-anchor", [p("INSERT_AFTER", GZIP)], [FAULT, CORS, ROUTER]),
    ("insert-after-router", [p("INSERT_AFTER", GZIP, ROUTER)], [FAULT, CORS, ROUTER]),
    ("remove-router", [p("REMOVE", anchor=ROUTER)], [FAULT, CORS, ROUTER]),
    ("replace-router-by-router", [p("REPLACE", ROUTER, ROUTER)], [FAULT, CORS, ROUTER]),
]


@pytest.mark.parametrize(("patches", "chain"), [(ps, c) for _, ps, c in CHAINS],
                         ids=[name for name, _, _ in CHAINS])
def test_patches_edit_the_chain_as_istio_does(patches: list[HttpFilterPatch],
                                              chain: list[str]) -> None:
    assert names(patches) == chain


def test_patches_not_applied_say_why() -> None:
    result = patch_http_filters("GATEWAY", 8080, [p("INSERT_BEFORE", GZIP, httpfilters.RBAC),
                                                  p("ADD", GZIP), p("REPLACE", GZIP)])
    assert result.names == (FAULT, CORS, ROUTER)
    assert [n.reason for n in result.not_applied] == [
        "envoy.filters.http.rbac is not in the chain",
        "it would leave a filter after envoy.filters.http.router, or none last: Envoy refuses "
        "such a chain",
        "REPLACE names no filter (match.listener.filterChain.filter.subFilter)",
    ]


def test_context_and_port_select_the_chains_a_patch_edits() -> None:
    patches = [p("INSERT_FIRST", GZIP, context="SIDECAR_INBOUND"),
               p("INSERT_FIRST", CACHE, port=9090)]
    assert names(patches, "SIDECAR_INBOUND", 9080) == [GZIP, FAULT, CORS, ROUTER]
    assert names(patches, "SIDECAR_OUTBOUND", 9080) == [FAULT, CORS, ROUTER]
    assert names(patches, "GATEWAY", 9090) == [CACHE, FAULT, CORS, ROUTER]


def test_a_base_chain_can_be_given_and_configs_come_along() -> None:
    config = MappingProxyType({"@type": "type.googleapis.com/envoy.extensions.filters.http."
                                        "compressor.v3.Compressor"})
    patch = HttpFilterPatch(context="ANY", port=None, operation="INSERT_BEFORE",
                            filter_name="zip", anchor=ROUTER, config=config, source="test",
                            implementation=COMPRESSOR)
    assert http_filter_chain("GATEWAY", 80, [patch], base=(CORS, ROUTER)) == (
        (CORS, EMPTY), ("zip", config), (ROUTER, EMPTY))


def envoy_filter(name: str, namespace: str, operation: str = "INSERT_BEFORE",
                 filter_name: str = GZIP, *, extra: str = "", match: str = "") -> str:  # fmt: skip
    value = f", value: {{name: {filter_name}}}" if operation != "REMOVE" else ""
    return f"""\
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {{name: {name}, namespace: {namespace}{extra}}}
spec:
  {match}configPatches:
  - applyTo: HTTP_FILTER
    match: {{listener: {{filterChain: {{filter: {{name: {HCM}, subFilter: {{name: {ROUTER}}}}}}}}}}}
    patch: {{operation: {operation}{value}}}
---
"""


def sources(snap: Snapshot) -> list[str]:
    return [patch.source.split()[1] for patch in snap.http_filter_patches]


def test_root_namespace_and_own_namespace_select_the_proxy() -> None:
    """envoy-filter/: "all EnvoyFilters in the config root namespace, followed by all matching
    EnvoyFilters in the workload's namespace"; other namespaces do not apply."""
    text = (envoy_filter("mine", "default") + envoy_filter("mesh-wide", "istio-system")
            + envoy_filter("other", "shop"))
    assert sources(sidecar(text)) == ["istio-system/mesh-wide", "default/mine"]


def test_root_namespace_is_meshconfig_root_namespace() -> None:
    mesh = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data: {mesh: "rootNamespace: mesh-root"}
---
"""
    text = mesh + envoy_filter("a", "istio-system") + envoy_filter("b", "mesh-root")
    assert sources(sidecar(text)) == ["mesh-root/b"]


def test_workload_selector_labels_must_all_be_carried() -> None:
    text = (envoy_filter("reviews", "default",
                         match="workloadSelector: {labels: {app: reviews}}\n  ")
            + envoy_filter("v2", "default",
                           match="workloadSelector: {labels: {app: reviews, version: v2}}\n  ")
            + envoy_filter("root", "istio-system",
                           match="workloadSelector: {labels: {app: reviews}}\n  "))
    assert sources(sidecar(text, labels={"app": "reviews", "version": "v1"})) == [
        "istio-system/root", "default/reviews"]
    assert sources(sidecar(text, labels={"app": "ratings"})) == []


def test_gateways_are_selected_by_their_labels_and_target_refs() -> None:
    text = (envoy_filter("ingress", "istio-system",
                         match="workloadSelector: {labels: {istio: ingressgateway}}\n  ")
            + envoy_filter("by-ref", "istio-system", match="targetRefs: [{kind: Gateway, group: "
                           "gateway.networking.k8s.io, name: public}]\n  "))
    plain = gateway(text, labels={"istio": "ingressgateway"})
    assert sources(plain) == ["istio-system/ingress"]
    api = gateway(text, labels={"gateway.networking.k8s.io/gateway-name": "public"})
    assert sources(api) == ["istio-system/by-ref"]


def test_order_is_priority_then_root_first_then_creation_time_then_name() -> None:
    """istiod's sort (push_context.go EnvoyFilters): priority; on a tie the root namespace's
    first; then creation time; then `name.namespace`."""
    at = ", creationTimestamp: '2026-01-0{}T00:00:00Z'"
    text = (envoy_filter("late", "default", extra=at.format(2))
            + envoy_filter("early", "default", extra=at.format(1))
            + envoy_filter("b-no-time", "default") + envoy_filter("a-no-time", "default")
            + envoy_filter("root", "istio-system", extra=at.format(9))
            + envoy_filter("first", "default", match="priority: -5\n  ")
            + envoy_filter("last", "istio-system", match="priority: 10\n  "))
    assert sources(sidecar(text)) == [
        "default/first", "istio-system/root", "default/a-no-time", "default/b-no-time",
        "default/early", "default/late", "istio-system/last"]


def test_the_snapshot_holds_the_patches_and_the_chain_follows_them() -> None:
    text = envoy_filter("gzip", "istio-system") + envoy_filter(
        "no-cors", "default", "REMOVE", match="priority: 1\n  ").replace(
        f"subFilter: {{name: {ROUTER}}}", f"subFilter: {{name: {CORS}}}")
    snap = sidecar(text, app_port=9080)
    gzip, no_cors = snap.http_filter_patches
    assert (gzip.operation, gzip.filter_name, gzip.anchor, gzip.implementation) == (
        "INSERT_BEFORE", GZIP, ROUTER, GZIP)
    assert (no_cors.operation, no_cors.filter_name, no_cors.anchor) == ("REMOVE", "", CORS)
    assert names(snap.http_filter_patches, "SIDECAR_INBOUND", 9080) == [FAULT, GZIP, ROUTER]
    assert snap.to_dict()["httpFilterPatches"][0] == {
        "context": "ANY", "port": None, "operation": "INSERT_BEFORE", "filter": GZIP,
        "anchor": ROUTER, "config": {}, "source": "EnvoyFilter istio-system/gzip "
                                                  "spec.configPatches[0]"}


def compiled_scope(match: str) -> list[tuple[str, int | None]]:
    text = f"""\
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {{name: f}}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match: {match}
    patch: {{operation: INSERT_FIRST, value: {{name: {GZIP}}}}}
"""
    return [(patch.context, patch.port) for patch in sidecar(text).http_filter_patches]


@pytest.mark.parametrize(("match", "scope"), [
    ("{}", [("ANY", None)]),
    ("{context: GATEWAY, listener: {portNumber: 8080}}", [("GATEWAY", 8080)]),
    ("{listener: {name: virtualInbound}}", [("SIDECAR_INBOUND", None)]),
    ("{context: SIDECAR_OUTBOUND, listener: {name: 0.0.0.0_9080}}", [("SIDECAR_OUTBOUND", 9080)]),
    ("{context: GATEWAY, listener: {name: virtualInbound}}", []),
    ("{listener: {name: 0.0.0.0_9080, portNumber: 80}}", []),
    ("{listener: {name: my-listener}}", []),
    ("{context: WAYPOINT}", []),
    ("{proxy: {proxyVersion: '.*'}}", []),  # Istio: a proxy without a version never matches
    ("{listener: {filterChain: {filter: {name: envoy.filters.network.tcp_proxy}}}}", []),
    ("{listener: {filterChain: {sni: a.com}}}", []),
    (f"{{listener: {{filterChain: {{filter: {{name: {HCM}}}}}}}}}", [("ANY", None)]),
])
def test_a_patch_applies_to_the_listeners_its_match_can_meet(
        match: str, scope: list[tuple[str, int | None]]) -> None:
    assert compiled_scope(match) == scope


def test_a_filter_config_the_filter_rejects_skips_the_envoy_filter(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """remora.policy.filterconfig is the hook: its error leaves the resource out, with the
    field path, and analyze reports it as an error (so apply refuses it)."""
    def check(config: object) -> None:
        raise ValueError("memory_level: must be 1..9")

    monkeypatch.setitem(filterconfig._CHECKS, GZIP, check)
    text = envoy_filter("gzip", "default") + envoy_filter("cors", "default", filter_name=CORS)
    snap = sidecar(text)
    assert sources(snap) == ["default/cors"]
    (skipped,) = snap.skipped
    assert skipped.subject == "EnvoyFilter default/gzip"
    assert skipped.message == ("cannot be compiled: spec.configPatches[0].patch.value."
                               "typed_config: memory_level: must be 1..9")
    messages = [str(m) for m in analyze(load_text(text, "ef.yaml"), namespace=None)]
    assert messages == [
        "Error [IST0106] (EnvoyFilter default/gzip ef.yaml:8) Schema validation error: "
        "spec.configPatches[0].patch.value.typed_config: memory_level: must be 1..9"]


def test_analyze_warns_of_patches_remora_will_not_apply() -> None:
    """RMR0002: an anchor Remora's chain does not have (Istio: not found, not applied), or a
    filter after the router (Envoy refuses the chain)."""
    text = (envoy_filter("after-stats", "default").replace(ROUTER, httpfilters.STATS)
            + envoy_filter("on-inserted", "default", filter_name=CORS).replace(
                f"{{name: {ROUTER}}}", f"{{name: {GZIP}}}")
            + envoy_filter("gzip", "default")
            + envoy_filter("add", "default", "ADD")
            + envoy_filter("remove-nothing", "default", "REMOVE").replace(
                f"subFilter: {{name: {ROUTER}}}", ""))
    messages = [str(m) for m in analyze(load_text(text, "ef.yaml"), namespace=None)]
    assert messages == [
        "Warning [RMR0002] (EnvoyFilter default/add ef.yaml:33) spec.configPatches[0]: ADD puts "
        "envoy.filters.http.gzip after envoy.filters.http.router, the last filter of every "
        "chain: Envoy refuses that, and Remora does not apply the patch",
        "Warning [RMR0002] (EnvoyFilter default/after-stats ef.yaml:6) spec.configPatches[0]: "
        "istio.stats is an Istio filter Remora's chain does not have (Istio's standard metrics "
        "are recorded by the proxy itself, not by a filter), so this INSERT_BEFORE patch is not "
        "applied, as Istio does when a patch's filter is not found (Remora's chain: "
        "envoy.filters.http.fault, envoy.filters.http.cors, envoy.filters.http.router)",
        "Warning [RMR0002] (EnvoyFilter default/remove-nothing ef.yaml:42) "
        "spec.configPatches[0]: REMOVE names no filter (match.listener.filterChain.filter."
        "subFilter.name): Istio skips such a patch, and so does Remora",
    ]


def with_config(name: str, filter_name: str, typed_config: str) -> str:
    written = f"value: {{name: {filter_name}, typed_config: {typed_config}}}"
    return envoy_filter(name, "default", filter_name=filter_name).replace(
        f"value: {{name: {filter_name}}}", written)


def test_compressor_gzip_and_cache_configs_are_checked_by_their_filters() -> None:
    """remora.policy.filterconfig calls remora.policy.compression and remora.policy.httpcache:
    what they refuse is an error at its field (so apply refuses it) and is not compiled."""
    gzip_type = "type.googleapis.com/envoy.extensions.filters.http.gzip.v3.Gzip"
    cache_type = "type.googleapis.com/envoy.extensions.filters.http.cache.v3.CacheConfig"
    simple = ("type.googleapis.com/envoy.extensions.http.cache.simple_http_cache.v3."
              "SimpleHttpCacheConfig")
    text = (with_config("gzip", GZIP, f"{{'@type': {gzip_type}, memory_level: 30}}")
            + with_config("cache", CACHE,
                          f"{{'@type': {cache_type}, typed_config: {{'@type': {simple}}}}}")
            + with_config("no-store", CACHE, f"{{'@type': {cache_type}}}")
            + with_config("compressor", COMPRESSOR, "{}"))
    assert sources(sidecar(text)) == ["default/cache"]
    messages = [str(m) for m in analyze(load_text(text, "ef.yaml"), namespace=None)]
    assert messages == [
        "Error [IST0106] (EnvoyFilter default/compressor ef.yaml:35) Schema validation error: "
        "spec.configPatches[0].patch.value.typed_config.compressor_library: is required",
        "Error [IST0106] (EnvoyFilter default/gzip ef.yaml:8) Schema validation error: "
        "spec.configPatches[0].patch.value.typed_config.memory_level: must be in [1, 9], not 30",
        "Error [IST0106] (EnvoyFilter default/no-store ef.yaml:26) Schema validation error: "
        "spec.configPatches[0].patch.value.typed_config.typed_config: is required unless disabled",
    ]
