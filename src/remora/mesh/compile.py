"""compile_snapshot: resources + proxy identity -> the immutable Snapshot the proxy serves.

Sidecar (Istio's outbound/inbound model): one outbound listener whose route tables are named
after service ports ("9080"); in each, a virtual host per visible service on that port, answering
every name Istio gives it. The first (oldest) VirtualService bound to `mesh` that yields routes
for a service on a port owns it (istio.io IST0109: only gateways merge VirtualServices); a
service without one gets the default route to all its endpoints. VirtualService hosts that are
no service get a virtual host in every table (and table "80" exists for them). The inbound
listener routes everything to `inbound|<port>||` = 127.0.0.1:<app_port>, <port> the app's
containerPort (`--container-port`; the app port itself when not given). The Sidecar resource
that applies to the proxy (remora.mesh.sidecarscope) sets the outboundTrafficPolicy of the
unknown-host virtual host and the inbound cluster's connection pool.

Gateway: a listener per server port (`0.0.0.0_<port>`, table `http.<port>`); VirtualServices
bound to the gateway contribute routes per exposed host, merged in age order when several name
the same host (Istio merges VirtualServices on gateways).

Clusters are made for what routes name (`outbound|<port>|<subset>|<host>`), each with its
endpoints and effective DestinationRule policy. Deviation from Istio: a destination whose host
is unknown, or whose subset no DestinationRule defines, still gets a cluster, with no endpoints
(the proxy answers 503 UH where Envoy would say NC), and a note says why.

mTLS (remora.mesh.peerauth): a sidecar's snapshot carries the PeerAuthentication in force for
its workload (`inbound_mtls`), every endpoint whether its sidecar takes Istio mTLS on its port
(`tls_mode`), every cluster its DestinationRule tls mode; the mesh settings carry the root
certificates (ConfigMap `istio-ca-root-cert` of the root namespace) and enableAutoMtls. The
proxy's certificate names ProxyIdentity.namespace/service_account in MeshSettings.trust_domain.

One bad resource never blocks the rest: a resource whose compilation fails (a VirtualService's
routes, a DestinationRule's policy) is left out of this proxy's snapshot from then on and listed
in `Snapshot.skipped` with the reason (with those that did not parse: remora.mesh.documents);
everything else compiles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from functools import partial
from typing import TypeVar

from remora.api.finding import Finding
from remora.api.kube.core import ConfigMap, Secret, Service
from remora.api.meshconfig import DEFAULT_MESH_CONFIG, MeshConfig, mesh_config_of
from remora.api.networking.names import to_fqdn
from remora.api.networking.shared import Destination
from remora.api.networking.virtual_service import VirtualService
from remora.api.resource import Resource
from remora.api.unenforced import findings
from remora.mesh.clienttls import Credential, CredentialLookup
from remora.mesh.endpoints import EndpointIndex, subset_endpoints
from remora.mesh.envoyfilter import (
    compile_envoy_filter,
    connection_manager_patches,
    selected_envoy_filters,
    with_connection_manager,
)
from remora.mesh.filterpatch import HttpFilterPatch
from remora.mesh.gateway import (
    CA_SUFFIX,
    ca_certificate,
    credential,
    exposed_hosts,
    listener_tls,
    selected_servers,
    server_problem,
)
from remora.mesh.hosts import MeshService, Registry, labels_subset
from remora.mesh.memo import CompileMemo
from remora.mesh.peerauth import PeerAuthentications
from remora.mesh.pem import certificates
from remora.mesh.routes import RouteBuilder, Rule, VirtualServices, default_route
from remora.mesh.sidecarscope import OutboundMode, SidecarScope, selected_sidecar, sidecar_scope
from remora.mesh.snapshot import (
    DEFAULT_INBOUND_MTLS,
    PASSTHROUGH_CLUSTER,
    UNKNOWN_PORTS_TABLE,
    Cluster,
    Endpoint,
    Listener,
    ListenerPorts,
    ListenerTls,
    MeshSettings,
    ProxyIdentity,
    Route,
    RouteTable,
    SkippedResource,
    Snapshot,
    VirtualHost,
)
from remora.mesh.trafficpolicy import DestinationRules, cluster_policy, effective_policy
from remora.policy.headers import HeaderOps
from remora.policy.lb import LbConfig
from remora.policy.redirect import DirectResponse
from remora.policy.retry import RetrySpec

MESH = "mesh"
HTTP_DEFAULT_PORT = 80
ROOT_CERT_CONFIGMAP = "istio-ca-root-cert"  # istiod writes the mesh's root certificate here
ROOT_CERT_KEY = "root-cert.pem"
T = TypeVar("T")


class Skipped:
    """The resources one compile leaves out, each once, with the first reason found."""

    def __init__(self, items: Iterable[SkippedResource] = ()) -> None:
        self.items: dict[tuple[str, str, str], SkippedResource] = {}
        for item in items:
            self.items.setdefault((item.kind, item.namespace, item.name), item)

    def add(self, kind: str, namespace: str, name: str, message: str) -> None:
        self.items.setdefault((kind, namespace, name),
                              SkippedResource(kind, namespace, name, message))

    def has(self, resource: Resource) -> bool:
        return (resource.kind, resource.namespace, resource.name) in self.items

    def guard(self, resource: Resource, build: Callable[[], T], fallback: T) -> T:
        """`build()`, or `fallback` with `resource` skipped when building it fails. Any error:
        a bug in compiling one resource must not take the whole snapshot down with it."""
        if self.has(resource):
            return fallback
        try:
            return build()
        except Exception as exc:  # the per-resource isolation boundary
            self.add(resource.kind, resource.namespace, resource.name,
                     f"cannot be compiled: {str(exc) or type(exc).__name__}")
            return fallback


def cluster_name(direction: str, port: int, subset: str, host: str) -> str:
    """Istio's cluster key: `outbound|9080|v1|reviews.default.svc.cluster.local`."""
    return f"{direction}|{port}|{subset}|{host}"


class Clusters:
    """The clusters routes ask for, built with endpoints and policy once routes are known."""

    def __init__(
        self, registry: Registry, rules: DestinationRules, endpoints: EndpointIndex,
        notes: list[str], skipped: Skipped, *, connect_timeout: float, memo: CompileMemo,
        credential: CredentialLookup,
    ) -> None:  # fmt: skip
        self.memo = memo
        self.credential = credential
        self.connect_timeout = connect_timeout
        self.skipped = skipped
        self.registry = registry
        self.rules = rules
        self.endpoints = endpoints
        self.notes = notes
        self.wanted: dict[str, tuple[str, int, str]] = {}
        self.fixed: dict[str, Cluster] = {}

    def add(self, cluster: Cluster) -> str:
        """A cluster built elsewhere (inbound)."""
        self.fixed[cluster.name] = cluster
        return cluster.name

    def outbound(self, host: str, port: int, subset: str = "") -> str:
        name = cluster_name("outbound", port, subset, host)
        self.wanted.setdefault(name, (host, port, subset))
        return name

    def for_destination(self, dest: Destination, namespace: str, listen_port: int) -> str:
        """pilot GetDestinationCluster: port given, else the service's only port, else the
        listener's."""
        host = to_fqdn(dest.host, namespace)
        service = self.registry.get(host)
        port = dest.port_number
        if port is None:
            single = service is not None and len(service.ports) == 1
            port = service.ports[0].number if service is not None and single else listen_port
        return self.outbound(host, port, dest.subset or "")

    def build(self) -> dict[str, Cluster]:
        built = dict(self.fixed)
        cache: dict[tuple[str, int], tuple[Endpoint, ...]] = {}
        for name, (host, port, subset) in self.wanted.items():
            built[name] = self._cluster(name, host, port, subset, cache)
        return built

    def _cluster(
        self, name: str, host: str, port: int, subset: str,
        cache: dict[tuple[str, int], tuple[Endpoint, ...]],
    ) -> Cluster:  # fmt: skip
        service = self.registry.get(host)
        mesh_port = service.port(port) if service is not None else None
        if service is None or mesh_port is None:
            what = "host" if service is None else "port"
            self.notes.append(f"cluster {name}: unknown {what}, no endpoints")
            endpoints: tuple[Endpoint, ...] = ()
        else:
            if (host, port) not in cache:
                cache[(host, port)] = self.memo.endpoints(self.endpoints, service, mesh_port)
            endpoints = cache[(host, port)]
        namespace = service.namespace if service is not None else ""
        rule = self.rules.for_host(host, namespace)
        subset_policy = None
        if subset:
            found = rule.subsets.get(subset) if rule is not None else None
            if found is None:
                self.notes.append(f"cluster {name}: subset {subset!r} not defined, no endpoints")
                endpoints = ()
            else:
                endpoints = self.memo.subset(endpoints, found.labels,
                                             partial(subset_endpoints, labels=found.labels))
                subset_policy = found.traffic_policy
        policy = effective_policy(rule.traffic_policy if rule else None, subset_policy, port=port)
        try:
            lb = LbConfig.from_api(policy.load_balancer if policy else None)
            compiled = cluster_policy(policy, connect_timeout=self.connect_timeout,
                                      credential=self.credential) \
                if policy is not None else None
        except ValueError as exc:  # the rule is skipped: the cluster keeps Istio's defaults
            for key in rule.names if rule is not None else ():
                namespace_, _, rule_name = key.partition("/")
                self.skipped.add("DestinationRule", namespace_, rule_name,
                                 f"cannot be compiled: {exc}")
            lb, compiled = LbConfig.from_api(None), None
        return Cluster(
            name=name, host=host, port=port, subset=subset,
            service_name=service.name if service else host, service_namespace=namespace,
            endpoints=endpoints, lb=lb, traffic_policy=compiled,
            connect_timeout=self.connect_timeout,
            mesh_external=service is not None and service.mesh_external,
        )  # fmt: skip


class Compiler:
    """One compile: the indexes over the resources, shared by listeners, routes and clusters."""

    def __init__(self, resources: Sequence[Resource], identity: ProxyIdentity,
                 skipped: Skipped, mesh: MeshConfig = DEFAULT_MESH_CONFIG,
                 memo: CompileMemo | None = None) -> None:
        memo = memo or CompileMemo()
        self.resources = resources
        self.mesh = mesh
        self.identity = identity
        self.skipped = skipped
        self.notes: list[str] = []
        self.registry = Registry(resources, namespace=identity.namespace)
        self.virtual_services = VirtualServices(resources, namespace=identity.namespace)
        self.peer_authentications = PeerAuthentications(resources, root_namespace=mesh.root)
        index = memo.endpoint_index(resources).with_peer_authentications(
            self.peer_authentications)
        self.clusters = Clusters(
            self.registry, DestinationRules(resources, identity, root_namespace=mesh.root),
            index, self.notes, skipped,
            connect_timeout=mesh.connect_timeout_seconds, memo=memo,
            credential=self.client_credential,
        )  # fmt: skip
        self._rules: dict[str, list[Rule]] = {}
        retries = mesh.default_retries  # MeshConfig defaultHttpRetryPolicy
        self.default_retries = RetrySpec.from_api(retries) if retries is not None else None
        self.scope = self._sidecar_scope()
        self.tcp_services: dict[tuple[str, int], str] = {}

    def _sidecar_scope(self) -> SidecarScope:
        """What the Sidecar resource that applies to this proxy sets (remora.mesh.sidecarscope);
        MeshConfig's alone when none applies or it cannot be compiled (it is skipped)."""
        default = sidecar_scope(None, self.mesh)
        found = selected_sidecar(self.resources, self.identity, root_namespace=self.mesh.root)
        if found is None:
            return default
        return self.skipped.guard(found, partial(sidecar_scope, found, self.mesh), default)

    def builder(self, gateway: str) -> RouteBuilder:
        return RouteBuilder(identity=self.identity, gateways=frozenset({gateway}),
                            cluster_for=self.clusters.for_destination,
                            default_retries=self.default_retries)  # fmt: skip

    def rules(self, vs: VirtualService) -> list[Rule]:
        if vs.key not in self._rules:
            self._rules[vs.key] = self.skipped.guard(
                vs, lambda: self.virtual_services.rules(vs), [])
        return self._rules[vs.key]

    def routes(self, builder: RouteBuilder, vs: VirtualService, port: int) -> list[Route]:
        """The routes of `vs` on `port`; none (and `vs` skipped) when they cannot be built."""
        return self.skipped.guard(vs, lambda: builder.routes(self.rules(vs), port=port), [])

    # -- sidecar ------------------------------------------------------------------------------

    def sidecar(self, ports: ListenerPorts) -> tuple[list[Listener], dict[str, RouteTable]]:
        services = self.registry.services()
        bound = self.virtual_services.bound_to(MESH)
        extra_hosts = self._non_service_hosts(bound)
        table_ports = {p.number for s in services for p in s.ports if p.http}
        self.tcp_services = {(address, port.number): self.clusters.outbound(s.host, port.number)
                             for s in services for port in s.ports if not port.http
                             for address in s.addresses}
        if extra_hosts:
            table_ports.add(HTTP_DEFAULT_PORT)
        builder = self.builder(MESH)
        tables = {}
        unknown_host = self._unknown_host()
        for port in sorted(table_ports):
            vhosts = self._sidecar_vhosts(port, services, bound, extra_hosts, builder)
            if not any("*" in vhost.domains for vhost in vhosts):
                vhosts.append(unknown_host)
            tables[str(port)] = RouteTable(str(port), tuple(vhosts))
        tables[UNKNOWN_PORTS_TABLE] = RouteTable(UNKNOWN_PORTS_TABLE, (unknown_host,))
        listeners = [Listener("virtualOutbound", ports.outbound, "outbound", None)]
        app_port = self.identity.app_port
        if app_port is not None:
            table = self._inbound_table(app_port)
            tables[table.name] = table
            listeners.append(Listener("virtualInbound", ports.inbound, "inbound", table.name))
        return listeners, tables

    def _unknown_host(self) -> VirtualHost:
        """Where a sidecar sends a host the registry does not know (outboundTrafficPolicy: the
        Sidecar's, else MeshConfig's): ALLOW_ANY to the host as the request names it (Istio's
        `allow_any` virtual host and PassthroughCluster), REGISTRY_ONLY a 502 (`block_all`)."""
        if self.scope.outbound_mode == "REGISTRY_ONLY":
            route = Route(name="block_all", matchers=(), action=DirectResponse(502),
                          request_headers=HeaderOps.EMPTY, response_headers=HeaderOps.EMPTY,
                          cors=None, virtual_service="")
            return VirtualHost("block_all", ("*",), (route,))
        self.clusters.add(Cluster(
            name=PASSTHROUGH_CLUSTER, host="", port=0, subset="",
            service_name=PASSTHROUGH_CLUSTER, service_namespace="", endpoints=(),
            lb=LbConfig.from_api(None), connect_timeout=self.mesh.connect_timeout_seconds,
        ))  # fmt: skip
        route = default_route(PASSTHROUGH_CLUSTER, self.default_retries)
        return VirtualHost("allow_any", ("*",), (replace(route, name="allow_any"),))

    def _non_service_hosts(self, bound: list[VirtualService]) -> list[tuple[str, VirtualService]]:
        out: dict[str, VirtualService] = {}
        for vs in bound:
            for host in VirtualServices.hosts(vs):
                if not self.registry.matching(host):
                    out.setdefault(host, vs)
        return list(out.items())

    def _sidecar_vhosts(
        self, port: int, services: list[MeshService], bound: list[VirtualService],
        extra_hosts: list[tuple[str, VirtualService]], builder: RouteBuilder,
    ) -> list[VirtualHost]:  # fmt: skip
        on_port = {s.host: s for s in services if (p := s.port(port)) is not None and p.http}
        owned: dict[str, list[Route]] = {}
        for vs in bound:
            routes = self.routes(builder, vs, port)
            if not routes:  # no route for this proxy: the VirtualService is ignored here
                continue
            for host in VirtualServices.hosts(vs):
                for service in self.registry.matching(host):
                    if service.host in on_port:
                        owned.setdefault(service.host, routes)
        vhosts = []
        for host, service in on_port.items():
            self._all_clusters(service, port)
            routes = owned.get(host) or [default_route(self.clusters.outbound(host, port),
                                                       self.default_retries)]
            domains = service.domains(self.identity.namespace)
            vhosts.append(VirtualHost(f"{host}:{port}", domains, tuple(routes)))
        for host, vs in extra_hosts:
            routes = self.routes(builder, vs, port)
            if routes:
                vhosts.append(VirtualHost(f"{host}:{port}", (host,), tuple(routes)))
        return vhosts

    def _all_clusters(self, service: MeshService, port: int) -> None:
        """Istio builds a cluster per service port and one per DestinationRule subset whether
        or not a route uses it yet, so a route change never has to create or drop pools."""
        self.clusters.outbound(service.host, port)
        rule = self.clusters.rules.for_host(service.host, service.namespace)
        if rule is not None:
            for subset in rule.subsets:
                self.clusters.outbound(service.host, port, subset)

    def _inbound_table(self, app_port: int) -> RouteTable:
        """The app's port as its pod declares it (containerPort: what a Service's targetPort
        names and Istio's inbound cluster is named after), served at 127.0.0.1:<app_port>, with
        the Sidecar's inboundConnectionPool as its limits."""
        identity = self.identity
        port = identity.container_port or app_port
        service = next(
            (s for s in self.registry.services()
             if s.namespace == identity.namespace and _selects(s, identity)
             and any(p.target in (port, identity.container_port_name) for p in s.ports)),
            None,
        )  # fmt: skip
        endpoint = Endpoint(
            address="127.0.0.1", port=app_port, labels=identity.labels,
            workload=identity.workload, namespace=identity.namespace,
            service_account=identity.service_account,
        )  # fmt: skip
        name = self.clusters.add(Cluster(
            name=cluster_name("inbound", port, "", ""), host=service.host if service else "",
            port=port, subset="",
            service_name=service.name if service else "unknown",
            service_namespace=identity.namespace, endpoints=(endpoint,),
            lb=LbConfig.from_api(None), traffic_policy=self.scope.inbound_policy,
            connect_timeout=self.mesh.connect_timeout_seconds,
        ))  # fmt: skip
        vhost = VirtualHost(f"inbound|http|{port}", ("*",), (default_route(name),))
        return RouteTable(f"inbound|{port}", (vhost,))

    def client_credential(self, name: str, client: bool) -> Credential:
        """A DestinationRule's `tls.credentialName`: the Secret in this proxy's namespace (as
        Istio requires), its chain and key when the client presents them (MUTUAL), and its CA
        (`cacert` / `ca.crt`, or the `<name>-cacert` Secret; none: the system's roots)."""
        secrets = {(r.namespace, r.name): r for r in self.resources if isinstance(r, Secret)}
        namespace = self.identity.namespace
        cert = key = None
        if client:
            found = credential(secrets, namespace, name)
            if isinstance(found, str):
                return found
            cert, key = found
        elif (namespace, name) not in secrets:
            return f"secret {namespace}/{name} not found"
        ca = ca_certificate(secrets, namespace, f"{name}{CA_SUFFIX}", fallback=name)
        return cert, key, ca if isinstance(ca, bytes) else None

    # -- gateway ------------------------------------------------------------------------------

    def gateway(self) -> tuple[list[Listener], dict[str, RouteTable]]:
        secrets = {(r.namespace, r.name): r for r in self.resources if isinstance(r, Secret)}
        vhosts: dict[int, dict[str, tuple[list[Route], bool]]] = {}
        tls_by_port: dict[int, list[ListenerTls]] = {}
        for server in selected_servers(self.resources, self.identity):
            if (problem := server_problem(server)) is not None:
                self.notes.append(problem)
                continue
            tls = listener_tls(server, secrets, self.identity.namespace)
            if isinstance(tls, str):
                self.notes.append(tls)
                continue
            servers = tls_by_port.setdefault(server.port, [])
            if tls is not None:
                servers.append(tls)
            by_host = vhosts.setdefault(server.port, {})
            builder = self.builder(server.gateway)
            for vs in self.virtual_services.bound_to(server.gateway):
                domains = exposed_hosts(server, vs)
                if not domains:
                    continue
                routes = self.routes(builder, vs, server.port)
                for domain in domains:
                    by_host.setdefault(domain, ([], server.https_redirect))[0].extend(routes)
        listeners: list[Listener] = []
        tables: dict[str, RouteTable] = {}
        for port, by_host in vhosts.items():
            table = RouteTable(f"http.{port}", tuple(
                VirtualHost(f"{host}:{port}", (host,), tuple(routes), https_redirect=redirect)
                for host, (routes, redirect) in by_host.items()
            ))  # fmt: skip
            tables[table.name] = table
            servers = tls_by_port[port]
            listeners.append(Listener(
                f"0.0.0.0_{port}", port, "gateway", table.name,
                tls=servers[0] if servers else None, tls_servers=tuple(servers),
            ))  # fmt: skip
        return listeners, tables


def _selects(service: MeshService, identity: ProxyIdentity) -> bool:
    resource = service.resource
    return (
        isinstance(resource, Service)
        and bool(resource.selector)
        and labels_subset(resource.selector, identity.labels)
    )


def compile_snapshot(
    resources: Sequence[Resource],
    identity: ProxyIdentity,
    *,
    version: str,
    listener_ports: ListenerPorts,
    skipped: Iterable[SkippedResource] = (),
    memo: CompileMemo | None = None,
) -> Snapshot:
    """The snapshot for a proxy with `identity`; `skipped` are resources already left out (they
    did not parse); `memo` what earlier compiles of mostly these resource objects may lend
    (remora.mesh.memo: the result is the same with or without). Pure: reads nothing but its
    arguments."""
    memo = memo or CompileMemo()
    left_out = Skipped(skipped)
    mesh = mesh_config_of(resources)
    compiler = Compiler(resources, identity, left_out, mesh, memo)
    if identity.mode == "gateway":
        listeners, tables = compiler.gateway()
    else:
        listeners, tables = compiler.sidecar(listener_ports)
    clusters = compiler.clusters.build()
    patches = filter_patches(resources, identity, left_out, mesh)
    merges = connection_manager_patches(
        envoy_filter for envoy_filter in selected_envoy_filters(
            resources, identity, root_namespace=mesh.root)
        if not left_out.has(envoy_filter))  # a skipped EnvoyFilter applies nothing
    inbound_port = identity.container_port or identity.app_port or listener_ports.inbound
    listeners = [with_connection_manager(listener, merges, inbound_port=inbound_port)
                 for listener in listeners]
    inbound_mtls = DEFAULT_INBOUND_MTLS if identity.mode == "gateway" else \
        compiler.peer_authentications.for_workload(identity.namespace, identity.labels)
    return Snapshot(
        version=version, identity=identity, listeners=tuple(listeners), route_tables=tables,
        clusters=clusters, notes=tuple(compiler.notes), skipped=tuple(left_out.items.values()),
        unenforced=tuple(found for resource in resources
                         for found in memo.per_resource("findings", resource, _findings)),
        mesh=mesh_settings(mesh, outbound_mode=compiler.scope.outbound_mode,
                           trust_roots=trust_roots(resources, root_namespace=mesh.root)),
        http_filter_patches=patches, tcp_services=compiler.tcp_services,
        inbound_mtls=inbound_mtls,
    )  # fmt: skip


def _findings(resource: Resource) -> tuple[Finding, ...]:
    return tuple(findings(resource))


def filter_patches(resources: Sequence[Resource], identity: ProxyIdentity, skipped: Skipped,
                   mesh: MeshConfig) -> tuple[HttpFilterPatch, ...]:
    """The EnvoyFilter HTTP_FILTER patches for the proxy, in Istio's order; an EnvoyFilter whose
    filter config is invalid is skipped whole (remora.mesh.envoyfilter)."""
    out: list[HttpFilterPatch] = []
    for envoy_filter in selected_envoy_filters(resources, identity, root_namespace=mesh.root):
        out.extend(skipped.guard(envoy_filter, partial(compile_envoy_filter, envoy_filter), []))
    return tuple(out)


def mesh_settings(mesh: MeshConfig, *, outbound_mode: OutboundMode,
                  trust_roots: tuple[str, ...] = ()) -> MeshSettings:
    """What the data path takes from the mesh config (remora.api.meshconfig); `outbound_mode`
    is the effective outboundTrafficPolicy (a Sidecar resource's, else the mesh config's);
    `trust_roots` the mesh's root certificates (`trust_roots`). enableAutoMtls is on unless
    set false (MeshConfig: "default: true")."""
    log_file, log_format, log_encoding = mesh.file_access_log()
    return MeshSettings(
        path_normalization=mesh.normalization, outbound_traffic_policy=outbound_mode,
        access_log_file=log_file, access_log_encoding=log_encoding,
        access_log_format=log_format, trust_domain=mesh.domain, root_namespace=mesh.root,
        trust_roots=trust_roots, enable_auto_mtls=mesh.enable_auto_mtls is not False,
    )  # fmt: skip


def trust_roots(resources: Sequence[Resource], *, root_namespace: str) -> tuple[str, ...]:
    """The PEM root certificates of ConfigMap `istio-ca-root-cert` (key `root-cert.pem`) in
    the root namespace, one string per certificate, in file order (a bundle may hold several,
    while a root is rotated); none without it."""
    for resource in resources:
        if isinstance(resource, ConfigMap) and resource.name == ROOT_CERT_CONFIGMAP \
                and resource.namespace == root_namespace:
            bundle = resource.data.get(ROOT_CERT_KEY, "")
            return certificates(bundle)
    return ()
