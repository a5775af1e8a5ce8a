"""What the registry and config center accept, as Nacos restricts it, checked at construction.

Each check raises RegistryError naming the field, so the Nacos API answers its 400
`caused: ...;` and a store never holds a value a proxy cannot use:

- instance `ip`: only digits and dots → a valid IPv4 address (Nacos Instance.validate:
  "Your IP address is spelled incorrectly"); with a `:` → an IPv6 address (Nacos
  InternetAddressUtil.isIPv6, brackets allowed); else a DNS name. Nacos accepts any host name
  since #963 without checking it; Remora checks RFC 1123 syntax because every proxy must
  connect to it (`bad_host!` once made every proxy NACK every push).
- `port` 1–65535 (a Kubernetes EndpointPort's range: port 0 cannot be connected to).
- `weight` 0.0–10000.0 (Nacos Instance.validate: "The weights range from 0.0 to 10000.0").
- service names `[0-9a-zA-Z@.:_-]` (Nacos Service.SERVICE_NAME_SYNTAX), clusters
  `[0-9a-zA-Z-]` (NamingUtils.checkInstanceIsLegal), groups, dataIds and tenants letters,
  digits and `_-.:` (ParamUtils.isValid); namespaces at most 128 characters (ParamUtils
  TENANT_MAX_LEN), other names at most 255 (Nacos's config_info.data_id column).
- metadata: at most 256 KiB of keys and values (Kubernetes' limit on an object's annotations).
- config content at most 10 MiB characters (Nacos PropertyUtil maxContent default:
  "invalid content, over 10485760").
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from remora.errors import RemoraError

MIN_PORT, MAX_PORT = 1, 65535
MAX_WEIGHT = 10000.0
MAX_TENANT = 128
MAX_NAME = 255
MAX_METADATA_BYTES = 256 * 1024
MAX_CONTENT = 10 * 1024 * 1024

_DIGITS_AND_DOTS = re.compile(r"[\d.]+")
_DNS_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_SERVICE_NAME = re.compile(r"[0-9a-zA-Z@.:_-]+")
_CLUSTER_NAME = re.compile(r"[0-9a-zA-Z-]+")
_PARAM_EXTRA = frozenset("_-.:")


class RegistryError(RemoraError):
    """A registry request Nacos would refuse (bad value, unknown service, non-empty delete)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@contextmanager
def stored_record() -> Iterator[None]:
    """Decoding a stored record: one these checks now refuse (written before they existed)
    is undecodable (ValueError), so readers skip it with a warning instead of failing on it."""
    try:
        yield
    except RegistryError as exc:
        raise ValueError(f"stored record no longer valid: {exc}") from None


def check_ip(ip: str) -> None:
    """An IPv4 or IPv6 address, or a DNS name a proxy can resolve."""
    if _DIGITS_AND_DOTS.fullmatch(ip):
        _parse(ipaddress.IPv4Address, ip, "an IPv4 address")
    elif ":" in ip:
        _parse(ipaddress.IPv6Address, ip.removeprefix("[").removesuffix("]"), "an IPv6 address")
    elif len(ip) > 253 or not all(_DNS_LABEL.fullmatch(label)
                                   for label in ip.removesuffix(".").split(".")):
        raise RegistryError(f"instance format invalid: ip {ip!r} is not an IPv4 or IPv6 "
                            "address or a DNS name (RFC 1123)")


def _parse(kind: type[ipaddress.IPv4Address | ipaddress.IPv6Address], text: str,
           what: str) -> None:
    try:
        kind(text)
    except ValueError:
        raise RegistryError(f"instance format invalid: Your IP address is spelled incorrectly "
                            f"(ip {text!r} is not {what})") from None


def check_port(port: int) -> None:
    if not MIN_PORT <= port <= MAX_PORT:
        raise RegistryError(f"port must be between {MIN_PORT} and {MAX_PORT}, got {port}")


def check_weight(weight: float) -> None:
    if not (math.isfinite(weight) and 0.0 <= weight <= MAX_WEIGHT):
        raise RegistryError("instance format invalid: The weights range from 0.0 to "
                            f"{MAX_WEIGHT} (weight {weight})")


def check_service_name(name: str) -> None:
    _check_length("serviceName", name)
    if not _SERVICE_NAME.fullmatch(name):
        raise RegistryError("serviceName can only have these characters: 0-9a-zA-Z@.:_-, "
                            f"current: {name!r}")


def check_cluster_name(name: str) -> None:
    _check_length("clusterName", name)
    if not _CLUSTER_NAME.fullmatch(name):
        raise RegistryError("Instance 'clusterName' should be characters with only 0-9a-zA-Z-. "
                            f"(current: {name})")


def check_param(what: str, value: str) -> None:
    """ParamUtils.isValid: letters, digits and `_-.:` only (groups, dataIds, namespaces)."""
    _check_length(what, value, MAX_TENANT if what in ("tenant", "namespaceId") else MAX_NAME)
    if not all(ch.isalnum() or ch in _PARAM_EXTRA for ch in value):
        raise RegistryError(f"invalid {what}: {value!r} (letters, digits and _-.: only)")


def _check_length(what: str, value: str, limit: int = MAX_NAME) -> None:
    if not value:
        raise RegistryError(f"{what} must not be empty")
    if len(value) > limit:
        raise RegistryError(f"too long {what}, over {limit} characters")


def check_metadata(metadata: Mapping[str, str]) -> None:
    size = sum(len(key.encode()) + len(value.encode()) for key, value in metadata.items())
    if size > MAX_METADATA_BYTES:
        raise RegistryError(f"metadata is too long: {size} bytes, "
                            f"the limit is {MAX_METADATA_BYTES}")


def check_content(content: str) -> None:
    if len(content) > MAX_CONTENT:
        raise RegistryError(f"invalid content, over {MAX_CONTENT}")
