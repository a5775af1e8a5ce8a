"""ClusterState (remora.proxy.clusters): balancing over a cluster's endpoints (envoyproxy.io
"Supported load balancers": ROUND_ROBIN, LEAST_REQUEST's power of two choices, RANDOM, ring
hash), outlier detection ("Outlier detection": consecutive_5xx ejection for
base_ejection_time × the number of ejections, within max_ejection_percent) driven with an
explicit clock, and ALLOW_ANY's passthrough clusters (Envoy's ORIGINAL_DST)."""

from __future__ import annotations

import functools
import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from remora.mesh.snapshot import PASSTHROUGH_CLUSTER, Cluster, ProxyIdentity
from remora.policy.lb import hash_key
from remora.proxy.clusters import ClusterState, ClusterTable
from remora.proxy.upstream import Pools
from tests.unit.mesh import sidecar
from tests.unit.proxy.harness import ProxyHarness, run

HOST = "reviews.default.svc.cluster.local"
CLUSTER = f"outbound|9080||{HOST}"


def service(endpoints: int, *, policy: str = "", weights: list[int] | None = None) -> str:
    listed = ", ".join(
        f"{{address: 10.0.0.{i + 1}" + (f", weight: {weights[i]}}}" if weights else "}")
        for i in range(endpoints))
    yaml = f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews}}
spec:
  hosts: [{HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints: [{listed}]
"""
    if policy:
        yaml += f"""\
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: {HOST}
  trafficPolicy:
{policy}"""
    return yaml


def cluster_state(yaml: str, name: str = CLUSTER) -> ClusterState:
    return ClusterTable(sidecar(yaml), Pools()).states[name]


def picks(state: ClusterState, count: int, *, seed: int = 1, key: int | None = None
          ) -> list[int]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        host = state.pick(rng=rng, key=key)
        assert host is not None
        out.append(host)
    return out


def lb(simple: str) -> str:
    return f"    loadBalancer: {{simple: {simple}}}\n"


# balancing ------------------------------------------------------------------------------------
def test_round_robin_visits_every_host_once_per_turn() -> None:
    state = cluster_state(service(3, policy=lb("ROUND_ROBIN")))
    chosen = picks(state, 9)
    for turn in range(3):
        assert sorted(chosen[turn * 3:turn * 3 + 3]) == [0, 1, 2]


def test_least_request_is_the_default_without_a_destination_rule() -> None:
    """Istio's default simple load balancer (unset, UNSPECIFIED, LEAST_CONN) is LEAST_REQUEST:
    every host is used while none is busier."""
    state = cluster_state(service(3))
    assert state.least_request
    assert set(picks(state, 30)) == {0, 1, 2}


def test_weighted_round_robin_follows_endpoint_weights() -> None:
    """WorkloadEntry/ServiceEntry endpoint weights: Envoy's weighted round robin."""
    state = cluster_state(service(3, policy=lb("ROUND_ROBIN"), weights=[1, 2, 3]))
    counts = Counter(picks(state, 600))
    assert counts == {0: 100, 1: 200, 2: 300}


def test_random_uses_every_host_about_evenly() -> None:
    state = cluster_state(service(4, policy=lb("RANDOM")))
    counts = Counter(picks(state, 4000))
    assert set(counts) == {0, 1, 2, 3}
    assert all(800 < n < 1200 for n in counts.values())


def test_least_request_prefers_the_host_with_fewer_requests_in_flight() -> None:
    """Power of two choices: the busy host wins only when both samples are it (1/9 of picks
    with three hosts)."""
    state = cluster_state(service(3, policy=lb("LEAST_REQUEST")))
    state.pools[0].active = 5
    counts = Counter(picks(state, 3000))
    assert counts[0] < 3000 * 0.16
    assert counts[1] > 1000 and counts[2] > 1000
    state.pools[0].active = 0
    state.pools[1].active = state.pools[2].active = 3
    assert Counter(picks(state, 3000))[0] > 3000 * 0.5


def consistent(extra: str = "") -> str:
    return ("    loadBalancer:\n"
            "      consistentHash: {httpHeaderName: x-user" + extra + "}\n")


def test_consistent_hash_is_stable_per_key_and_spreads_keys() -> None:
    state = cluster_state(service(4, policy=consistent()))
    owners = {}
    for user in range(200):
        key = hash_key(f"user-{user}")
        chosen = set(picks(state, 5, seed=user, key=key))
        assert len(chosen) == 1, "one key, one host"
        owners[user] = chosen.pop()
    assert set(owners.values()) == {0, 1, 2, 3}


def test_consistent_hash_keeps_most_keys_in_place_when_another_host_is_ejected() -> None:
    """Ring hash keys hosts by address (as Envoy): ejecting one host moves all of its keys
    and few others (the ring over fewer hosts gives each of them more entries, so a few keys
    change hands among the rest, as in Envoy's ring of min_ring_size)."""
    state = cluster_state(service(4, policy=consistent() + (
        "    outlierDetection: {consecutive5xxErrors: 1, maxEjectionPercent: 100}\n")))
    keys = [hash_key(f"user-{u}") for u in range(1000)]
    before = [picks(state, 1, key=k)[0] for k in keys]
    state.record(2, status=503, local_failure=False, now=0.0)
    assert state.detector is not None and state.detector.is_ejected(2)
    after = [picks(state, 1, key=k)[0] for k in keys]
    assert 2 not in after
    kept = [now == owner for owner, now in zip(before, after, strict=True) if owner != 2]
    assert sum(kept) > 0.8 * len(kept)


def test_a_request_without_the_hash_key_goes_to_any_host() -> None:
    state = cluster_state(service(4, policy=consistent()))
    assert len(set(picks(state, 200))) > 1


# outlier detection ----------------------------------------------------------------------------
def outlier(consecutive: int = 3, *, percent: int = 100, base: str = "30s",
            interval: str = "1s") -> str:
    return (f"    outlierDetection: {{consecutive5xxErrors: {consecutive}, "
            f"interval: {interval}, baseEjectionTime: {base}, "
            f"maxEjectionPercent: {percent}}}\n")


def test_consecutive_5xx_eject_a_host_until_base_ejection_time_has_passed() -> None:
    state = cluster_state(service(3, policy=outlier(3)))
    for _ in range(2):
        state.record(0, status=503, local_failure=False, now=0.0)
    assert 0 in picks(state, 30)  # two errors are not three
    state.record(0, status=500, local_failure=False, now=0.0)
    assert state.ejections == 1
    assert 0 not in picks(state, 60)
    state.sweep(29.0)
    assert 0 not in picks(state, 60)
    state.sweep(30.0)
    assert 0 in picks(state, 60)


def test_a_success_resets_the_consecutive_count() -> None:
    state = cluster_state(service(3, policy=outlier(3)))
    for status in (503, 503, 200, 503, 503):
        state.record(0, status=status, local_failure=False, now=0.0)
    assert state.ejections == 0
    assert 0 in picks(state, 30)


def test_local_failures_count_as_5xx_without_split_external_local_origin_errors() -> None:
    """Envoy: a connect failure, reset or timeout is a 503 for consecutive_5xx."""
    state = cluster_state(service(2, policy=outlier(2)))
    state.record(1, status=None, local_failure=True, now=0.0)
    state.record(1, status=None, local_failure=True, now=0.0)
    assert set(picks(state, 20)) == {0}


def test_a_second_ejection_lasts_twice_the_base_time() -> None:
    state = cluster_state(service(2, policy=outlier(1, base="10s")))
    state.record(0, status=503, local_failure=False, now=0.0)
    state.sweep(10.0)
    assert 0 in picks(state, 20)
    state.record(0, status=503, local_failure=False, now=10.5)
    state.sweep(20.5)
    assert 0 not in picks(state, 20)  # 20 s this time
    state.sweep(30.5)
    assert 0 in picks(state, 20)


def test_sweeps_run_once_per_interval() -> None:
    """The detector's interval timer: a sweep before the next interval changes nothing."""
    state = cluster_state(service(2, policy=outlier(1, base="1s", interval="10s")))
    state.sweep(0.0)  # the timer's first tick: the next is at 10 s
    state.record(0, status=503, local_failure=False, now=0.0)
    state.sweep(5.0)
    assert 0 not in picks(state, 20)
    state.sweep(10.0)
    assert 0 in picks(state, 20)


def test_max_ejection_percent_bounds_the_ejected_hosts() -> None:
    state = cluster_state(service(10, policy=outlier(1, percent=20)))
    for host in range(10):
        state.record(host, status=503, local_failure=False, now=0.0)
    assert state.detector is not None and state.detector.ejected == 2
    assert len(set(picks(state, 400))) == 8


def test_one_host_is_ejected_even_below_one_hosts_share() -> None:
    """maxEjectionPercent 10 % of 3 hosts is less than one host: Envoy still ejects one
    (always_eject_one_host), and no more."""
    state = cluster_state(service(3, policy=outlier(1, percent=10)))
    for host in range(3):
        state.record(host, status=503, local_failure=False, now=0.0)
    assert state.detector is not None and state.detector.ejected == 1
    assert len(set(picks(state, 100))) == 2


@functools.cache
def outlier_cluster(hosts: int, percent: int) -> tuple[Cluster, ProxyIdentity]:
    snapshot = sidecar(service(hosts, policy=outlier(1, percent=percent)))
    return snapshot.clusters[CLUSTER], snapshot.identity


@settings(max_examples=60, deadline=None)
@given(hosts=st.integers(2, 12), percent=st.integers(1, 100),
       outcomes=st.lists(st.tuples(st.integers(0, 11), st.sampled_from([200, 500, 503])),
                         max_size=60))
def test_ejected_hosts_never_exceed_max_ejection_percent(
        hosts: int, percent: int, outcomes: list[tuple[int, int]]) -> None:
    """STYLE.md practice 9's property: whatever the outcomes, the ejected hosts stay within
    maxEjectionPercent (or one host), and below 100 % some host is left to pick."""
    cluster, identity = outlier_cluster(hosts, percent)
    state = ClusterState(cluster, Pools(), identity)
    bound = max(1, hosts * percent // 100)
    for now, (host, status) in enumerate(outcomes):
        state.record(host % hosts, status=status, local_failure=False, now=float(now))
        assert state.detector is not None and state.detector.ejected <= bound
        if bound < hosts:  # then some host is left to balance over
            assert state.pick(rng=random.Random(now), key=None) is not None


def test_outlier_detection_through_the_proxy_moves_traffic_off_a_failing_host() -> None:
    """End to end on the in-memory network: two 503s from one host eject it; the next
    requests go to the other."""
    async def body() -> None:
        proxy = ProxyHarness(service(2, policy=outlier(2)))
        client = proxy.client()
        failing = None
        served: list[str] = []
        for _ in range(8):
            client.get("/r", host="reviews:9080")
            await proxy.settle()
            upstream = proxy.network.last
            served.append(upstream.host)
            if failing is None:
                failing = upstream.host
            if upstream.host == failing and served.count(failing) <= 2:
                upstream.respond(b"HTTP/1.1 503 Down\r\ncontent-length: 0\r\n"
                                 b"connection: close\r\n\r\n")
            else:
                upstream.respond(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n"
                                 b"connection: close\r\n\r\n")
            client.responses()
        state = proxy.env.active.tables.states[CLUSTER]
        assert state.ejections == 1
        second_failure = [i for i, h in enumerate(served) if h == failing][1]
        assert failing not in served[second_failure + 1:]

    run(body)


# passthrough ----------------------------------------------------------------------------------
def test_allow_any_passthrough_is_one_cluster_per_authority() -> None:
    """MeshConfig outboundTrafficPolicy ALLOW_ANY: Istio's PassthroughCluster (ORIGINAL_DST)
    sends to the address the client asked for; without capture, the request's authority."""
    tables = ClusterTable(sidecar(service(1)), Pools())
    assert not tables.states[PASSTHROUGH_CLUSTER].cluster.endpoints
    one = tables.passthrough("Example.org:8080", "http")
    assert [(e.address, e.port) for e in one.cluster.endpoints] == [("example.org", 8080)]
    assert one.cluster.name == PASSTHROUGH_CLUSTER
    assert tables.passthrough("Example.org:8080", "http") is one
    assert one.pick(rng=random.Random(0), key=None) == 0
    default = tables.passthrough("example.org", "http")
    assert [(e.address, e.port) for e in default.cluster.endpoints] == [("example.org", 80)]
    assert default is not one
    secure = ClusterTable(sidecar(service(1)), Pools()).passthrough("example.org", "https")
    assert secure.cluster.endpoints[0].port == 443
    v6 = tables.passthrough("[::1]:9000", "http")
    assert [(e.address, e.port) for e in v6.cluster.endpoints] == [("::1", 9000)]


def test_passthrough_requests_to_different_hosts_use_different_connections() -> None:
    async def body() -> None:
        proxy = ProxyHarness(service(1))
        for host in ("a.example:81", "b.example:82", "a.example:81"):
            client = proxy.client()
            client.get("/", host=host)
            await proxy.settle()
            port = int(host.rpartition(":")[2])
            upstream = next(u for u in proxy.network.opened if u.port == port)
            upstream.respond(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            assert client.response().status == 200
        assert [(u.host, u.port) for u in proxy.network.opened] == [
            ("a.example", 81), ("b.example", 82)]  # the third reused the first's connection

    run(body)


def test_a_portless_authority_passes_through_to_its_schemes_port_whatever_came_first() -> None:
    """Latent today (only gateway listeners terminate TLS, and they never pass through), but
    `passthrough(authority, scheme)` promises the scheme's port."""
    tables = ClusterTable(sidecar(service(1)), Pools())
    assert tables.passthrough("example.org", "http").cluster.endpoints[0].port == 80
    assert tables.passthrough("example.org", "https").cluster.endpoints[0].port == 443
