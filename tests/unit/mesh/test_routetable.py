"""RouteTable.find follows Envoy's virtual host domain search (envoyproxy.io route.proto,
VirtualHost.domains): exact, then suffix wildcards longest first, then prefix wildcards longest
first, then "*"; a wildcard never matches the empty string."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remora.mesh.snapshot import RouteTable, VirtualHost


def _table(*domains: tuple[str, ...]) -> RouteTable:
    return RouteTable("80", tuple(VirtualHost(f"v{i}", d, ()) for i, d in enumerate(domains)))


TABLE = _table(
    ("*",),
    ("foo.*",),
    ("foo.bar.*",),
    ("*.com",),
    ("*.example.com",),
    ("www.example.com", "10.0.0.1"),
    ("*-bar.example.com",),
)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("www.example.com", "v5"),  # exact beats every wildcard
        ("10.0.0.1", "v5"),
        ("api.example.com", "v4"),  # longest suffix wildcard
        ("baz-bar.example.com", "v6"),  # "*-bar.example.com" is longer than "*.example.com"
        ("other.com", "v3"),
        ("foo.bar.net", "v2"),  # longest prefix wildcard
        ("foo.net", "v1"),
        ("foo.example.com", "v4"),  # suffix wildcards come before prefix wildcards
        ("unrelated", "v0"),
        ("-bar.example.com", "v4"),  # "*-bar..." does not match an empty "*"
    ],
)
def test_envoy_domain_search_order(host: str, expected: str) -> None:
    found = TABLE.find(host)
    assert found is not None and found.name == expected


def test_no_catch_all_means_no_virtual_host() -> None:
    table = _table(("*.example.com",), ("reviews",))
    assert table.find("example.com") is None  # the wildcard needs at least one character
    assert table.find("ratings") is None
    assert table.find("reviews") is not None


def test_first_virtual_host_keeps_a_domain_claimed_twice() -> None:
    table = _table(("reviews", "*.a.com"), ("reviews", "*.a.com"))
    assert table.find("reviews").name == "v0"  # type: ignore[union-attr]
    assert table.find("x.a.com").name == "v0"  # type: ignore[union-attr]


def test_domains_are_matched_case_insensitively() -> None:
    table = _table(("WWW.Example.com",))
    assert table.find("www.example.com") is not None


_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
_DOMAIN = st.lists(_LABEL, min_size=1, max_size=4).map(".".join)


@given(st.lists(st.lists(_DOMAIN, min_size=1, max_size=3), min_size=1, max_size=6))
def test_every_exact_domain_finds_the_first_virtual_host_listing_it(
    domains: list[list[str]],
) -> None:
    table = _table(*(tuple(d) for d in domains))
    for written in {d for group in domains for d in group}:
        first = next(i for i, group in enumerate(domains) if written in group)
        found = table.find(written)
        assert found is not None and found.name == f"v{first}"
