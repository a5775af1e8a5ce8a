"""The PeerAuthentication in force for a sidecar (Snapshot.inbound_mtls), as Istio resolves it.

Istio's "PeerAuthentication" reference (istio.io/latest/docs/reference/config/security/
peer_authentication/) and the "Authentication Policy" task (istio.io/latest/docs/tasks/security/
authentication/authn-policy/): a workload-specific policy over the namespace-wide one over the
mesh-wide one (root namespace); UNSET inherits; PERMISSIVE when nothing applies; portLevelMtls
only with a selector; "PeerAuthentication policies with workload selectors are ignored when
deployed in the root namespace"; the oldest policy wins at one level (pilot
ComposePeerAuthentication). The examples are the seeds' (001, 002, 004) and the reference's.
"""

from __future__ import annotations

import pytest

from remora.api.security import PeerAuthentication
from remora.mesh.peerauth import resolve
from remora.mesh.snapshot import DEFAULT_INBOUND_MTLS, InboundMtls, Snapshot
from tests.unit.mesh import gateway, load, mesh, sidecar


def policy(name: str, namespace: str, spec: str, *, created: str = "") -> str:
    stamp = f", creationTimestamp: '{created}'" if created else ""
    return f"""\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: {name}, namespace: {namespace}{stamp}}}
spec: {spec}
---
"""


def inbound(text: str, *, namespace: str = "default", **labels: str) -> tuple[str, dict[int, str]]:
    snap: Snapshot = sidecar(text, namespace=namespace, labels=labels, app_port=8080)
    return snap.inbound_mtls.mode, dict(snap.inbound_mtls.ports)


# seed 004 (Kubernetes project practice): mesh STRICT, namespace PERMISSIVE, user-service STRICT
# with port 8080 DISABLE
SEED_004 = (policy("default", "istio-system", "{mtls: {mode: STRICT}}")
            + policy("default", "default", "{mtls: {mode: PERMISSIVE}}")
            + policy("user-service", "default", """
  selector: {matchLabels: {app: user-service}}
  mtls: {mode: STRICT}
  portLevelMtls: {8080: {mode: DISABLE}}"""))


def test_without_a_policy_a_sidecar_accepts_both_plain_text_and_mtls() -> None:
    """Reference, Mode PERMISSIVE: "Connection can be either plaintext or mTLS tunnel" — and
    the mode when no policy applies (UNSET at the mesh level means PERMISSIVE)."""
    snap = sidecar("", labels={"app": "web"}, app_port=8080)
    assert snap.inbound_mtls == DEFAULT_INBOUND_MTLS
    assert (snap.inbound_mtls.mode, snap.inbound_mtls.mode_for(8080)) == ("PERMISSIVE",
                                                                          "PERMISSIVE")


def test_seed_004_workload_over_namespace_over_mesh() -> None:
    """The task's "Policy precedence": workload-specific over namespace-wide over mesh-wide."""
    assert inbound(SEED_004, app="user-service") == ("STRICT", {8080: "DISABLE"})
    assert inbound(SEED_004, app="order-service") == ("PERMISSIVE", {})
    assert inbound(SEED_004, namespace="shop", app="user-service") == ("STRICT", {})  # mesh


def test_seed_001_a_policy_without_namespace_is_its_namespace_wide_policy() -> None:
    """Seed 001's `default` policy has no namespace: it lands in `default` and applies to every
    workload there, not to the mesh."""
    text = "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\n" \
           "metadata: {name: default}\nspec: {mtls: {mode: STRICT}}\n---\n"
    assert inbound(text, app="user-service") == ("STRICT", {})
    assert inbound(text, namespace="production", app="user-service") == ("PERMISSIVE", {})


def test_seed_002_a_selector_picks_its_workload_only() -> None:
    text = policy("default", "default", "{mtls: {mode: STRICT}, selector: {matchLabels: "
                                        "{app: payment-service}}}")
    assert inbound(text, app="payment-service", version="v1") == ("STRICT", {})
    assert inbound(text, app="order-service") == ("PERMISSIVE", {})


def test_unset_inherits_from_the_parent_level_and_ports_from_the_workload() -> None:
    """Reference: "Policy to inherit mTLS mode from namespace (or mesh) settings, and overwrite
    settings for port 8080"; an UNSET port takes the workload's resolved mode."""
    text = (policy("default", "istio-system", "{mtls: {mode: STRICT}}")
            + policy("default", "default", "{mtls: {mode: UNSET}}")
            + policy("finance", "default", """
  selector: {matchLabels: {app: finance}}
  mtls: {mode: UNSET}
  portLevelMtls: {8080: {mode: DISABLE}, 9090: {mode: UNSET}, 9091: {}}"""))
    assert inbound(text, app="finance") == ("STRICT", {8080: "DISABLE", 9090: "STRICT",
                                                        9091: "STRICT"})
    assert inbound(text, app="other") == ("STRICT", {})  # the namespace's UNSET: the mesh's


def test_a_policy_without_mtls_inherits() -> None:
    text = (policy("default", "istio-system", "{mtls: {mode: DISABLE}}")
            + policy("default", "default", "{}"))
    assert inbound(text) == ("DISABLE", {})


def test_the_oldest_policy_of_a_level_wins_then_the_name() -> None:
    """Reference: "If there are more than one ... policy for the same workload ... the oldest
    one will be used" (creationTimestamp; pilot then orders by name)."""
    text = (policy("b-new", "default", "{mtls: {mode: DISABLE}}", created="2026-01-02T00:00:00Z")
            + policy("a-new", "default", "{mtls: {mode: PERMISSIVE}}",
                     created="2026-01-02T00:00:00Z")
            + policy("z-old", "default", "{mtls: {mode: STRICT}}", created="2026-01-01T00:00:00Z"))
    assert inbound(text) == ("STRICT", {})
    same_time = (policy("b", "default", "{mtls: {mode: DISABLE}}", created="2026-01-01T00:00:00Z")
                 + policy("a", "default", "{mtls: {mode: STRICT}}",
                          created="2026-01-01T00:00:00Z"))
    assert inbound(same_time) == ("STRICT", {})
    workloads = (policy("old", "default", "{selector: {matchLabels: {app: web}}, "
                                          "mtls: {mode: DISABLE}}", created="2025-01-01T00:00:00Z")
                 + policy("new", "default", "{selector: {matchLabels: {app: web}}, "
                                            "mtls: {mode: STRICT}}",
                          created="2026-01-01T00:00:00Z"))
    assert inbound(workloads, app="web") == ("DISABLE", {})


def test_an_older_policy_whose_selector_does_not_match_does_not_hide_a_matching_one() -> None:
    text = (policy("old", "default", "{selector: {matchLabels: {app: db}}, mtls: {mode: DISABLE}}",
                   created="2025-01-01T00:00:00Z")
            + policy("new", "default", "{selector: {matchLabels: {app: web}}, "
                                       "mtls: {mode: STRICT}}", created="2026-01-01T00:00:00Z"))
    assert inbound(text, app="web") == ("STRICT", {})


def test_a_selector_policy_in_the_root_namespace_is_ignored_everywhere() -> None:
    """Reference: "PeerAuthentication policies with workload selectors are ignored when deployed
    in the root namespace" — for the root namespace's own workloads too (pilot's workload level
    is "the one with selector and not in root namespace")."""
    text = policy("web", "istio-system", "{selector: {matchLabels: {app: web}}, "
                                         "mtls: {mode: STRICT}}")
    assert inbound(text, app="web") == ("PERMISSIVE", {})
    assert inbound(text, namespace="istio-system", app="web") == ("PERMISSIVE", {})


def test_the_mesh_policy_applies_in_the_root_namespace_and_the_root_follows_mesh_config() -> None:
    text = policy("default", "istio-system", "{mtls: {mode: STRICT}}")
    assert inbound(text, namespace="istio-system") == ("STRICT", {})
    moved = mesh("rootNamespace: mesh-root") + text + policy(
        "default", "mesh-root", "{mtls: {mode: DISABLE}}")
    assert inbound(moved) == ("DISABLE", {})  # mesh-root's; istio-system's is namespace-wide
    assert inbound(moved, namespace="istio-system") == ("STRICT", {})


def test_another_namespace_policy_does_not_apply() -> None:
    text = policy("default", "other", "{mtls: {mode: STRICT}}")
    assert inbound(text) == ("PERMISSIVE", {})


def test_a_selector_with_no_labels_is_namespace_wide() -> None:
    """pilot: a selector without matchLabels counts as no selector."""
    text = (policy("wide", "default", "{selector: {}, mtls: {mode: STRICT}}",
                   created="2025-01-01T00:00:00Z")
            + policy("web", "default", "{selector: {matchLabels: {app: web}}}"))
    assert inbound(text, app="web") == ("STRICT", {})
    assert inbound(text, app="db") == ("STRICT", {})


def test_a_gateway_has_no_inbound_mtls() -> None:
    """PeerAuthentication is about connections to a sidecar; a gateway's listeners are its
    Gateway servers'."""
    snap = gateway(policy("default", "istio-system", "{mtls: {mode: STRICT}}"),
                   labels={"istio": "ingressgateway"})
    assert snap.inbound_mtls == DEFAULT_INBOUND_MTLS


@pytest.mark.parametrize(("ports", "port", "expected"), [
    ({}, 8080, "STRICT"), ({8080: "DISABLE"}, 8080, "DISABLE"), ({8080: "DISABLE"}, 9090, "STRICT"),
])
def test_mode_for_a_port(ports: dict[int, str], port: int, expected: str) -> None:
    mtls = InboundMtls(mode="STRICT", ports=ports)  # type: ignore[arg-type]
    assert mtls.mode_for(port) == expected
    assert mtls.to_dict() == {"mode": "STRICT",
                              "portLevelMtls": {str(p): m for p, m in ports.items()}}


def test_resolve_is_pure_and_takes_policies_of_any_namespace() -> None:
    policies = [r for r in load(SEED_004 + policy("x", "other", "{mtls: {mode: DISABLE}}"))
                if isinstance(r, PeerAuthentication)]
    found = resolve(policies, root_namespace="istio-system", namespace="default",
                    labels={"app": "user-service"})
    assert found == InboundMtls(mode="STRICT", ports={8080: "DISABLE"})
    assert resolve((), root_namespace="istio-system", namespace="default", labels={}) \
        == DEFAULT_INBOUND_MTLS
