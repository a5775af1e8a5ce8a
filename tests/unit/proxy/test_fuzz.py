"""The fuzzed codec and request path (issue 21, item 5): the small budget `make test` runs, the
same inputs every time (exploring is bench/fuzz.py's job, a million inputs). The invariants
are in fuzzkit.py (the codec) and fuzzpath.py (a proxy on the in-memory transport, hostile
from the client or from the upstream). What the fuzzer found is reproduced last, one test per
finding (each failed before its fix), so that none comes back."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.unit.proxy import fuzzkit, fuzzpath
from tests.unit.proxy.fuzzkit import RequestCase, ResponseCase
from tests.unit.proxy.fuzzpath import ClientCase, UpstreamCase


def budget(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def on_fresh_proxy(yaml: str, drive: fuzzpath.Drive, case: Any) -> None:
    async def run() -> None:
        proxy, ledger = fuzzpath.fresh(yaml)
        await drive(proxy, ledger, case)

    asyncio.run(run())


@budget(400)
@given(case=fuzzkit.request_cases)
def test_the_request_decoder_reads_any_stream_the_same_however_it_is_cut(
        case: RequestCase) -> None:
    fuzzkit.check_request_case(case)


@budget(400)
@given(case=fuzzkit.response_cases)
def test_the_response_decoder_reads_any_stream_the_same_however_it_is_cut(
        case: ResponseCase) -> None:
    fuzzkit.check_response_case(case)


@budget(500)
@given(case=fuzzpath.client_cases)
def test_any_client_stream_is_answered_or_refused_and_leaves_nothing(case: ClientCase) -> None:
    on_fresh_proxy(fuzzpath.REVIEWS, fuzzpath.client_case, case)


@budget(300)
@given(case=fuzzpath.upstream_cases)
def test_any_upstream_stream_is_forwarded_or_replaced_and_leaves_nothing(
        case: UpstreamCase) -> None:
    on_fresh_proxy(fuzzpath.RETRYING, fuzzpath.upstream_case, case)


# -- found by bench/fuzz.py, not fixed yet ------------------------------------------------
def on_fresh_client(*pieces: bytes) -> None:
    data = b"".join(pieces)
    cuts = tuple(itertools.accumulate(len(p) for p in pieces))

    async def run() -> None:
        proxy, ledger = fuzzpath.fresh(fuzzpath.REVIEWS)
        await fuzzpath.client_case(proxy, ledger, ClientCase(data, cuts, respond=False))

    asyncio.run(run())


def test_nothing_is_read_after_a_request_that_closes() -> None:
    fuzzkit.check_request_case(RequestCase(
        b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\nGET /next HTTP/1.0\r\n\r\n"))


def test_the_fast_path_accepts_no_target_llhttp_refuses() -> None:
    fuzzkit.check_request_case(RequestCase(b"GET a HTTP/1.1\r\nHost: x\r\n\r\n", cuts=(10,)))


def test_the_fast_path_accepts_no_length_llhttp_refuses() -> None:
    fuzzkit.check_response_case(ResponseCase(
        ("HEAD",), (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",),
        cuts=(1,)))


def test_a_port_of_unicode_digits_is_refused() -> None:
    on_fresh_client(b"GET / HTTP/1.1\r\nHost: a:\xb9\r\n\r\n")


def test_a_refused_head_request_gets_no_body() -> None:
    on_fresh_client(b"HEAD / HTTP/1.1\r\nHost: reviews:9080\r\nTransfer-Encoding: chunked\r\n"
                    b"\r\n", b"zz\r\n")  # the head read, then a broken chunk


def test_a_reason_with_a_control_character_is_refused() -> None:
    fuzzkit.check_response_case(ResponseCase(("GET",), (b"HTTP/1.1 200 \x00\r\n\r\n",),
                                             eof=True))


def test_a_status_outside_100_to_599_is_refused() -> None:
    fuzzkit.check_response_case(ResponseCase(("GET",), (b"HTTP/1.1 704 \r\n\r\n",), eof=True))


def test_a_response_read_with_its_interim_one_is_forwarded() -> None:
    async def run() -> None:
        proxy, ledger = fuzzpath.fresh(fuzzpath.REVIEWS)
        await fuzzpath.upstream_case(proxy, ledger, UpstreamCase((0,), (
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")))

    asyncio.run(run())
