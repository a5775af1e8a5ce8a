"""The pure parts of the load generator: the open-loop schedule, percentiles, the summary,
the request."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remora.loadgen.plan import Result, Target, percentile, schedule, summarize, version_of


@pytest.mark.parametrize(
    ("rps", "duration", "expected"),
    [
        (10, 1, [i / 10 for i in range(10)]),
        (2, 1.5, [0.0, 0.5, 1.0]),
        (0.5, 4, [0.0, 2.0]),
        (3, 0.1, []),
        (0, 10, []),
        (10, 0, []),
    ],
)
def test_schedule_sends_request_i_at_i_over_rps(
    rps: float, duration: float, expected: list[float]
) -> None:
    assert schedule(rps, duration) == pytest.approx(expected)


@given(rps=st.floats(0.1, 500), duration=st.floats(0.1, 30))
def test_schedule_is_rps_times_duration_requests_evenly_spaced_within_the_duration(
    rps: float, duration: float
) -> None:
    due = schedule(rps, duration)
    assert abs(len(due) - rps * duration) < 1
    assert all(0 <= t < duration for t in due)
    assert all(b - a == pytest.approx(1 / rps) for a, b in itertools.pairwise(due))


def test_a_count_a_rounding_hair_short_of_whole_still_counts() -> None:
    assert len(schedule(0.1 * 3, 10)) == 3  # 0.1 * 3 * 10 is 2.9999999999999996


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([15, 20, 35, 40, 50], 5, 15),  # nearest-rank method: Wikipedia's worked example
        ([15, 20, 35, 40, 50], 30, 20),
        ([15, 20, 35, 40, 50], 40, 20),
        ([15, 20, 35, 40, 50], 50, 35),
        ([15, 20, 35, 40, 50], 100, 50),
        ([3, 6, 7, 8, 8, 10, 13, 15, 16, 20], 25, 7),
        ([3, 6, 7, 8, 8, 10, 13, 15, 16, 20], 75, 15),
        ([7], 99, 7),
        ([1, 2], 0, 1),
    ],
)
def test_percentile_is_the_nearest_rank(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == expected


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 50) is None


@given(st.lists(st.floats(0, 1e6), min_size=1), st.floats(0, 100))
def test_percentile_is_a_value_with_at_least_p_percent_at_or_below(
    values: list[float], p: float
) -> None:
    ordered = sorted(values)
    value = percentile(ordered, p)
    assert value in ordered
    assert sum(v <= value for v in ordered) >= p / 100 * len(ordered) - 1e-9


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"version": "v2", "items": []}', "v2"),
        (b'{"items": []}', None),
        (b'{"version": 2}', None),
        (b"[1, 2]", None),
        (b"{not json", None),
        (b"plain text", None),
        (b"", None),
    ],
)
def test_version_is_read_from_json_object_bodies_only(body: bytes, expected: str | None) -> None:
    assert version_of(body) == expected


def test_summary_counts_outcomes_and_versions_and_takes_latency_of_answers_only() -> None:
    results = [Result(0.010 * i, status=200, version="v1") for i in range(1, 10)]
    results += [Result(0.5, status=200, version="v2"), Result(0.2, status=503)]
    results += [Result(9.0, error="timeout"), Result(0.001, error="connection refused")]
    summary = summarize("http://x/", 15, results, 2.0)
    assert summary.outcomes == {"200": 10, "503": 1, "error: connection refused": 1,
                                "error: timeout": 1}  # fmt: skip
    assert summary.versions == {"v1": 9, "v2": 1}
    assert summary.latency["p50"] == pytest.approx(0.060)
    assert summary.latency["p90"] == pytest.approx(0.2)
    assert summary.latency["max"] == pytest.approx(0.5)  # the 9 s timeout got no answer
    assert summary.completed == 13
    assert summary.achieved_rps == pytest.approx(6.5)
    data = summary.to_dict()
    assert data["latencyMs"] == {"p50": 60.0, "p90": 200.0, "p99": 500.0, "max": 500.0}
    assert data["status"]["200"] == 10
    assert data["planned"] == 15


def test_summary_of_no_answers_has_no_latency() -> None:
    summary = summarize("http://x/", 1, [Result(1.0, error="timeout")], 1.0)
    assert summary.latency == {"p50": None, "p90": None, "p99": None, "max": None}
    assert summary.to_dict()["latencyMs"]["max"] is None


def test_target_encodes_one_request_with_host_and_body_length() -> None:
    target = Target.build("http://127.0.0.1:8080/api/orders?x=1", method="POST",
                          headers=[("x-user-type", "tester")], body=b'{"userId": 1}')  # fmt: skip
    head, body = target.request.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /api/orders?x=1 HTTP/1.1"
    assert "Host: 127.0.0.1:8080" in lines
    assert "x-user-type: tester" in lines
    assert "Content-Length: 13" in lines
    assert "Content-Type: application/json" in lines
    assert body == b'{"userId": 1}'
    assert (target.host, target.port) == ("127.0.0.1", 8080)


def test_target_keeps_a_given_host_and_has_no_body_headers_on_get() -> None:
    target = Target.build("http://gw/", method="GET", headers=[("Host", "shop")], body=b"")
    assert target.request == b"GET / HTTP/1.1\r\nHost: shop\r\n\r\n"
    assert target.port == 80


@pytest.mark.parametrize("url", ["https://x/", "ftp://x/", "localhost:8080", "http://x:99999/"])
def test_target_takes_plain_http_urls_only(url: str) -> None:
    with pytest.raises(ValueError, match=r"only http://host:port/path|Port out of range"):
        Target.build(url, method="GET", headers=[], body=b"")
