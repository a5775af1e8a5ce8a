"""routing.decide's memo never changes a decision: with it, every request gets the route it
gets without it, whatever headers the matches read (VirtualService: first matching rule wins)."""

from __future__ import annotations

import itertools
import random

from remora.proxy.codec.events import RequestHead
from remora.proxy.routing import Memo, RouteDecision, decide
from tests.unit.mesh import service, sidecar

CONFIG = service("reviews") + """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: api
    match: [{uri: {prefix: /api/}}]
    route: [{destination: {host: reviews}}]
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews}}]
  - name: beta-not-mobile
    match: [{headers: {x-beta: {exact: "1"}}, withoutHeaders: {x-mobile: {}}}]
    directResponse: {status: 418}
  - name: rewrite
    match: [{uri: {prefix: /old/}}]
    rewrite: {uri: /new/}
    route: [{destination: {host: reviews}}]
  - name: default
    route: [{destination: {host: reviews}}]
"""
SNAPSHOT = sidecar(CONFIG)
OUTBOUND = next(li for li in SNAPSHOT.listeners if li.direction == "outbound")
HEADERS = [("end-user", "jason"), ("end-user", "bob"), ("x-beta", "1"), ("x-mobile", "yes")]


def route(path: str, headers: list[tuple[str, str]], memo: Memo | None) -> tuple[object, ...]:
    head = RequestHead("GET", path, [("host", "reviews:9080"), *headers], "1.1", True, False,
                       False, None)
    decision = decide(SNAPSHOT, OUTBOUND, head, scheme="http", rng=random.Random(0), memo=memo)
    assert isinstance(decision, RouteDecision)
    return (decision.route.name if decision.route else None, decision.path,
            decision.reply.status if decision.reply else None)


def test_the_memo_gives_every_request_the_decision_it_has_without_it() -> None:
    memo: Memo = {}
    cases = [(path, [h for h, on in zip(HEADERS, mask, strict=True) if on])
             for path in ("/api/x", "/old/y", "/z")
             for mask in itertools.product((False, True), repeat=len(HEADERS))]
    rng = random.Random(7)
    for _ in range(3):  # several passes in a shuffled order: entries made by other requests
        rng.shuffle(cases)
        for path, headers in cases:
            assert route(path, headers, memo) == route(path, headers, None), (path, headers)
    assert memo  # it was used


def test_a_target_decided_without_headers_is_one_entry() -> None:
    memo: Memo = {}
    route("/api/x", [("end-user", "jason")], memo)
    route("/api/x", [("end-user", "bob")], memo)
    assert len(memo) == 1
    assert route("/z", [("end-user", "jason")], memo)[0] == "jason"
    assert route("/z", [("end-user", "bob")], memo)[0] == "default"
    assert route("/z", [("x-beta", "1")], memo)[2] == 418
    assert route("/z", [("x-beta", "1"), ("x-mobile", "y")], memo)[0] == "default"
