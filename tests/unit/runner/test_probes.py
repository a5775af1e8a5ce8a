"""Probe state machine (pure) and the executors against real sockets and processes.

Semantics (kubernetes.io, "Configure Liveness, Readiness and Startup Probes"; kubelet
pkg/kubelet/prober/worker.go): probes start after initialDelaySeconds; a result counts after
successThreshold / failureThreshold consecutive results; readiness starts false; a liveness
failure restarts the container; a startup probe disables liveness and readiness until it
succeeds and, failing failureThreshold times, restarts the container.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remora.runner.ports import free_port
from remora.runner.probes import PodProbes, ProbeState, Transition, run_probe
from remora.runner.spec import ProbeSpec

N, R, RS, S = Transition.NONE, Transition.READY, Transition.RESTART, Transition.STARTED
NR = Transition.NOT_READY


def trace(state: ProbeState, results: str, *, start: float = 0) -> list[Transition]:
    """Feed results ('+' success, '-' failure), one per period from `start`."""
    return [state.record(r == "+", start + i * state.spec.period) for i, r in enumerate(results)]


@pytest.mark.parametrize(
    ("kind", "spec", "results", "expected"),
    [
        # Readiness starts false: one success (successThreshold 1) makes it ready.
        ("readiness", ProbeSpec("http"), "+", [R]),
        # successThreshold 2: two consecutive successes; a failure resets the run.
        ("readiness", ProbeSpec("http", success_threshold=2), "+-++", [N, N, N, R]),
        # failureThreshold 3 (default): the third consecutive failure makes it not ready.
        ("readiness", ProbeSpec("http"), "+--+---", [R, N, N, N, N, N, NR]),
        # Readiness never restarts, and recovers.
        ("readiness", ProbeSpec("http", failure_threshold=1), "+-+", [R, NR, R]),
        # Liveness starts true; failureThreshold failures in a row restart.
        ("liveness", ProbeSpec("tcp"), "+--+---", [N, N, N, N, N, N, RS]),
        ("liveness", ProbeSpec("tcp", failure_threshold=1), "-", [RS]),
        # Startup: first success starts the container; failureThreshold failures restart.
        ("startup", ProbeSpec("exec", failure_threshold=30), "-" * 5 + "+", [N] * 5 + [S]),
        ("startup", ProbeSpec("exec", failure_threshold=2), "--", [N, RS]),
    ],
)
def test_thresholds(kind: str, spec: ProbeSpec, results: str, expected: list[Transition]) -> None:
    state = ProbeState(kind, spec, started_at=0)  # type: ignore[arg-type]
    assert trace(state, results) == expected


def test_initial_results() -> None:
    """kubelet: readiness initially Failure, liveness Success, startup Unknown."""
    spec = ProbeSpec("tcp")
    assert ProbeState("readiness", spec, 0).result is False
    assert ProbeState("liveness", spec, 0).result is True
    assert ProbeState("startup", spec, 0).result is None


def test_nothing_counts_before_initial_delay() -> None:
    state = ProbeState("liveness", ProbeSpec("tcp", initial_delay=5, failure_threshold=1), 100)
    assert state.next_at == 105
    assert state.record(False, 104.9) is N
    assert state.result is True
    assert state.record(False, 105) is RS


def test_on_hold_after_restart() -> None:
    state = ProbeState("liveness", ProbeSpec("tcp", failure_threshold=1), 0)
    assert state.record(False, 0) is RS
    assert state.on_hold
    assert state.record(False, 10) is N


def test_next_at_follows_period() -> None:
    state = ProbeState("readiness", ProbeSpec("tcp", period=3, initial_delay=1), 10)
    assert state.next_at == 11
    state.record(True, 11.5)
    assert state.next_at == 14.5


def pod(**specs: ProbeSpec | None) -> PodProbes:
    return PodProbes.start(
        liveness=specs.get("liveness"),
        readiness=specs.get("readiness"),
        startup=specs.get("startup"),
        now=0,
    )


def test_no_probes_ready_at_once() -> None:
    """A container without probes is ready when running (readiness defaults to Success)."""
    probes = pod()
    assert probes.ready
    assert probes.next_at() is None


def test_startup_gates_liveness_and_readiness() -> None:
    """ "If such a probe is configured, it disables liveness and readiness checks until it
    succeeds" (kubernetes.io, Liveness, Readiness, and Startup Probes)."""
    probes = pod(
        startup=ProbeSpec("http", period=1, failure_threshold=10),
        liveness=ProbeSpec("http", failure_threshold=1),
        readiness=ProbeSpec("http"),
    )
    assert [s.kind for s in probes.due(0)] == ["startup"]
    assert probes.record("liveness", False, 0) is N  # gated: ignored
    assert probes.record("startup", False, 0) is N
    assert not probes.started and not probes.ready
    assert probes.record("startup", True, 1) is S
    assert probes.started and not probes.ready  # readiness still has to succeed
    assert [s.kind for s in probes.due(1)] == ["liveness", "readiness"]
    assert probes.record("startup", True, 2) is N  # startup no longer runs
    assert probes.record("readiness", True, 2) is R
    assert probes.ready
    assert probes.record("liveness", False, 3) is RS
    assert not probes.ready and probes.due(100) == [] and probes.next_at() is None


def test_startup_without_readiness_probe_means_ready() -> None:
    probes = pod(startup=ProbeSpec("exec"))
    assert not probes.ready
    assert probes.record("startup", True, 0) is R
    assert probes.ready


def test_startup_failure_restarts() -> None:
    probes = pod(startup=ProbeSpec("exec", failure_threshold=2), readiness=ProbeSpec("tcp"))
    assert [probes.record("startup", False, t) for t in (0, 10)] == [N, RS]
    assert probes.restarting and not probes.ready


@given(st.lists(st.booleans(), max_size=40), st.integers(1, 4), st.integers(1, 4))
def test_readiness_changes_only_after_a_full_run(results: list[bool], succ: int, fail: int) -> None:
    """Readiness flips only after `threshold` identical consecutive results."""
    state = ProbeState("readiness", ProbeSpec("tcp", success_threshold=succ,
                                              failure_threshold=fail), 0)  # fmt: skip
    for i, ok in enumerate(results):
        transition = state.record(ok, i * 10.0)
        if transition is not N:
            run = results[: i + 1]
            need = succ if ok else fail
            assert run[-need:] == [ok] * need
            assert transition is (R if ok else NR)
            assert state.result is ok


# ---------------------------------------------------------------------------------------------
# Executors: real sockets and processes on 127.0.0.1
# ---------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = {"/ok": 200, "/redirect": 302, "/bad": 500}.get(self.path, 404)
        if self.path == "/header":
            status = 200 if self.headers.get("X-Probe") == "yes" else 400
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)



@pytest.mark.parametrize(
    ("path", "headers", "ok"),
    [("/ok", (), True), ("/redirect", (), True), ("/bad", (), False), ("/missing", (), False),
     ("/header", (("X-Probe", "yes"),), True), ("/header", (), False)],
)  # fmt: skip
def test_http_get(
    http_port: int, path: str, headers: tuple[tuple[str, str], ...], ok: bool
) -> None:
    """httpGet: "Any code greater than or equal to 200 and less than 400 indicates success"."""
    spec = ProbeSpec("http", path=path, port=8080, headers=headers)
    assert asyncio.run(run_probe(spec, {8080: http_port})) is ok


def test_tcp_and_refused(http_port: int) -> None:
    assert asyncio.run(run_probe(ProbeSpec("tcp", port=http_port), {})) is True
    closed = free_port()
    assert asyncio.run(run_probe(ProbeSpec("tcp", port=80), {80: closed})) is False
    assert asyncio.run(run_probe(ProbeSpec("http", port=80), {80: closed})) is False


def test_http_timeout() -> None:
    """A server that accepts but never answers fails the probe after timeoutSeconds."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        spec = ProbeSpec("http", port=listener.getsockname()[1], timeout=0.2)
        assert asyncio.run(run_probe(spec, {})) is False


@pytest.mark.parametrize(
    ("code", "ok"),
    [("raise SystemExit(0)", True), ("raise SystemExit(1)", False),
     ("import os,sys; sys.exit(0 if os.environ['X'] == '1' else 1)", True)],
)  # fmt: skip
def test_exec(code: str, ok: bool) -> None:
    spec = ProbeSpec("exec", command=(sys.executable, "-c", code))
    assert asyncio.run(run_probe(spec, {}, env={"X": "1"})) is ok


def test_exec_timeout_and_missing_command() -> None:
    slow = ProbeSpec("exec", command=(sys.executable, "-c", "import time; time.sleep(30)"),
                     timeout=0.3)  # fmt: skip
    assert asyncio.run(run_probe(slow, {})) is False
    assert asyncio.run(run_probe(ProbeSpec("exec", command=("/no/such/binary",)), {})) is False
