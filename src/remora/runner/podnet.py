"""The cluster network of a `remora up` in namespace mode, as plain values: the pod and Service
CIDRs, which address each pod and Service gets, and what a pod sees of the Services (its hosts
file and Kubernetes' service environment variables). No I/O: remora.runner.netns acts on it.

Kubernetes' defaults are kept where they exist: Service IPs from 10.96.0.0/12 (kubeadm's
--service-cluster-ip-range; the API server allocates each ClusterIP Service one), pod IPs from
10.244.0.0/16 (kind's and flannel's pod subnet), the bridge (the pods' default gateway, and
the address the host is reached at from a pod) holding the pod CIDR's first address.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from remora.errors import RemoraError

DEFAULT_POD_CIDR = "10.244.0.0/16"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
CLUSTER_DOMAIN = "cluster.local"
FIRST_SERVICE_OFFSET = 10  # .1 is `kubernetes`, .10 kube-dns in a kubeadm cluster: start after


class NetworkError(RemoraError):
    """The pod network cannot be set up as asked (a CIDR that collides, not root, ...)."""


def parse_cidr(text: str, option: str) -> ipaddress.IPv4Network:
    try:
        network = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise NetworkError(f"{option} {text!r}: {exc}") from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise NetworkError(f"{option} {text!r}: pods and Services get IPv4 addresses")
    if network.num_addresses < 16:
        raise NetworkError(f"{option} {text!r}: too small (at least a /28)")
    return network


@dataclass(frozen=True, slots=True)
class ClusterNetwork:
    """One run's pod network: the names it creates carry `prefix` (so a run's leftovers are
    found after a crash), the bridge holds the pod CIDR's first address."""

    prefix: str
    pod_cidr: ipaddress.IPv4Network
    service_cidr: ipaddress.IPv4Network

    @classmethod
    def for_state(cls, state_root: Path, *, pod_cidr: str = DEFAULT_POD_CIDR,
                  service_cidr: str = DEFAULT_SERVICE_CIDR) -> ClusterNetwork:
        """The network of the run kept in `state_root`: the same names for the same state
        directory, so the next `up` there finds what a crashed one left."""
        digest = hashlib.sha1(str(state_root.resolve()).encode()).hexdigest()[:5]
        pods = parse_cidr(pod_cidr, "--pod-cidr")
        services = parse_cidr(service_cidr, "--service-cidr")
        if pods.overlaps(services):
            raise NetworkError(f"--pod-cidr {pods} overlaps --service-cidr {services}")
        return cls(prefix=f"rmr{digest}", pod_cidr=pods, service_cidr=services)

    @property
    def bridge(self) -> str:
        return self.prefix  # 8 characters: a link name is at most 15

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.pod_cidr.network_address + 1

    def namespace(self, pod: str) -> str:
        return f"{self.prefix}-{pod}"

    def veth(self, index: int) -> str:
        return f"{self.prefix}v{index}"

    def check_routes(self, routes: Iterable[tuple[str, str]]) -> None:
        """Refuse CIDRs that overlap a host route (`(destination, device)` pairs; the default
        route is no collision), naming the route and the option that moves ours."""
        for destination, device in routes:
            if destination in ("default", "0.0.0.0/0") or device == self.bridge:
                continue
            try:
                route = ipaddress.ip_network(destination, strict=False)
            except ValueError:
                continue
            if not isinstance(route, ipaddress.IPv4Network):
                continue
            for option, ours in (("--pod-cidr", self.pod_cidr),
                                 ("--service-cidr", self.service_cidr)):
                if ours.overlaps(route):
                    raise NetworkError(
                        f"{option} {ours} overlaps the host route {route} (dev {device}): "
                        f"choose another range with {option}, or run with --network host")


def free_pod_cidr(routes: Iterable[tuple[str, str]]) -> str:
    """The default pod CIDR, or the first /16 after it that no host route overlaps (another
    `remora up` runs with the default: each run then gets its own, as kind's clusters do)."""
    taken = []
    for destination, _ in routes:
        with contextlib.suppress(ValueError):
            route = ipaddress.ip_network(destination, strict=False)
            if isinstance(route, ipaddress.IPv4Network) and route.prefixlen > 0:
                taken.append(route)
    first = ipaddress.IPv4Network(DEFAULT_POD_CIDR)
    for step in range(16):
        candidate = ipaddress.IPv4Network((int(first.network_address) + step * 65536, 16))
        if not any(candidate.overlaps(route) for route in taken):
            return str(candidate)
    return DEFAULT_POD_CIDR  # all taken: the route check names the collision


@dataclass(slots=True)
class AddressPool:
    """Addresses of a network handed out by name: the same name keeps its address until it is
    released; the network, broadcast and reserved addresses are never given."""

    network: ipaddress.IPv4Network
    first_offset: int = 2
    given: dict[str, ipaddress.IPv4Address] = field(default_factory=dict)

    def address(self, name: str) -> str:
        found = self.given.get(name)
        if found is None:
            taken = set(self.given.values())
            last = self.network.num_addresses - 1
            for offset in range(self.first_offset, last):
                candidate = self.network.network_address + offset
                if candidate not in taken:
                    found = self.given[name] = candidate
                    break
            else:
                raise NetworkError(f"{self.network} has no free address left for {name}")
        return str(found)

    def release(self, name: str) -> None:
        self.given.pop(name, None)


@dataclass(frozen=True, slots=True)
class ServiceAddress:
    """A Service as pods see it: its names, ClusterIP and ports (name, port)."""

    name: str
    namespace: str
    ip: str
    ports: tuple[tuple[str, int], ...]


def hosts_file(pod: str, pod_ip: str, namespace: str,
               services: Sequence[ServiceAddress]) -> str:
    """The pod's /etc/hosts: the kubelet's (localhost, the pod's own name), then every Service
    by each name a pod's resolver would turn into it (`user` only in its own namespace, as
    the search path `<ns>.svc.cluster.local` does; `user.ns`, `user.ns.svc`, the FQDN)."""
    lines = ["# Kubernetes-managed hosts file (remora up).", "127.0.0.1\tlocalhost",
             "::1\tlocalhost ip6-localhost ip6-loopback", f"{pod_ip}\t{pod}"]
    for service in services:
        short = [service.name] if service.namespace == namespace else []
        names = [*short, f"{service.name}.{service.namespace}",
                 f"{service.name}.{service.namespace}.svc",
                 f"{service.name}.{service.namespace}.svc.{CLUSTER_DOMAIN}"]
        lines.append(f"{service.ip}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def service_environment(namespace: str, services: Sequence[ServiceAddress]) -> dict[str, str]:
    """Kubernetes' service environment variables for the Services of the pod's namespace
    (kubernetes.io, "Service" → "Environment variables"; kubelet's envvars.FromServices):
    `{NAME}_SERVICE_HOST`, `_SERVICE_PORT`, `_SERVICE_PORT_{PORTNAME}` and the Docker-link
    style `{NAME}_PORT`, `_PORT_{port}_TCP`, `_PROTO`, `_PORT`, `_ADDR`."""
    env: dict[str, str] = {}
    for service in services:
        if service.namespace != namespace or not service.ports:
            continue
        name = _env_name(service.name)
        first = service.ports[0][1]
        env[f"{name}_SERVICE_HOST"] = service.ip
        env[f"{name}_SERVICE_PORT"] = str(first)
        for port_name, port in service.ports:
            if port_name:
                env[f"{name}_SERVICE_PORT_{_env_name(port_name)}"] = str(port)
        env[f"{name}_PORT"] = f"tcp://{service.ip}:{first}"
        for _, port in service.ports:
            prefix = f"{name}_PORT_{port}_TCP"
            env[prefix] = f"tcp://{service.ip}:{port}"
            env[f"{prefix}_PROTO"] = "tcp"
            env[f"{prefix}_PORT"] = str(port)
            env[f"{prefix}_ADDR"] = service.ip
    return env


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_").replace(".", "_")


def allocate_service_ips(services: Iterable[tuple[str, str, str | None]],
                         network: ipaddress.IPv4Network) -> dict[tuple[str, str], str]:
    """(namespace, name) -> ClusterIP for each (namespace, name, clusterIP as written)
    Service: the one written when it is an address, else the next free one of `network`
    (the API server's allocator); headless Services ("None") get none."""
    out: dict[tuple[str, str], str] = {}
    pool = AddressPool(network, first_offset=FIRST_SERVICE_OFFSET)
    services = list(services)
    for namespace, name, written in services:
        if written and written != "None":
            pool.given[f"{namespace}/{name}"] = ipaddress.IPv4Address(written)
    for namespace, name, written in services:
        if written == "None":
            continue
        out[namespace, name] = written or pool.address(f"{namespace}/{name}")
    return out

