# ruff: noqa: E501  (expected messages are quoted whole)
"""Sidecar validation as istio/istio validates it (ValidateSidecar,
validateSidecarOutboundTrafficPolicy, agent.ValidateNamespaceSlashWildcardHostname)."""

from __future__ import annotations

from textwrap import dedent, indent

import pytest

from remora.api.loader import load_text


def load(spec: str) -> list[str]:
    text = ("apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: r\n"
            f"spec:\n{indent(dedent(spec), '  ')}")  # fmt: skip
    return [f"{issue.path}: {issue.message}" for issue in load_text(text, "sc.yaml").issues]


CASES = [
    (
        "empty",
        "workloadSelector: {labels: {app: a}}",
        "spec: sidecar: empty configuration provided",
    ),
    ("egress-ok", "egress: [{hosts: ['./*', 'istio-system/*']}]", None),
    # egress hosts: namespace/dnsName
    (
        "egress-no-slash",
        "egress: [{hosts: [reviews.default.svc.cluster.local]}]",
        "spec.egress[0].hosts[0]: host must be of form namespace/dnsName",
    ),
    (
        "egress-short",
        "egress: [{hosts: [default/reviews]}]",
        "spec.egress[0].hosts[0]: short names (non FQDN) are not allowed",
    ),
    (
        "egress-bad-ns",
        "egress: [{hosts: ['Prod/*']}]",
        "spec.egress[0].hosts[0]: invalid namespace value 'Prod' in sidecar",
    ),
    (
        "egress-forms-ok",
        "egress: [{hosts: ['*/*', '~/a.com', 'ns/*.example.com', './reviews.default.svc.cluster.local']}]",
        None,
    ),
    (
        "egress-no-hosts",
        "egress: [{port: {number: 80, protocol: HTTP, name: http}}]",
        "spec.egress[0].hosts: egress listener must contain at least one host",
    ),
    (
        "egress-catch-all-last",
        "egress: [{hosts: ['./*']}, {port: {number: 80, protocol: HTTP}, hosts: ['./*']}]",
        "spec.egress[0]: the egress listener with empty port should be the last listener in the list",
    ),
    (
        "egress-port-dup",
        "egress: [{port: {number: 80, protocol: HTTP}, hosts: ['./*']}, {port: {number: 80, protocol: HTTP}, hosts: ['./*']}]",
        "spec.egress[1].port: ports on IP bound listeners must be unique",
    ),
    (
        "egress-port-zero",
        "egress: [{port: {number: 0, protocol: HTTP}, hosts: ['./*']}]",
        "spec.egress[0].bind: ports with 0 value must have a unix domain socket bind address",
    ),
    (
        "egress-uds-ok",
        "egress: [{port: {number: 0, protocol: HTTP, name: uds}, bind: 'unix:///var/run/a.sock', captureMode: NONE, hosts: ['./*']}]",
        None,
    ),
    (
        "egress-protocol",
        "egress: [{port: {number: 80, protocol: SMTP}, hosts: ['./*']}]",
        "spec.egress[0].port.protocol: unsupported protocol: SMTP",
    ),
    (
        "egress-bind",
        "egress: [{port: {number: 80, protocol: HTTP}, bind: localhost, hosts: ['./*']}]",
        "spec.egress[0].bind: localhost is not a valid IP",
    ),
    (
        "capture-mode-bad",
        "egress: [{captureMode: EBPF, hosts: ['./*']}]",
        "spec.egress[0].captureMode: must be one of 'DEFAULT', 'IPTABLES' or 'NONE', got string 'EBPF'",
    ),
    # ingress
    (
        "ingress-port-required",
        "ingress: [{defaultEndpoint: '127.0.0.1:8080'}]",
        "spec.ingress[0].port: required field is missing",
    ),
    (
        "ingress-ok",
        "ingress: [{port: {number: 9080, protocol: HTTP, name: http}, defaultEndpoint: '127.0.0.1:8080', captureMode: IPTABLES, connectionPool: {http: {http1MaxPendingRequests: 10}}}]",
        None,
    ),
    (
        "ingress-default-endpoint",
        "ingress: [{port: {number: 9080, protocol: HTTP}, defaultEndpoint: '10.0.0.1:8080'}]",
        "spec.ingress[0].defaultEndpoint: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset",
    ),
    (
        "ingress-default-endpoint-v6-ok",
        "ingress: [{port: {number: 9080, protocol: HTTP}, defaultEndpoint: '[::1]:8080'}]",
        None,
    ),
    (
        "ingress-port-dup",
        "ingress: [{port: {number: 80, protocol: HTTP}}, {port: {number: 80, protocol: TCP}}]",
        "spec.ingress[1].port: ports on IP bound listeners must be unique",
    ),
    (
        "ingress-target-port",
        "ingress: [{port: {number: 80, protocol: HTTP, targetPort: 8080}}]",
        "spec.ingress[0].port.targetPort: targetPort has no impact on Sidecars",
    ),
    (
        "ingress-tls-istio-mutual",
        "ingress: [{port: {number: 443, protocol: HTTPS}, tls: {mode: ISTIO_MUTUAL}}]",
        "spec.ingress[0].tls.mode: cannot set mode to ISTIO_MUTUAL in sidecar ingress tls",
    ),
    (
        "ingress-tls-http",
        "ingress: [{port: {number: 80, protocol: HTTP}, tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k}}]",
        "spec.ingress[0].tls: server cannot have TLS settings for non HTTPS/TLS ports",
    ),
    (
        "ingress-tls-ok",
        "ingress: [{port: {number: 443, protocol: HTTPS}, tls: {mode: SIMPLE, serverCertificate: /c, privateKey: /k}}]",
        None,
    ),
    # outboundTrafficPolicy
    (
        "outbound-mode",
        "outboundTrafficPolicy: {mode: ALLOW_ANY_DYNAMIC_DNS}",
        "spec.outboundTrafficPolicy.mode: must be one of 'REGISTRY_ONLY' or 'ALLOW_ANY', got string 'ALLOW_ANY_DYNAMIC_DNS'",
    ),
    (
        "egress-proxy-registry-only",
        "outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {host: proxy.example.com, port: {number: 3128}}}",
        "spec.outboundTrafficPolicy.egressProxy: egressProxy must be set only with ALLOW_ANY outboundTrafficPolicy mode",
    ),
    (
        "egress-proxy-no-port",
        "outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: proxy.example.com}}",
        "spec.outboundTrafficPolicy.egressProxy.port: egressProxy port must be set",
    ),
    (
        "egress-proxy-ok",
        "outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: proxy.example.com, subset: v1, port: {number: 3128}}}",
        None,
    ),
    # inboundConnectionPool (validateConnectionPool)
    (
        "inbound-pool-empty",
        "inboundConnectionPool: {}",
        "spec.inboundConnectionPool: connection pool must have at least one field",
    ),
    ("inbound-pool-ok", "inboundConnectionPool: {tcp: {maxConnections: 100}}", None),
    (
        "selector-empty-key",
        "workloadSelector: {labels: {'': a}}\negress: [{hosts: ['./*']}]",
        "spec.workloadSelector.labels: empty key is not supported in selector: =a",
    ),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_sidecar_rule(spec: str, expected: str | None) -> None:
    issues = load(spec)
    if expected is None:
        assert issues == []
    else:
        assert expected in issues, issues
