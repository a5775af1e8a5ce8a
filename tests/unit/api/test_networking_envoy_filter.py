# ruff: noqa: E501  (expected messages are quoted whole)
"""EnvoyFilter as Istio defines and validates it (istio.io/latest/docs/reference/config/networking/
envoy-filter/, istio/istio pkg/config/validation/envoyfilter validateEnvoyFilter), plus Remora's
rule: a patch may only insert an HTTP filter Remora implements; and what it does not act on."""

from __future__ import annotations

from textwrap import dedent, indent

import pytest

from remora.api.loader import load_text
from remora.api.networking import httpfilters
from remora.api.networking.envoy_filter import EnvoyFilter
from remora.api.unenforced import findings

HCM = "envoy.filters.network.http_connection_manager"
IMPLEMENTS = ("(it implements: envoy.filters.http.cors, envoy.filters.http.fault, "
              "envoy.filters.http.router, envoy.filters.http.compressor, envoy.filters.http.gzip, "
              "envoy.filters.http.cache)")


def document(spec: str) -> str:
    return ("apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata:\n  name: f\n"
            f"spec:\n{indent(dedent(spec), '  ')}")  # fmt: skip


def issues(spec: str) -> list[str]:
    return [f"{issue.path}: {issue.message}" for issue in load_text(document(spec), "ef.yaml").issues]


def envoy_filter(spec: str) -> EnvoyFilter:
    result = load_text(document(spec), "ef.yaml")
    assert not result.issues, [str(issue) for issue in result.issues]
    (resource,) = result.resources
    assert isinstance(resource, EnvoyFilter)
    return resource


# The examples of istio.io/latest/docs/reference/config/networking/envoy-filter/ that use only
# filters Remora implements, or applyTo values it parses without acting on them.
ISTIO_EXAMPLES = {
    "cluster-merge": """\
        configPatches:
        - applyTo: CLUSTER
          match:
            context: SIDECAR_OUTBOUND
            cluster: {service: reviews.default.svc.cluster.local, portNumber: 9080, subset: v1}
          patch:
            operation: MERGE
            value: {connect_timeout: 0.5s}
        """,
    "listener-add": """\
        configPatches:
        - applyTo: LISTENER
          match: {context: SIDECAR_OUTBOUND, listener: {portNumber: 8080}}
          patch:
            operation: ADD
            value:
              name: proxy-8080
              address: {socket_address: {port_value: 8080, address: 0.0.0.0}}
        """,
    "network-filter-merge": """\
        workloadSelector: {labels: {app: reviews}}
        configPatches:
        - applyTo: NETWORK_FILTER
          match:
            context: SIDECAR_INBOUND
            listener:
              portNumber: 8080
              filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}
          patch:
            operation: MERGE
            value:
              name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                common_http_protocol_options: {idle_timeout: 30s}
        """,
    "route-configuration": """\
        configPatches:
        - applyTo: VIRTUAL_HOST
          match:
            context: GATEWAY
            routeConfiguration: {portNumber: 443, vhost: {name: "a.com:443", route: {name: r, action: ANY}}}
          patch: {operation: REMOVE}
        """,
    "http-filter-insert-before-router": """\
        workloadSelector: {labels: {istio: ingressgateway}}
        priority: 10
        configPatches:
        - applyTo: HTTP_FILTER
          match:
            context: GATEWAY
            proxy: {proxyVersion: '^1\\.2.*', metadata: {FOO: bar}}
            listener:
              name: 0.0.0.0_8080
              portNumber: 8080
              filterChain:
                filter:
                  name: envoy.filters.network.http_connection_manager
                  subFilter: {name: envoy.filters.http.router}
          patch:
            operation: INSERT_BEFORE
            value:
              name: envoy.filters.http.compressor
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor
        """,
    "target-refs": """\
        targetRefs:
        - {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}
        configPatches: []
        """,
    "every-apply-to": "configPatches:\n" + "".join(
        f"- {{applyTo: {apply_to}, patch: {{operation: REMOVE}}}}\n"
        for apply_to in ("LISTENER", "FILTER_CHAIN", "NETWORK_FILTER", "HTTP_FILTER",
                         "ROUTE_CONFIGURATION", "VIRTUAL_HOST", "HTTP_ROUTE", "CLUSTER",
                         "EXTENSION_CONFIG", "BOOTSTRAP", "LISTENER_FILTER")),
}


@pytest.mark.parametrize("name", ISTIO_EXAMPLES)
def test_istio_api_parses_whatever_it_applies_to(name: str) -> None:
    """envoy-filter/: every applyTo, match and patch of Istio's API is accepted."""
    envoy_filter(ISTIO_EXAMPLES[name])


def patch(operation: str, value: str = "", match: str = "", apply_to: str = "HTTP_FILTER") -> str:
    lines = [f"configPatches:\n- applyTo: {apply_to}\n"]
    if match:
        lines.append(f"  match: {match}\n")
    lines.append(f"  patch: {{operation: {operation}{', value: ' + value if value else ''}}}\n")
    return "".join(lines)


SUB = f"{{listener: {{filterChain: {{filter: {{name: {HCM}, subFilter: {{name: ANCHOR}}}}}}}}}}"

# validateEnvoyFilter's messages, at the field they are about
VALIDATION = [
    ("missing-apply-to", "configPatches: [{patch: {operation: REMOVE}}]",
     "spec.configPatches[0].applyTo: Envoy filter: missing applyTo"),
    ("missing-patch", "configPatches: [{applyTo: HTTP_FILTER}]",
     "spec.configPatches[0].patch: Envoy filter: missing patch"),
    ("missing-operation", "configPatches: [{applyTo: HTTP_FILTER, patch: {value: {}}}]",
     "spec.configPatches[0].patch.operation: Envoy filter: missing patch operation"),
    ("missing-value", patch("INSERT_FIRST"),
     "spec.configPatches[0].patch.value: Envoy filter: missing patch value for non-remove operation"),
    ("bad-proxy-version", patch("REMOVE", match="{proxy: {proxyVersion: '(['}}"),
     "spec.configPatches[0].match.proxy.proxyVersion: Envoy filter: invalid regex for proxy version, [invalid RE2 regex '([': missing ]: []"),
    ("listener-class-with-cluster-match", patch("REMOVE", match="{cluster: {service: a}}"),
     "spec.configPatches[0].match: Envoy filter: applyTo for listener class objects cannot have non listener match"),
    ("route-class-with-listener-match", patch("REMOVE", match="{listener: {portNumber: 80}}", apply_to="HTTP_ROUTE"),
     "spec.configPatches[0].match: Envoy filter: applyTo for http route class objects cannot have non route configuration match"),
    ("cluster-with-listener-match", patch("REMOVE", match="{listener: {portNumber: 80}}", apply_to="CLUSTER"),
     "spec.configPatches[0].match: Envoy filter: applyTo for cluster class objects cannot have non cluster match"),
    ("filter-without-name", patch("REMOVE", match="{listener: {filterChain: {filter: {subFilter: {name: x}}}}}"),
     "spec.configPatches[0].match.listener.filterChain.filter.name: Envoy filter: filter match has no name to match on"),
    ("sub-filter-not-http", patch("REMOVE", match=SUB.replace("ANCHOR", "x"), apply_to="NETWORK_FILTER"),
     "spec.configPatches[0].match.listener.filterChain.filter.subFilter: Envoy filter: subfilter match can be used with applyTo HTTP_FILTER only"),
    ("sub-filter-not-in-hcm", patch("REMOVE", match="{listener: {filterChain: {filter: {name: random, subFilter: {name: x}}}}}"),
     f"spec.configPatches[0].match.listener.filterChain.filter.name: Envoy filter: subfilter match requires filter match with {HCM}"),
    ("sub-filter-without-name", patch("REMOVE", match=SUB.replace("{name: ANCHOR}", "{}")),
     "spec.configPatches[0].match.listener.filterChain.filter.subFilter.name: Envoy filter: subfilter match has no name to match on"),
    ("selector-and-target-refs", "workloadSelector: {labels: {app: a}}\ntargetRefs: [{kind: Gateway, name: g}]\n",
     "spec: only one of targetRefs or workloadSelector can be set"),
    ("match-one-of", patch("REMOVE", match="{listener: {}, cluster: {}}"),
     "spec.configPatches[0].match: only one of listener, routeConfiguration or cluster may be set"),
    ("unknown-field", "configPatches: [{applyTo: HTTP_FILTER, patch: {operation: REMOVE}, matches: {}}]",
     "spec.configPatches[0].matches: unknown field"),
    ("unknown-apply-to", "configPatches: [{applyTo: HTTP_FILTERS, patch: {operation: REMOVE}}]",
     None),  # pydantic's enum message: checked below to be an error at applyTo
]


@pytest.mark.parametrize(("spec", "expected"), [(s, e) for _, s, e in VALIDATION],
                         ids=[name for name, _, _ in VALIDATION])
def test_istio_validation_of_envoy_filter(spec: str, expected: str | None) -> None:
    found = issues(spec)
    if expected is None:
        assert len(found) == 1 and found[0].startswith("spec.configPatches[0].applyTo: ")
    else:
        assert found == [expected]


@pytest.mark.parametrize(("value", "expected"), [
    ("{name: envoy.filters.http.lua}",
     f"spec.configPatches[0].patch.value.name: envoy.filters.http.lua is not an HTTP filter Remora implements {IMPLEMENTS}"),
    ("{name: envoy.lua, typed_config: {'@type': type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}}",
     f"spec.configPatches[0].patch.value.name: envoy.lua (envoy.extensions.filters.http.lua.v3.Lua) is not an HTTP filter Remora implements {IMPLEMENTS}"),
    ("{name: envoy.filters.http.local_ratelimit}",
     f"spec.configPatches[0].patch.value.name: envoy.filters.http.local_ratelimit is not an HTTP filter Remora implements {IMPLEMENTS}"),
    ("{name: envoy.filters.http.gzip, typed_config: {'@type': type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}}",
     f"spec.configPatches[0].patch.value.typed_config.@type: envoy.extensions.filters.http.lua.v3.Lua is not the config of an HTTP filter Remora implements {IMPLEMENTS}"),
    ("{typed_config: {}}", "spec.configPatches[0].patch.value.name: an HTTP filter needs a name"),
    ("{name: envoy.filters.http.cache, typed_config: [1]}",
     "spec.configPatches[0].patch.value.typed_config: must be an object (the filter's config, with its @type)"),
], ids=["lua", "lua-by-type", "ratelimit", "type-decides", "no-name", "config-not-object"])
def test_inserting_a_filter_remora_does_not_implement_is_refused_with_its_path(
        value: str, expected: str) -> None:
    for operation in ("ADD", "INSERT_FIRST", "INSERT_BEFORE", "INSERT_AFTER", "REPLACE"):
        assert issues(patch(operation, value)) == [expected]


@pytest.mark.parametrize("value", [
    "{name: envoy.filters.http.gzip}",
    "{name: envoy.gzip}",  # Envoy's deprecated name
    "{name: my-compressor, typed_config: {'@type': type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor}}",
    "{name: cache, typedConfig: {'@type': type.googleapis.com/udpa.type.v1.TypedStruct, type_url: type.googleapis.com/envoy.extensions.filters.http.cache.v3.CacheConfig}}",
    "{name: envoy.filters.http.cors}",
    "{name: envoy.filters.http.fault, typed_config: {'@type': type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault}}",
])
def test_a_filter_remora_implements_may_be_inserted(value: str) -> None:
    envoy_filter(patch("INSERT_FIRST", value))


def test_merge_and_remove_name_no_filter_to_insert() -> None:
    """A MERGE's value is a partial filter and REMOVE has none: nothing to refuse."""
    envoy_filter(patch("MERGE", "{name: envoy.filters.http.lua}"))
    envoy_filter(patch("REMOVE", match=SUB.replace("ANCHOR", "envoy.filters.http.lua")))


@pytest.mark.parametrize(("name", "config", "implementation"), [
    ("envoy.filters.http.router", None, httpfilters.ROUTER),
    ("envoy.router", None, httpfilters.ROUTER),
    ("anything", {"@type": "type.googleapis.com/envoy.extensions.filters.http.gzip.v3.Gzip"},
     httpfilters.GZIP),
    ("envoy.filters.http.gzip", {"@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"},
     None),
    ("istio.stats", None, None),
])
def test_a_filter_is_known_by_its_config_type_then_its_name(
        name: str, config: dict[str, str] | None, implementation: str | None) -> None:
    """Envoy picks a filter by its typed_config's type; the name is a label."""
    assert httpfilters.implementation_of(name, config) == implementation


def test_remoras_chains_are_istios_order_of_the_filters_it_implements() -> None:
    """istio/istio listener_builder.go buildHTTPConnectionManager: ..., fault, cors, istio.stats,
    router."""
    for context in httpfilters.CONTEXTS:
        assert httpfilters.ISTIO_CHAINS[context][-1] == httpfilters.ROUTER
        assert httpfilters.REMORA_CHAINS[context] == (httpfilters.FAULT, httpfilters.CORS,
                                                      httpfilters.ROUTER)
    assert httpfilters.ALPN not in httpfilters.ISTIO_CHAINS["SIDECAR_INBOUND"]
    assert set(httpfilters.ISTIO_ONLY) == {
        name for chain in httpfilters.ISTIO_CHAINS.values() for name in chain
    } - set(httpfilters.IMPLEMENTED)


UNENFORCED = [
    ("cluster", ISTIO_EXAMPLES["cluster-merge"], ["spec.configPatches[0].applyTo"]),
    ("merge", patch("MERGE", "{name: envoy.filters.http.cors}"), ["spec.configPatches[0].patch.operation"]),
    ("filter-class", "configPatches: [{applyTo: HTTP_FILTER, patch: {operation: ADD, filterClass: AUTHZ, value: {name: envoy.filters.http.cors}}}]",
     ["spec.configPatches[0].patch.filterClass"]),
    ("proxy-version", ISTIO_EXAMPLES["http-filter-insert-before-router"], ["spec.configPatches[0].match.proxy"]),
    ("waypoint", patch("REMOVE", match="{context: WAYPOINT}"), ["spec.configPatches[0].match.context"]),
    ("tcp-proxy", patch("INSERT_FIRST", "{name: envoy.filters.http.cors}", "{listener: {filterChain: {filter: {name: envoy.filters.network.tcp_proxy}}}}"),
     ["spec.configPatches[0].match.listener.filterChain.filter.name"]),
    ("sni", patch("INSERT_FIRST", "{name: envoy.filters.http.cors}", "{listener: {filterChain: {sni: a.com, transportProtocol: tls}}}"),
     ["spec.configPatches[0].match.listener.filterChain.sni",
      "spec.configPatches[0].match.listener.filterChain.transportProtocol"]),
    ("listener-name", patch("REMOVE", match="{listener: {name: my-listener, portName: http}}"),
     ["spec.configPatches[0].match.listener.name", "spec.configPatches[0].match.listener.portName"]),
    ("target-service", "targetRefs: [{kind: Service, name: reviews}]\n", ["spec.targetRefs[0]"]),
    ("applied", patch("INSERT_BEFORE", "{name: envoy.filters.http.gzip}", "{context: SIDECAR_INBOUND, listener: {name: virtualInbound, portNumber: 9080}}"), []),
    ("gateway-target", ISTIO_EXAMPLES["target-refs"], []),
]


@pytest.mark.parametrize(("spec", "paths"), [(s, p) for _, s, p in UNENFORCED],
                         ids=[name for name, _, _ in UNENFORCED])
def test_what_remora_does_not_act_on_is_reported_with_its_path(spec: str, paths: list[str]) -> None:
    """remora.api.unenforced: apply, analyze and the proxy name these fields."""
    assert [finding.path for finding in findings(envoy_filter(spec))] == paths


def test_envoy_filter_is_served_as_v1alpha3_only() -> None:
    text = document("configPatches: []").replace("v1alpha3", "v1")
    (issue,) = load_text(text, "ef.yaml").issues
    assert "version 'v1' of networking.istio.io EnvoyFilter is not served (served: networking.istio.io/v1alpha3)" in str(issue)


def test_analyze_reports_a_filter_remora_does_not_implement_as_an_error_naming_it() -> None:
    from remora.analysis.runner import analyze  # noqa: PLC0415  (analysis sits above api)

    result = load_text(document(patch("INSERT_BEFORE", "{name: envoy.filters.http.lua}",
                                      SUB.replace("ANCHOR", "envoy.filters.http.router"))),
                       "ef.yaml")
    assert [str(m) for m in analyze(result, namespace=None)] == [
        "Error [IST0106] (EnvoyFilter default/f ef.yaml:9) Schema validation error: "
        "spec.configPatches[0].patch.value.name: envoy.filters.http.lua is not an HTTP filter "
        f"Remora implements {IMPLEMENTS}"]
