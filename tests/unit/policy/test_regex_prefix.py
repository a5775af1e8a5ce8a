"""The literal-prefix shortcut in front of RE2 never changes what a regex matches."""

from __future__ import annotations

import re2
from hypothesis import given
from hypothesis import strategies as st

from remora.api.common import StringMatch
from remora.policy.match import StringMatcher, literal_prefix

PATTERNS = [
    "/legacy/[0-9]+/.*", "/api/v1", "/a?b", "/ab*c", "/ab{0,2}c", "/ab+c", "/x|/y", "(?i)/api",
    "^/api", "/items/[0-9]+", "abc", "a.c", "/v1/(books|films)/.*", "",
]


def test_literal_prefix_stops_before_a_quantified_character() -> None:
    assert literal_prefix("/legacy/[0-9]+/.*") == "/legacy/"
    assert literal_prefix("/a?b") == "/"
    assert literal_prefix("/ab*c") == "/a"
    assert literal_prefix("/ab+c") == "/ab"
    assert literal_prefix("/x|/y") == ""
    assert literal_prefix("(?i)/api") == ""


@given(st.sampled_from(PATTERNS), st.text(alphabet="/abcxyiv01234579legacyAPI.-_", max_size=16))
def test_regex_matcher_agrees_with_re2_fullmatch(pattern: str, value: str) -> None:
    """Envoy safe_regex (RE2, full match): the shortcut is an optimisation, nothing more."""
    matcher = StringMatcher.from_api(StringMatch.model_validate({"regex": pattern}))
    assert matcher.matches(value) == (re2.fullmatch(pattern, value) is not None)
