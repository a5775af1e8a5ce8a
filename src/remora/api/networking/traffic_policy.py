"""DestinationRule traffic policy: load balancing, connection pools, outlier detection, client TLS.

Rules follow istio/istio pkg/config/validation/validation.go (validateTrafficPolicy,
validateLoadBalancer, validateConnectionPool, validateOutlierDetection, validateTunnelSettings,
validateProxyProtocol, validatePortTrafficPolicies) and agent/validation.go (ValidateTLS,
ValidateLocalityLbSetting, ValidateZoneAwareLbSetting).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, model_validator

from remora.api.base import Duration, Spec, fail
from remora.api.common import Int32, NonNegativeInt32, PortSelector, UInt32, UInt64
from remora.api.networking import names
from remora.api.networking.shared import MsDuration

Percent0To100 = Annotated[int, Field(ge=0, le=100)]
TOPOLOGY_LABELS = frozenset(
    {"topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone"}
)
MAGLEV_TABLE_LIMIT = 5000011


def is_prime(value: int) -> bool:
    """Envoy's Primes::isPrime, which Istio copies for maglev tableSize."""
    if 0 < value < 4:
        return True
    if value % 2 == 0:
        return False
    return all(value % f for f in range(3, math.isqrt(value) + 1, 2))


class RingHash(Spec):
    minimum_ring_size: UInt64 | None = None


class MagLev(Spec):
    table_size: UInt64 | None = None

    @model_validator(mode="after")
    def _valid(self) -> MagLev:
        size = self.table_size or 0
        if size == 0:
            fail("tableSize must be set for maglev", "tableSize")
        if size >= MAGLEV_TABLE_LIMIT:
            fail(f"tableSize must be less than {MAGLEV_TABLE_LIMIT} for maglev", "tableSize")
        if not is_prime(size):
            fail("tableSize must be a prime number for maglev", "tableSize")
        return self


class CookieAttribute(Spec):
    name: str
    value: str | None = None


class HTTPCookie(Spec):
    """Hash on a cookie; Envoy generates it (with path and ttl) when absent."""

    name: str
    path: str | None = None
    ttl: Duration | None = None
    attributes: list[CookieAttribute] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid(self) -> HTTPCookie:
        if not self.name:
            fail("name required for HttpCookie", "name")
        seen: set[str] = set()
        for position, attribute in enumerate(self.attributes):
            if not attribute.name:
                fail("cookie attribute name cannot be empty", "attributes", position, "name")
            if attribute.name in seen:
                fail(f"duplicate cookie attribute name: {attribute.name}", "attributes", position)
            seen.add(attribute.name)
        return self


class ConsistentHashLB(Spec):
    """Session affinity: exactly one hash key, ringHash (default) or maglev."""

    http_header_name: str | None = None
    http_cookie: HTTPCookie | None = None
    use_source_ip: bool | None = None
    http_query_parameter_name: str | None = None
    ring_hash: RingHash | None = None
    maglev: MagLev | None = None
    minimum_ring_size: UInt64 | None = None  # deprecated: ringHash.minimumRingSize

    @model_validator(mode="after")
    def _valid(self) -> ConsistentHashLB:
        keys = [self.http_header_name, self.http_cookie, self.use_source_ip,
                self.http_query_parameter_name]  # fmt: skip
        set_keys = sum(key is not None for key in keys)
        if set_keys != 1:  # proto oneof hash_key; Envoy needs a key to hash on
            fail("exactly one of httpHeaderName, httpCookie, useSourceIp or "
                 "httpQueryParameterName must be set")  # fmt: skip
        if self.ring_hash is not None and self.maglev is not None:
            fail("only one of ringHash or maglev may be set", "maglev")
        if self.minimum_ring_size and (self.ring_hash is not None or self.maglev is not None):
            fail("only one of minimumRingSize or maglev/ringHash can be specified",
                 "minimumRingSize")  # fmt: skip
        return self

    @property
    def ring_size(self) -> int:
        """Minimum ring size for ring hash: ringHash's, the deprecated field's, else 1024."""
        if self.ring_hash is not None and self.ring_hash.minimum_ring_size:
            return self.ring_hash.minimum_ring_size
        return self.minimum_ring_size or 1024


class Distribute(Spec):
    from_: str | None = Field(default=None, alias="from")
    to: dict[str, UInt32] = Field(default_factory=dict)


class Failover(Spec):
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None


def _check_localities(localities: list[str]) -> str | None:
    """validateLocalities: one trailing `*` at most, no empty parts, no overlaps."""
    seen: list[tuple[str, ...]] = []
    for locality in localities:
        stars = locality.count("*")
        if stars > 1 or (stars == 1 and not locality.endswith("*")):
            return (
                f"locality {locality} wildcard '*' number can not exceed 1 and must be in the end"
            )
        parts = tuple(locality.split("/", 2))
        if any(not part for part in parts):
            return f"locality {locality} must not contain empty region/zone/subzone info"
        if parts[-1] == "*":  # "us/*" covers what "us" covers
            parts = parts[:-1]
        for other in seen:
            shorter = min(len(parts), len(other))
            if parts[:shorter] == other[:shorter]:
                return f"locality {locality} overlap with previous specified ones"
        seen.append(parts)
    return None


class LocalityLoadBalancerSetting(Spec):
    """Locality-weighted distribution or failover; Istio enables it by default."""

    distribute: list[Distribute] = Field(default_factory=list)
    failover: list[Failover] = Field(default_factory=list)
    failover_priority: list[str] = Field(default_factory=list)
    enabled: bool | None = None

    @model_validator(mode="after")
    def _valid(self) -> LocalityLoadBalancerSetting:
        if self.distribute and self.failover:
            fail("can not simultaneously specify 'distribute' and 'failover'", "failover")
        if self.distribute and self.failover_priority:  # proto doc: only one of the three
            fail("can not simultaneously specify 'distribute' and 'failoverPriority'",
                 "failoverPriority")  # fmt: skip
        if self.failover:
            for position, label in enumerate(self.failover_priority):
                if label in TOPOLOGY_LABELS:
                    fail(f"can not simultaneously set 'failover' and topology label '{label}' "
                         "in 'failoverPriority'", "failoverPriority", position)  # fmt: skip
        for position, rule in enumerate(self.distribute):
            if any(not 1 <= weight <= 100 for weight in rule.to.values()):
                fail("locality weight must be in range [1, 100]", "distribute", position, "to")
            if (total := sum(rule.to.values())) != 100:
                fail(f"total locality weight {total} != 100", "distribute", position, "to")
            if problem := _check_localities(list(rule.to)):
                fail(problem, "distribute", position, "to")
        if problem := _check_localities([d.from_ or "" for d in self.distribute]):
            fail(problem, "distribute")
        for position, failover in enumerate(self.failover):
            if problem := _check_failover(failover):
                fail(problem, "failover", position)
        return self


def _check_failover(rule: Failover) -> str | None:
    ends = (rule.from_ or "", rule.to or "")
    if ends[0] == ends[1]:
        return "locality lb failover settings must specify different regions"
    if any("/" in end for end in ends):
        return "locality lb failover only specify region"
    if any("*" in end for end in ends):
        return "locality lb failover region should not contain '*' wildcard"
    return None


class ZoneAwareLoadBalancerSetting(Spec):
    """Envoy zone-aware routing with cross-region failover."""

    enabled: bool | None = None
    failover: list[Failover] = Field(default_factory=list)
    failover_priority: list[str] = Field(default_factory=list)
    min_cluster_size: UInt64 | None = None

    @model_validator(mode="after")
    def _valid(self) -> ZoneAwareLoadBalancerSetting:
        for position, label in enumerate(self.failover_priority):
            if label in TOPOLOGY_LABELS:
                fail(f"'failoverPriority' for zone aware lb must not use topology label '{label}'",
                     "failoverPriority", position)  # fmt: skip
        for position, rule in enumerate(self.failover):
            if problem := _check_failover(rule):
                fail(problem.replace("locality lb", "zone aware lb"), "failover", position)
        return self


class WarmupConfiguration(Spec):
    """Slow start: ramp a new endpoint's share over `duration`."""

    duration: MsDuration | None = None
    minimum_percent: Annotated[float, Field(ge=0, le=100)] | None = None
    aggression: float | None = None

    @model_validator(mode="after")
    def _valid(self) -> WarmupConfiguration:
        if self.duration is None:
            fail("duration is required", "duration")
        if self.aggression is not None and self.aggression <= 0:
            fail("aggression should be greater than 0", "aggression")
        return self


SimpleLB = Literal["UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN",
                   "LEAST_REQUEST"]  # fmt: skip


class LoadBalancerSettings(Spec):
    """`simple` or `consistentHash`, plus locality settings and warm-up."""

    simple: SimpleLB | None = None
    consistent_hash: ConsistentHashLB | None = None
    locality_lb_setting: LocalityLoadBalancerSetting | None = None
    zone_aware_lb_setting: ZoneAwareLoadBalancerSetting | None = None
    warmup_duration_secs: Duration | None = None
    warmup: WarmupConfiguration | None = None

    @model_validator(mode="after")
    def _valid(self) -> LoadBalancerSettings:
        if self.simple is not None and self.consistent_hash is not None:  # proto oneof lb_policy
            fail("only one of simple or consistentHash may be set", "consistentHash")
        if self.locality_lb_setting is not None and self.zone_aware_lb_setting is not None:
            fail("only one of localityLbSetting and zoneAwareLbSetting can be set",
                 "zoneAwareLbSetting")  # fmt: skip
        if self.warmup_duration_secs is not None and self.warmup is not None:  # CRD XValidation
            fail("only one of warmupDurationSecs or warmup can be set", "warmup")
        return self


class TcpKeepalive(Spec):
    probes: UInt32 | None = None
    time: MsDuration | None = None
    interval: MsDuration | None = None


class TCPSettings(Spec):
    """Upstream TCP connection limits and timeouts."""

    max_connections: NonNegativeInt32 | None = None
    connect_timeout: MsDuration | None = None
    tcp_keepalive: TcpKeepalive | None = None
    max_connection_duration: MsDuration | None = None
    idle_timeout: Duration | None = None  # 0s disables it; otherwise ValidateDuration

    @model_validator(mode="after")
    def _valid(self) -> TCPSettings:
        if self.idle_timeout and round(self.idle_timeout * 1000) < 1:
            fail("duration must be at least 1ms", "idleTimeout")
        return self


class ConnectionKeepalive(Spec):
    interval: MsDuration | None = None
    timeout: MsDuration | None = None

    @model_validator(mode="after")
    def _valid(self) -> ConnectionKeepalive:
        if self.interval is None:
            fail("http2 keepalive interval is required", "interval")
        if self.timeout is None:
            fail("http2 keepalive timeout is required", "timeout")
        return self


class HTTPSettings(Spec):
    """Upstream HTTP limits: pending requests, concurrent requests, retries, keep-alive."""

    http1_max_pending_requests: NonNegativeInt32 | None = None
    http2_max_requests: NonNegativeInt32 | None = None
    max_requests_per_connection: NonNegativeInt32 | None = None
    max_retries: NonNegativeInt32 | None = None
    idle_timeout: MsDuration | None = None
    h2_upgrade_policy: Literal["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"] | None = None
    use_client_protocol: bool | None = None
    max_concurrent_streams: NonNegativeInt32 | None = None
    http2_keep_alive: ConnectionKeepalive | None = None

    @model_validator(mode="after")
    def _valid(self) -> HTTPSettings:
        if self.h2_upgrade_policy == "UPGRADE" and self.use_client_protocol:
            fail("use client protocol must not be true when H2UpgradePolicy is UPGRADE",
                 "useClientProtocol")  # fmt: skip
        return self


class ConnectionPoolSettings(Spec):
    """Circuit-breaking limits for TCP and HTTP connections to the upstream."""

    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None

    @model_validator(mode="after")
    def _valid(self) -> ConnectionPoolSettings:
        if self.tcp is None and self.http is None:
            fail("connection pool must have at least one field")
        return self


class OutlierDetection(Spec):
    """Passive health checking: eject hosts after consecutive errors."""

    consecutive_errors: Int32 | None = None  # deprecated
    split_external_local_origin_errors: bool | None = None
    consecutive_local_origin_failures: UInt32 | None = None
    consecutive_gateway_errors: UInt32 | None = None
    consecutive_5xx_errors: UInt32 | None = Field(default=None, alias="consecutive5xxErrors")
    interval: MsDuration | None = None
    base_ejection_time: MsDuration | None = None
    max_ejection_percent: Percent0To100 | None = None
    min_health_percent: Percent0To100 | None = None
    outlier_detection_http_error_codes: list[UInt32] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid(self) -> OutlierDetection:
        if not self.split_external_local_origin_errors and self.consecutive_local_origin_failures:
            fail("outlier detection consecutive local origin failures is specified, but split "
                 "external local origin errors is set to false",
                 "consecutiveLocalOriginFailures")  # fmt: skip
        return self


class ClientTLSSettings(Spec):
    """TLS from the proxy to the upstream: DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL."""

    mode: Literal["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"] | None = None
    client_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    credential_name: str | None = None
    subject_alt_names: list[str] = Field(default_factory=list)
    sni: str | None = None
    insecure_skip_verify: bool | None = None
    ca_crl: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> ClientTLSSettings:
        # agent.ValidateTLS
        if self.insecure_skip_verify:
            if self.mode == "SIMPLE" and (
                self.ca_certificates or self.credential_name or self.subject_alt_names
            ):
                fail("cannot specify caCertificates or credentialName or subjectAltNames when "
                     "insecureSkipVerify is set true")  # fmt: skip
            if self.mode == "MUTUAL" and (self.ca_certificates or self.subject_alt_names):
                fail("cannot specify caCertificates or subjectAltNames when insecureSkipVerify "
                     "is set true")  # fmt: skip
        if self.mode in ("SIMPLE", "MUTUAL") and self.credential_name:
            if self.client_certificate or self.ca_certificates or self.private_key or self.ca_crl:
                fail("cannot specify client certificates or CA certificate or CA CRL if "
                     "credentialName is set")  # fmt: skip
            return self
        if self.mode == "MUTUAL":
            if not self.client_certificate:
                fail("client certificate required for mutual tls", "clientCertificate")
            if not self.private_key:
                fail("private key required for mutual tls", "privateKey")
        if self.mode == "ISTIO_MUTUAL":  # proto doc: no other fields with ISTIO_MUTUAL
            for field, alias in (("client_certificate", "clientCertificate"),
                                 ("private_key", "privateKey"),
                                 ("ca_certificates", "caCertificates"),
                                 ("credential_name", "credentialName"),
                                 ("ca_crl", "caCrl")):  # fmt: skip
                if getattr(self, field):
                    fail(f"{alias} must not be set when mode is ISTIO_MUTUAL", alias)
        return self


class TunnelSettings(Spec):
    """Tunnel TCP over HTTP CONNECT or POST to targetHost:targetPort."""

    protocol: str | None = None
    target_host: str
    target_port: UInt32

    @model_validator(mode="after")
    def _valid(self) -> TunnelSettings:
        if self.protocol and self.protocol not in ("CONNECT", "POST"):
            fail('tunnel protocol must be "CONNECT" or "POST"', "protocol")
        if names.check_fqdn(self.target_host) and not names.is_ip(self.target_host):
            fail("tunnel target host must be valid FQDN or IP address", "targetHost")
        if problem := names.check_port(self.target_port):
            fail(f"tunnel target port is invalid: {problem}", "targetPort")
        return self


class ProxyProtocol(Spec):
    version: Literal["V1", "V2"] | None = None


class RetryBudget(Spec):
    percent: Annotated[float, Field(ge=0, le=100)] | None = None
    min_retry_concurrency: UInt32 | None = None
    budget_interval: Duration | None = None


class PortTrafficPolicy(Spec):
    """Policy for one port; overrides the rule-level policy without inheriting from it."""

    port: PortSelector | None = None
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None

    @model_validator(mode="after")
    def _valid(self) -> PortTrafficPolicy:
        # validatePortTrafficPolicies
        if self.port is None:
            fail("portTrafficPolicy must have valid port", "port")
        if problem := names.check_port(self.port.number or 0):
            fail(problem, "port", "number")
        parts = (self.load_balancer, self.connection_pool, self.outlier_detection, self.tls)
        if all(part is None for part in parts):
            fail("port traffic policy must have at least one field")
        return self


class TrafficPolicy(Spec):
    """Policies applied to traffic for a destination (or a subset, or a port)."""

    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    port_level_settings: Annotated[list[PortTrafficPolicy], Field(max_length=4096)] = Field(
        default_factory=list
    )
    tunnel: TunnelSettings | None = None
    proxy_protocol: ProxyProtocol | None = None
    retry_budget: RetryBudget | None = None

    @model_validator(mode="after")
    def _valid(self) -> TrafficPolicy:
        # validateTrafficPolicy
        parts = (self.load_balancer, self.connection_pool, self.outlier_detection, self.tls,
                 self.tunnel, self.proxy_protocol, self.retry_budget)  # fmt: skip
        if all(part is None for part in parts) and not self.port_level_settings:
            fail("traffic policy must have at least one field")
        if self.tunnel is not None and self.proxy_protocol is not None:
            fail("tunnel and proxyProtocol must not be set together", "proxyProtocol")
        return self

    def for_port(self, port: int | None) -> PortTrafficPolicy | None:
        """The port-level settings for `port`, if any."""
        for settings in self.port_level_settings:
            if settings.port is not None and settings.port.number == port:
                return settings
        return None


__all__ = [
    "ClientTLSSettings", "ConnectionKeepalive", "ConnectionPoolSettings", "ConsistentHashLB",
    "CookieAttribute", "Distribute", "Failover", "HTTPCookie", "HTTPSettings",
    "LoadBalancerSettings", "LocalityLoadBalancerSetting", "MagLev", "OutlierDetection",
    "PortTrafficPolicy", "ProxyProtocol", "RetryBudget", "RingHash", "TCPSettings",
    "TcpKeepalive", "TrafficPolicy", "TunnelSettings", "WarmupConfiguration",
    "ZoneAwareLoadBalancerSetting",
]  # fmt: skip
