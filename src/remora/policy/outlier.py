"""Outlier detection (passive health checking) with Envoy's consecutive-error ejection.

`OutlierConfig.from_api` reads `outlierDetection` as Istio's applyOutlierDetection does
(istio/istio pilot/pkg/networking/core/cluster_traffic_policy.go): consecutive5xxErrors unset is
Envoy's 5, 0 turns it off (enforcing 0); consecutiveGatewayErrors is off unless set above 0;
consecutiveLocalOriginFailures only counts with splitExternalLocalOriginErrors (Envoy default 5);
maxEjectionPercent 0 is unset (Envoy's 10); minHealthPercent becomes the cluster's
healthy_panic_threshold (0 by default: no panic); the deprecated consecutiveErrors is ignored,
as current Istio ignores it.

`OutlierDetector` follows envoy source/common/upstream/outlier_detection_impl.cc and the docs
(https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/outlier):
- every response feeds the host's counters: a 5xx adds to consecutive-5xx, a 502/503/504 also to
  consecutive-gateway (another 5xx resets the gateway counter), anything else resets both;
- without the split, a local-origin failure (connect failure, reset, timeout) counts as a 503;
  with it, it counts only toward consecutive-local-origin, and a connection that worked resets
  that counter;
- when a counter reaches its threshold the host is ejected at once (if allowed) and that counter
  resets either way; the ejection is allowed while (ejected + 1) / hosts ≤ maxEjectionPercent,
  or when no host is ejected yet (`always_eject_one_host`);
- each ejection raises a back-off multiplier (bounded so base × it stays ≤ max + base); the host
  stays out for min(base × multiplier, max_ejection_time); each sweep (every `interval`) returns
  expired hosts with fresh counters, and lowers the multiplier of every host that has been back
  for at least one interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from remora.policy.locality import in_panic, level_health

if TYPE_CHECKING:
    from remora.api.networking.traffic_policy import OutlierDetection

DEFAULT_CONSECUTIVE = 5
DEFAULT_INTERVAL = 10.0
DEFAULT_BASE_EJECTION_TIME = 30.0
DEFAULT_MAX_EJECTION_TIME = 300.0
DEFAULT_MAX_EJECTION_PERCENT = 10
GATEWAY_ERRORS = frozenset({502, 503, 504})
LOCAL_FAILURE_STATUS = 503  # Envoy's resultToHttpCode for LocalOriginConnectFailed


@dataclass(frozen=True, slots=True)
class OutlierConfig:
    """Thresholds (0 = off) and times (seconds) of one cluster's outlier detection."""

    consecutive_5xx: int = DEFAULT_CONSECUTIVE
    consecutive_gateway: int = 0
    consecutive_local_origin: int = 0
    split_local_origin: bool = False
    interval: float = DEFAULT_INTERVAL
    base_ejection_time: float = DEFAULT_BASE_EJECTION_TIME
    max_ejection_time: float = DEFAULT_MAX_EJECTION_TIME
    max_ejection_percent: int = DEFAULT_MAX_EJECTION_PERCENT
    min_health_percent: int = 0
    always_eject_one_host: bool = True
    error_codes: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def from_api(cls, od: OutlierDetection | None) -> OutlierConfig | None:
        """The config Istio gives Envoy for `od`; None when outlier detection is not set."""
        if od is None:
            return None
        base = od.base_ejection_time
        base = DEFAULT_BASE_EJECTION_TIME if base is None else base
        split = bool(od.split_external_local_origin_errors)
        return cls(
            consecutive_5xx=(
                DEFAULT_CONSECUTIVE if od.consecutive_5xx_errors is None
                else od.consecutive_5xx_errors
            ),
            consecutive_gateway=od.consecutive_gateway_errors or 0,
            consecutive_local_origin=(
                (od.consecutive_local_origin_failures or DEFAULT_CONSECUTIVE) if split else 0
            ),
            split_local_origin=split,
            interval=DEFAULT_INTERVAL if od.interval is None else od.interval,
            base_ejection_time=base,
            # Envoy: unset max_ejection_time is 300 s or base_ejection_time, whichever is larger
            max_ejection_time=max(DEFAULT_MAX_EJECTION_TIME, base),
            max_ejection_percent=od.max_ejection_percent or DEFAULT_MAX_EJECTION_PERCENT,
            min_health_percent=od.min_health_percent or 0,
            error_codes=frozenset(od.outlier_detection_http_error_codes),
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Envoy's cluster.outlier_detection as configured, for /config_dump."""
        return {
            "consecutive5xx": self.consecutive_5xx,
            "consecutiveGatewayFailure": self.consecutive_gateway,
            "consecutiveLocalOriginFailure": self.consecutive_local_origin,
            "splitExternalLocalOriginErrors": self.split_local_origin,
            "interval": self.interval, "baseEjectionTime": self.base_ejection_time,
            "maxEjectionTime": self.max_ejection_time,
            "maxEjectionPercent": self.max_ejection_percent,
            "healthyPanicThreshold": self.min_health_percent,
            "alwaysEjectOneHost": self.always_eject_one_host,
        }  # fmt: skip


@dataclass(slots=True)
class _Host:
    """One host's monitor: consecutive counters, ejection state and back-off."""

    errors_5xx: int = 0
    errors_gateway: int = 0
    errors_local: int = 0
    ejected_at: float | None = None
    unejected_at: float | None = None
    times_ejected: int = 0
    backoff: int = 0

    def reset(self) -> None:
        self.errors_5xx = self.errors_gateway = self.errors_local = 0


class OutlierDetector:
    """Ejection state of one cluster's hosts (indexes 0..n-1); the proxy brings the clock."""

    __slots__ = ("_ejected", "_hosts", "config")

    def __init__(self, config: OutlierConfig, hosts: int) -> None:
        self.config = config
        self._hosts = [_Host() for _ in range(hosts)]
        self._ejected = 0

    @property
    def ejected(self) -> int:
        """How many hosts are ejected now (Envoy's outlier_detection.ejections_active)."""
        return self._ejected

    def record(self, host: int, *, status: int | None, local_failure: bool, now: float) -> bool:
        """Count one try's outcome; True when it ejected `host`.

        `status` is the upstream response code (None without a response); `local_failure` a
        connect failure, reset or timeout the proxy saw.
        """
        state = self._hosts[host]
        config = self.config
        if config.split_local_origin:
            if local_failure:
                state.errors_local += 1
                return self._threshold(state, "errors_local", config.consecutive_local_origin, now)
            state.errors_local = 0  # the connection worked: LocalOriginConnectSuccess
            if status is None:
                return False
        elif local_failure or status is None:
            status = LOCAL_FAILURE_STATUS
        return self._response(state, self._as_error(status), now)

    def _as_error(self, status: int) -> int:
        """outlierDetectionHttpErrorCodes: only listed codes fail (a non-5xx as a 500)."""
        codes = self.config.error_codes
        if not codes:
            return status
        if status not in codes:
            return 200
        return status if 500 <= status < 600 else 500

    def _response(self, state: _Host, status: int, now: float) -> bool:
        if not 500 <= status < 600:
            state.errors_5xx = state.errors_gateway = 0
            return False
        config = self.config
        ejected = False
        if status in GATEWAY_ERRORS:
            state.errors_gateway += 1
            ejected = self._threshold(state, "errors_gateway", config.consecutive_gateway, now)
        else:
            state.errors_gateway = 0
        state.errors_5xx += 1
        return self._threshold(state, "errors_5xx", config.consecutive_5xx, now) or ejected

    def _threshold(self, state: _Host, counter: str, limit: int, now: float) -> bool:
        """Eject when `counter` reaches `limit` (0 = never); the counter restarts either way."""
        if not limit or getattr(state, counter) != limit:
            return False
        if state.ejected_at is not None:
            return False  # Envoy ignores errors reported for a host already ejected
        setattr(state, counter, 0)
        if not self._may_eject():
            return False
        self._ejected += 1
        state.ejected_at = now
        state.times_ejected += 1
        config = self.config
        base = config.base_ejection_time
        if state.backoff * base < config.max_ejection_time + base:
            state.backoff += 1
        return True

    def _may_eject(self) -> bool:
        """Envoy's ejectHost check: (ejected + 1) / hosts within maxEjectionPercent."""
        config = self.config
        within = 100.0 * (self._ejected + 1) / len(self._hosts) <= config.max_ejection_percent
        return within or (config.always_eject_one_host and self._ejected == 0)

    def ejection_time(self, host: int) -> float:
        """How long `host` stays (or would stay) out: min(base × back-off, max)."""
        config = self.config
        backoff = max(1, self._hosts[host].backoff)
        return min(config.base_ejection_time * backoff, config.max_ejection_time)

    def sweep(self, now: float) -> bool:
        """The interval timer: return expired hosts, decay back-off; True if any came back."""
        changed = False
        interval = self.config.interval
        for index, state in enumerate(self._hosts):
            if state.ejected_at is not None and now - state.ejected_at >= self.ejection_time(index):
                state.ejected_at = None
                state.unejected_at = now
                state.reset()
                self._ejected -= 1
                changed = True
        for state in self._hosts:
            back = state.unejected_at
            if state.ejected_at is None and back is not None and now - back >= interval:
                state.backoff = max(0, state.backoff - 1)
        return changed

    def is_ejected(self, host: int) -> bool:
        return self._hosts[host].ejected_at is not None

    def times_ejected(self, host: int) -> int:
        """Envoy's num_ejections for the host: how many times it has been ejected."""
        return self._hosts[host].times_ejected

    def backoff(self, host: int) -> int:
        """The host's ejection-time multiplier now."""
        return self._hosts[host].backoff

    def healthy(self) -> list[bool]:
        """Per host: not ejected."""
        return [state.ejected_at is None for state in self._hosts]

    def usable(self) -> list[int]:
        """Hosts to balance over: those not ejected, or all of them when their share is below
        minHealthPercent (Envoy's healthy_panic_threshold) — which Envoy disregards while
        1.4 × the healthy share still reaches 100 % (docs "Panic threshold")."""
        total = len(self._hosts)
        up = total - self._ejected
        if level_health(up, total) < 100 and in_panic(up, total, self.config.min_health_percent):
            return list(range(total))
        return [i for i, state in enumerate(self._hosts) if state.ejected_at is None]
