"""The filter chain each listener kind runs, per snapshot (remora.proxy.chain): only the
filters the configuration needs, in Envoy's order, and each phase only on the filters that
take part in it (envoy/http/filter.h: decoder filters A→B→C, encoder filters C→B→A, the
router last — envoyproxy.io "Life of a Request", HTTP filter chain processing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from remora.proxy.filter import HttpFilter
from tests.unit.proxy.harness import ProxyHarness, run, service_entry

SERVICE = service_entry("reviews")


def virtual_service(rule: str) -> str:
    """A VirtualService for reviews whose one http rule carries `rule` beside its route."""
    return SERVICE + f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - route: [{{destination: {{host: reviews.default.svc.cluster.local}}}}]
{rule}"""


BASE = ("istio.metadata_exchange", "istio.stats", "envoy.filters.http.router")
FAULT = "    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}\n"
CORS = "    corsPolicy: {allowOrigins: [{exact: 'https://a.example'}]}\n"
MIRROR = "    mirror: {host: reviews.default.svc.cluster.local}\n"
HEADERS = "    headers: {request: {set: {x-a: b}}}\n"


def names(yaml: str, **kwargs: object) -> dict[str, tuple[str, ...]]:
    async def body() -> dict[str, tuple[str, ...]]:
        return dict(ProxyHarness(yaml, **kwargs).chain_names)  # type: ignore[arg-type]

    result: dict[str, tuple[str, ...]] = run(body)
    return result


def test_a_plain_configuration_runs_only_the_metadata_exchange_stats_and_router() -> None:
    """Istio's sidecar HTTP filters that every listener has; the router is terminal."""
    chains = names(SERVICE)
    assert set(chains) == {"outbound", "inbound", "gateway"}
    for chain in chains.values():
        assert chain == BASE
    # a VirtualService with nothing but a route adds nothing either
    assert names(virtual_service(""))["outbound"] == BASE


@pytest.mark.parametrize(
    ("rule", "added"),
    [
        (FAULT, "envoy.filters.http.fault"),
        (CORS, "envoy.filters.http.cors"),
        (MIRROR, "envoy.filters.http.router.mirror"),
        (HEADERS, "envoy.filters.http.header_mutation"),
        ("    headers: {response: {remove: [server]}}\n", "envoy.filters.http.header_mutation"),
    ],
    ids=["fault", "cors", "mirror", "request-headers", "response-headers"],
)
def test_a_route_feature_adds_exactly_its_filter(rule: str, added: str) -> None:
    """A fault filter only with an HTTPRoute `fault`, CORS only with `corsPolicy`, mirroring
    only with `mirror`, header mutation only with `headers` operations."""
    chain = names(virtual_service(rule))["outbound"]
    assert set(chain) - set(BASE) == {added}
    assert chain[-1] == "envoy.filters.http.router"


def test_destination_level_header_operations_also_need_the_header_filter() -> None:
    """HTTPRouteDestination.headers (per weighted cluster in Envoy) count as header ops."""
    yaml = SERVICE + """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - route:
    - destination: {host: reviews.default.svc.cluster.local}
      headers: {response: {add: {x-b: c}}}
"""
    assert "envoy.filters.http.header_mutation" in names(yaml)["outbound"]


def test_the_order_with_every_feature_on_is_envoys(tmp_path: Path) -> None:
    """Header operations outermost (Envoy finalizes response headers last), then metadata
    exchange, then Istio's order of its HTTP filters: fault before CORS (istio/istio
    buildHTTPConnectionManager; a fault aborts a preflight too), mirror and router; stats then
    the access log just before the router."""
    rule = FAULT + CORS + MIRROR + HEADERS

    async def body() -> None:
        proxy = ProxyHarness(virtual_service(rule), access_log=str(tmp_path / "access.log"))
        assert proxy.chain_names["outbound"] == (
            "envoy.filters.http.header_mutation",
            "istio.metadata_exchange",
            "envoy.filters.http.fault",
            "envoy.filters.http.cors",
            "envoy.filters.http.router.mirror",
            "istio.stats",
            "envoy.access_loggers.file",
            "envoy.filters.http.router",
        )
        proxy.env.access_log.close()

    run(body)


def test_the_access_log_filter_is_there_only_when_the_log_is_on(tmp_path: Path) -> None:
    """MeshConfig accessLogFile: empty (the default) means no access log."""
    assert "envoy.access_loggers.file" not in names(SERVICE)["outbound"]
    on = names(SERVICE, access_log=str(tmp_path / "access.log"))
    for chain in on.values():
        assert chain[-2:] == ("envoy.access_loggers.file", "envoy.filters.http.router")


def test_every_listener_kind_gets_the_same_route_features() -> None:
    chains = names(virtual_service(FAULT + CORS))
    assert chains["outbound"] == chains["inbound"] == chains["gateway"]


def test_a_phase_runs_only_the_filters_that_override_it() -> None:
    """`HttpFilter` gives every phase a no-op; the chain lists per phase only the filters that
    take part, with their place, requests first to last and responses last to first."""
    rule = FAULT + CORS + MIRROR + HEADERS

    async def body() -> None:
        proxy = ProxyHarness(virtual_service(rule))
        chain = proxy.env.active.chains["outbound"]
        filters = chain.filters

        def takers(phase: str) -> list[int]:
            return [i for i, f in enumerate(filters)
                    if getattr(type(f), phase) is not getattr(HttpFilter, phase)]

        assert [i for i, _ in chain.request_headers] == takers("request_headers")
        assert [i for i, _ in chain.request_body] == takers("request_body")
        assert [i for i, _ in chain.response_headers] == takers("response_headers")[::-1]
        assert [i for i, _ in chain.response_body] == takers("response_body")[::-1]
        by_name = {f.name: i for i, f in enumerate(filters)}
        # stats take part in the log phase only; the router never logs
        stats = by_name["istio.stats"]
        assert stats not in [i for i, _ in chain.request_headers]
        assert stats not in [i for i, _ in chain.response_headers]
        assert len(chain.log) == 1
        # only the router reads the request body (it frames it for the upstream)
        assert [filters[i].name for i, _ in chain.request_body] == ["envoy.filters.http.router"]
        # the fault and the mirror do nothing on the way out
        out = {filters[i].name for i, _ in chain.response_headers}
        assert "envoy.filters.http.fault" not in out
        assert "envoy.filters.http.router.mirror" not in out
        assert chain.router_index == len(filters) - 1

    run(body)


def test_a_new_snapshot_gets_chains_for_its_own_needs() -> None:
    """Chains are built per snapshot: dropping the fault drops the fault filter."""
    assert "envoy.filters.http.fault" in names(virtual_service(FAULT))["outbound"]
    assert "envoy.filters.http.fault" not in names(virtual_service(""))["outbound"]


def test_inbound_the_connection_manager_handles_xfcc_before_every_filter() -> None:
    """Envoy's connection manager sets x-forwarded-client-cert (Istio's inbound
    APPEND_FORWARD) before the HTTP filters run; outbound and gateways have no such step."""
    async def body() -> None:
        chains = ProxyHarness(SERVICE).env.active.chains
        assert chains["inbound"].filters[0].name == \
            "envoy.http_connection_manager.forward_client_cert_details"
        assert not chains["inbound"].filters[0].http_filter
        assert all(f.http_filter for kind in ("outbound", "gateway") for f in chains[kind].filters)

    run(body)
