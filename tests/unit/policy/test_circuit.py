"""Connection-pool limits and the circuit breaker.

Istio: pilot/pkg/networking/core/cluster_traffic_policy.go (applyConnectionPool,
getDefaultCircuitBreakerThresholds); Envoy docs "Circuit breaking".
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from remora.api.networking.traffic_policy import ConnectionPoolSettings
from remora.policy.circuit import UNLIMITED, Breaker, PoolLimits


def pool(spec: dict[str, object]) -> ConnectionPoolSettings:
    return ConnectionPoolSettings.model_validate(spec)


def test_istio_defaults_without_connection_pool_are_unlimited() -> None:
    limits = PoolLimits.from_api(None)
    assert (limits.max_connections, limits.max_pending, limits.max_requests,
            limits.max_retries) == (UNLIMITED,) * 4  # fmt: skip
    assert UNLIMITED == 4294967295
    assert limits.connect_timeout == 10.0
    assert limits.idle_timeout == 3600.0
    assert limits.max_requests_per_connection == 0
    assert limits.max_connection_duration is None and limits.tcp_keepalive is None


def test_connection_pool_fields_map_to_envoy_thresholds() -> None:
    limits = PoolLimits.from_api(pool({
        "tcp": {"maxConnections": 100, "connectTimeout": "30ms", "maxConnectionDuration": "1h",
                "tcpKeepalive": {"time": "7200s", "interval": "75s"}},
        "http": {"http1MaxPendingRequests": 1, "http2MaxRequests": 50, "maxRetries": 3,
                 "maxRequestsPerConnection": 1, "idleTimeout": "10s"},
    }))  # fmt: skip
    assert limits.max_connections == 100
    assert limits.max_pending == 1
    assert limits.max_requests == 50
    assert limits.max_retries == 3
    assert limits.max_requests_per_connection == 1
    assert limits.connect_timeout == 0.03
    assert limits.max_connection_duration == 3600.0
    assert limits.idle_timeout == 10.0
    assert limits.tcp_keepalive is not None and limits.tcp_keepalive.interval == 75.0
    assert limits.to_dict()["thresholds"]["maxPendingRequests"] == 1


def test_zero_counts_are_unset_in_istio() -> None:
    # "FIXME: zero is a valid value if explicitly set, otherwise we want to use the default"
    limits = PoolLimits.from_api(pool({"tcp": {"maxConnections": 0},
                                       "http": {"maxRetries": 0, "http2MaxRequests": 0}}))
    assert limits.max_connections == limits.max_retries == limits.max_requests == UNLIMITED


def test_http_idle_timeout_wins_over_tcp_idle_timeout() -> None:
    both = PoolLimits.from_api(pool({"tcp": {"idleTimeout": "5s"}, "http": {"idleTimeout": "2s"}}))
    tcp_only = PoolLimits.from_api(pool({"tcp": {"idleTimeout": "5s"}}))
    assert (both.idle_timeout, tcp_only.idle_timeout) == (2.0, 5.0)


def test_pending_overflow_refuses_the_next_request() -> None:
    # Envoy: http1MaxPendingRequests 1 -> a second queued request overflows (503 UO)
    breaker = Breaker(PoolLimits.from_api(pool({"http": {"http1MaxPendingRequests": 1}})))
    assert breaker.may_queue()
    breaker.pending += 1
    assert not breaker.may_queue()
    assert breaker.open()["rq_pending_open"] and breaker.remaining()["remaining_pending"] == 0
    breaker.pending -= 1
    assert breaker.may_queue()


@given(limit=st.integers(1, 50), attempts=st.integers(0, 120))
def test_breaker_admits_exactly_the_limit(limit: int, attempts: int) -> None:
    breaker = Breaker(PoolLimits(max_connections=limit, max_pending=limit, max_requests=limit,
                                 max_retries=limit))  # fmt: skip
    admitted = {"connections": 0, "pending": 0, "requests": 0, "retries": 0}
    checks = {"connections": breaker.may_connect, "pending": breaker.may_queue,
              "requests": breaker.may_request, "retries": breaker.may_retry}  # fmt: skip
    for _ in range(attempts):
        for name, may in checks.items():
            if may():
                setattr(breaker, name, getattr(breaker, name) + 1)
                admitted[name] += 1
    assert all(count == min(limit, attempts) for count in admitted.values())
