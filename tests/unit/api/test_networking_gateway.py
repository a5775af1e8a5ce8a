# ruff: noqa: E501  (expected messages are quoted whole)
"""Gateway validation as istio/istio validates it (ValidateGateway, validateServer,
validateServerPort, validateServerBind, validateTLSOptions); a failing and a passing case each."""

from __future__ import annotations

from textwrap import dedent, indent

import pytest

from remora.api.loader import load_text


def load(spec: str, *, name: str = "gw") -> list[str]:
    text = (f"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: {name}\n"
            f"spec:\n{indent(dedent(spec), '  ')}")  # fmt: skip
    return [f"{issue.path}: {issue.message}" for issue in load_text(text, "gw.yaml").issues]


def server(body: str) -> str:
    return "selector: {istio: ingressgateway}\nservers:\n- " + body


HTTP = "port: {number: 80, name: http, protocol: HTTP}\n  hosts: ['*']"
HTTPS = "port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ['*.example.com']"

CASES = [
    (
        "no-servers",
        "selector: {istio: ingressgateway}",
        "spec.servers: gateway must have at least one server",
    ),
    ("http-ok", server(HTTP), None),
    (
        "no-hosts",
        server("port: {number: 80, name: http, protocol: HTTP}"),
        "spec.servers[0].hosts: server config must contain at least one host",
    ),
    ("port-missing", server("hosts: ['*']"), "spec.servers[0].port: required field is missing"),
    (
        "port-range",
        server("port: {number: 70000, name: http, protocol: HTTP}\n  hosts: ['*']"),
        "spec.servers[0].port.number: port number 70000 must be in the range 1..65535",
    ),
    (
        "protocol-bad",
        server("port: {number: 80, name: http, protocol: SMTP}\n  hosts: ['*']"),
        "spec.servers[0].port.protocol: invalid protocol 'SMTP', supported protocols are HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP, TLS",
    ),
    (
        "protocol-lower-ok",
        server("port: {number: 8080, name: grpc, protocol: grpc}\n  hosts: ['ns/api.example.com']"),
        None,
    ),
    (
        "port-name-empty",
        server("port: {number: 80, name: '', protocol: HTTP}\n  hosts: ['*']"),
        "spec.servers[0].port.name: port name must be set",
    ),
    (
        "target-port",
        server("port: {number: 80, name: http, protocol: HTTP, targetPort: 8080}\n  hosts: ['*']"),
        "spec.servers[0].port.targetPort: targetPort has no impact on Gateways",
    ),
    (
        "port-names-unique",
        server(HTTP + "\n- port: {number: 81, name: http, protocol: HTTP}\n  hosts: ['*']"),
        "spec.servers[1].port.name: port names in servers must be unique: duplicate name http",
    ),
    # agent.ValidateNamespaceSlashWildcardHostname (gateway form)
    (
        "host-short",
        server("port: {number: 80, name: http, protocol: HTTP}\n  hosts: [reviews]"),
        "spec.servers[0].hosts[0]: short names (non FQDN) are not allowed",
    ),
    (
        "host-partial-wildcard",
        server("port: {number: 80, name: http, protocol: HTTP}\n  hosts: ['ns/foo*.com']"),
        "spec.servers[0].hosts[0]: domain name 'foo*.com' invalid (label 'foo*' invalid)",
    ),
    (
        "host-bad-namespace",
        server("port: {number: 80, name: http, protocol: HTTP}\n  hosts: ['Bad/a.com']"),
        "spec.servers[0].hosts[0]: invalid namespace value 'Bad' in gateway",
    ),
    (
        "host-forms-ok",
        server(
            "port: {number: 80, name: http, protocol: HTTP}\n  hosts: ['*/a.com', './b.com', 'ns/*', '10.0.0.1', '*.c.com']"
        ),
        None,
    ),
    # validateServerBind
    (
        "bind-bad",
        server(HTTP + "\n  bind: not-an-ip"),
        "spec.servers[0].bind: not-an-ip is not a valid IP",
    ),
    ("bind-ip-ok", server(HTTP + "\n  bind: 0.0.0.0"), None),
    (
        "bind-unix-port",
        server(
            "port: {number: 80, name: uds, protocol: HTTP}\n  hosts: ['*']\n  bind: unix:///var/run/gw.sock"
        ),
        "spec.servers[0].port.number: port number must be 0 for unix domain socket",
    ),
    (
        "bind-unix-ok",
        server(
            "port: {number: 0, name: uds, protocol: HTTP}\n  hosts: ['*']\n  bind: unix:///var/run/gw.sock"
        ),
        None,
    ),
    # validateServer: TLS settings and protocols
    (
        "https-needs-tls",
        server(HTTPS),
        "spec.servers[0].tls: server must have TLS settings for HTTPS/TLS protocols",
    ),
    (
        "https-credential-ok",
        server(
            HTTPS
            + "\n  tls: {mode: SIMPLE, credentialName: cert, minProtocolVersion: TLSV1_2, cipherSuites: [ECDHE-RSA-AES256-GCM-SHA384]}"
        ),
        None,
    ),
    ("http-redirect-ok", server(HTTP + "\n  tls: {httpsRedirect: true}"), None),
    (
        "http-with-certs",
        server(HTTP + "\n  tls: {httpsRedirect: true, serverCertificate: /c.pem}"),
        "spec.servers[0].tls: server cannot have TLS settings for plain text HTTP ports",
    ),
    (
        "tcp-with-tls",
        server(
            "port: {number: 31400, name: tcp, protocol: TCP}\n  hosts: ['*']\n  tls: {mode: SIMPLE, credentialName: c}"
        ),
        "spec.servers[0].tls: server cannot have TLS settings for non HTTPS/TLS ports",
    ),
    (
        "tls-passthrough-ok",
        server(
            "port: {number: 443, name: tls, protocol: TLS}\n  hosts: ['*.a.com']\n  tls: {mode: PASSTHROUGH}"
        ),
        None,
    ),
    # validateTLSOptions
    (
        "simple-needs-cert",
        server(HTTPS + "\n  tls: {mode: SIMPLE, privateKey: /k.pem}"),
        "spec.servers[0].tls.serverCertificate: SIMPLE TLS requires a server certificate",
    ),
    (
        "simple-files-ok",
        server(HTTPS + "\n  tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}"),
        None,
    ),
    (
        "mutual-needs-ca",
        server(HTTPS + "\n  tls: {mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}"),
        "spec.servers[0].tls.caCertificates: MUTUAL TLS requires a client CA bundle",
    ),
    (
        "mutual-ok",
        server(
            HTTPS
            + "\n  tls: {mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem, subjectAltNames: [a]}"
        ),
        None,
    ),
    (
        "istio-mutual-extra",
        server(HTTPS + "\n  tls: {mode: ISTIO_MUTUAL, credentialName: cert}"),
        "spec.servers[0].tls.credentialName: ISTIO_MUTUAL TLS cannot have associated credentialName",
    ),
    ("istio-mutual-ok", server(HTTPS + "\n  tls: {mode: ISTIO_MUTUAL}"), None),
    (
        "two-cert-sources",
        server(
            HTTPS
            + "\n  tls: {mode: SIMPLE, credentialName: a, serverCertificate: /c.pem, privateKey: /k.pem}"
        ),
        "spec.servers[0].tls: only one of credentialName, credentialNames, serverCertificate/privateKey, tlsCertificates should be specified",
    ),
    (
        "crl-simple",
        server(
            HTTPS
            + "\n  tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem, caCrl: /crl.pem}"
        ),
        "spec.servers[0].tls.caCrl: CRL is not supported with SIMPLE TLS",
    ),
    (
        "credential-names-max",
        server(HTTPS + "\n  tls: {mode: SIMPLE, credentialNames: [a, b, c]}"),
        "spec.servers[0].tls.credentialNames: list should have at most 2 items after validation, not 3",
    ),
    (
        "tls-mode-bad",
        server(HTTPS + "\n  tls: {mode: STRICT}"),
        "spec.servers[0].tls.mode: must be one of 'PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL' or 'OPTIONAL_MUTUAL', got string 'STRICT'",
    ),
    (
        "unknown-field",
        server(HTTP + "\n  tls: {httpsRedirect: true, redirect: true}"),
        "spec.servers[0].tls.redirect: unknown field",
    ),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_gateway_rule(spec: str, expected: str | None) -> None:
    issues = load(spec)
    if expected is None:
        assert issues == []
    else:
        assert expected in issues, issues


def test_gateway_name_is_a_dns_label() -> None:
    # ValidateGateway: "Gateway name must conform to the DNS label format (no dots)"
    assert load(server(HTTP), name="my.gw") == ["metadata.name: invalid gateway name: 'my.gw'"]
    assert load(server(HTTP), name="my-gw") == []
