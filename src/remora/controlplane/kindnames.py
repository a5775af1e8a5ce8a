"""Resource types by the names kubectl users type: plural, singular, short names and Kind.

`SERVED` is `kubectl api-resources` as data: each kind the config model serves
(`remora.api.kinds.KINDS`, checked equal by tests/unit/controlplane/test_kindnames.py) with
the names Kubernetes' and Istio's API discovery give it, so `vs`, `virtualservice`,
`virtualservices` and `VirtualService` all name one type. It is plain data so that `remora
get` finds a type without importing the models (pydantic) it never uses.
"""

from __future__ import annotations

from dataclasses import dataclass

_V1 = ("v1",)
_NETWORKING = ("v1alpha3", "v1beta1", "v1")
_SECURITY = ("v1beta1", "v1")

# (group, Kind, versions served, namespaced, plural, short names), in discovery's order.
SERVED: tuple[tuple[str, str, tuple[str, ...], bool, str, tuple[str, ...]], ...] = (
    ("", "Namespace", _V1, False, "namespaces", ("ns",)),
    ("", "Service", _V1, True, "services", ("svc",)),
    ("", "ConfigMap", _V1, True, "configmaps", ("cm",)),
    ("", "Secret", _V1, True, "secrets", ()),
    ("", "ServiceAccount", _V1, True, "serviceaccounts", ("sa",)),
    ("discovery.k8s.io", "EndpointSlice", _V1, True, "endpointslices", ()),
    ("apps", "Deployment", _V1, True, "deployments", ("deploy",)),
    ("apps", "StatefulSet", _V1, True, "statefulsets", ("sts",)),
    ("autoscaling", "HorizontalPodAutoscaler", ("v2", "v2beta2"), True,
     "horizontalpodautoscalers", ("hpa",)),
    ("networking.istio.io", "VirtualService", _NETWORKING, True, "virtualservices", ("vs",)),
    ("networking.istio.io", "DestinationRule", _NETWORKING, True, "destinationrules", ("dr",)),
    ("networking.istio.io", "Gateway", _NETWORKING, True, "gateways", ("gw",)),
    ("networking.istio.io", "ServiceEntry", _NETWORKING, True, "serviceentries", ("se",)),
    ("networking.istio.io", "WorkloadEntry", _NETWORKING, True, "workloadentries", ("we",)),
    ("networking.istio.io", "Sidecar", _NETWORKING, True, "sidecars", ()),
    ("networking.istio.io", "EnvoyFilter", ("v1alpha3",), True, "envoyfilters", ()),
    ("security.istio.io", "PeerAuthentication", _SECURITY, True, "peerauthentications", ("pa",)),
    ("security.istio.io", "AuthorizationPolicy", _SECURITY, True, "authorizationpolicies",
     ("ap",)),
    ("security.istio.io", "RequestAuthentication", _SECURITY, True, "requestauthentications",
     ("ra",)),
    ("telemetry.istio.io", "Telemetry", ("v1alpha1", "v1"), True, "telemetries", ("telemetry",)),
)


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One served type: its group ("" for core), Kind, plural, short names and versions."""

    group: str
    kind: str
    plural: str
    short_names: tuple[str, ...]
    versions: tuple[str, ...]
    namespaced: bool

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def preferred_version(self) -> str:
        """The newest served version (Istio lists v1 last), as discovery prefers it."""
        return self.versions[-1]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.preferred_version}" if self.group else self.preferred_version

    @property
    def qualified(self) -> str:
        """`virtualservice.networking.istio.io` (kubectl's `kind.group`; `service` for core)."""
        return f"{self.singular}.{self.group}" if self.group else self.singular

    def collection_path(self, namespace: str | None, *, version: str | None = None) -> str:
        """The REST path of this type's collection (in `namespace`, or across all)."""
        base = f"/apis/{self.group}/{version or self.preferred_version}" if self.group \
            else f"/api/{version or self.preferred_version}"
        if namespace is not None and self.namespaced:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"


TYPES: tuple[ResourceType, ...] = tuple(
    ResourceType(group=group, kind=kind, plural=plural, short_names=short, versions=versions,
                 namespaced=namespaced)
    for group, kind, versions, namespaced, plural, short in SERVED)

_BY_GROUP_KIND = {(t.group, t.kind): t for t in TYPES}
_BY_GROUP_PLURAL = {(t.group, t.plural): t for t in TYPES}


def by_kind(group: str, kind: str) -> ResourceType | None:
    return _BY_GROUP_KIND.get((group, kind))


def by_plural(group: str, plural: str) -> ResourceType | None:
    """The type a REST path names (group "" for /api/v1)."""
    return _BY_GROUP_PLURAL.get((group, plural))


def lookup(name: str) -> list[ResourceType]:
    """Every type `name` may mean: `vs`, `virtualservice(s)`, `VirtualService`, or qualified
    by group as kubectl allows (`virtualservices.networking.istio.io`, `gateway.networking...`).
    More than one match (e.g. a bare name shared by two groups) is the caller's to report."""
    head, _, group = name.partition(".")
    lowered = head.lower()
    return [
        t for t in TYPES
        if lowered in (t.plural, t.singular, *t.short_names) and (not group or group == t.group)
    ]
