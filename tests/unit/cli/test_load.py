"""`remora load`'s own options: -H in curl's form, a bad URL reported as a bad argument."""

from __future__ import annotations

import pytest
import typer

from remora.cli.load import parse_header, target_of


def test_header_takes_curl_form() -> None:
    assert parse_header("x-user-type: tester") == ("x-user-type", "tester")
    assert parse_header("a:b:c") == ("a", "b:c")
    with pytest.raises(typer.BadParameter):
        parse_header("no colon")


@pytest.mark.parametrize("url", ["https://x/", "ftp://x/", "localhost:8080", "http://x:99999/"])
def test_target_takes_plain_http_urls_only(url: str) -> None:
    with pytest.raises(typer.BadParameter):
        target_of(url, method="GET", headers=[], body=b"")
