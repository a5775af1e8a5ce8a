"""Durations as Istio's CRDs take them (Go time.ParseDuration syntax)."""

import pytest

from remora.api.duration import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("1.5s", 1.5),
        ("1h", 3600.0),
        ("1m30s", 90.0),
        ("2h45m", 9900.0),
        ("100us", 0.0001),
        ("0", 0.0),
        ("0s", 0.0),
        (".5s", 0.5),
    ],
)
def test_parse_duration_accepts_go_syntax(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "10x", "s", "-1s", "1.5", "1 s", "ms5"])
def test_parse_duration_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.5, "500ms"), (1.5, "1.5s"), (3600, "1h"), (120, "2m"), (0, "0s")]
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)
