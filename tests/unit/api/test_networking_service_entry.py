# ruff: noqa: E501  (expected messages are quoted whole)
"""ServiceEntry and WorkloadEntry validation as istio/istio validates them (ValidateServiceEntry,
ValidateWorkloadEntry, the CRD rules of service_entry.proto / workload_entry.proto)."""

from __future__ import annotations

from textwrap import dedent, indent

import pytest

from remora.api.loader import load_text


def load(spec: str, *, kind: str = "ServiceEntry") -> list[str]:
    text = (f"apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata:\n  name: r\n"
            f"spec:\n{indent(dedent(spec), '  ')}")  # fmt: skip
    return [f"{issue.path}: {issue.message}" for issue in load_text(text, "se.yaml").issues]


PORTS = "ports: [{number: 443, name: https, protocol: TLS}]"

SE_CASES = [
    (
        "hosts-required",
        PORTS + "\nresolution: DNS",
        "spec.hosts: service entry must have at least one host",
    ),
    ("host-star", "hosts: ['*']\n" + PORTS, "spec.hosts[0]: invalid host *"),
    (
        "dns-ok",
        "hosts: [api.example.com]\n" + PORTS + "\nresolution: DNS\nlocation: MESH_EXTERNAL",
        None,
    ),
    (
        "resolution-bad",
        "hosts: [a.com]\nresolution: DNSX",
        "spec.resolution: must be one of 'NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN' or 'DYNAMIC_DNS', got string 'DNSX'",
    ),
    (
        "location-bad",
        "hosts: [a.com]\nlocation: OUTSIDE",
        "spec.location: must be one of 'MESH_EXTERNAL' or 'MESH_INTERNAL', got string 'OUTSIDE'",
    ),
    # ports: unique names and numbers, valid names/protocols/numbers
    (
        "port-dup-number",
        "hosts: [a.com]\nports: [{number: 80, name: a, protocol: HTTP}, {number: 80, name: b, protocol: HTTP}]",
        "spec.ports[1].number: service entry port 80 already defined",
    ),
    (
        "port-dup-name",
        "hosts: [a.com]\nports: [{number: 80, name: a, protocol: HTTP}, {number: 81, name: a, protocol: HTTP}]",
        "spec.ports[1].name: service entry port name 'a' already defined",
    ),
    (
        "port-protocol",
        "hosts: [a.com]\nports: [{number: 80, name: a, protocol: SMTP}]",
        "spec.ports[0].protocol: unsupported protocol: SMTP",
    ),
    (
        "port-range",
        "hosts: [a.com]\nports: [{number: 0, name: a, protocol: HTTP}]",
        "spec.ports[0].number: port number 0 must be in the range 1..65535",
    ),
    (
        "port-name",
        "hosts: [a.com]\nports: [{number: 80, name: Web_1, protocol: HTTP}]",
        "spec.ports[0].name: invalid port name: Web_1",
    ),
    (
        "ports-ok",
        "hosts: [a.com]\nports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}, {number: 443, name: https, protocol: HTTPS}]\nresolution: DNS",
        None,
    ),
    # addresses
    (
        "address-bad",
        "hosts: [a.com]\naddresses: [300.1.1.1]",
        "spec.addresses[0]: 300.1.1.1 is not a valid IP",
    ),
    (
        "cidr-dns",
        "hosts: [a.com]\naddresses: [10.0.0.0/8]\nresolution: DNS\n" + PORTS,
        "spec.addresses: CIDR addresses are allowed only for NONE/STATIC resolution types",
    ),
    (
        "cidr-static-ok",
        "hosts: [a.com]\naddresses: [10.0.0.0/8]\nresolution: STATIC\nendpoints: [{address: 10.1.1.1}]\n"
        + PORTS,
        None,
    ),
    # resolution rules
    (
        "none-endpoints",
        "hosts: [a.com]\nendpoints: [{address: 1.1.1.1}]",
        "spec.endpoints: no endpoints should be provided for resolution type NONE",
    ),
    (
        "static-fqdn-endpoint",
        "hosts: [a.com]\nresolution: STATIC\nendpoints: [{address: b.com}]",
        "spec.endpoints[0].address: endpoint address 'b.com' is not a valid IP address",
    ),
    (
        "static-unix-ok",
        "hosts: [a.com]\nresolution: STATIC\nports: [{number: 80, name: http, protocol: HTTP}]\nendpoints: [{address: 'unix:///var/run/a.sock'}]",
        None,
    ),
    (
        "dns-wildcard-no-endpoints",
        "hosts: ['*.a.com']\nresolution: DNS\n" + PORTS,
        "spec.hosts[0]: hosts must be FQDN or contain only prefix wildcards if no endpoints are provided for resolution mode DNS, domain name '*.a.com' invalid (label '*' invalid)",
    ),
    (
        "dns-rr-two-endpoints",
        "hosts: [a.com]\nresolution: DNS_ROUND_ROBIN\nendpoints: [{address: b.com}, {address: c.com}]",
        "spec.endpoints: there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN",
    ),
    (
        "dns-endpoint-port-unknown",
        "hosts: [a.com]\nresolution: DNS\n"
        + PORTS
        + "\nendpoints: [{address: b.com, ports: {http: 8080}}]",
        "spec.endpoints[0].ports.http: endpoint port 8080 is not defined by the service entry",
    ),
    (
        "dns-endpoints-ok",
        "hosts: [a.com]\nresolution: DNS\n"
        + PORTS
        + "\nendpoints: [{address: b.com, ports: {https: 8443}, labels: {v: '1'}, weight: 10, locality: us/z1, network: n1}]",
        None,
    ),
    (
        "dynamic-dns-not-wildcard",
        "hosts: [a.com]\nresolution: DYNAMIC_DNS\nports: [{number: 80, name: http, protocol: HTTP}]",
        "spec.hosts[0]: host must be wildcarded for resolution mode DYNAMIC_DNS",
    ),
    (
        "dynamic-dns-tcp",
        "hosts: ['*.a.com']\nresolution: DYNAMIC_DNS\nports: [{number: 80, name: tcp, protocol: TCP}]",
        "spec.ports[0].protocol: only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution type DYNAMIC_DNS",
    ),
    (
        "dynamic-dns-ok",
        "hosts: ['*.a.com']\nresolution: DYNAMIC_DNS\nports: [{number: 443, name: tls, protocol: TLS}]",
        None,
    ),
    (
        "multi-host-tcp",
        "hosts: [a.com, b.com]\nresolution: DNS\nports: [{number: 3306, name: mysql, protocol: TCP}]",
        "spec.ports[0]: multiple hosts provided with non-HTTP, non-TLS ports",
    ),
    (
        "multi-host-http-ok",
        "hosts: [a.com, b.com]\nresolution: DNS\nports: [{number: 80, name: http, protocol: HTTP}]",
        None,
    ),
    # selector vs endpoints; selector labels; exportTo with ~
    (
        "selector-and-endpoints",
        "hosts: [a.com]\nresolution: STATIC\nworkloadSelector: {labels: {app: a}}\nendpoints: []",
        "spec.endpoints: only one of workloadSelector or endpoints can be set",
    ),
    (
        "selector-wildcard",
        "hosts: [a.com]\nworkloadSelector: {labels: {app: '*'}}",
        "spec.workloadSelector.labels.app: wildcard is not supported in selector: app=*",
    ),
    (
        "selector-ok",
        "hosts: [a.mesh]\nlocation: MESH_INTERNAL\nresolution: STATIC\nworkloadSelector: {labels: {app: vm}}\n"
        + PORTS,
        None,
    ),
    (
        "export-none-and-some",
        "hosts: [a.com]\nexportTo: ['~', ns]",
        "spec.exportTo: cannot export service entry to no one (~) and someone",
    ),
    ("export-none-ok", "hosts: [a.com]\nexportTo: ['~']\nsubjectAltNames: [spiffe://a/b]", None),
]


@pytest.mark.parametrize(
    ("spec", "expected"), [c[1:] for c in SE_CASES], ids=[c[0] for c in SE_CASES]
)
def test_service_entry_rule(spec: str, expected: str | None) -> None:
    issues = load(spec)
    if expected is None:
        assert issues == []
    else:
        assert expected in issues, issues


WE_CASES = [
    # validateWorkloadEntry and workload_entry.proto's CRD rules
    ("address-required", "labels: {app: a}", "spec.address: address is required"),
    ("network-only-ok", "network: vpc-1", None),
    (
        "address-ip-ok",
        "address: 10.0.0.5\nports: {http: 8080}\nlabels: {app: vm}\nserviceAccount: sa\nweight: 3",
        None,
    ),
    ("address-fqdn-ok", "address: vm1.example.com", None),
    (
        "address-bad",
        "address: 'not an address'",
        "spec.address: endpoint address 'not an address' is not a valid FQDN or an IP address",
    ),
    (
        "unix-ports",
        "address: 'unix:///var/a.sock'\nports: {http: 80}",
        "spec.ports: unix endpoint unix:///var/a.sock must not include ports",
    ),
    (
        "unix-relative",
        "address: 'unix://a.sock'",
        "spec.address: a.sock is not an absolute path to a file",
    ),
    (
        "port-name",
        "address: 10.0.0.1\nports: {HTTP: 80}",
        "spec.ports.HTTP: invalid port name: HTTP",
    ),
    (
        "port-number",
        "address: 10.0.0.1\nports: {http: 70000}",
        "spec.ports.http: port number 70000 must be in the range 1..65535",
    ),
    ("weight-negative", "address: 10.0.0.1\nweight: -1", "spec.weight: must be >= 0"),
]


@pytest.mark.parametrize(
    ("spec", "expected"), [c[1:] for c in WE_CASES], ids=[c[0] for c in WE_CASES]
)
def test_workload_entry_rule(spec: str, expected: str | None) -> None:
    issues = load(spec, kind="WorkloadEntry")
    if expected is None:
        assert issues == []
    else:
        assert expected in issues, issues
