# ruff: noqa: E501  (expected messages are quoted whole)
"""DestinationRule validation as istio/istio validates it (ValidateDestinationRule,
validateTrafficPolicy, validateLoadBalancer, validateConnectionPool, validateOutlierDetection,
agent.ValidateTLS, agent.ValidateLocalityLbSetting); a failing and a passing case per rule."""

from __future__ import annotations

from textwrap import dedent, indent

import pytest

from remora.api.loader import load_text
from remora.api.networking.destination_rule import DestinationRule


def load(spec: str) -> list[str]:
    text = ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: r\n"
            f"spec:\n{indent(dedent(spec), '  ')}")  # fmt: skip
    return [f"{issue.path}: {issue.message}" for issue in load_text(text, "dr.yaml").issues]


def tp(policy: str) -> str:
    return f"host: reviews\ntrafficPolicy: {policy}"


CASES = [
    ("host-required", "subsets: [{name: v1}]", "spec.host: required field is missing"),
    (
        "host-invalid",
        "host: Reviews_svc",
        "spec.host: domain name 'Reviews_svc' invalid (label 'Reviews_svc' invalid)",
    ),
    ("host-ok", "host: reviews.shop.svc.cluster.local", None),
    ("host-wildcard-ok", "host: '*.example.com'", None),
    # ValidateDestinationRule / validateSubsetName
    (
        "subset-dup",
        "host: r\nsubsets: [{name: v1, labels: {version: v1}}, {name: v1}]",
        "spec.subsets[1].name: duplicate subset names: v1",
    ),
    (
        "subset-empty",
        "host: r\nsubsets: [{name: ''}]",
        "spec.subsets[0].name: subset name cannot be empty",
    ),
    (
        "subset-missing-name",
        "host: r\nsubsets: [{labels: {a: b}}]",
        "spec.subsets[0].name: required field is missing",
    ),
    (
        "subset-bad-label",
        "host: r\nsubsets: [{name: v1, labels: {version: 'v 1'}}]",
        "spec.subsets[0].labels: invalid tag value: 'v 1'",
    ),
    (
        "subsets-ok",
        "host: r\nsubsets: [{name: v1, labels: {version: v1}}, "
        "{name: v2, labels: {version: v2}, trafficPolicy: {loadBalancer: {simple: RANDOM}}}]",
        None,
    ),
    # validateTrafficPolicy
    ("policy-empty", tp("{}"), "spec.trafficPolicy: traffic policy must have at least one field"),
    (
        "subset-policy-empty",
        "host: r\nsubsets: [{name: v1, trafficPolicy: {}}]",
        "spec.subsets[0].trafficPolicy: traffic policy must have at least one field",
    ),
    (
        "tunnel-and-proxy-protocol",
        tp("{tunnel: {targetHost: a.com, targetPort: 443}, proxyProtocol: {version: V2}}"),
        "spec.trafficPolicy.proxyProtocol: tunnel and proxyProtocol must not be set together",
    ),
    (
        "tunnel-protocol",
        tp("{tunnel: {protocol: GET, targetHost: a.com, targetPort: 443}}"),
        'spec.trafficPolicy.tunnel.protocol: tunnel protocol must be "CONNECT" or "POST"',
    ),
    (
        "tunnel-ok",
        tp("{tunnel: {protocol: CONNECT, targetHost: 10.0.0.1, targetPort: 8443}}"),
        None,
    ),
    (
        "proxy-protocol-bad",
        tp("{proxyProtocol: {version: V3}}"),
        "spec.trafficPolicy.proxyProtocol.version: must be one of 'V1' or 'V2', got string 'V3'",
    ),
    # loadBalancer
    (
        "simple-bad",
        tp("{loadBalancer: {simple: FASTEST}}"),
        "spec.trafficPolicy.loadBalancer.simple: must be one of 'UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN' or 'LEAST_REQUEST', got string 'FASTEST'",
    ),
    ("simple-ok", tp("{loadBalancer: {simple: LEAST_REQUEST}}"), None),
    (
        "simple-and-hash",
        tp("{loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: true}}}"),
        "spec.trafficPolicy.loadBalancer.consistentHash: only one of simple or consistentHash may be set",
    ),
    (
        "hash-two-keys",
        tp("{loadBalancer: {consistentHash: {httpHeaderName: x-user, useSourceIp: true}}}"),
        "spec.trafficPolicy.loadBalancer.consistentHash: exactly one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName must be set",
    ),
    (
        "hash-no-key",
        tp("{loadBalancer: {consistentHash: {ringHash: {minimumRingSize: 1024}}}}"),
        "spec.trafficPolicy.loadBalancer.consistentHash: exactly one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName must be set",
    ),
    (
        "hash-cookie-ok",
        tp(
            "{loadBalancer: {consistentHash: {httpCookie: {name: user, path: /, ttl: 0s}, ringHash: {minimumRingSize: 2048}}}}"
        ),
        None,
    ),
    (
        "hash-cookie-no-name",
        tp("{loadBalancer: {consistentHash: {httpCookie: {name: '', ttl: 10s}}}}"),
        "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name: name required for HttpCookie",
    ),
    (
        "hash-query-ok",
        tp(
            "{loadBalancer: {consistentHash: {httpQueryParameterName: uid, maglev: {tableSize: 65537}}}}"
        ),
        None,
    ),
    (
        "maglev-not-prime",
        tp("{loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 1000}}}}"),
        "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: tableSize must be a prime number for maglev",
    ),
    (
        "ring-and-min-ring",
        tp(
            "{loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 10, ringHash: {}}}}"
        ),
        "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize: only one of minimumRingSize or maglev/ringHash can be specified",
    ),
    (
        "min-ring-deprecated-ok",
        tp("{loadBalancer: {consistentHash: {httpHeaderName: x-user, minimumRingSize: 512}}}"),
        None,
    ),
    # localityLbSetting (agent.ValidateLocalityLbSetting)
    (
        "locality-distribute-failover",
        tp(
            "{loadBalancer: {localityLbSetting: {distribute: [{from: 'us/*', to: {'us/*': 100}}], failover: [{from: us, to: eu}]}}}"
        ),
        "spec.trafficPolicy.loadBalancer.localityLbSetting.failover: can not simultaneously specify 'distribute' and 'failover'",
    ),
    (
        "locality-distribute-priority",
        tp(
            "{loadBalancer: {localityLbSetting: {distribute: [{from: 'us/*', to: {'us/*': 100}}], failoverPriority: [x]}}}"
        ),
        "spec.trafficPolicy.loadBalancer.localityLbSetting.failoverPriority: can not simultaneously specify 'distribute' and 'failoverPriority'",
    ),
    (
        "locality-weight-total",
        tp(
            "{loadBalancer: {localityLbSetting: {distribute: [{from: 'us/*', to: {'us/z1/*': 60, 'us/z2/*': 30}}]}}}"
        ),
        "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to: total locality weight 90 != 100",
    ),
    (
        "locality-distribute-ok",
        tp(
            "{loadBalancer: {localityLbSetting: {enabled: true, distribute: [{from: 'us-west/zone1/*', to: {'us-west/zone1/*': 80, 'us-west/zone2/*': 20}}]}}}"
        ),
        None,
    ),
    (
        "locality-failover-same",
        tp(
            "{loadBalancer: {localityLbSetting: {failover: [{from: us, to: us}]}}, outlierDetection: {consecutive5xxErrors: 1}}"
        ),
        "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]: locality lb failover settings must specify different regions",
    ),
    (
        "locality-failover-ok",
        tp(
            "{loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: eu-west}]}}, outlierDetection: {consecutive5xxErrors: 1}}"
        ),
        None,
    ),
    (
        "locality-priority-ok",
        tp(
            "{loadBalancer: {localityLbSetting: {failoverPriority: [topology.istio.io/network, topology.kubernetes.io/region]}}}"
        ),
        None,
    ),
    (
        "locality-failover-topology",
        tp(
            "{loadBalancer: {localityLbSetting: {failover: [{from: a, to: b}], failoverPriority: [topology.kubernetes.io/zone]}}}"
        ),
        "spec.trafficPolicy.loadBalancer.localityLbSetting.failoverPriority[0]: can not simultaneously set 'failover' and topology label 'topology.kubernetes.io/zone' in 'failoverPriority'",
    ),
    # warmup (validateLoadBalancer; CRD oneof warmupDurationSecs/warmup)
    (
        "warmup-both",
        tp(
            "{loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 30s, warmup: {duration: 30s}}}"
        ),
        "spec.trafficPolicy.loadBalancer.warmup: only one of warmupDurationSecs or warmup can be set",
    ),
    (
        "warmup-no-duration",
        tp("{loadBalancer: {warmup: {minimumPercent: 10}}}"),
        "spec.trafficPolicy.loadBalancer.warmup.duration: duration is required",
    ),
    (
        "warmup-aggression",
        tp("{loadBalancer: {warmup: {duration: 1m, aggression: 0}}}"),
        "spec.trafficPolicy.loadBalancer.warmup.aggression: aggression should be greater than 0",
    ),
    (
        "warmup-ok",
        tp(
            "{loadBalancer: {simple: LEAST_REQUEST, warmup: {duration: 1m, minimumPercent: 10, aggression: 1.5}}}"
        ),
        None,
    ),
    ("warmup-secs-ok", tp("{loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 60s}}"), None),
    # validateConnectionPool
    (
        "pool-empty",
        tp("{connectionPool: {}}"),
        "spec.trafficPolicy.connectionPool: connection pool must have at least one field",
    ),
    (
        "pool-negative",
        tp("{connectionPool: {tcp: {maxConnections: -1}}}"),
        "spec.trafficPolicy.connectionPool.tcp.maxConnections: must be >= 0",
    ),
    (
        "pool-http-negative",
        tp("{connectionPool: {http: {http1MaxPendingRequests: -5}}}"),
        "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests: must be >= 0",
    ),
    (
        "pool-upgrade-client",
        tp("{connectionPool: {http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}}"),
        "spec.trafficPolicy.connectionPool.http.useClientProtocol: use client protocol must not be true when H2UpgradePolicy is UPGRADE",
    ),
    (
        "pool-connect-timeout",
        tp("{connectionPool: {tcp: {connectTimeout: 0s}}}"),
        "spec.trafficPolicy.connectionPool.tcp.connectTimeout: duration must be at least 1ms",
    ),
    (
        "pool-keepalive-missing",
        tp("{connectionPool: {http: {http2KeepAlive: {interval: 10s}}}}"),
        "spec.trafficPolicy.connectionPool.http.http2KeepAlive.timeout: http2 keepalive timeout is required",
    ),
    (
        "pool-ok",
        tp(
            "{connectionPool: {tcp: {maxConnections: 100, connectTimeout: 30ms, idleTimeout: 0s, "
            "maxConnectionDuration: 1h, tcpKeepalive: {probes: 3, time: 7200s, interval: 75s}}, "
            "http: {http1MaxPendingRequests: 1, http2MaxRequests: 100, maxRequestsPerConnection: 1, "
            "maxRetries: 3, idleTimeout: 1h, h2UpgradePolicy: UPGRADE, maxConcurrentStreams: 10, "
            "http2KeepAlive: {interval: 10s, timeout: 3s}}}}"
        ),
        None,
    ),
    # validateOutlierDetection
    (
        "outlier-eject-percent",
        tp("{outlierDetection: {maxEjectionPercent: 101}}"),
        "spec.trafficPolicy.outlierDetection.maxEjectionPercent: must be <= 100",
    ),
    (
        "outlier-min-health",
        tp("{outlierDetection: {minHealthPercent: -1}}"),
        "spec.trafficPolicy.outlierDetection.minHealthPercent: must be >= 0",
    ),
    (
        "outlier-local-origin",
        tp("{outlierDetection: {consecutiveLocalOriginFailures: 3}}"),
        "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures: outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
    ),
    (
        "outlier-interval",
        tp("{outlierDetection: {interval: 0.5ms}}"),
        "spec.trafficPolicy.outlierDetection.interval: duration must be at least 1ms",
    ),
    (
        "outlier-ok",
        tp(
            "{outlierDetection: {consecutive5xxErrors: 5, consecutiveGatewayErrors: 3, interval: 10s, "
            "baseEjectionTime: 30s, maxEjectionPercent: 100, minHealthPercent: 50, "
            "splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 5, "
            "consecutiveErrors: 7}}"
        ),
        None,
    ),
    # agent.ValidateTLS and the ISTIO_MUTUAL doc
    (
        "tls-mutual-needs-cert",
        tp("{tls: {mode: MUTUAL, privateKey: /k.pem}}"),
        "spec.trafficPolicy.tls.clientCertificate: client certificate required for mutual tls",
    ),
    (
        "tls-mutual-ok",
        tp(
            "{tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem, sni: a.com, subjectAltNames: [a.com]}}"
        ),
        None,
    ),
    (
        "tls-mutual-credential",
        tp("{tls: {mode: MUTUAL, credentialName: cred, caCertificates: /ca.pem}}"),
        "spec.trafficPolicy.tls: cannot specify client certificates or CA certificate or CA CRL if credentialName is set",
    ),
    ("tls-mutual-credential-ok", tp("{tls: {mode: MUTUAL, credentialName: cred}}"), None),
    (
        "tls-istio-mutual-extra",
        tp("{tls: {mode: ISTIO_MUTUAL, caCertificates: /ca.pem}}"),
        "spec.trafficPolicy.tls.caCertificates: caCertificates must not be set when mode is ISTIO_MUTUAL",
    ),
    ("tls-istio-mutual-ok", tp("{tls: {mode: ISTIO_MUTUAL, sni: a.com}}"), None),
    (
        "tls-insecure",
        tp("{tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca.pem}}"),
        "spec.trafficPolicy.tls: cannot specify caCertificates or credentialName or subjectAltNames when insecureSkipVerify is set true",
    ),
    ("tls-simple-ok", tp("{tls: {mode: SIMPLE, insecureSkipVerify: true}}"), None),
    (
        "tls-mode-bad",
        tp("{tls: {mode: STRICT}}"),
        "spec.trafficPolicy.tls.mode: must be one of 'DISABLE', 'SIMPLE', 'MUTUAL' or 'ISTIO_MUTUAL', got string 'STRICT'",
    ),
    # validatePortTrafficPolicies
    (
        "port-level-no-port",
        tp("{portLevelSettings: [{loadBalancer: {simple: RANDOM}}]}"),
        "spec.trafficPolicy.portLevelSettings[0].port: portTrafficPolicy must have valid port",
    ),
    (
        "port-level-empty",
        tp("{portLevelSettings: [{port: {number: 80}}]}"),
        "spec.trafficPolicy.portLevelSettings[0]: port traffic policy must have at least one field",
    ),
    (
        "port-level-ok",
        tp(
            "{portLevelSettings: [{port: {number: 80}, loadBalancer: {simple: RANDOM}, "
            "connectionPool: {tcp: {maxConnections: 1}}, outlierDetection: {consecutive5xxErrors: 1}, "
            "tls: {mode: DISABLE}}]}"
        ),
        None,
    ),
    # validateExportTo and the workloadSelector rule
    (
        "export-dup",
        "host: r\nexportTo: [a, a]",
        "spec.exportTo: duplicate entries in exportTo for entry a",
    ),
    (
        "selector-export",
        "host: r\nworkloadSelector: {matchLabels: {app: a}}\nexportTo: ['*']",
        "spec.exportTo: destination rule with workload selector cannot have exportTo beyond current namespace",
    ),
    (
        "selector-ok",
        "host: r\nworkloadSelector: {matchLabels: {app: a}}\nexportTo: ['.']\n"
        "trafficPolicy: {tls: {mode: DISABLE}}",
        None,
    ),
    (
        "retry-budget-ok",
        tp("{retryBudget: {percent: 20, minRetryConcurrency: 3, budgetInterval: 10s}}"),
        None,
    ),
    (
        "retry-budget-percent",
        tp("{retryBudget: {percent: 120}}"),
        "spec.trafficPolicy.retryBudget.percent: must be <= 100",
    ),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_destination_rule_rule(spec: str, expected: str | None) -> None:
    issues = load(spec)
    if expected is None:
        assert issues == []
    else:
        assert expected in issues, issues


def test_convenience_accessors() -> None:
    text = dedent("""\
        apiVersion: networking.istio.io/v1beta1
        kind: DestinationRule
        metadata: {name: reviews}
        spec:
          host: reviews
          trafficPolicy:
            loadBalancer: {consistentHash: {useSourceIp: true}}
            portLevelSettings: [{port: {number: 9080}, loadBalancer: {simple: RANDOM}}]
          subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
        """)
    result = load_text(text)
    assert result.issues == []
    dr = result.resources[0]
    assert isinstance(dr, DestinationRule)
    assert list(dr.spec.subset_names) == ["v1", "v2"]
    subset = dr.spec.subset("v2")
    assert subset is not None and subset.labels == {"version": "v2"}
    policy = dr.spec.traffic_policy
    assert policy is not None and policy.load_balancer is not None
    assert policy.load_balancer.consistent_hash is not None
    assert policy.load_balancer.consistent_hash.ring_size == 1024
    port_policy = policy.for_port(9080)
    assert port_policy is not None and port_policy.load_balancer is not None
    assert port_policy.load_balancer.simple == "RANDOM"
