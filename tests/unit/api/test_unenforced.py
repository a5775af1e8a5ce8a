"""The list of what Remora parses but does not enforce (remora.api.unenforced): it matches the
models, finds fields where they are set, and docs/unenforced.md shows exactly this list."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from remora.api.kinds import KINDS
from remora.api.loader import load_text
from remora.api.meshconfig import MeshConfig
from remora.api.unenforced import NOT_MODELLED, UNENFORCED, Unenforced, findings, mesh_findings

DOC = Path(__file__).parents[3] / "docs" / "unenforced.md"
BEGIN, END = "<!-- BEGIN unenforced list -->", "<!-- END unenforced list -->"


def table(entries: tuple[Unenforced, ...]) -> list[str]:
    rows = ["| kind | field | why it is not enforced |", "|---|---|---|"]
    rows += [f"| {e.kind} | {f'`{e.path}`' if e.path else '(all of it)'} | {e.reason} |"
             for e in entries]
    return rows


def expected_section() -> str:
    return "\n".join([BEGIN, "", "Accepted (modelled) but not enforced:", "", *table(UNENFORCED),
                      "", "Not modelled (the API refuses them; `remora proxy -f` and "
                      "`remora analyze` name them):", "", *table(NOT_MODELLED), "", END])


def test_docs_show_the_list() -> None:
    text = DOC.read_text()
    found = re.search(re.escape(BEGIN) + ".*?" + re.escape(END), text, re.S)
    assert found is not None, f"{DOC} needs the {BEGIN} ... {END} section"
    assert found.group(0) == expected_section(), (
        "docs/unenforced.md is out of step with remora.api.unenforced; replace its section "
        "with:\n" + expected_section())


def test_every_entry_names_a_served_kind_and_a_field_its_model_has() -> None:
    served = {kind: info.model for (_, kind), info in KINDS.items()} | {"MeshConfig": MeshConfig}
    for entry in UNENFORCED:
        assert entry.kind in served, entry
        model = served[entry.kind]
        for part in filter(None, entry.path.split(".")):
            if model is object:  # inside a free-form value (an EnvoyFilter patch's Envoy object)
                break
            name = part.removesuffix("[]")
            fields = {f.alias or f_name: f for f_name, f in model.model_fields.items()}
            assert name in fields, f"{entry.kind} {entry.path}: no field {name}"
            model = _inner(fields[name].annotation)
    assert not {e.kind for e in NOT_MODELLED} & set(served)


def _inner(annotation: object) -> type:
    """The model inside `X | None`, `list[X]`, `Annotated[list[X], ...]`."""
    from pydantic import BaseModel  # noqa: PLC0415

    stack = [annotation]
    while stack:
        item = stack.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item
        stack.extend(getattr(item, "__args__", ()) or ())
        origin = getattr(item, "__origin__", None)
        if origin is not None and origin is not item:
            stack.append(origin)
    return object


def test_findings_name_the_concrete_field_paths() -> None:
    (rule,) = load_text("""\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    portLevelSettings:
    - port: {number: 9080}
      tls: {mode: SIMPLE, caCrl: /crl.pem}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
""").resources
    # the modes are enforced; a CRL is not, named where it is set
    assert [f.path for f in findings(rule)] == [
        "spec.trafficPolicy.portLevelSettings[0].tls.caCrl"]


@pytest.mark.parametrize("mode", ["DISABLE", "SIMPLE", "ISTIO_MUTUAL"])
def test_tls_modes_remora_enforces_are_not_reported(mode: str) -> None:
    """DestinationRule ClientTLSSettings (istio.io/latest/docs/reference/config/networking/
    destination-rule/#ClientTLSSettings): DISABLE is plain text, SIMPLE TLS origination,
    ISTIO_MUTUAL the mesh's mTLS."""
    (rule,) = load_text(f"""\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec: {{host: reviews, trafficPolicy: {{tls: {{mode: {mode}}}}}}}
""").resources
    assert findings(rule) == []


def test_tls_origination_is_enforced_and_only_revocation_lists_are_reported() -> None:
    """SIMPLE/MUTUAL origination, its certificates, sni, subjectAltNames and
    insecureSkipVerify are applied (remora.mesh.clienttls); caCrl is not, by its path."""
    (rule,) = load_text("""\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem,
          subjectAltNames: [reviews.example.com], sni: reviews.example.com, caCrl: /crl.pem}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {tls: {mode: ISTIO_MUTUAL, sni: v1.reviews}}
""").resources
    found = findings(rule)
    assert [f.path for f in found] == ["spec.trafficPolicy.tls.caCrl"]
    assert "revocation lists are not checked" in found[0].message


def test_peer_authentication_and_the_mesh_tls_settings_it_uses_are_enforced() -> None:
    """PeerAuthentication is compiled into the sidecar's snapshot (remora.mesh.peerauth);
    MeshConfig enableAutoMtls and trustDomain are applied, trustDomainAliases is not."""
    (policy,) = load_text("""\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default}
spec: {mtls: {mode: STRICT}}
""").resources
    assert findings(policy) == []
    mesh = MeshConfig.model_validate({"enableAutoMtls": False, "trustDomain": "example.org",
                                      "trustDomainAliases": ["old.example.org"]})
    assert [f.path for f in mesh_findings(mesh, "MeshConfig", "")] == ["trustDomainAliases"]


def test_a_deny_policy_is_said_plainly_not_to_protect() -> None:
    (policy,) = load_text("""\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all}
spec: {action: DENY, rules: [{}]}
""").resources
    (finding,) = findings(policy)
    assert "NOT enforced" in finding.message and "does NOT protect" in finding.message


def test_a_resource_that_sets_nothing_unenforced_has_no_findings() -> None:
    (entry,) = load_text("""\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1}
spec: {address: 127.0.0.1, labels: {app: web}}
""").resources
    assert findings(entry) == []


def test_a_field_name_with_a_digit_is_found_where_it_is_set() -> None:
    """`h2UpgradePolicy` is the attribute h2_upgrade_policy (not to_snake's h_2_upgrade_policy,
    which no model has: the field went unreported)."""
    (rule,) = load_text("""\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec: {host: reviews, trafficPolicy: {connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}}
""").resources
    assert [f.path for f in findings(rule)] == [
        "spec.trafficPolicy.connectionPool.http.h2UpgradePolicy"]
    mesh = MeshConfig.model_validate({"h2UpgradePolicy": "UPGRADE"})
    assert [f.path for f in mesh_findings(mesh, "MeshConfig", "")] == ["h2UpgradePolicy"]


def test_a_sidecar_is_reported_by_the_fields_remora_does_not_apply() -> None:
    """Sidecar (istio.io/latest/docs/reference/config/networking/sidecar/): workloadSelector,
    outboundTrafficPolicy.mode and inboundConnectionPool are applied (remora.mesh.sidecarscope);
    egress and ingress listeners, egressProxy and the HTTP/2 pool settings are named by path."""
    (applied,) = load_text("""\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web}
spec:
  workloadSelector: {labels: {app: web}}
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
  inboundConnectionPool: {tcp: {maxConnections: 10}, http: {http1MaxPendingRequests: 5}}
""").resources
    assert findings(applied) == []
    (sidecar,) = load_text("""\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  egress: [{hosts: [./*, istio-system/*]}]
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:8080
    connectionPool: {tcp: {maxConnections: 1}}
  outboundTrafficPolicy:
    mode: ALLOW_ANY
    egressProxy: {host: egress.istio-system.svc.cluster.local, port: {number: 80}}
  inboundConnectionPool: {http: {h2UpgradePolicy: UPGRADE}}
""").resources
    assert [f.path for f in findings(sidecar)] == [
        "spec.egress[0]", "spec.ingress[0]", "spec.ingress[0].connectionPool",
        "spec.outboundTrafficPolicy.egressProxy", "spec.inboundConnectionPool.http.h2UpgradePolicy"]
