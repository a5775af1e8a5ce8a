"""Istio's checks on names: DNS labels, FQDN and wildcard hosts, IPs, labels, ports, protocols.

Each function returns an error message (short, lower-case) or None, so that a model validator can
attach it to the right field path. Sources: istio/istio pkg/config/validation/agent/validation.go
(ValidateFQDN, ValidateWildcardDomain, ValidateNamespaceSlashWildcardHostname, ValidateIPSubnet)
and pkg/config/labels (IsDNS1123Label, Instance.Validate).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_WILDCARD_LABEL = re.compile(r"\*|(\*|\*-)?[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~A-Za-z0-9]+")
_HEADER_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
_PSEUDO_HEADERS = frozenset({":method", ":scheme", ":authority", ":path", ":status"})
JWT_CLAIM_PREFIX = "@request.auth.claims"

# protocol.Parse in istio/istio pkg/config/protocol: names Istio recognises (case-insensitive).
PROTOCOLS = frozenset({
    "TCP", "UDP", "GRPC", "GRPC-WEB", "HTTP", "HTTP_PROXY", "HTTP2", "HTTPS", "TLS",
    "MONGO", "REDIS", "MYSQL", "HBONE", "DOUBLE-HBONE",
})  # fmt: skip
HTTP_PROTOCOLS = frozenset({"HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-WEB"})
TLS_PROTOCOLS = frozenset({"HTTPS", "TLS"})
TCP_PROTOCOLS = frozenset({"TCP", "HTTPS", "TLS", "MONGO", "REDIS", "MYSQL"})


def is_dns1123_label(value: str) -> bool:
    """RFC 1123 label: lower-case alphanumerics and '-', at most 63 characters."""
    return len(value) <= 63 and _DNS1123_LABEL.fullmatch(value) is not None


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def check_ip(value: str) -> str | None:
    return None if is_ip(value) else f"{value} is not a valid IP"


def check_ip_subnet(value: str) -> str | None:
    """An IP address or a CIDR block (ValidateIPSubnet)."""
    if value.count("/") == 1:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return f"{value} is not a valid CIDR block"
        return None
    return check_ip(value)


def _check_length(name: str) -> str | None:
    if not name:
        return "empty domain name not allowed"
    if len(name) > 255:
        return f"domain name {name!r} too long (max 255)"
    return None


def _check_labels(domain: str, full: str) -> str | None:
    parts = domain.split(".")
    if parts[-1].isdigit():
        return (
            f"domain name {full!r} invalid (top level domain {parts[-1]!r} cannot be all-numeric)"
        )
    for position, label in enumerate(parts):
        if position == len(parts) - 1 and label == "":
            return None  # a trailing dot, as in "istio.io."
        if not is_dns1123_label(label):
            return f"domain name {full!r} invalid (label {label!r} invalid)"
    return None


def check_fqdn(name: str) -> str | None:
    """ValidateFQDN: DNS-1123 labels, no wildcard."""
    return _check_length(name) or _check_labels(name, name)


def check_wildcard_domain(name: str) -> str | None:
    """ValidateWildcardDomain: an FQDN whose first label may be `*` or start with `*`."""
    if problem := _check_length(name):
        return problem
    first, dot, rest = name.partition(".")
    if len(first) > 63 or not _WILDCARD_LABEL.fullmatch(first):
        return f"domain name {name!r} invalid (label {first!r} invalid)"
    return _check_labels(rest, name) if dot else None


def check_partial_wildcard(host: str) -> str | None:
    if "*" in host and host != "*" and not host.startswith("*."):
        return f"partial wildcard {host!r} not allowed"
    return None


def check_namespace_slash_host(host: str, *, gateway: bool) -> str | None:
    """ValidateNamespaceSlashWildcardHostname: `namespace/dnsName` (Gateway: `dnsName` too)."""
    namespace, slash, name = host.partition("/")
    if not slash:
        if gateway:
            return _check_host_part(host, gateway=True)
        return "host must be of form namespace/dnsName"
    if not namespace or not name:
        return "config namespace and dnsName in host entry cannot be empty"
    if gateway:
        if namespace not in ("*", ".") and not is_dns1123_label(namespace):
            return f"invalid namespace value {namespace!r} in gateway"
    else:
        bare = namespace.removeprefix("~")
        if bare not in ("", "*", ".") and not is_dns1123_label(bare):
            return f"invalid namespace value {namespace!r} in sidecar"
    return _check_host_part(name, gateway=gateway)


def _check_host_part(name: str, *, gateway: bool) -> str | None:
    if name != "*" and "." not in name:
        return "short names (non FQDN) are not allowed"
    problem = check_wildcard_domain(name)
    if problem and not (gateway and is_ip(name)):
        return problem
    return check_partial_wildcard(name)


CLUSTER_SUFFIX = "svc.cluster.local"


def to_fqdn(host: str, namespace: str) -> str:
    """`reviews` named in `default` -> `reviews.default.svc.cluster.local`; others unchanged
    (Istio resolves a short name in the namespace of the resource that names it)."""
    if host.startswith("*") or "." in host:
        return host
    return f"{host}.{namespace}.{CLUSTER_SUFFIX}"


def short_names(host: str, namespace: str) -> tuple[str, ...]:
    """The shorter names a proxy in `namespace` (DNS domain `<namespace>.svc.cluster.local`)
    resolves to `host` (pilot GenerateAltVirtualHosts): `name`, only from the host's own
    namespace, then `name.ns` and `name.ns.svc`; none for hosts outside `svc.cluster.local`.
    Whatever registry the host comes from (Service or ServiceEntry), as Istio does. A wildcard
    host is not expanded: Istio would give `*.default` and `*`, a catch-all, from `*.default...`.
    """
    head = host.removesuffix("." + CLUSTER_SUFFIX)
    name, _, host_namespace = head.partition(".")
    if head == host or not host_namespace or host.startswith("*"):
        return ()
    own = (name,) if host_namespace == namespace else ()
    return (*own, head, f"{head}.svc")


def host_matches(a: str, b: str) -> bool:
    """Istio host.Name.Matches: equal, or one wildcard covers the other."""
    if a == "*" or b == "*":
        return True
    wild_a, wild_b = a.startswith("*"), b.startswith("*")
    if wild_a and wild_b:
        return a[1:].endswith(b[1:]) or b[1:].endswith(a[1:])
    if wild_a:
        return b.endswith(a[1:])
    if wild_b:
        return a.endswith(b[1:])
    return a == b


def host_subset_of(a: str, b: str) -> bool:
    """Istio host.Name.SubsetOf: every host `a` matches is matched by `b`."""
    if b == "*":
        return True
    if b.startswith("*"):
        return a[1:].endswith(b[1:]) if a.startswith("*") else a.endswith(b[1:])
    return a == b


def check_labels(labels: Mapping[str, str]) -> str | None:
    """labels.Instance.Validate: Kubernetes qualified names and label values."""
    for key, value in labels.items():
        prefix, slash, name = key.rpartition("/")
        if slash and check_fqdn(prefix) is not None:
            return f"invalid tag key: {key!r}"
        if len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
            return f"invalid tag key: {key!r}"
        if value and (len(value) > 63 or not _QUALIFIED_NAME.fullmatch(value)):
            return f"invalid tag value: {value!r}"
    return None


def check_port(number: int) -> str | None:
    """ValidatePort."""
    return None if 1 <= number <= 65535 else f"port number {number} must be in the range 1..65535"


def check_port_name(name: str) -> str | None:
    """ValidatePortName: a DNS-1123 label."""
    return None if is_dns1123_label(name) else f"invalid port name: {name}"


def check_protocol(name: str) -> str | None:
    """ValidateProtocol: empty (sniffed) or one Istio knows."""
    if name and name.upper() not in PROTOCOLS:
        return f"unsupported protocol: {name}"
    return None


def check_unix_address(path: str) -> str | None:
    """ValidateUnixAddress: an absolute file path or an abstract socket (@name)."""
    if not path:
        return "unix address must not be empty"
    if path.startswith("@"):
        return None
    if not path.startswith("/") or path.endswith("/"):
        return f"{path} is not an absolute path to a file"
    return None


def check_gateway_name(name: str) -> str | None:
    """validateGatewayNames: `namespace/name` (DNS labels), or a legacy FQDN such as `mesh`."""
    namespace, slash, gateway = name.partition("/")
    if not slash:
        return check_fqdn(name)
    if not namespace or not gateway:
        return "config namespace and gateway name cannot be empty"
    if not is_dns1123_label(namespace):
        return f"invalid value for namespace: {namespace!r}"
    if not is_dns1123_label(gateway):
        return f"invalid value for gateway name: {gateway!r}"
    return None


def is_jwt_claim(name: str) -> bool:
    return name.startswith(JWT_CLAIM_PREFIX + ".") or name.startswith(JWT_CLAIM_PREFIX + "[")


def check_match_header_name(name: str) -> str | None:
    """ValidateHTTPHeaderNameOrJwtClaimRoute; keys lower-case as the HTTPMatchRequest doc says."""
    if not name:
        return "header name cannot be empty"
    if is_jwt_claim(name) or name in _PSEUDO_HEADERS:
        return None
    if not _HEADER_NAME.fullmatch(name):
        return f"header name {name} is not a valid header name"
    if name != name.lower():
        return f"header name {name} must be lowercase"
    return None


def check_cors_header_name(name: str) -> str | None:
    """ValidateCORSHTTPHeaderName."""
    if not name:
        return "header name cannot be empty"
    if name != "*" and not _HEADER_NAME.fullmatch(name):
        return f"header name {name} is not a valid header name"
    return None


def check_header_value(value: str) -> str | None:
    """ValidateHTTPHeaderValue: no control characters."""
    if not _HEADER_VALUE.fullmatch(value):
        return f"header value configuration {value!r} is invalid"
    return None


def check_export_to(entries: Iterable[str], *, service_entry: bool = False) -> str | None:
    """validateExportTo: `.`, `*`, namespace names (and `~` for ServiceEntry), no duplicates."""
    seen: set[str] = set()
    items = list(entries)
    for entry in items:
        if entry in seen:
            return f"duplicate entries in exportTo for entry {entry}"
        seen.add(entry)
        if entry in (".", "*") or (service_entry and entry == "~"):
            continue
        if not is_dns1123_label(entry):
            return (
                f"only . or * or valid DNS 1123 label is allowed as exportTo entry, got {entry!r}"
            )
    if "*" in seen and len(items) > 1:
        return "cannot have both public (*) and non-public exportTo values for a resource"
    if "~" in seen and len(items) > 1:
        return "cannot export service entry to no one (~) and someone"
    return None
