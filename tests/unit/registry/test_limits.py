"""Registry records refuse what Nacos refuses, naming the field, when they are built."""

from __future__ import annotations

import pytest

from remora.registry.configs import ConfigKey
from remora.registry.limits import MAX_METADATA_BYTES, RegistryError
from remora.registry.model import Instance, Service


@pytest.mark.parametrize("ip", ["10.0.0.1", "::1", "[fe80::1]", "2001:db8::8a2e:370:7334",
                                "web-1.default.svc.cluster.local", "localhost", "Host.Example."])
def test_instance_accepts_ipv4_ipv6_and_dns_names(ip: str) -> None:
    assert Instance(ip=ip, port=80, service="web").ip == ip


@pytest.mark.parametrize(("ip", "said"), [
    ("bad_host!", "ip 'bad_host!' is not an IPv4 or IPv6 address or a DNS name"),
    ("256.1.1.1", "Your IP address is spelled incorrectly"),  # Nacos Instance.validate
    ("1.2.3", "Your IP address is spelled incorrectly"),
    ("1::2::3", "is not an IPv6 address"),
    ("-web", "is not an IPv4 or IPv6"),
    ("a" * 64 + ".example", "is not an IPv4 or IPv6"),  # an RFC 1123 label is at most 63
    ("a/b", "is not an IPv4 or IPv6"),
])
def test_instance_refuses_an_ip_no_proxy_can_connect_to(ip: str, said: str) -> None:
    with pytest.raises(RegistryError, match="instance format invalid") as caught:
        Instance(ip=ip, port=80, service="web")
    assert said in str(caught.value)


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_instance_port_is_1_to_65535(port: int) -> None:
    with pytest.raises(RegistryError, match=f"port must be between 1 and 65535, got {port}"):
        Instance(ip="10.0.0.1", port=port, service="web")


@pytest.mark.parametrize("weight", [-0.5, 10000.01, 2.0**40, float("nan"), float("inf")])
def test_instance_weight_is_nacos_0_to_10000(weight: float) -> None:
    with pytest.raises(RegistryError, match=r"The weights range from 0\.0 to 10000\.0"):
        Instance(ip="10.0.0.1", port=80, service="web", weight=weight)


def test_instance_weight_bounds_are_inclusive() -> None:
    assert Instance(ip="10.0.0.1", port=80, service="web", weight=0.0).weight == 0.0
    assert Instance(ip="10.0.0.1", port=80, service="web", weight=10000.0).weight == 10000.0


@pytest.mark.parametrize(("fields", "said"), [
    ({"service": "web/x"}, "serviceName can only have these characters"),  # Service.validate
    ({"service": "w" * 256}, "too long serviceName, over 255"),
    ({"cluster": "my_cluster"}, "Instance 'clusterName' should be characters with only"),
    ({"group": "g roup"}, "invalid groupName"),  # ParamUtils.isValid
    ({"namespace": "n" * 129}, "too long namespaceId, over 128"),
    ({"namespace": ""}, "namespaceId must not be empty"),
])
def test_instance_names_as_nacos_restricts_them(fields: dict[str, str], said: str) -> None:
    with pytest.raises(RegistryError, match=said):
        Instance(**{"ip": "10.0.0.1", "port": 80, "service": "web", **fields})  # type: ignore[arg-type]


def test_metadata_is_bounded_like_kubernetes_annotations() -> None:
    big = {"k": "v" * MAX_METADATA_BYTES}
    with pytest.raises(RegistryError, match="metadata is too long"):
        Instance(ip="10.0.0.1", port=80, service="web", metadata=big)
    with pytest.raises(RegistryError, match="metadata is too long"):
        Service(name="web", metadata=big)


@pytest.mark.parametrize(("fields", "said"), [
    ({"data_id": "a b"}, "invalid dataId"), ({"data_id": "x" * 256}, "too long dataId"),
    ({"group": "a@b"}, "invalid group"), ({"namespace": "t" * 129}, "too long tenant"),
])
def test_config_keys_as_nacos_paramutils_checks_them(fields: dict[str, str], said: str) -> None:
    with pytest.raises(RegistryError, match=said):
        ConfigKey(**{"data_id": "app.yaml", **fields})
