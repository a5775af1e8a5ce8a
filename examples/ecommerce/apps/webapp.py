"""The little web framework the demo services share: JSON routes, health, SQLite, mesh calls.

Standard library only, so the services run with the system `python3` of a fresh machine.
Environment: PORT (listen on 127.0.0.1:PORT, default 8080), DATA_DIR (SQLite files; default a
temporary directory removed at exit), VERSION (default "v1"), POD_NAME (default the host name),
CALL_TIMEOUT (seconds a call to another service may take, default 5).
Every JSON answer carries "version" and "instance", so a client sees who served it.

Health: GET /healthz (liveness) and GET /ready (readiness) answer 200, or 503 while
`$DATA_DIR/unhealthy` / `$DATA_DIR/unready` exists or after POST /admin/unhealthy or
/admin/unready (POST /admin/live and /admin/ready undo those). SIGTERM stops accepting, lets the
requests in flight finish, and exits 0.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

VERSION = os.environ.get("VERSION") or "v1"
INSTANCE = os.environ.get("POD_NAME") or socket.gethostname()
CALL_TIMEOUT = float(os.environ.get("CALL_TIMEOUT") or 5)  # seconds for a call to another service
# Headers a service passes on when it calls another, so routing and traces follow the request.
PROPAGATED = (
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "x-user-type",
)


class HTTPError(Exception):
    """An answer other than success: its status and message become the JSON error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Request:
    """What a route handler gets: path parameters, the JSON body and the headers."""

    params: tuple[str, ...]
    body: Any
    headers: dict[str, str]

    def forwarded(self) -> dict[str, str]:
        """The headers to pass on to another service."""
        return {k: v for k, v in self.headers.items() if k in PROPAGATED}


Handler = Callable[[Request], tuple[int, dict[str, Any]]]
Statement = tuple[str, tuple[Any, ...]]  # SQL and its arguments


@dataclass
class Health:
    """Liveness and readiness switches, by admin call or by a file in the data directory."""

    data_dir: Path
    down: set[str] = field(default_factory=set)

    def ok(self, what: str) -> bool:
        return what not in self.down and not (self.data_dir / what).exists()


@dataclass
class App:
    """A service: its name, its routes and its database."""

    name: str
    routes: list[tuple[str, re.Pattern[str], Handler]] = field(default_factory=list)
    db: sqlite3.Connection | None = None
    db_lock: threading.Lock = field(default_factory=threading.Lock)

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        """Decorator: `pattern` is a regular expression matched against the whole path."""

        def add(handler: Handler) -> Handler:
            self.routes.append((method, re.compile(pattern), handler))
            return handler

        return add

    def query(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """Run one SELECT under the lock; rows come back as dicts."""
        assert self.db is not None, "open_db() first"
        with self.db_lock:
            cursor = self.db.execute(sql, tuple(args))
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def insert(self, sql: str, args: Iterable[Any] = ()) -> int:
        """Run one INSERT under the lock and commit it; the new row's id."""
        assert self.db is not None, "open_db() first"
        with self.db_lock, self.db:
            row_id = self.db.execute(sql, tuple(args)).lastrowid
        assert row_id is not None
        return row_id

    def open_db(self, data_dir: Path, schema: str, seed: Iterable[Statement]) -> None:
        """Open `<data_dir>/<name>.db`, create the schema, and seed it when it is empty."""
        self.db = sqlite3.connect(data_dir / f"{self.name}.db", check_same_thread=False)
        with self.db_lock, self.db:
            self.db.executescript(schema)
            table = re.search(r"CREATE TABLE IF NOT EXISTS (\w+)", schema)
            assert table, "the schema creates a table"
            (count,) = self.db.execute(f"SELECT count(*) FROM {table.group(1)}").fetchone()
            if count == 0:
                for sql, args in seed:
                    self.db.execute(sql, args)


def stamp(body: dict[str, Any]) -> dict[str, Any]:
    """Add who answered: the version and the instance."""
    return {**body, "version": VERSION, "instance": INSTANCE}


def call(url: str, *, body: Any = None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """GET (or POST when there is a body) a JSON URL with plain urllib: the mesh takes the
    connection (captured by the pod's sidecar; in the host network, urllib's `http_proxy`).

    Raises HTTPError(502) when the other service cannot be reached or answers 5xx, and passes
    its 4xx on as it came.
    """
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT) as response:
            answer: dict[str, Any] = json.loads(response.read() or b"{}")
            return answer
    except urllib.error.HTTPError as exc:
        detail = _error_text(exc)
        status = exc.code if 400 <= exc.code < 500 else 502
        raise HTTPError(status, f"{url}: {exc.code} {detail}") from exc
    except (OSError, ValueError) as exc:
        raise HTTPError(502, f"{url}: {exc}") from exc


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("error", ""))
    except (OSError, ValueError, AttributeError):
        return exc.reason if isinstance(exc.reason, str) else ""


def _handler_class(app: App, health: Health) -> type[BaseHTTPRequestHandler]:
    class JSONHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = f"{app.name}/{VERSION}"

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def _dispatch(self, method: str) -> None:
            path = self.path.split("?", 1)[0]
            try:
                status, body = self._answer(method, path)
            except HTTPError as exc:
                status, body = exc.status, {"error": str(exc)}
            except Exception as exc:  # the service's own bug: a 500, and it keeps serving
                status, body = 500, {"error": f"{type(exc).__name__}: {exc}"}
            self._send(status, stamp(body))

        def _answer(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
            admin = re.fullmatch(r"/admin/(ready|unready|live|unhealthy)", path)
            if method == "POST" and admin:
                self._read_body()
                switch = admin.group(1)
                what = "unready" if switch in ("ready", "unready") else "unhealthy"
                (health.down.discard if switch in ("ready", "live") else health.down.add)(what)
                return 200, {"status": switch}
            if method == "GET" and path in ("/healthz", "/ready"):
                ok = health.ok("unhealthy" if path == "/healthz" else "unready")
                return (200, {"status": "ok"}) if ok else (503, {"status": "failing"})
            allowed = False
            for route_method, pattern, handler in app.routes:
                match = pattern.fullmatch(path)
                if match and route_method == method:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    return handler(Request(match.groups(), self._read_body(), headers))
                allowed = allowed or bool(match)
            if allowed:
                raise HTTPError(405, f"{method} is not allowed on {path}")
            raise HTTPError(404, f"no route for {path}")

        def _read_body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not raw:
                return None
            try:
                return json.loads(raw)
            except ValueError as exc:
                raise HTTPError(400, f"the body is not JSON: {exc}") from exc

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")  # one request per connection: quick drains
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            if os.environ.get("ACCESS_LOG"):
                super().log_message(format, *args)

    return JSONHandler


def serve(app: App, setup: Callable[[Path], None]) -> None:
    """Open the data directory, call `setup(data_dir)`, serve until SIGTERM or SIGINT."""
    temporary = None if os.environ.get("DATA_DIR") else tempfile.TemporaryDirectory()
    data_dir = Path(os.environ.get("DATA_DIR") or (temporary.name if temporary else "."))
    data_dir.mkdir(parents=True, exist_ok=True)
    setup(data_dir)
    port = int(os.environ.get("PORT") or 8080)
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler_class(app, Health(data_dir)))
    server.daemon_threads = False  # server_close() waits for the requests in flight

    def stop(signum: int, _frame: object) -> None:
        print(f"{app.name}: signal {signum}, draining", file=sys.stderr, flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"{app.name} {VERSION} ({INSTANCE}) listening on 127.0.0.1:{server.server_port}, "
          f"data in {data_dir}", file=sys.stderr, flush=True)  # fmt: skip
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    if app.db is not None:
        app.db.close()
    if temporary is not None:
        temporary.cleanup()
    print(f"{app.name}: stopped", file=sys.stderr, flush=True)
