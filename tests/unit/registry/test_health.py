"""Pure health decisions against Nacos 1.x's rules.

Sources: alibaba/nacos naming ClientBeatCheckTask (strict `now - lastBeat > timeout`,
unhealthy then delete), PreservedMetadataKeys (preserved.heart.beat.timeout,
preserved.ip.delete.timeout, milliseconds), HealthCheckCommon.checkOK/checkFail with
SwitchDomain.checkTimes = 3, InstanceOperatorServiceImpl.listInstance (protection threshold,
`healthy / total <= threshold`, disabled instances dropped, protected hosts shown healthy).
"""

from __future__ import annotations

import pytest

from remora.registry.health import (
    BeatTiming,
    BeatTracker,
    CheckState,
    Verdict,
    beat_timing,
    beat_verdict,
    record_check,
    select_hosts,
)
from remora.registry.model import Instance

DEFAULT = BeatTiming()


@pytest.mark.parametrize(("silent", "verdict"), [
    (0.0, Verdict.ALIVE),
    (14.9, Verdict.ALIVE),
    (15.0, Verdict.ALIVE),  # strict comparison: exactly 15 s is not yet a timeout
    (15.001, Verdict.UNHEALTHY),
    (30.0, Verdict.UNHEALTHY),
    (30.001, Verdict.EXPIRED),
])
def test_ephemeral_deadlines_are_nacos_defaults(silent: float, verdict: Verdict) -> None:
    assert beat_verdict(last_beat=100.0, now=100.0 + silent, timing=DEFAULT) is verdict


def test_timings_come_from_preserved_metadata_in_milliseconds() -> None:
    timing = beat_timing({"preserved.heart.beat.interval": "1000",
                          "preserved.heart.beat.timeout": "3000",
                          "preserved.ip.delete.timeout": "6000"})
    assert timing == BeatTiming(interval=1.0, timeout=3.0, delete_timeout=6.0)
    assert beat_verdict(last_beat=0, now=3.5, timing=timing) is Verdict.UNHEALTHY
    assert beat_verdict(last_beat=0, now=6.5, timing=timing) is Verdict.EXPIRED


@pytest.mark.parametrize("bad", ["", "soon", "-5", "0"])
def test_unusable_timing_metadata_keeps_the_default(bad: str) -> None:
    assert beat_timing({"preserved.heart.beat.timeout": bad}) == DEFAULT


def test_tracker_reports_only_instances_past_a_deadline() -> None:
    tracker = BeatTracker()
    tracker.beat("a", now=0.0, timing=DEFAULT)
    tracker.beat("b", now=10.0, timing=DEFAULT)
    tracker.beat("c", now=0.0, timing=BeatTiming(timeout=1.0, delete_timeout=2.0))
    assert sorted(tracker.sweep(20.0)) == [("a", Verdict.UNHEALTHY), ("c", Verdict.EXPIRED)]
    tracker.beat("a", now=20.0, timing=DEFAULT)  # a beat resets the clock
    tracker.forget("c")
    assert tracker.sweep(20.0) == []
    assert len(tracker) == 2 and "c" not in tracker


def _run(state: CheckState, results: str) -> CheckState:
    for char in results:
        state = record_check(state, char == "+")
    return state


@pytest.mark.parametrize(("start", "results", "healthy"), [
    (True, "--", True),       # two failures are not enough
    (True, "---", False),     # the third in a row flips
    (True, "--+--", True),    # an OK resets the failure run
    (True, "--+---", False),
    (False, "++", False),
    (False, "+++", True),
    (False, "++-++", False),  # a failure resets the OK run
    (False, "+++---", False),
    (False, "+++--", True),
])
def test_active_checks_flip_after_three_in_a_row(start: bool, results: str,
                                                 healthy: bool) -> None:
    assert _run(CheckState(healthy=start), results).healthy is healthy


def _inst(port: int, *, healthy: bool = True, enabled: bool = True) -> Instance:
    return Instance(ip="10.0.0.1", port=port, service="svc", healthy=healthy, enabled=enabled)


def test_list_without_protection_puts_healthy_first_and_honours_healthy_only() -> None:
    instances = [_inst(1, healthy=False), _inst(2), _inst(3)]
    everything = select_hosts(instances, protect_threshold=0.5, healthy_only=False)
    assert [i.port for i in everything.hosts] == [2, 3, 1]
    assert not everything.reach_protection_threshold
    healthy = select_hosts(instances, protect_threshold=0.5, healthy_only=True)
    assert [i.port for i in healthy.hosts] == [2, 3]


def test_protection_threshold_returns_everything_shown_healthy() -> None:
    instances = [_inst(1, healthy=False), _inst(2, healthy=False), _inst(3)]
    chosen = select_hosts(instances, protect_threshold=0.5, healthy_only=True)
    assert chosen.reach_protection_threshold  # 1/3 <= 0.5
    assert [i.port for i in chosen.hosts] == [3, 1, 2]
    assert all(i.healthy for i in chosen.hosts)


def test_threshold_compares_with_less_or_equal() -> None:
    instances = [_inst(1, healthy=False), _inst(2)]
    assert select_hosts(instances, protect_threshold=0.5,
                        healthy_only=False).reach_protection_threshold
    assert not select_hosts(instances, protect_threshold=0.49,
                            healthy_only=False).reach_protection_threshold
    # Nacos quirk kept: threshold 0 and nobody healthy is 0 <= 0, so all are returned
    assert select_hosts([_inst(1, healthy=False)], protect_threshold=0.0,
                        healthy_only=True).reach_protection_threshold


def test_disabled_instances_are_never_listed_nor_counted() -> None:
    instances = [_inst(1, enabled=False), _inst(2, healthy=False, enabled=False), _inst(3)]
    chosen = select_hosts(instances, protect_threshold=0.9, healthy_only=False)
    assert [i.port for i in chosen.hosts] == [3]
    # counted, the disabled ones would make 1/3 <= 0.9; only enabled ones count: 1/1 > 0.9
    assert not chosen.reach_protection_threshold


def test_no_instances_means_no_protection() -> None:
    chosen = select_hosts([], protect_threshold=1.0, healthy_only=False)
    assert chosen.hosts == () and not chosen.reach_protection_threshold
