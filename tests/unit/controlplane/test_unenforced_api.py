"""Never accept silently (issue 11 item 4), on the wire: what Remora does not enforce is
applied with kubectl's `Warning: 299` header and per-item warnings, kinds it does not model are
refused with the reason, and a resource proxies had to skip says so in its status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from remora.controlplane.app import create_app
from remora.controlplane.state import ControlPlane
from remora.registry.store.sqlite import SqliteStore

Scenario = Callable[[httpx.AsyncClient, ControlPlane], Awaitable[None]]

DENY = {"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
        "metadata": {"name": "deny-all", "namespace": "default"},
        "spec": {"action": "DENY", "rules": [{}]}}
POLICIES = "/apis/security.istio.io/v1/namespaces/default/authorizationpolicies"


def run(tmp_path: Path, scenario: Scenario) -> None:
    async def main() -> None:
        store = await SqliteStore(tmp_path / "remora.db").open()
        state = await ControlPlane.open(store)
        transport = httpx.ASGITransport(app=create_app(state))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://cp") as http:
                await asyncio.wait_for(scenario(http, state), 30)
        finally:
            await state.close()

    asyncio.run(main())


def test_a_deny_policy_is_created_with_a_warning_that_it_is_not_enforced(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient, _: ControlPlane) -> None:
        created = await http.post(POLICIES, json=DENY)
        assert created.status_code == 201
        warning = created.headers["warning"]
        assert warning.startswith('299 - "[RMR0001] AuthorizationPolicy is NOT enforced')
        assert "does NOT protect anything" in warning
        applied = await http.post("/api/remora/apply", content=json.dumps(
            {**DENY, "metadata": {"name": "other"}}), headers={"content-type": "application/json"})
        (item,) = applied.json()["items"]
        assert any("NOT enforced" in w for w in item["warnings"])

    run(tmp_path, scenario)


def test_the_policy_reads_back_with_istios_validation_message(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient, _: ControlPlane) -> None:
        assert (await http.post(POLICIES, json=DENY)).status_code == 201
        status = (await http.get(f"{POLICIES}/deny-all")).json()["status"]
        assert status["validationMessages"] == [{
            "type": {"code": "RMR0001", "name": "NotEnforced"}, "level": "WARNING",
            "documentationUrl": "docs/analyze.md#rmr0001"}]

    run(tmp_path, scenario)


def test_an_unenforced_field_is_named_by_its_path(tmp_path: Path) -> None:
    rule = {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "reviews"},
            "spec": {"host": "reviews", "subsets": [
                {"name": "v1", "labels": {"version": "v1"},
                 "trafficPolicy": {"tls": {"mode": "SIMPLE", "caCrl": "/crl.pem"}}}]}}

    async def scenario(http: httpx.AsyncClient, _: ControlPlane) -> None:
        created = await http.post(
            "/apis/networking.istio.io/v1/namespaces/default/destinationrules", json=rule)
        assert created.status_code == 201
        assert "[RMR0001] spec.subsets[0].trafficPolicy.tls.caCrl is not enforced" in \
            created.headers["warning"]

    run(tmp_path, scenario)


def envoy_filter(name: str, value: dict[str, object]) -> dict[str, object]:
    return {"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
            "metadata": {"name": name},
            "spec": {"configPatches": [{"applyTo": "HTTP_FILTER",
                                        "patch": {"operation": "INSERT_FIRST", "value": value}}]}}


def test_an_envoy_filter_inserting_a_filter_remora_lacks_is_refused_with_its_path(
        tmp_path: Path) -> None:
    """istio.io/latest/docs/reference/config/networking/envoy-filter/: an EnvoyFilter is
    modelled; one that would insert a filter Remora does not implement is Invalid (never
    accepted and ignored), one inserting a filter it implements is created."""
    ratelimit = envoy_filter("ratelimit", {"name": "envoy.filters.http.local_ratelimit"})
    gzip = envoy_filter("gzip", {"name": "envoy.filters.http.gzip"})

    async def scenario(http: httpx.AsyncClient, _: ControlPlane) -> None:
        refused = await http.post("/api/remora/apply", content=json.dumps(ratelimit),
                                  headers={"content-type": "application/json"})
        assert refused.status_code == 422, refused.text
        assert ("spec.configPatches[0].patch.value.name: envoy.filters.http.local_ratelimit is "
                "not an HTTP filter Remora implements (it implements: envoy.filters.http.cors, "
                in refused.json()["message"])
        created = await http.post(
            "/apis/networking.istio.io/v1alpha3/namespaces/default/envoyfilters", json=gzip)
        assert created.status_code == 201, created.text

    run(tmp_path, scenario)


def test_a_resource_proxies_skipped_has_a_reconciled_false_condition(tmp_path: Path) -> None:
    async def scenario(http: httpx.AsyncClient, state: ControlPlane) -> None:
        assert (await http.post(POLICIES, json=DENY)).status_code == 201
        stream = state.push.subscribe({"id": "sidecar~a", "mode": "sidecar"})
        await anext(stream)
        skipped = [{"kind": "AuthorizationPolicy", "namespace": "default", "name": "deny-all",
                    "message": "spec.rules: cannot be compiled"}]
        ack = await http.post("/api/remora/v1/discovery/ack", json={
            "node": "sidecar~a", "version": "v", "error": None, "resourceErrors": skipped})
        assert ack.status_code == 200
        (condition,) = (await http.get(f"{POLICIES}/deny-all")).json()["status"]["conditions"]
        assert condition["type"] == "Reconciled" and condition["status"] == "False"
        assert "1 of 1 connected proxies" in condition["message"]
        assert "sidecar~a: spec.rules: cannot be compiled" in condition["message"]
        listed = (await http.get("/api/remora/v1/proxies")).json()
        assert listed[0]["resourceErrors"] == skipped
        await stream.aclose()
        assert "conditions" not in (await http.get(f"{POLICIES}/deny-all")).json()["status"]

    run(tmp_path, scenario)


def test_a_sidecar_is_created_with_warnings_for_the_paths_remora_does_not_apply(
        tmp_path: Path) -> None:
    """Sidecar (istio.io/latest/docs/reference/config/networking/sidecar/): outboundTrafficPolicy
    mode and inboundConnectionPool are applied, so a Sidecar of only those is created without a
    warning; egress hosts and egressProxy are named by path."""
    sidecars = "/apis/networking.istio.io/v1/namespaces/default/sidecars"
    applied = {"apiVersion": "networking.istio.io/v1", "kind": "Sidecar",
               "metadata": {"name": "default"},
               "spec": {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY"},
                        "inboundConnectionPool": {"tcp": {"maxConnections": 10}}}}
    scoped = {**applied, "metadata": {"name": "scoped"},
              "spec": {"workloadSelector": {"labels": {"app": "web"}},
                       "egress": [{"hosts": ["./*"]}],
                       "outboundTrafficPolicy": {"mode": "ALLOW_ANY", "egressProxy": {
                           "host": "egress.istio-system.svc.cluster.local",
                           "port": {"number": 80}}}}}

    async def scenario(http: httpx.AsyncClient, _: ControlPlane) -> None:
        created = await http.post(sidecars, json=applied)
        assert created.status_code == 201, created.text
        assert "warning" not in created.headers
        created = await http.post(sidecars, json=scoped)
        assert created.status_code == 201, created.text
        warning = created.headers["warning"]
        assert "[RMR0001] spec.egress[0] is not enforced by Remora: no egress scoping" in warning
        assert "[RMR0001] spec.outboundTrafficPolicy.egressProxy is not enforced" in warning
        assert "Sidecar is NOT enforced" not in warning

    run(tmp_path, scenario)
