"""CrashLoopBackOff delays (kubernetes.io, "Pod Lifecycle", Container restarts: "exponential
backoff delay (10s, 20s, 40s, …), that is capped at 300 seconds (5 minutes). Once a container
has executed for 10 minutes without any problems, the kubelet resets the restart backoff timer";
kubelet doBackOff / client-go flowcontrol.Backoff: the first exit restarts at once)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from remora.runner.backoff import CrashLoopBackOff


def delays(exits: list[float], backoff: CrashLoopBackOff | None = None) -> list[float]:
    backoff = backoff or CrashLoopBackOff()
    return [backoff.record_exit(t) for t in exits]


def test_sequence_doubles_and_caps() -> None:
    exits: list[float] = []
    now = 0.0
    for wait in (0, 10, 20, 40, 80, 160, 300, 300):
        now += wait + 1  # restarted after `wait`, crashed one second later
        exits.append(now)
    assert delays(exits) == [0, 10, 20, 40, 80, 160, 300, 300]


def test_reset_after_ten_quiet_minutes() -> None:
    backoff = CrashLoopBackOff()
    assert delays([0, 11, 32], backoff) == [0, 10, 20]
    assert backoff.window == 40
    assert backoff.record_exit(32 + 601) == 0  # ran > 10 minutes: start over
    assert backoff.record_exit(32 + 602) == 10


def test_shortened_for_tests() -> None:
    assert delays([0, 1, 2, 3], CrashLoopBackOff(initial=0.1, cap=0.25)) == [0, 0.1, 0.2, 0.25]


@given(st.lists(st.floats(0, 700), min_size=1, max_size=50))
def test_monotone_until_reset_and_capped(gaps: list[float]) -> None:
    """`gaps`: how long each restarted container ran before exiting again."""
    backoff = CrashLoopBackOff()
    now, last_exit, previous = 0.0, None, None
    for gap in gaps:
        now += gap
        wait = backoff.record_exit(now)
        assert 0 <= wait <= 300
        reset = last_exit is None or now - last_exit > 600
        assert (wait == 0) if reset else (previous is not None and wait >= previous)
        last_exit, previous = now, wait
        now += wait
