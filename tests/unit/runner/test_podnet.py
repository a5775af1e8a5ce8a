"""The pod network as values (remora.runner.podnet): CIDRs checked against the host's routes,
addresses by name, the hosts file and Kubernetes' service environment variables
(kubernetes.io, "Service" → "Environment variables"; "DNS for Services and Pods")."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from remora.runner.podnet import (
    AddressPool,
    ClusterNetwork,
    NetworkError,
    ServiceAddress,
    allocate_service_ips,
    free_pod_cidr,
    hosts_file,
    service_environment,
)

USER = ServiceAddress("user", "default", "10.96.0.10", (("http", 8080), ("", 9000)))
BILLING = ServiceAddress("billing-api", "shop", "10.96.0.11", (("grpc-web", 7070),))


def test_names_follow_the_state_directory_and_fit_linux_link_names() -> None:
    one = ClusterNetwork.for_state(Path("/tmp/a"))
    assert one == ClusterNetwork.for_state(Path("/tmp/a"))
    assert one.prefix != ClusterNetwork.for_state(Path("/tmp/b")).prefix
    assert len(one.bridge) <= 15 and len(one.veth(99999)) <= 15  # IFNAMSIZ - 1
    assert str(one.gateway) == "10.244.0.1"
    assert one.namespace("user-v1-abc") == f"{one.prefix}-user-v1-abc"


@pytest.mark.parametrize(("pods", "services", "message"), [
    ("10.0.0.0/8", "10.96.0.0/12", "--pod-cidr 10.0.0.0/8 overlaps --service-cidr"),
    ("10.244.0.1/16", "10.96.0.0/12", "--pod-cidr '10.244.0.1/16': 10.244.0.1/16 has host bits"),
    ("fd00::/64", "10.96.0.0/12", "IPv4"),
    ("10.244.0.0/30", "10.96.0.0/12", "too small"),
])
def test_bad_cidrs_are_refused_naming_the_option(pods: str, services: str, message: str) -> None:
    with pytest.raises(NetworkError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ClusterNetwork.for_state(Path("/s"), pod_cidr=pods, service_cidr=services)


def test_a_cidr_over_a_host_route_is_refused_with_the_fix() -> None:
    network = ClusterNetwork.for_state(Path("/s"), pod_cidr="192.0.2.0/24")
    with pytest.raises(NetworkError) as caught:
        network.check_routes([("default", "eth0"), ("192.0.2.0/24", "eth0")])
    assert "--pod-cidr 192.0.2.0/24 overlaps the host route 192.0.2.0/24 (dev eth0)" in \
        str(caught.value) and "--network host" in str(caught.value)
    # the default route, our own bridge and other families are no collision
    network.check_routes([("default", "eth0"), ("192.0.2.0/24", network.bridge),
                          ("fe80::/64", "eth0")])


def test_addresses_are_kept_by_name_and_reused_once_released() -> None:
    pool = AddressPool(ipaddress.IPv4Network("10.1.0.0/29"))
    assert [pool.address(n) for n in "abcde"] == [f"10.1.0.{i}" for i in range(2, 7)]
    assert pool.address("a") == "10.1.0.2"
    with pytest.raises(NetworkError, match="no free address"):
        pool.address("f")  # .7 is the broadcast address
    pool.release("b")
    assert pool.address("f") == "10.1.0.3"


def test_service_ips_keep_what_is_written_and_allocate_the_rest() -> None:
    ips = allocate_service_ips([("default", "a", None), ("default", "b", "10.96.0.10"),
                                ("default", "headless", "None"), ("default", "c", "")],
                               ipaddress.IPv4Network("10.96.0.0/12"))
    assert ips == {("default", "a"): "10.96.0.11", ("default", "b"): "10.96.0.10",
                   ("default", "c"): "10.96.0.12"}


def test_hosts_file_names_each_service_as_a_pod_resolver_would() -> None:
    text = hosts_file("web-1", "10.244.0.5", "default", [USER, BILLING])
    lines = text.splitlines()
    assert "127.0.0.1\tlocalhost" in lines and "10.244.0.5\tweb-1" in lines
    assert ("10.96.0.10\tuser user.default user.default.svc user.default.svc.cluster.local"
            in lines)
    # another namespace's Service has no short name (the search path is the pod's namespace)
    assert ("10.96.0.11\tbilling-api.shop billing-api.shop.svc "
            "billing-api.shop.svc.cluster.local") in lines


def test_service_environment_of_the_pods_namespace() -> None:
    env = service_environment("default", [USER, BILLING])
    assert env == {
        "USER_SERVICE_HOST": "10.96.0.10", "USER_SERVICE_PORT": "8080",
        "USER_SERVICE_PORT_HTTP": "8080", "USER_PORT": "tcp://10.96.0.10:8080",
        "USER_PORT_8080_TCP": "tcp://10.96.0.10:8080", "USER_PORT_8080_TCP_PROTO": "tcp",
        "USER_PORT_8080_TCP_PORT": "8080", "USER_PORT_8080_TCP_ADDR": "10.96.0.10",
        "USER_PORT_9000_TCP": "tcp://10.96.0.10:9000", "USER_PORT_9000_TCP_PROTO": "tcp",
        "USER_PORT_9000_TCP_PORT": "9000", "USER_PORT_9000_TCP_ADDR": "10.96.0.10",
    }
    assert service_environment("shop", [BILLING])["BILLING_API_SERVICE_PORT_GRPC_WEB"] == "7070"


def test_the_default_pod_cidr_moves_past_the_routes_of_other_runs() -> None:
    assert free_pod_cidr([("default", "eth0"), ("192.0.2.0/24", "eth0")]) == "10.244.0.0/16"
    assert free_pod_cidr([("10.244.0.0/16", "rmr1"), ("10.245.0.0/16", "rmr2")]) == \
        "10.246.0.0/16"
