"""`remora load` against a real local http.server: open loop, keep-alive, errors, -o json."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from remora.loadgen import (
    BackToBack,
    Dispatch,
    LoadRun,
    Result,
    Target,
    run_load,
    schedule,
    summarize,
)


class Handler(BaseHTTPRequestHandler):
    """/split answers JSON from v1 then v2 in turn; /fail 503; /close closes after answering."""

    protocol_version = "HTTP/1.1"
    counter = itertools.count()
    connections: set[tuple[str, int]] = set()  # noqa: RUF012 - shared on purpose

    def do_GET(self) -> None:
        Handler.connections.add(self.client_address)
        if self.path == "/fail":
            self._send(503, b"down", close=False)
            return
        version = "v1" if next(Handler.counter) % 2 == 0 else "v2"
        body = json.dumps({"version": version, "header": self.headers.get("x-user-type")})
        self._send(200, body.encode(), close=self.path == "/close")

    def _send(self, status: int, body: bytes, *, close: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    Handler.connections = set()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def url(httpd: ThreadingHTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{httpd.server_port}{path}"


def load(address: str, *, rps: float = 100, duration: float = 0.5, concurrency: int = 8,
         headers: list[tuple[str, str]] | None = None) -> tuple[list[Result], float]:  # fmt: skip
    target = Target.build(address, method="GET", headers=headers or [], body=b"")
    seen: list[Result] = []
    run = LoadRun(target, schedule(rps, duration), concurrency, 5.0, seen.append)
    results, elapsed = run_load(run)
    assert seen == results  # the progress callback saw every result
    return results, elapsed


def test_every_scheduled_request_is_sent_and_answered_over_few_connections(
    server: ThreadingHTTPServer,
) -> None:
    results, elapsed = load(url(server, "/split"), headers=[("x-user-type", "tester")])
    summary = summarize("u", 50, results, elapsed)
    assert summary.outcomes == {"200": 50}
    assert summary.versions == {"v1": 25, "v2": 25}
    assert elapsed >= 49 / 100  # open loop: the last request was due at 0.49 s
    assert len(Handler.connections) <= 8  # keep-alive: at most one connection per slot


def test_server_errors_and_connection_close_are_counted_as_they_come(
    server: ThreadingHTTPServer,
) -> None:
    failed, _ = load(url(server, "/fail"), rps=40, duration=0.25)
    assert {r.status for r in failed} == {503}
    closed, _ = load(url(server, "/close"), rps=40, duration=0.25, concurrency=1)
    assert [r.status for r in closed] == [200] * 10
    assert len(Handler.connections) >= 10  # a new connection after every Connection: close


def test_a_keep_alive_connection_the_server_closed_while_idle_is_replaced(
    server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Handler, "timeout", 0.05)  # the server drops idle connections at 50 ms
    results, _ = load(url(server, "/split"), rps=10, duration=0.5, concurrency=1)
    assert [r.outcome for r in results] == ["200"] * 5


def test_nothing_listening_is_an_error_per_request() -> None:
    results, _ = load("http://127.0.0.1:9/", rps=20, duration=0.2)
    assert [r.error for r in results] == ["connection refused"] * 4


def test_the_command_prints_one_json_object(server: ThreadingHTTPServer) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "remora.cli.main", "load", url(server, "/split"), "--rps", "40",
         "--duration", "0.5", "-H", "x-user-type: tester", "-o", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["planned"] == summary["completed"] == 20
    assert summary["status"] == {"200": 20}
    assert summary["versions"] == {"v1": 10, "v2": 10}
    assert set(summary["latencyMs"]) == {"p50", "p90", "p99", "max"}


def test_the_command_prints_a_table_and_fails_when_nothing_answers() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "remora.cli.main", "load", "http://127.0.0.1:9/", "--rps", "10",
         "--duration", "0.2"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 1
    assert "error: connection refused" in run.stdout
    assert "2/2 requests" in run.stdout


def test_pinned_connections_each_carry_their_share_and_are_opened_first(
    server: ThreadingHTTPServer,
) -> None:
    target = Target.build(url(server, "/split"))
    run = LoadRun(target, schedule(100, 0.4), 4, 5.0, dispatch=Dispatch.PINNED)
    results, elapsed = run_load(run, precise=True)
    assert [r.status for r in results] == [200] * 40
    assert len(Handler.connections) == 4  # fortio -c 4: every connection used, none added
    assert elapsed >= 39 / 100
    assert all(0 <= r.wait < r.latency for r in results)


def test_an_answer_that_is_not_2xx_keeps_the_start_of_its_body(
    server: ThreadingHTTPServer,
) -> None:
    failed, _ = load(url(server, "/fail"), rps=20, duration=0.1)
    assert [(r.status, r.excerpt) for r in failed] == [(503, b"down")] * 2
    ok, _ = load(url(server, "/split"), rps=20, duration=0.1)
    assert {r.excerpt for r in ok} == {b""}


def test_without_retry_a_stale_keep_alive_connection_is_an_error(
    server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Handler, "timeout", 0.05)
    target = Target.build(url(server, "/split"))
    run = LoadRun(target, schedule(10, 0.5), 1, 5.0, retry_stale=False)
    results, _ = run_load(run)
    assert "error: connection closed" in {r.outcome for r in results}
    assert results[0].status == 200


@pytest.mark.parametrize("dispatch", list(Dispatch))
def test_a_server_that_never_answers_is_a_timeout_per_request(dispatch: Dispatch) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # accepted by the kernel, never answered
        target = Target.build(f"http://127.0.0.1:{listener.getsockname()[1]}/")
        run = LoadRun(target, schedule(20, 0.1), 2, 0.2, dispatch=dispatch)
        results, elapsed = run_load(run)
    assert [r.error for r in results] == ["timeout"] * 2
    assert all(0.2 <= r.latency < 1.0 for r in results)
    assert elapsed < 2.0


def test_request_for_varies_the_request_and_deadline_ends_a_closed_loop(
    server: ThreadingHTTPServer,
) -> None:
    target = Target.build(url(server, "/split"))
    requests = [Target.build(url(server, p)).request for p in ("/split", "/fail")]
    run = LoadRun(target, BackToBack(10**9), 2, 5.0, dispatch=Dispatch.PINNED,
                  request_for=lambda i: requests[i % 2], deadline=0.3)  # fmt: skip
    results, elapsed = run_load(run)
    assert 0.3 <= elapsed < 2.0
    assert {r.status for r in results} == {200, 503}
    assert len(results) > 4  # back to back: far more than two connections' worth per second
