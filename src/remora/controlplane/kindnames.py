"""Resource types by the names kubectl users type: plural, singular, short names and Kind.

The served kinds come from the config model (`remora.api.kinds.KINDS`); this adds the names
Kubernetes' and Istio's API discovery give them (`kubectl api-resources`), so `vs`,
`virtualservice`, `virtualservices` and `VirtualService` all name one type.
"""

from __future__ import annotations

from dataclasses import dataclass

from remora.api.kinds import KINDS, KindInfo

# Kind -> (plural, short names), as `kubectl api-resources` lists them on a cluster with Istio.
_NAMES: dict[str, tuple[str, tuple[str, ...]]] = {
    "Namespace": ("namespaces", ("ns",)),
    "Service": ("services", ("svc",)),
    "ConfigMap": ("configmaps", ("cm",)),
    "Secret": ("secrets", ()),
    "ServiceAccount": ("serviceaccounts", ("sa",)),
    "EndpointSlice": ("endpointslices", ()),
    "Deployment": ("deployments", ("deploy",)),
    "StatefulSet": ("statefulsets", ("sts",)),
    "HorizontalPodAutoscaler": ("horizontalpodautoscalers", ("hpa",)),
    "VirtualService": ("virtualservices", ("vs",)),
    "DestinationRule": ("destinationrules", ("dr",)),
    "Gateway": ("gateways", ("gw",)),
    "ServiceEntry": ("serviceentries", ("se",)),
    "WorkloadEntry": ("workloadentries", ("we",)),
    "Sidecar": ("sidecars", ()),
    "PeerAuthentication": ("peerauthentications", ("pa",)),
    "AuthorizationPolicy": ("authorizationpolicies", ("ap",)),
    "RequestAuthentication": ("requestauthentications", ("ra",)),
    "Telemetry": ("telemetries", ("telemetry",)),
}


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


def _from(info: KindInfo) -> ResourceType:
    plural, short = _NAMES.get(info.kind, (info.kind.lower() + "s", ()))
    return ResourceType(group=info.group, kind=info.kind, plural=plural, short_names=short,
                        versions=info.versions, namespaced=info.model.NAMESPACED)


TYPES: tuple[ResourceType, ...] = tuple(_from(info) for info in KINDS.values())

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
