"""A pod's traffic capture: its traffic.sidecar.istio.io annotations as the nat rules Istio's
istio-iptables (the istio-init container, or the CNI plugin) writes in REDIRECT mode.

Pure: annotations in, `iptables-restore` text out; remora.runner.netns loads it into the pod's
network namespace with `ip netns exec NS iptables-restore --noflush`.

Theory of operation (istio.io, "Resource Annotations" and "Sidecar injection"; istio
tools/istio-iptables/pkg/capture/run.go; pkg/kube/inject's injection template):

- The injector passes istio-iptables `-i includeOutboundIPRanges` (default "*"), `-x
  excludeOutboundIPRanges`, `-b includeInboundPorts` (default "*"), `-d 15090,15021,<the
  excludeInboundPorts annotation>,15020` (Envoy's Prometheus port, its health port and the
  agent's status port are never captured), `-o excludeOutboundPorts`, `-q includeOutboundPorts`.
  Remora writes the always-excluded ports first, then the annotation's: the same RETURN rules
  (their order changes nothing).
- PREROUTING sends TCP to ISTIO_INBOUND (unless includeInboundPorts is empty): with "*" the
  excluded ports RETURN and everything else goes to ISTIO_IN_REDIRECT (REDIRECT to 15006);
  with a list, only those ports do (exclusions do not apply then).
- OUTPUT sends TCP to ISTIO_OUTPUT, which decides in this order: excluded outbound ports RETURN
  (first, so not even the proxy's calls to its own pod IP are captured on them); traffic from
  127.0.0.6 (the proxy's inbound passthrough source) RETURN; for the proxy's uid, then gid:
  its traffic to a non-127.0.0.1 address over lo (the app's own pod IP, reached through a
  Service) goes to ISTIO_IN_REDIRECT, other lo traffic not from the proxy RETURN (skipped when
  an included range is a loopback one), the proxy's other traffic RETURN; then 127.0.0.1
  RETURN; excluded ranges RETURN; included ports to ISTIO_REDIRECT (REDIRECT to 15001); then
  "*": everything else to ISTIO_REDIRECT, a list: those ranges to ISTIO_REDIRECT and RETURN for
  the rest, empty: nothing more (no outbound capture).

Where Remora differs: only TCP (no DNS capture, no UDP rules: Remora runs no DNS proxy); no
RETURN for port 15008 (Istio's HBONE tunnel port, which Remora does not serve); IPv4 only; a
bad value is a CaptureError naming the annotation, where istio-iptables skips it with a line on
stderr; duplicate ports and ranges are written once.

The text is written as `iptables-save -t nat` prints it (chains in its order, options in its
canonical form), so its `-A` lines compare line for line with `iptables-save` in the pod and in
an Istio pod. Load it once into a fresh namespace: with --noflush, loading it again flushes the
ISTIO_* chains but appends the PREROUTING and OUTPUT jumps a second time.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from remora.errors import RemoraError

PREFIX = "traffic.sidecar.istio.io/"
INCLUDE_OUTBOUND_IP_RANGES = PREFIX + "includeOutboundIPRanges"
EXCLUDE_OUTBOUND_IP_RANGES = PREFIX + "excludeOutboundIPRanges"
INCLUDE_INBOUND_PORTS = PREFIX + "includeInboundPorts"
EXCLUDE_INBOUND_PORTS = PREFIX + "excludeInboundPorts"
INCLUDE_OUTBOUND_PORTS = PREFIX + "includeOutboundPorts"
EXCLUDE_OUTBOUND_PORTS = PREFIX + "excludeOutboundPorts"
INTERCEPTION_MODE = "sidecar.istio.io/interceptionMode"
HONOURED = frozenset({INCLUDE_OUTBOUND_IP_RANGES, EXCLUDE_OUTBOUND_IP_RANGES,
                      INCLUDE_INBOUND_PORTS, EXCLUDE_INBOUND_PORTS, INCLUDE_OUTBOUND_PORTS,
                      EXCLUDE_OUTBOUND_PORTS})  # fmt: skip
ALWAYS_EXCLUDED_INBOUND = (15090, 15021, 15020)  # Envoy's Prometheus, its health, agent status
WILDCARD = "*"

INBOUND, IN_REDIRECT = "ISTIO_INBOUND", "ISTIO_IN_REDIRECT"
OUTPUT, REDIRECT = "ISTIO_OUTPUT", "ISTIO_REDIRECT"
CHAINS = (INBOUND, IN_REDIRECT, OUTPUT, REDIRECT)  # iptables-save lists user chains sorted
INBOUND_PASSTHROUGH_SOURCE = "127.0.0.6/32"
LOCALHOST = "127.0.0.1/32"
_PORT = re.compile(r"[0-9]{1,5}")


class CaptureError(RemoraError):
    """A capture annotation (or a CaptureSpec field) with a value istio-iptables cannot use."""


@dataclass(frozen=True, slots=True)
class CaptureSpec:
    """What istio-iptables is told for one pod, validated (as text for the fields that take
    "*": ranges in CIDR form, inbound ports as numbers); defaults are istio-iptables' own."""

    proxy_uid: int = 1337
    proxy_gid: int = 1337
    outbound_port: int = 15001  # ISTIO_REDIRECT's target: the outbound listener
    inbound_port: int = 15006  # ISTIO_IN_REDIRECT's target: the inbound listener
    include_outbound_ip_ranges: tuple[str, ...] = (WILDCARD,)  # () captures nothing
    exclude_outbound_ip_ranges: tuple[str, ...] = ()
    include_inbound_ports: tuple[str, ...] = (WILDCARD,)  # ("*",), port numbers, () = none
    exclude_inbound_ports: tuple[int, ...] = ()  # applies with "*" only
    exclude_outbound_ports: tuple[int, ...] = ()
    include_outbound_ports: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("proxy_uid", "proxy_gid"):
            value = getattr(self, name)
            if not 0 <= value < 2**32 - 1:
                raise CaptureError(f"CaptureSpec.{name} {value!r}: not a uid/gid")
        for name in ("outbound_port", "inbound_port"):
            _check_port(getattr(self, name), f"CaptureSpec.{name}")
        for name in ("exclude_inbound_ports", "exclude_outbound_ports", "include_outbound_ports"):
            for port in getattr(self, name):
                _check_port(port, f"CaptureSpec.{name}")
        # Normalised here, so that a spec built by hand writes what iptables-save shows.
        normal = {
            "include_outbound_ip_ranges": _ranges(self.include_outbound_ip_ranges,
                                                  "CaptureSpec.include_outbound_ip_ranges",
                                                  wildcard=True),
            "exclude_outbound_ip_ranges": _ranges(self.exclude_outbound_ip_ranges,
                                                  "CaptureSpec.exclude_outbound_ip_ranges",
                                                  wildcard=False),
            "include_inbound_ports": _inbound_ports(self.include_inbound_ports,
                                                    "CaptureSpec.include_inbound_ports"),
        }  # fmt: skip
        for name, value in normal.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_annotations(
        cls,
        annotations: Mapping[str, str],
        *,
        always_excluded_inbound: Sequence[int] = ALWAYS_EXCLUDED_INBOUND,
    ) -> CaptureSpec:
        """The capture of a pod with these annotations, as Istio's injector sets it up:
        `always_excluded_inbound` first, then the excludeInboundPorts annotation's ports."""
        for port in always_excluded_inbound:
            _check_port(port, "always_excluded_inbound")

        def items(key: str, default: str = "") -> tuple[str, ...]:
            return _split(annotations.get(key, default))

        def ports(key: str) -> tuple[int, ...]:
            return tuple(_parse_port(item, _where(key, annotations)) for item in items(key))

        def ranges(key: str, default: str = "") -> tuple[str, ...]:
            return _ranges(items(key, default), _where(key, annotations),
                           wildcard=key == INCLUDE_OUTBOUND_IP_RANGES)  # fmt: skip

        return cls(
            include_outbound_ip_ranges=ranges(INCLUDE_OUTBOUND_IP_RANGES, WILDCARD),
            exclude_outbound_ip_ranges=ranges(EXCLUDE_OUTBOUND_IP_RANGES),
            include_inbound_ports=_inbound_ports(items(INCLUDE_INBOUND_PORTS, WILDCARD),
                                                 _where(INCLUDE_INBOUND_PORTS, annotations)),
            exclude_inbound_ports=_unique((*always_excluded_inbound,
                                           *ports(EXCLUDE_INBOUND_PORTS))),
            exclude_outbound_ports=_unique(ports(EXCLUDE_OUTBOUND_PORTS)),
            include_outbound_ports=_unique(ports(INCLUDE_OUTBOUND_PORTS)),
        )  # fmt: skip


def unsupported_annotations(annotations: Mapping[str, str]) -> list[str]:
    """The capture annotations Remora does not act on, sorted: traffic.sidecar.istio.io keys
    other than the six it honours (kubevirtInterfaces, excludeInterfaces, a misspelt key), and
    sidecar.istio.io/interceptionMode when it is not REDIRECT (TPROXY, NONE)."""
    return sorted(
        key for key, value in annotations.items()
        if (key.startswith(PREFIX) and key not in HONOURED)
        or (key == INTERCEPTION_MODE and value.strip() != "REDIRECT")
    )  # fmt: skip


def iptables_restore(spec: CaptureSpec) -> str:
    """The nat table for `iptables-restore --noflush`: the four ISTIO_* chains and their
    rules, the jumps from PREROUTING and OUTPUT."""
    lines = ["*nat", *(f":{chain} - [0:0]" for chain in CHAINS)]
    chains = {
        "PREROUTING": [] if not spec.include_inbound_ports else [f"-p tcp -j {INBOUND}"],
        "OUTPUT": [f"-p tcp -j {OUTPUT}"],
        INBOUND: _inbound(spec),
        IN_REDIRECT: [f"-p tcp -j REDIRECT --to-ports {spec.inbound_port}"],
        OUTPUT: _output(spec),
        REDIRECT: [f"-p tcp -j REDIRECT --to-ports {spec.outbound_port}"],
    }
    lines += [f"-A {chain} {rule}" for chain, rules in chains.items() for rule in rules]
    return "\n".join([*lines, "COMMIT", ""])


# ---------------------------------------------------------------------------------------------
# Rules (in iptables-save's canonical form: -s -d -i -o -p, then matches, then the target)
# ---------------------------------------------------------------------------------------------


def _inbound(spec: CaptureSpec) -> list[str]:
    if spec.include_inbound_ports == (WILDCARD,):
        return [*(f"-p tcp -m tcp --dport {port} -j RETURN" for port in
                  spec.exclude_inbound_ports),
                f"-p tcp -j {IN_REDIRECT}"]  # fmt: skip
    return [f"-p tcp -m tcp --dport {port} -j {IN_REDIRECT}" for port in
            spec.include_inbound_ports]  # fmt: skip


def _output(spec: CaptureSpec) -> list[str]:
    include = spec.include_outbound_ip_ranges
    rules = [f"-p tcp -m tcp --dport {port} -j RETURN" for port in spec.exclude_outbound_ports]
    rules.append(f"-s {INBOUND_PASSTHROUGH_SOURCE} -o lo -j RETURN")
    loopback_included = include != (WILDCARD,) and any(
        ipaddress.IPv4Network(cidr).network_address.is_loopback for cidr in include
    )
    for owner, owner_id in (("--uid-owner", spec.proxy_uid), ("--gid-owner", spec.proxy_gid)):
        rules.append(f"! -d {LOCALHOST} -o lo -m owner {owner} {owner_id} -j {IN_REDIRECT}")
        if not loopback_included:  # an included loopback range is captured from the app too
            rules.append(f"-o lo -m owner ! {owner} {owner_id} -j RETURN")
        rules.append(f"-m owner {owner} {owner_id} -j RETURN")
    rules.append(f"-d {LOCALHOST} -j RETURN")
    rules += [f"-d {cidr} -j RETURN" for cidr in spec.exclude_outbound_ip_ranges]
    rules += [f"-p tcp -m tcp --dport {port} -j {REDIRECT}" for port in
              spec.include_outbound_ports]  # fmt: skip
    if include == (WILDCARD,):
        rules.append(f"-j {REDIRECT}")
    elif include:
        rules += [f"-d {cidr} -j {REDIRECT}" for cidr in include]
        rules.append("-j RETURN")
    return rules


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


def _split(value: str) -> tuple[str, ...]:
    """A comma-separated annotation's items, blanks around them and empty items dropped."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _where(key: str, annotations: Mapping[str, str]) -> str:
    return f"annotation {key}={annotations.get(key, '')!r}"


def _unique(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(dict.fromkeys(values))


def _check_port(port: int, where: str) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise CaptureError(f"{where}: {port!r} is not a port (1-65535)")


def _parse_port(item: str, where: str) -> int:
    if not _PORT.fullmatch(item) or not 1 <= int(item) <= 65535:
        raise CaptureError(f"{where}: {item!r} is not a port (1-65535)")
    return int(item)


def _inbound_ports(items: tuple[str, ...], where: str) -> tuple[str, ...]:
    """("*",), or the ports as their numbers' text (one each)."""
    if items == (WILDCARD,):
        return items
    if WILDCARD in items:
        raise CaptureError(f"{where}: '*' is the whole value or nothing")
    return tuple(dict.fromkeys(str(_parse_port(item, where)) for item in items))


def _ranges(items: tuple[str, ...], where: str, *, wildcard: bool) -> tuple[str, ...]:
    """("*",) when allowed, or IPv4 ranges normalised ("10.1.2.3/16" is 10.1.0.0/16), once each."""
    if wildcard and items == (WILDCARD,):
        return items
    if WILDCARD in items:
        raise CaptureError(f"{where}: '*' is the whole value or nothing" if wildcard else
                           f"{where}: '*' cannot be excluded (istio-iptables refuses it); to "
                           f"capture no outbound traffic set {INCLUDE_OUTBOUND_IP_RANGES} to "
                           "''")  # fmt: skip
    return tuple(dict.fromkeys(_cidr(item, where) for item in items))


def _cidr(item: str, where: str) -> str:
    if "/" not in item:
        raise CaptureError(f"{where}: {item!r} is not in CIDR form (address/prefix length, "
                           f"e.g. {item}/32)")  # fmt: skip
    try:
        network = ipaddress.ip_network(item, strict=False)
    except ValueError as exc:
        raise CaptureError(f"{where}: {item!r}: {exc}") from None
    if not isinstance(network, ipaddress.IPv4Network):
        raise CaptureError(f"{where}: {item!r} is an IPv6 range; Remora pods have IPv4 "
                           "addresses only")  # fmt: skip
    return str(network)
