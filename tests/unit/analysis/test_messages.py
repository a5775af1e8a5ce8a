"""Message printing (istioctl's text and -o json shapes), levels, ordering, IST0106, and -n."""

from __future__ import annotations

import pytest

from remora.analysis import analyze
from remora.analysis.messages import (
    ALL_TYPES,
    REFERENCED_RESOURCE_NOT_FOUND,
    Level,
    Message,
    go_list,
    go_quote,
)
from remora.analysis.runner import sort_messages
from remora.api.errors import Source
from remora.api.loader import load_text
from tests.unit.analysis.conftest import Lines

MESSAGE = Message(
    REFERENCED_RESOURCE_NOT_FOUND,
    REFERENCED_RESOURCE_NOT_FOUND.format("host+subset in destinationrule", go_quote("reviews+v3")),
    "VirtualService default/reviews",
    Source("vs.yaml", 12),
)


def test_text_as_istioctl_prints_it() -> None:
    assert str(MESSAGE) == (
        "Error [IST0101] (VirtualService default/reviews vs.yaml:12) "
        'Referenced host+subset in destinationrule not found: "reviews+v3"'
    )


def test_json_shape() -> None:
    assert MESSAGE.to_dict() == {
        "code": "IST0101",
        "level": "Error",
        "origin": "VirtualService default/reviews",
        "reference": "vs.yaml:12",
        "message": 'Referenced host+subset in destinationrule not found: "reviews+v3"',
        "documentationUrl": "https://istio.io/latest/docs/reference/config/analysis/ist0101/",
    }


def test_levels_are_ordered() -> None:
    assert Level.INFO < Level.WARNING < Level.ERROR
    assert max(Level) is Level.ERROR
    assert Level("Warning") >= Level.WARNING


def test_codes_are_unique_and_templates_take_their_arguments() -> None:
    codes = [t.code for t in ALL_TYPES]
    assert len(codes) == len(set(codes))
    for kind in ALL_TYPES:
        kind.format(*["x"] * kind.template.count("%s"))


@pytest.mark.parametrize(
    ("value", "quoted"), [("a", '"a"'), ('a"b', '"a\\"b"'), ("a\\b", '"a\\\\b"'), ("\n", '"\\n"')]
)
def test_go_quote(value: str, quoted: str) -> None:
    assert go_quote(value) == quoted


def test_go_list() -> None:
    assert go_list([80, 443]) == "[80 443]"
    assert go_list(["a.com"]) == "[a.com]"


def test_sorted_by_level_then_code_then_resource_and_deduplicated() -> None:
    info = Message(ALL_TYPES[6], "i", "VirtualService a/x", Source("f", 1))
    error_b = Message(REFERENCED_RESOURCE_NOT_FOUND, "e", "VirtualService b/a", Source("f", 2))
    error_a = Message(REFERENCED_RESOURCE_NOT_FOUND, "e", "VirtualService a/b", Source("f", 3))
    assert info.type.level is Level.INFO
    assert sort_messages([info, error_b, error_a, error_b]) == [error_b, error_a, info]


BROKEN = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: {namespace}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {{host: reviews}}
      weight: -1
"""


def test_schema_errors_become_ist0106(lines: Lines) -> None:
    assert lines(BROKEN.format(namespace="default"), file="vs.yaml") == [
        "Error [IST0106] (VirtualService default/reviews vs.yaml:11) Schema validation error: "
        "spec.http[0].route[0].weight: must be >= 0"
    ]


def test_namespace_limits_what_is_reported() -> None:
    text = BROKEN.format(namespace="team") + "---\n" + BROKEN.format(namespace="default")
    text += """\
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: v
  namespace: team
spec:
  hosts: [v]
  http:
  - route:
    - destination: {host: v, subset: x}
"""
    result = load_text(text, "vs.yaml")
    everywhere = [m.subject for m in analyze(result, namespace=None)]
    assert everywhere == ["VirtualService team/v", "VirtualService default/reviews",
                          "VirtualService team/reviews"]  # fmt: skip
    assert [m.subject for m in analyze(result, namespace="team")] == [
        "VirtualService team/v",
        "VirtualService team/reviews",
    ]
    assert analyze(result, namespace="other") == []
