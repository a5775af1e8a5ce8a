"""IST0130 VirtualServiceUnreachableRule / IST0131 VirtualServiceIneffectiveMatch
(analyzeUnreachableHTTPRules & co. in istio/istio pkg/config/validation/validation.go)."""

from __future__ import annotations

import re

import pytest

from tests.unit.analysis.conftest import Lines

HEAD = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: r
spec:
  hosts: [r]
"""
ROUTE = "    route:\n    - destination: {host: r}\n"


def test_rule_after_catch_all_and_second_catch_all(lines: Lines) -> None:
    text = HEAD + "  http:\n" + "  - name: all\n" + ROUTE + "  - match:\n    - uri: {prefix: /a}\n"
    text += ROUTE + "  - " + ROUTE[4:]
    assert lines(text, file="vs.yaml") == [
        "Warning [IST0130] (VirtualService default/r vs.yaml:11) VirtualService rule #1 not used "
        "(route without matches defined before).",
        "Warning [IST0130] (VirtualService default/r vs.yaml:15) VirtualService rule #2 not used "
        "(only the last rule can have no matches).",
    ]


def test_duplicate_matches_ignore_names(lines: Lines) -> None:
    text = HEAD + "  http:\n"
    text += "  - name: first\n    match:\n    - {name: a, uri: {prefix: /api}}\n" + ROUTE
    text += "  - match:\n    - {uri: {prefix: /api}}\n" + ROUTE
    text += "  - match:\n    - {uri: {prefix: /api}}\n    - {name: new, uri: {exact: /x}}\n" + ROUTE
    assert lines(text, file="vs.yaml") == [
        "Warning [IST0130] (VirtualService default/r vs.yaml:13) VirtualService rule #1 not used "
        "(all matches used by prior rules).",
        "Info [IST0131] (VirtualService default/r vs.yaml:14) VirtualService rule #1 match #0 is "
        'not used (duplicate/overlapping match in rule "first").',
        "Info [IST0131] (VirtualService default/r vs.yaml:18) VirtualService rule #2 match #0 is "
        'not used (duplicate/overlapping match in rule "first").',
    ]


def test_tcp_duplicates(lines: Lines) -> None:
    text = HEAD + "  tcp:\n"
    text += "  - match: [{port: 31400}]\n" + ROUTE
    text += "  - match: [{port: 31400}, {port: 31401}]\n" + ROUTE
    assert lines(text, file="vs.yaml") == [
        "Info [IST0131] (VirtualService default/r vs.yaml:11) VirtualService rule #1 match #0 is "
        "not used (duplicate/overlapping match in rule #0).",
    ]


@pytest.mark.parametrize(
    ("first", "second", "covered"),
    [
        ("{uri: {prefix: /api/v1/product}}", "{uri: {prefix: /api/v1/products}}", True),
        (
            "{uri: {prefix: /api}, method: {exact: GET}}",
            "{uri: {prefix: /api/x}, method: {exact: GET}, headers: {x: {exact: y}}}",
            True,
        ),
        ("{uri: {prefix: /api}}", "{uri: {prefix: /api/x}, method: {exact: POST}}", True),
        ("{uri: {prefix: /api}, method: {exact: GET}}", "{uri: {prefix: /api/x}}", False),
        ("{uri: {prefix: /api/x}}", "{uri: {prefix: /api}}", False),
        ("{uri: {prefix: /api}, headers: {a: {prefix: b}}}", "{uri: {prefix: /api/x}}", False),
        ("{uri: {prefix: /api}, sourceLabels: {a: b}}", "{uri: {prefix: /api/x}}", False),
        ("{uri: {prefix: /}}", "{uri: {exact: /}}", False),  # Istio looks at prefixes only
    ],
)
def test_prefix_overlaps(lines: Lines, first: str, second: str, covered: bool) -> None:
    text = HEAD + "  http:\n"
    text += f"  - name: a\n    match:\n    - {first}\n" + ROUTE
    text += f"  - name: b\n    match:\n    - {second}\n" + ROUTE
    out = lines(text, file="vs.yaml")
    prefix_a, prefix_b = (_prefix(first), _prefix(second))
    expected = [
        f'Info [IST0131] (VirtualService default/r vs.yaml:15) VirtualService rule "b" match #0 '
        f"of prefix {prefix_b} is not used (duplicate/overlapping match in rule #0 of prefix "
        f'{prefix_a} on "a").'
    ]
    assert out == (expected if covered else [])


def _prefix(match: str) -> str:
    found = re.search(r"prefix: ([^}]*)}", match)
    return found.group(1) if found else ""
