"""DestinationRule connectionPool idleTimeout: a deadline after release; 0 disables it
(istio.io ConnectionPoolSettings.HTTPSettings.idleTimeout)."""

from __future__ import annotations

import math

from remora.api.networking.traffic_policy import ConnectionPoolSettings
from remora.policy.circuit import PoolLimits


def limits(pool: dict[str, object]) -> PoolLimits:
    return PoolLimits.from_api(ConnectionPoolSettings.model_validate(pool))


def test_idle_deadline_is_release_time_plus_idle_timeout() -> None:
    assert limits({"http": {"idleTimeout": "2s"}}).idle_deadline(10.0) == 12.0


def test_zero_idle_timeout_never_expires() -> None:
    assert math.isinf(limits({"tcp": {"idleTimeout": "0s"}}).idle_deadline(10.0))
