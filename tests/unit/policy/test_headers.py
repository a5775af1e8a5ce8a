"""Header operation tables.

Envoy HeaderParser::evaluateHeaders: "Removing headers in the headers_to_remove_ list first makes
remove-before-add the default behavior", then overwrites, then appends; empty values are skipped
(HeaderValueOption.keep_empty_value false). Envoy docs (http_conn_man/headers, "Custom request/
response headers"): "weighted cluster level headers, route level headers, virtual host level
headers and finally global level headers". Istio: set = OVERWRITE_IF_EXISTS_OR_ADD, add =
APPEND_IF_EXISTS_OR_ADD, host/:authority become a host rewrite (route.go
TranslateHeadersOperations); one destination's ops are appended to the route's, several go on
the weighted clusters (route.go processDestination / processWeightedDestination).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remora.api.networking.shared import HeaderOperations
from remora.policy.headers import HeaderOps

Headers = list[tuple[str, str]]


def ops(spec: dict[str, Any] | None) -> HeaderOperations | None:
    return None if spec is None else HeaderOperations.model_validate(spec)


BASE: Headers = [("x-a", "1"), ("x-b", "2"), ("x-a", "3")]

APPLY_CASES: list[tuple[dict[str, Any], Headers]] = [
    # set replaces every value and moves the header to the end
    ({"set": {"x-a": "new"}}, [("x-b", "2"), ("x-a", "new")]),
    # add appends another value
    ({"add": {"x-a": "4"}}, [*BASE, ("x-a", "4")]),
    ({"add": {"x-new": "v"}}, [*BASE, ("x-new", "v")]),
    # remove deletes every value
    ({"remove": ["x-a"]}, [("x-b", "2")]),
    # remove runs first, so a removed header that is also added ends with the added value
    ({"remove": ["x-a"], "add": {"x-a": "9"}}, [("x-b", "2"), ("x-a", "9")]),
    # overwrites before adds: set then add of one name keeps both values
    ({"set": {"x-b": "s"}, "add": {"x-b": "a"}}, [("x-a", "1"), ("x-a", "3"), ("x-b", "s"),
                                                  ("x-b", "a")]),
    # sets and adds are applied in name order (Istio sorts them)
    ({"add": {"x-z": "1", "x-c": "2"}}, [*BASE, ("x-c", "2"), ("x-z", "1")]),
    # names are lowercased (Envoy LowerCaseString)
    ({"set": {"X-B": "up"}}, [("x-a", "1"), ("x-a", "3"), ("x-b", "up")]),
    # empty values are skipped: no add, and a set does not even remove the old value
    ({"set": {"x-a": ""}, "add": {"x-e": ""}}, BASE),
    # authority in request set/add becomes a host rewrite
    ({"set": {":authority": "new.host"}}, [*BASE, ("host", "new.host")]),
    ({"add": {"host": "added"}, "set": {"host": "set"}}, [*BASE, ("host", "set")]),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "expected"), APPLY_CASES)
def test_apply_follows_envoy_header_parser(spec: dict[str, Any], expected: Headers) -> None:
    assert HeaderOps.from_api(ops(spec)).apply(list(BASE)) == expected


def test_authority_replaces_the_host_header() -> None:
    headers = [("host", "old:9080"), ("x", "1")]
    result = HeaderOps.from_api(ops({"set": {"host": "new"}})).apply(headers)
    assert result == [("x", "1"), ("host", "new")]


def test_empty_ops_leave_headers_alone() -> None:
    assert HeaderOps.from_api(None) is HeaderOps.EMPTY
    assert HeaderOps.from_api(ops({})) is HeaderOps.EMPTY
    headers = list(BASE)
    assert HeaderOps.EMPTY.apply(headers) is headers


def test_one_destination_shares_the_routes_parser() -> None:
    """Route removes x-a, destination sets x-a: one parser removes first, so x-a is set."""
    route, destination = ops({"remove": ["x-a"]}), ops({"set": {"x-a": "d"}})
    combined = HeaderOps.for_destination(route, destination, weighted=False)
    assert combined.apply(list(BASE)) == [("x-b", "2"), ("x-a", "d")]


def test_weighted_destination_runs_before_the_route() -> None:
    """Weighted cluster first, then route: the route's remove wins over the cluster's set."""
    route, destination = ops({"remove": ["x-a"]}), ops({"set": {"x-a": "d"}})
    combined = HeaderOps.for_destination(route, destination, weighted=True)
    assert combined.apply(list(BASE)) == [("x-b", "2")]


def test_a_later_set_of_the_same_name_wins_within_one_parser() -> None:
    combined = HeaderOps.merged(ops({"set": {"x-a": "r"}}), ops({"set": {"x-a": "d"}}))
    assert combined.apply(list(BASE)) == [("x-b", "2"), ("x-a", "d")]


def test_route_authority_wins_over_a_single_destinations() -> None:
    """route.go processDestination: the destination's authority only when the route has none."""
    route, destination = ops({"set": {"host": "r"}}), ops({"set": {"host": "d"}})
    combined = HeaderOps.for_destination(route, destination, weighted=False)
    assert combined.apply([("host", "h")]) == [("host", "r")]
    alone = HeaderOps.for_destination(None, destination, weighted=False)
    assert alone.apply([("host", "h")]) == [("host", "d")]


def test_then_applies_levels_in_order() -> None:
    first = HeaderOps.from_api(ops({"set": {"x": "1"}}))
    second = HeaderOps.from_api(ops({"set": {"x": "2"}}))
    assert first.then(second).apply([]) == [("x", "2")]
    assert second.then(first).apply([]) == [("x", "1")]
    assert first.then(HeaderOps.EMPTY) is first
    assert HeaderOps.EMPTY.then(first) is first


names = st.sampled_from(["a", "b", "c"])
values = st.text("xyz", min_size=1, max_size=2)


@given(
    headers=st.lists(st.tuples(names, values), max_size=6),
    set_=st.dictionaries(names, values, max_size=2),
    add=st.dictionaries(names, values, max_size=2),
    remove=st.lists(names, max_size=2),
)
def test_set_leaves_one_value_and_remove_leaves_none_unless_added(
    headers: Headers, set_: dict[str, str], add: dict[str, str], remove: list[str]
) -> None:
    result = HeaderOps.from_api(ops({"set": set_, "add": add, "remove": remove})).apply(headers)
    for name, value in set_.items():
        assert [v for n, v in result if n == name] == [value] + ([add[name]] if name in add else [])
    for name in set(remove) - set(set_) - set(add):
        assert all(n != name for n, _ in result)
    untouched = {n for n, _ in headers} - set(set_) - set(add) - set(remove)
    for name in untouched:
        assert [h for h in result if h[0] == name] == [h for h in headers if h[0] == name]
