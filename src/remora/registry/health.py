"""Health decisions, free of I/O and clocks: heartbeat expiry, active-check flips, protection.

Theory of operation (Nacos 1.x, naming module):
- Ephemeral instances prove they live by client beats (every 5 s by default). A sweep compares
  the time since the last beat with the instance's timeouts (ClientBeatCheckTask): past
  `preserved.heart.beat.timeout` (15 s) it is unhealthy, past `preserved.ip.delete.timeout`
  (30 s) it is deleted. Both comparisons are strict (`now - lastBeat > timeout`). A beat on an
  unhealthy instance makes it healthy again at once (Service.processClientBeat). The three
  timings come from the instance's metadata in milliseconds (PreservedMetadataKeys).
- Persistent instances are probed by the server (TCP connect or HTTP GET). A state flips only
  after `CHECK_TIMES` (3) consecutive opposite results; any opposite result resets the other
  counter (HealthCheckCommon.checkOK / checkFail, SwitchDomain.checkTimes).
- Protection threshold (InstanceOperatorServiceImpl.listInstance): among *enabled* instances,
  when healthy/total <= protectThreshold, every instance is returned, all shown healthy, and
  the answer says `reachProtectionThreshold`; otherwise healthy ones first, then unhealthy
  ones unless `healthyOnly`. Disabled instances are never returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from remora.registry.model import Instance

HEARTBEAT_INTERVAL = 5.0
HEARTBEAT_TIMEOUT = 15.0
IP_DELETE_TIMEOUT = 30.0
CHECK_TIMES = 3

HEART_BEAT_INTERVAL_KEY = "preserved.heart.beat.interval"
HEART_BEAT_TIMEOUT_KEY = "preserved.heart.beat.timeout"
IP_DELETE_TIMEOUT_KEY = "preserved.ip.delete.timeout"


@dataclass(frozen=True, slots=True)
class BeatTiming:
    """An ephemeral instance's heartbeat timings, in seconds."""

    interval: float = HEARTBEAT_INTERVAL
    timeout: float = HEARTBEAT_TIMEOUT
    delete_timeout: float = IP_DELETE_TIMEOUT


def _millis(metadata: Mapping[str, str], key: str, default: float) -> float:
    raw = metadata.get(key)
    if raw is None:
        return default
    try:
        value = int(raw) / 1000.0
    except ValueError:
        return default
    return value if value > 0 else default


def beat_timing(metadata: Mapping[str, str]) -> BeatTiming:
    """Timings from Nacos's preserved metadata keys (milliseconds); bad values keep defaults."""
    return BeatTiming(
        interval=_millis(metadata, HEART_BEAT_INTERVAL_KEY, HEARTBEAT_INTERVAL),
        timeout=_millis(metadata, HEART_BEAT_TIMEOUT_KEY, HEARTBEAT_TIMEOUT),
        delete_timeout=_millis(metadata, IP_DELETE_TIMEOUT_KEY, IP_DELETE_TIMEOUT),
    )


class Verdict(StrEnum):
    ALIVE = "ALIVE"
    UNHEALTHY = "UNHEALTHY"
    EXPIRED = "EXPIRED"


def beat_verdict(*, last_beat: float, now: float, timing: BeatTiming) -> Verdict:
    """What the beat sweep makes of an instance last heard from at `last_beat`."""
    silent = now - last_beat
    if silent > timing.delete_timeout:
        return Verdict.EXPIRED
    if silent > timing.timeout:
        return Verdict.UNHEALTHY
    return Verdict.ALIVE


@dataclass(slots=True)
class _Beat:
    last: float
    timing: BeatTiming


class BeatTracker:
    """Last beat per ephemeral instance key: the registry's liveness bookkeeping."""

    def __init__(self) -> None:
        self._beats: dict[str, _Beat] = {}

    def __len__(self) -> int:
        return len(self._beats)

    def __contains__(self, key: object) -> bool:
        return key in self._beats

    def beat(self, key: str, *, now: float, timing: BeatTiming) -> None:
        self._beats[key] = _Beat(now, timing)

    def forget(self, key: str) -> None:
        self._beats.pop(key, None)

    def timing(self, key: str) -> BeatTiming | None:
        entry = self._beats.get(key)
        return entry.timing if entry else None

    def sweep(self, now: float) -> list[tuple[str, Verdict]]:
        """Instances past a timeout, with their verdict (the caller applies them)."""
        found: list[tuple[str, Verdict]] = []
        for key, entry in self._beats.items():
            verdict = beat_verdict(last_beat=entry.last, now=now, timing=entry.timing)
            if verdict is not Verdict.ALIVE:
                found.append((key, verdict))
        return found


@dataclass(frozen=True, slots=True)
class CheckState:
    """A persistent instance's health and its run of opposite check results."""

    healthy: bool
    ok_count: int = 0
    fail_count: int = 0


def record_check(state: CheckState, ok: bool, *, times: int = CHECK_TIMES) -> CheckState:
    """The state after one active check result: flips after `times` opposite results in a row."""
    if ok:
        if state.healthy:
            return replace(state, ok_count=0, fail_count=0)
        run = state.ok_count + 1
        if run >= times:
            return CheckState(healthy=True)
        return CheckState(healthy=False, ok_count=run)
    if not state.healthy:
        return replace(state, ok_count=0, fail_count=0)
    run = state.fail_count + 1
    if run >= times:
        return CheckState(healthy=False)
    return CheckState(healthy=True, fail_count=run)


@dataclass(frozen=True, slots=True)
class Selection:
    """The instances a list query answers with, and whether protection kicked in."""

    hosts: tuple[Instance, ...]
    reach_protection_threshold: bool


def select_hosts(instances: Iterable[Instance], *, protect_threshold: float,
                 healthy_only: bool) -> Selection:
    """Nacos's list filter: drop disabled, apply the protection threshold, healthyOnly."""
    healthy: list[Instance] = []
    unhealthy: list[Instance] = []
    for instance in instances:
        if instance.enabled:
            (healthy if instance.healthy else unhealthy).append(instance)
    total = len(healthy) + len(unhealthy)
    if total and len(healthy) / total <= protect_threshold:
        shown = healthy + [replace(instance, healthy=True) for instance in unhealthy]
        return Selection(tuple(shown), reach_protection_threshold=True)
    return Selection(tuple(healthy if healthy_only else healthy + unhealthy),
                     reach_protection_threshold=False)
