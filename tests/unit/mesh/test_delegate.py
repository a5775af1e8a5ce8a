"""Delegate merging, following the Istio "Virtual Service" reference (HTTPRoute.delegate: "The
delegate's HTTPMatchRequest must be a strict subset of the root's, otherwise there is a conflict
and the HTTPRoute will not take effect") and pilot's mergeHTTPRoute / hasConflict."""

from __future__ import annotations

from typing import Any

import pytest

from remora.api.common import StringMatch
from remora.api.networking.http_route import HTTPMatchRequest, HTTPRoute
from remora.mesh.delegate import has_conflict, merge_matches, merge_rule, string_conflict


def _sm(**kw: str) -> StringMatch:
    return StringMatch(**kw)


def _match(**kw: Any) -> HTTPMatchRequest:
    return HTTPMatchRequest.model_validate(kw)


def _rule(data: dict[str, Any]) -> HTTPRoute:
    return HTTPRoute.model_validate(data)


@pytest.mark.parametrize(
    ("root", "leaf", "conflict"),
    [
        (None, {"exact": "/a"}, False),  # either side unset: no conflict
        ({"prefix": "/a"}, None, False),
        ({"prefix": "/a"}, {"prefix": "/a/b"}, False),  # narrower prefix
        ({"prefix": "/a/b"}, {"prefix": "/a"}, True),  # wider prefix
        ({"prefix": "/a"}, {"exact": "/a/x"}, False),  # exact under the prefix
        ({"prefix": "/a"}, {"exact": "/b"}, True),
        ({"exact": "/a"}, {"exact": "/a"}, False),
        ({"exact": "/a"}, {"exact": "/b"}, True),
        ({"exact": "/a"}, {"prefix": "/a"}, True),  # exact root admits no prefix
        ({"regex": "/a.*"}, {"prefix": "/a"}, True),  # regex on either side conflicts
        ({"prefix": "/a"}, {"regex": "/a.*"}, True),
    ],
)
def test_string_match_conflicts(
    root: dict[str, str] | None, leaf: dict[str, str] | None, conflict: bool
) -> None:
    assert string_conflict(
        _sm(**root) if root else None, _sm(**leaf) if leaf else None
    ) is conflict


@pytest.mark.parametrize(
    ("root", "leaf", "conflict"),
    [
        ({"headers": {"x": {"exact": "1"}}}, {"headers": {"x": {"exact": "2"}}}, True),
        ({"headers": {"x": {"exact": "1"}}}, {"headers": {"y": {"exact": "2"}}}, False),
        ({"port": 80}, {"port": 8080}, True),
        ({"port": 80}, {}, False),
        ({"ignoreUriCase": True}, {}, True),  # ignoreUriCase must agree
        ({"sourceNamespace": "a"}, {"sourceNamespace": "b"}, True),
        ({"sourceLabels": {"app": "a"}}, {"sourceLabels": {"app": "b"}}, True),
        ({"sourceLabels": {"app": "a"}}, {"sourceLabels": {"v": "1"}}, False),
        ({"gateways": ["ns/gw"]}, {"gateways": ["ns/other"]}, True),
        ({"gateways": ["ns/gw", "mesh"]}, {"gateways": ["mesh"]}, False),
    ],
)
def test_match_block_conflicts(root: dict[str, Any], leaf: dict[str, Any], conflict: bool) -> None:
    assert has_conflict(_match(**root), _match(**leaf)) is conflict


def test_blocks_are_anded_with_every_root_block_they_fit() -> None:
    root = [_match(uri={"prefix": "/api"}), _match(headers={"x": {"exact": "1"}})]
    leaf = [_match(uri={"prefix": "/api/v1"}, headers={"y": {"exact": "2"}})]
    merged = merge_matches(root, leaf)
    assert merged is not None and len(merged) == 2
    first, second = merged
    assert first.uri == _sm(prefix="/api/v1") and set(first.headers) == {"y"}
    assert second.uri == _sm(prefix="/api/v1") and set(second.headers) == {"x", "y"}


def test_a_block_fitting_no_root_block_drops_the_rule() -> None:
    root = _rule({"match": [{"uri": {"prefix": "/api"}}], "delegate": {"name": "d"}})
    leaf = _rule(
        {"match": [{"uri": {"prefix": "/other"}}], "route": [{"destination": {"host": "a"}}]}
    )
    assert merge_rule(root, leaf) is None


def test_root_fields_fill_what_the_delegate_leaves_unset() -> None:
    root = _rule({
        "name": "root", "match": [{"uri": {"prefix": "/api"}}], "delegate": {"name": "d"},
        "timeout": "2s", "headers": {"request": {"set": {"x-root": "1"}}},
    })  # fmt: skip
    leaf = _rule({"name": "leaf", "timeout": "5s", "route": [{"destination": {"host": "a"}}]})
    merged = merge_rule(root, leaf)
    assert merged is not None
    assert merged.name == "root-leaf"
    assert merged.timeout == 5.0  # the delegate's own value wins
    assert merged.headers is not None and merged.headers.request is not None
    assert merged.headers.request.set == {"x-root": "1"}
    assert merged.match == root.match  # no delegate match: the root's blocks
