"""The compiled, immutable configuration of one proxy: listeners, route tables, clusters.

A snapshot is what `compile_snapshot` builds from the resources and what the proxy holds one
reference to: it is swapped in one assignment, so every type here is frozen and its collections
are tuples or read-only mappings. Lookups the proxy does per request (`RouteTable.find`,
`Snapshot.outbound_table`) are dict lookups prepared when the snapshot is built.

Everything reachable from a Snapshot is plain data (tests/unit/mesh/test_snapshot_plain.py):
dataclasses whose init fields hold str, int, float, bool, None, bytes, enums, tuples,
frozensets, read-only mappings or such dataclasses. What is derived from them (lookup tables,
compiled predicates and patterns) is an `init=False` field built in `__post_init__`, so
`type(obj)(**init_fields)` rebuilds an equal object: a snapshot compiled by the control plane
can be sent as JSON (remora.mesh.encoding) and rebuilt by a proxy that never imports the api
models or pydantic. The configuration /config_dump shows (a route's match block, a cluster's
trafficPolicy) is kept as frozen JSON (remora.mesh.frozen), computed when compiling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from remora.mesh.clienttls import ClientTls
from remora.mesh.frozen import EMPTY, thaw

if TYPE_CHECKING:  # only annotations: the snapshot holds these, it does not build them
    from remora.api.finding import Finding
    from remora.mesh.filterpatch import HttpFilterPatch
    from remora.policy.circuit import PoolLimits
    from remora.policy.cors import Cors
    from remora.policy.fault import FaultPolicy
    from remora.policy.headers import HeaderOps
    from remora.policy.lb import LbConfig
    from remora.policy.locality import LocalitySetting
    from remora.policy.match import RequestMatcher
    from remora.policy.outlier import OutlierConfig
    from remora.policy.redirect import DirectResponse, Redirect
    from remora.policy.retry import RetrySpec
    from remora.policy.rewrite import Rewrite
    from remora.policy.weighted import WeightedChoice

EMPTY_LABELS: Mapping[str, str] = MappingProxyType({})


def frozen_labels(labels: Mapping[str, str]) -> Mapping[str, str]:
    """A read-only copy of `labels` (shared empty mapping when there are none)."""
    return MappingProxyType(dict(labels)) if labels else EMPTY_LABELS


@dataclass(frozen=True, slots=True)
class SkippedResource:
    """A resource left out of this proxy's snapshot and why: one bad resource never blocks the
    rest, and the proxy reports it (ACK `resourceErrors`, the resource's status, proxy-status)."""

    kind: str
    namespace: str
    name: str
    message: str

    @property
    def subject(self) -> str:
        """`WorkloadEntry default/web-10`, as analysis messages name a resource."""
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace \
            else f"{self.kind} {self.name}"

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name,
                "message": self.message}


@dataclass(frozen=True, slots=True)
class ListenerPorts:
    """Istio's sidecar ports: outbound capture 15001, inbound 15006, admin 15000, health 15021."""

    outbound: int = 15001
    inbound: int = 15006
    admin: int = 15000
    health: int = 15021


@dataclass(frozen=True, slots=True)
class ProxyIdentity:
    """Who the proxy runs for: its mode, namespace and workload labels (rule selectors use them)."""

    mode: Literal["sidecar", "gateway"]
    namespace: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    workload: str = "unknown"
    service_account: str = "default"
    cluster: str = "Kubernetes"
    ip: str = "127.0.0.1"
    app_port: int | None = None
    container_port: int | None = None  # the app's port in its pod spec; app_port is where
    # it listens here (remora up maps each containerPort to a free local port)
    container_port_name: str = ""  # its name there, which a Service's targetPort may give
    locality: str = ""  # "region/zone/subzone" of this proxy (locality load balancing)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", frozen_labels(self.labels))

    @property
    def canonical_service(self) -> str:
        return canonical_names(self.labels, self.workload)[0]

    @property
    def canonical_revision(self) -> str:
        return canonical_names(self.labels, self.workload)[1]


def canonical_names(labels: Mapping[str, str], workload: str) -> tuple[str, str]:
    """Istio's canonical service (canonical-name label, app.kubernetes.io/name, app, else the
    workload) and revision (canonical-revision label, app.kubernetes.io/version, version, else
    "latest") of a workload, as its metrics label both sides of a request."""
    service = (
        labels.get("service.istio.io/canonical-name")
        or labels.get("app.kubernetes.io/name")
        or labels.get("app")
        or workload
        or "unknown"
    )
    revision = (
        labels.get("service.istio.io/canonical-revision")
        or labels.get("app.kubernetes.io/version")
        or labels.get("version")
        or "latest"
    )
    return service, revision


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One upstream address of a cluster, with the workload facts telemetry reports."""

    address: str
    port: int
    weight: int = 1
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY_LABELS)
    locality: str = ""
    workload: str = "unknown"
    namespace: str = "unknown"
    service_account: str = "unknown"
    # "istio": a sidecar takes Istio mTLS on this port (the `security.istio.io/tlsMode: istio`
    # label, or a WorkloadEntry's serviceAccount, and no PeerAuthentication DISABLE for the
    # workload on the port: pilot's EDS mtlsChecker); "": plain text
    tls_mode: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address, "port": self.port, "weight": self.weight,
            "labels": dict(self.labels), "locality": self.locality, "workload": self.workload,
            "namespace": self.namespace, "serviceAccount": self.service_account,
            "tlsMode": self.tls_mode,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class ClusterPolicy:
    """A cluster's effective DestinationRule trafficPolicy, compiled to what the proxy uses;
    `config` is the policy as written (Istio's names, defaults left out) for /config_dump."""

    limits: PoolLimits  # connectionPool, with the mesh's connectTimeout where it sets none
    outlier: OutlierConfig | None  # outlierDetection; None = off
    locality: LocalitySetting | None  # loadBalancer.localityLbSetting
    config: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    # tls.mode (DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL) after subset and portLevelSettings
    # precedence; "" = not set: auto mTLS decides per endpoint (Endpoint.tls_mode)
    tls_mode: str = ""
    tls: ClientTls | None = None  # the rest of `tls`, when the proxy needs it (clienttls.py)


@dataclass(frozen=True, slots=True)
class Cluster:
    """Istio's cluster: `outbound|<port>|<subset>|<host>` or `inbound|<port>||`."""

    name: str
    host: str
    port: int
    subset: str
    service_name: str
    service_namespace: str
    endpoints: tuple[Endpoint, ...]
    lb: LbConfig
    traffic_policy: ClusterPolicy | None = None  # effective: subset over rule, port level
    connect_timeout: float = 10.0  # MeshConfig connectTimeout; connectionPool.tcp overrides it
    mesh_external: bool = False  # a MESH_EXTERNAL ServiceEntry's: no peer metadata sent to it

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "subset": self.subset,
            "connectTimeout": self.connect_timeout,
            "service": f"{self.service_name}.{self.service_namespace}",
            "meshExternal": self.mesh_external,
            "lb": asdict(self.lb),
            "trafficPolicy": thaw(self.traffic_policy.config) if self.traffic_policy else None,
            "endpoints": [e.to_dict() for e in self.endpoints],
        }


@dataclass(frozen=True, slots=True)
class WeightedCluster:
    """One destination of a route: its cluster, weight and per-destination header operations."""

    cluster: str
    weight: int
    request_headers: HeaderOps
    response_headers: HeaderOps


@dataclass(frozen=True, slots=True)
class MirrorTarget:
    """A cluster that gets a copy of `percentage` % of the route's requests."""

    cluster: str
    percentage: float


@dataclass(frozen=True, slots=True)
class RouteAction:
    """Forward upstream: pick one of `clusters` by weight; rewrite; resilience settings."""

    clusters: tuple[WeightedCluster, ...]
    choice: WeightedChoice
    rewrite: Rewrite | None = None
    timeout: float | None = None  # seconds; None = no timeout (Istio's default)
    retries: RetrySpec | None = None  # None: MeshConfig's default (Istio's built-in policy)
    fault: FaultPolicy | None = None  # set: the route has a fault (so no retries, no timeout)
    mirrors: tuple[MirrorTarget, ...] = ()


@dataclass(frozen=True, slots=True)
class Route:
    """One Envoy route: at most one VirtualService match block and what to do when it holds.

    `match_dump` and `rule_dump` are what /config_dump shows of the api objects the route came
    from (after delegate merging): the match block, and the rule's redirect, directResponse,
    rewrite, retries, fault, corsPolicy and headers that are set, as frozen JSON with Istio's
    names; `matchers` is what the proxy evaluates.
    """

    name: str
    matchers: tuple[RequestMatcher, ...]
    action: RouteAction | Redirect | DirectResponse
    request_headers: HeaderOps
    response_headers: HeaderOps
    cors: Cors | None
    virtual_service: str  # "ns/name"; "" for a service's default route
    match_dump: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    rule_dump: Mapping[str, Any] = field(default_factory=lambda: EMPTY)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "virtualService": self.virtual_service}
        out["match"] = thaw(self.match_dump)
        action = self.action
        if isinstance(action, RouteAction):
            out["route"] = {
                "clusters": [{"cluster": c.cluster, "weight": c.weight} for c in action.clusters],
                "timeout": action.timeout,
                "mirrors": [{"cluster": m.cluster, "percentage": m.percentage}
                            for m in action.mirrors],
            }  # fmt: skip
        out.update(thaw(self.rule_dump))
        return out


@dataclass(frozen=True, slots=True)
class VirtualHost:
    """A set of domains (no ports) and the ordered routes for them."""

    name: str
    domains: tuple[str, ...]
    routes: tuple[Route, ...]
    https_redirect: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "domains": list(self.domains),
            "httpsRedirect": self.https_redirect,
            "routes": [r.to_dict() for r in self.routes],
        }


@dataclass(frozen=True, slots=True)
class RouteTable:
    """Virtual hosts of one listener port, found by host the way Envoy searches domains.

    Envoy's order (route.proto VirtualHost.domains): exact names, then suffix wildcards
    (`*.foo.com`, `*-bar.foo.com`), longest first, then prefix wildcards (`foo.*`), longest
    first, then `*`. A wildcard never matches the empty string.
    """

    name: str
    virtual_hosts: tuple[VirtualHost, ...]
    _exact: Mapping[str, VirtualHost] = field(init=False, repr=False, compare=False)
    _suffixes: tuple[tuple[str, VirtualHost], ...] = field(init=False, repr=False, compare=False)
    _prefixes: tuple[tuple[str, VirtualHost], ...] = field(init=False, repr=False, compare=False)
    _any: VirtualHost | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        exact: dict[str, VirtualHost] = {}
        suffixes: dict[str, VirtualHost] = {}
        prefixes: dict[str, VirtualHost] = {}
        anything: VirtualHost | None = None
        for vhost in self.virtual_hosts:  # a domain claimed twice: the first virtual host keeps it
            for written in vhost.domains:
                domain = written.lower()
                if domain == "*":
                    anything = anything or vhost
                elif domain.startswith("*"):
                    suffixes.setdefault(domain[1:], vhost)
                elif domain.endswith("*"):
                    prefixes.setdefault(domain[:-1], vhost)
                else:
                    exact.setdefault(domain, vhost)
        object.__setattr__(self, "_exact", MappingProxyType(exact))
        by_length = sorted(suffixes.items(), key=lambda item: -len(item[0]))
        object.__setattr__(self, "_suffixes", tuple(by_length))
        by_length = sorted(prefixes.items(), key=lambda item: -len(item[0]))
        object.__setattr__(self, "_prefixes", tuple(by_length))
        object.__setattr__(self, "_any", anything)

    def find(self, host: str) -> VirtualHost | None:
        """The virtual host for `host` (lowercase, without port), or None (Envoy: 404 NR)."""
        found = self._exact.get(host)
        if found is not None:
            return found
        size = len(host)
        for suffix, vhost in self._suffixes:
            if size > len(suffix) and host.endswith(suffix):
                return vhost
        for prefix, vhost in self._prefixes:
            if size > len(prefix) and host.startswith(prefix):
                return vhost
        return self._any

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "virtualHosts": [v.to_dict() for v in self.virtual_hosts]}


@dataclass(frozen=True, slots=True)
class ListenerTls:
    """One TLS server of a gateway port (a Gateway server with tls SIMPLE, MUTUAL,
    OPTIONAL_MUTUAL or ISTIO_MUTUAL), as Envoy's filter chain for it: the certificate as file
    paths (serverCertificate/privateKey/caCertificates) or PEM bytes (the Secret named by
    credentialName), the client CA, the protocol range and cipher list, and the SNI names
    that choose it (`server_names`, the dnsName part of its hosts; empty: any). ISTIO_MUTUAL
    carries no certificate: the proxy's workload certificate and the mesh's roots serve."""

    cert_path: str | None = None
    key_path: str | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    mode: str = "SIMPLE"
    ca_path: str | None = None
    ca_pem: bytes | None = None
    min_version: str = "TLSV1_2"  # Istio's default minimum for gateways
    max_version: str = "TLSV1_3"
    ciphers: tuple[str, ...] = ()  # OpenSSL names; () = Envoy's default server list
    server_names: tuple[str, ...] = ()
    server: str = ""  # `ns/gateway port N server I`, for log lines

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "server": self.server,
                               "serverNames": list(self.server_names),
                               "minProtocolVersion": self.min_version,
                               "maxProtocolVersion": self.max_version,
                               "cipherSuites": list(self.ciphers)}
        if self.cert_path is not None:
            out.update(certificate=self.cert_path, privateKey=self.key_path,
                       caCertificates=self.ca_path)
        elif self.cert_pem is not None:
            out.update(certificate="<inline PEM from Secret>", privateKey="<redacted>",
                       caCertificates="<inline PEM from Secret>" if self.ca_pem else None)
        return out


PASSTHROUGH_CLUSTER = "PassthroughCluster"  # Istio's ORIGINAL_DST cluster for ALLOW_ANY
UNKNOWN_PORTS_TABLE = "outbound|unknown-ports"  # the sidecar's table for ports no service uses

PathNormalization = Literal["NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"]


@dataclass(frozen=True, slots=True)
class MeshSettings:
    """What the proxy takes from MeshConfig (remora.api.meshconfig), with Istio's defaults: the
    data path reads these per request, so they are compiled into the snapshot."""

    path_normalization: PathNormalization = "BASE"
    outbound_traffic_policy: Literal["ALLOW_ANY", "REGISTRY_ONLY"] = "ALLOW_ANY"
    access_log_file: str = ""  # "" = no access log (Istio's default); "/dev/stdout" common
    access_log_encoding: Literal["TEXT", "JSON"] = "TEXT"
    access_log_format: str = ""  # "" = Envoy's default format for the encoding
    trust_domain: str = "cluster.local"
    root_namespace: str = "istio-system"
    # PEM root certificates a workload certificate is checked against: ConfigMap
    # `istio-ca-root-cert` (key `root-cert.pem`) of the root namespace, one string per cert
    trust_roots: tuple[str, ...] = ()
    enable_auto_mtls: bool = True  # MeshConfig enableAutoMtls: ISTIO_MUTUAL to sidecars

    def to_dict(self) -> dict[str, Any]:
        return {
            "pathNormalization": self.path_normalization,
            "outboundTrafficPolicy": self.outbound_traffic_policy,
            "accessLogFile": self.access_log_file,
            "accessLogEncoding": self.access_log_encoding,
            "accessLogFormat": self.access_log_format,
            "trustDomain": self.trust_domain,
            "rootNamespace": self.root_namespace,
            "trustRoots": list(self.trust_roots),
            "enableAutoMtls": self.enable_auto_mtls,
        }


DEFAULT_MESH = MeshSettings()

MtlsMode = Literal["STRICT", "PERMISSIVE", "DISABLE"]


@dataclass(frozen=True, slots=True)
class InboundMtls:
    """The PeerAuthentication in force for this workload (sidecars only; remora.mesh.peerauth
    resolves it): what its inbound listener accepts, plain text and/or Istio mTLS."""

    mode: MtlsMode = "PERMISSIVE"  # Istio's default when no policy applies
    # portLevelMtls, keyed by the workload's (container/target) port, UNSET already resolved
    ports: Mapping[int, MtlsMode] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "ports", MappingProxyType(dict(self.ports)))

    def mode_for(self, port: int) -> MtlsMode:
        """The mode on the workload's `port`: its portLevelMtls entry, else the workload's."""
        return self.ports.get(port, self.mode)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "portLevelMtls": {str(p): m for p, m in self.ports.items()}}


DEFAULT_INBOUND_MTLS = InboundMtls()


@dataclass(frozen=True, slots=True)
class ConnectionManager:
    """The HTTP connection manager's timeouts (seconds) and limits that EnvoyFilter MERGE
    patches set on a listener (remora.api.networking.connection_manager; Envoy's names).
    None: not set, the proxy's own setting applies (its flag, else Envoy's default)."""

    request_headers_timeout: float | None = None
    stream_idle_timeout: float | None = None
    request_timeout: float | None = None
    delayed_close_timeout: float | None = None
    max_request_headers_kb: int | None = None
    idle_timeout: float | None = None  # common_http_protocol_options
    max_connection_duration: float | None = None  # common_http_protocol_options
    max_headers_count: int | None = None  # common_http_protocol_options
    accept_http_10: bool | None = None  # http_protocol_options
    sources: tuple[str, ...] = ()  # the patches that set them, in the order they applied

    def set(self) -> dict[str, float | int | bool]:
        """The settings the patches set."""
        return {k: v for k, v in asdict(self).items() if v is not None and k != "sources"}

    def to_dict(self) -> dict[str, Any]:
        return {**self.set(), "sources": list(self.sources)}


NO_CONNECTION_MANAGER_PATCH = ConnectionManager()


@dataclass(frozen=True, slots=True)
class Listener:
    """A port the proxy accepts on; outbound picks its route table by destination port."""

    name: str
    port: int
    direction: Literal["outbound", "inbound", "gateway"]
    route_table: str | None
    tls: ListenerTls | None = None  # a gateway port's first TLS server (Envoy's first chain)
    connection_manager: ConnectionManager = NO_CONNECTION_MANAGER_PATCH
    # every TLS server of a gateway port in order, `tls` first: the ClientHello's SNI picks one
    tls_servers: tuple[ListenerTls, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "port": self.port, "direction": self.direction,
            "routeTable": self.route_table, "tls": self.tls.to_dict() if self.tls else None,
            "connectionManagerPatch": self.connection_manager.to_dict(),
            "tlsServers": [server.to_dict() for server in self.tls_servers],
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one proxy needs, compiled once. `notes` say what was left out and why;
    `skipped` are the resources that could not be compiled (the rest still are); `unenforced`
    what the resources set that Remora does not enforce (remora.api.unenforced);
    `http_filter_patches` the EnvoyFilter HTTP_FILTER patches that select this proxy, in the
    order they apply (remora.mesh.filterpatch.http_filter_chain builds a listener's chain)."""

    version: str
    identity: ProxyIdentity
    listeners: tuple[Listener, ...]
    route_tables: Mapping[str, RouteTable]
    clusters: Mapping[str, Cluster]
    notes: tuple[str, ...] = ()
    skipped: tuple[SkippedResource, ...] = ()
    unenforced: tuple[Finding, ...] = ()
    mesh: MeshSettings = DEFAULT_MESH
    http_filter_patches: tuple[HttpFilterPatch, ...] = ()
    # (ClusterIP, port) -> cluster of the Service's non-HTTP ports: where a captured TCP
    # connection to that address goes (Istio's outbound `<ClusterIP>_<port>` tcp_proxy listener)
    tcp_services: Mapping[tuple[str, int], str] = field(default_factory=dict)
    inbound_mtls: InboundMtls = DEFAULT_INBOUND_MTLS
    _by_port: Mapping[int, RouteTable] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "route_tables", MappingProxyType(dict(self.route_tables)))
        object.__setattr__(self, "clusters", MappingProxyType(dict(self.clusters)))
        object.__setattr__(self, "tcp_services", MappingProxyType(dict(self.tcp_services)))
        by_port = {int(name): t for name, t in self.route_tables.items() if name.isdigit()}
        object.__setattr__(self, "_by_port", MappingProxyType(by_port))

    def outbound_table(self, port: int) -> RouteTable | None:
        """The sidecar's route table for a destination port (Istio names it after the port);
        a port no service uses gets the outboundTrafficPolicy table (passthrough or blocked)."""
        found = self._by_port.get(port)
        return found if found is not None else self.route_tables.get(UNKNOWN_PORTS_TABLE)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, shaped like a readable Envoy config_dump."""
        identity = self.identity
        return {
            "version": self.version,
            "identity": {
                "mode": identity.mode,
                "namespace": identity.namespace,
                "labels": dict(identity.labels),
                "workload": identity.workload,
                "serviceAccount": identity.service_account,
                "cluster": identity.cluster,
                "ip": identity.ip,
                "appPort": identity.app_port,
                "containerPort": identity.container_port,
                "containerPortName": identity.container_port_name,
            },
            "listeners": [listener.to_dict() for listener in self.listeners],
            "routeTables": {name: t.to_dict() for name, t in self.route_tables.items()},
            "clusters": {name: c.to_dict() for name, c in self.clusters.items()},
            "notes": list(self.notes),
            "skipped": [item.to_dict() for item in self.skipped],
            "unenforced": [str(item) for item in self.unenforced],
            "mesh": self.mesh.to_dict(),
            "inboundMtls": self.inbound_mtls.to_dict(),
            "httpFilterPatches": [patch.to_dict() for patch in self.http_filter_patches],
        }
