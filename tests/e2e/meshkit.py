"""Real peers for end-to-end proxy tests: small HTTP upstreams and a `remora proxy` process,
all on 127.0.0.1 with free ports, always stopped."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, urlsplit

import httpx

from remora.loadgen import Dispatch, LoadRun, Target, run_load, schedule
from remora.proxy.codec.events import EndOfMessage, ProtocolError, RequestEvent, RequestHead
from remora.proxy.codec.http1 import RequestDecoder
from remora.runner.ports import free_port

REMORA = [sys.executable, "-m", "remora.cli.main"]


REGISTRY_ONLY = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""
"""A mesh config whose sidecars answer 502 for a host the registry does not know (MeshConfig
outboundTrafficPolicy), instead of passing it through (ALLOW_ANY, the default)."""



class EchoHandler(BaseHTTPRequestHandler):
    """Answers with JSON describing the request and which upstream served it.

    /bytes/N streams N bytes; /status/N answers N; /slow/S sleeps S seconds; /close answers
    with a Content-Length it never fulfils and closes (a broken upstream).
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # head and body are separate writes: no 40 ms delayed-ACK stall
    server: EchoServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body_length(self) -> int:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return total
                remaining = size
                while remaining:
                    remaining -= len(self.rfile.read(min(remaining, 1 << 20)))
                self.rfile.readline()
                total += size
        length = int(self.headers.get("content-length") or 0)
        remaining = length
        while remaining:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)
        return length

    def _joined_headers(self) -> dict[str, str]:
        """Repeated header lines joined with ", " (RFC 9110 §5.3)."""
        joined: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            joined[key] = f"{joined[key]}, {value}" if key in joined else value
        return joined

    def handle_any(self) -> None:
        server = self.server
        with server.lock:
            server.hits += 1
            server.paths[self.path] += 1
            seen = server.paths[self.path]
            server.headers[self.path] = self._joined_headers()
        url = urlsplit(self.path)
        received = self._body_length()
        parts = url.path.strip("/").split("/")
        if server.stall:
            time.sleep(server.stall)
        if server.fail_status is not None:
            self._send_plain(server.fail_status)
            return
        if self._handle_script(parts, seen) or self._handle_framing(parts):
            return
        if parts[0] == "bytes" and len(parts) > 1:
            size = int(parts[1])
            self.send_response(200)
            self.send_header("content-type", "application/octet-stream")
            self.send_header("content-length", str(size))
            self.end_headers()
            block = b"x" * (1 << 20)
            while size:
                n = min(size, len(block))
                self.wfile.write(block[:n])
                size -= n
            return
        if parts[0] == "close":
            self.send_response(200)
            self.send_header("content-length", "1000")
            self.end_headers()
            self.wfile.write(b"partial")
            self.wfile.flush()
            self.close_connection = True
            return
        if parts[0] == "slow" and len(parts) > 1:
            time.sleep(float(parts[1]))
        status = int(parts[1]) if parts[0] == "status" and len(parts) > 1 else 200
        body = json.dumps({
            "upstream": self.server.name,
            "method": self.command,
            "path": self.path,
            "query": parse_qs(url.query),
            "headers": self._joined_headers(),
            "received": received,
        }).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("x-upstream", self.server.name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_plain(self, status: int) -> None:
        body = f"{self.server.name} {status}".encode()
        self.send_response(status)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.send_header("x-upstream", self.server.name)
        self.end_headers()
        self.wfile.write(body)

    def _handle_script(self, parts: list[str], seen: int) -> bool:
        """Failures a test controls, counted per exact path (query included, so a test makes its
        own counter with a unique query): /flaky/N/S answers status S to the first N requests,
        then 200; /stall/N/SEC sleeps SEC seconds on the first N requests, then answers 200;
        /drop/N closes the connection without an answer on the first N requests."""
        if len(parts) < 2 or parts[0] not in ("flaky", "stall", "drop"):
            return False
        first = int(parts[1])
        if parts[0] == "drop":
            if seen > first:
                self._send_plain(200)
            self.close_connection = seen <= first
            return True
        if parts[0] == "flaky":
            self._send_plain(int(parts[2]) if seen <= first else 200)
            return True
        if seen <= first:
            time.sleep(float(parts[2]))
        self._send_plain(200)
        return True

    def _handle_framing(self, parts: list[str]) -> bool:
        """/empty/N answers N with no body at all (204, 304); /chunked/N streams N bytes in
        chunks; /unframed/N sends N bytes with neither Content-Length nor chunking and closes
        (RFC 9112 §6.3 rule 8: the close delimits the body)."""
        if len(parts) < 2 or parts[0] not in ("empty", "chunked", "unframed"):
            return False
        number = int(parts[1])
        if parts[0] == "empty":
            self.send_response(number)
            self.send_header("x-upstream", self.server.name)
            self.end_headers()
            return True
        self.send_response(200)
        self.send_header("x-upstream", self.server.name)
        self.send_header("x-custom", "kept")
        if parts[0] == "chunked":
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for start in range(0, number, 1000):
                size = min(1000, number - start)
                self.wfile.write(b"%x\r\n%s\r\n" % (size, b"c" * size))
            self.wfile.write(b"0\r\n\r\n")
            return True
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(b"u" * number)
        self.wfile.flush()
        self.close_connection = True
        return True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = handle_any  # noqa: N815


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), EchoHandler)
        self.name = name
        self.hits = 0
        self.lock = threading.Lock()
        self.paths: Counter[str] = Counter()  # requests per exact path (query included)
        self.headers: dict[str, dict[str, str]] = {}  # the last request's headers, per path
        self.fail_status: int | None = None  # set: every request gets this status
        self.stall = 0.0  # seconds every request waits before it is answered

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: object, client_address: object) -> None:
        """A proxy that gave up on a try (timeout, overflow) closes mid-answer: not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextlib.contextmanager
def echo_servers(*names: str) -> Iterator[dict[str, EchoServer]]:
    servers = {name: EchoServer(name) for name in names}
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers.values()]
    for thread in threads:
        thread.start()
    try:
        yield servers
    finally:
        stops = [threading.Thread(target=s.shutdown) for s in servers.values()]
        for stop in stops:  # each shutdown waits up to 0.5 s for its poll loop: all at once
            stop.start()
        for stop in stops:
            stop.join()
        for server in servers.values():
            server.server_close()


def service_yaml(name: str, port: int, endpoints: list[tuple[int, dict[str, str]]], *,
                 namespace: str = "default") -> str:
    """A Kubernetes Service whose selector picks WorkloadEntries (as Istio lets it): each
    endpoint is 127.0.0.1:<target> with the given labels."""
    docs = [textwrap.dedent(f"""\
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}, namespace: {namespace}}}
        spec:
          selector: {{app: {name}}}
          ports: [{{name: http, port: {port}, targetPort: {port}}}]
        """)]
    for index, (target, labels) in enumerate(endpoints):
        entry_labels = json.dumps({"app": name, **labels})
        docs.append(textwrap.dedent(f"""\
            apiVersion: networking.istio.io/v1
            kind: WorkloadEntry
            metadata: {{name: {name}-{index}, namespace: {namespace}}}
            spec: {{address: 127.0.0.1, labels: {entry_labels}, ports: {{http: {target}}}}}
            """))
    return "---\n".join(docs)


@dataclass
class Proxy:
    """A `remora proxy` subprocess and its ports."""

    config: Path
    process: subprocess.Popen[bytes]
    outbound: int
    inbound: int
    admin: int
    health: int
    stderr_path: Path
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.outbound}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin}"

    def logs(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@contextlib.contextmanager
def run_proxy(config: Path, *args: str, tmp: Path, ready_timeout: float = 15.0,
              expect_ready: bool = True, controlplane: str | None = None,
              env: dict[str, str] | None = None) -> Iterator[Proxy]:
    """A proxy on `config` files, or fed by `controlplane` (a URL) when given; `env` adds to
    its environment (ISTIO_META_* proxy metadata, for one)."""
    ports = {name: free_port() for name in ("outbound", "inbound", "admin", "health")}
    stderr_path = tmp / f"proxy-{ports['admin']}.log"
    source = ["--controlplane", controlplane] if controlplane else ["-f", str(config)]
    command = [
        *REMORA, "proxy", *source,
        "--outbound-port", str(ports["outbound"]), "--inbound-port", str(ports["inbound"]),
        "--admin-port", str(ports["admin"]), "--health-port", str(ports["health"]), *args,
    ]
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(command, stdout=stderr, stderr=stderr,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    proxy = Proxy(config, process, stderr_path=stderr_path, **ports)
    try:
        if expect_ready:
            wait_ready(proxy, ready_timeout)
        yield proxy
    finally:
        proxy.stop()


ADMIN_PASSWORD = "meshkit-admin-pw"
"""The first admin's password of every test control plane (REMORA_ADMIN_PASSWORD), so that
replicas sharing one etcd take the same credentials whichever of them started first."""


@dataclass
class ControlPlaneProcess:
    """A `remora controlplane` subprocess with its state in a temp dir. While it runs,
    REMORA_CREDENTIALS names an admin credentials file for it, so `remora` commands and
    proxies started by the test find them as a user's would."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    credentials: Path
    root: Path | None = None  # with tls: the mesh's root it serves under (root-cert.pem)

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What httpx verifies this control plane with."""
        return ssl.create_default_context(cafile=str(self.root)) if self.root else True

    @functools.cached_property
    def token(self) -> str:
        answer = httpx.post(f"{self.url}/nacos/v1/auth/login", timeout=30, verify=self.verify,
                            data={"username": "admin", "password": ADMIN_PASSWORD})
        answer.raise_for_status()
        return str(answer.json()["accessToken"])

    @property
    def headers(self) -> dict[str, str]:
        """The admin's Authorization header, for direct HTTP calls."""
        return {"Authorization": f"Bearer {self.token}"}

    def apply(self, path: Path) -> None:
        done = subprocess.run([*REMORA, "apply", "-f", str(path), "--server", self.url],
                              capture_output=True, text=True, timeout=30, check=False,
                              env={**os.environ, "REMORA_CREDENTIALS": str(self.credentials)})
        assert done.returncode == 0, done.stdout + done.stderr

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


def join_token(tmp: Path, controlplane: ControlPlaneProcess, account: str) -> Path:
    """What an operator does for a proxy outside `remora up`: `remora identity token` (over
    https the CLI verifies the control plane with the root its credentials name), kept 0600."""
    done = subprocess.run([*REMORA, "identity", "token", "-n", "default", "--service-account",
                           account, "--server", controlplane.url],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    path = tmp / f"{account}.token"
    path.write_text(done.stdout.strip())
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def run_controlplane(tmp: Path, *, port: int | None = None, store: str = "sqlite",
                     args: tuple[str, ...] = (), tls: bool = False
                     ) -> Iterator[ControlPlaneProcess]:
    """A control plane on `store` ("sqlite" in tmp/cp-data, or an etcd:// url: then each
    replica, one per port, keeps its data dir to itself); `tls`: over https with its own
    certificate from the mesh CA (`--tls auto`), its root in `root`."""
    port = port or free_port()
    log = tmp / f"controlplane-{port}.log"
    data = tmp / ("cp-data" if store == "sqlite" else f"cp-data-{port}")
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    root = data / "root-cert.pem" if tls else None
    credentials = tmp / f"credentials-{port}.json"
    credentials.write_text(json.dumps({"server": url, "username": "admin",
                                       "password": ADMIN_PASSWORD,
                                       **({"caCert": str(root)} if root else {})}))
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*REMORA, "controlplane", "--listen", f"127.0.0.1:{port}",
             "--data-dir", str(data), "--store", store, *(("--tls", "auto") if tls else ()),
             *args],
            stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1",
                                         "REMORA_ADMIN_PASSWORD": ADMIN_PASSWORD})
    plane = ControlPlaneProcess(url, process, log, credentials, root)
    previous = os.environ.get("REMORA_CREDENTIALS")
    os.environ["REMORA_CREDENTIALS"] = str(credentials)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise AssertionError(f"controlplane exited:\n{log.read_text()}")
            try:
                if (root is None or root.exists()) and httpx.get(
                        f"{plane.url}/healthz", timeout=1, verify=plane.verify
                ).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"controlplane not ready:\n{log.read_text()}")
            time.sleep(0.05)
        yield plane
    finally:
        plane.stop()
        if previous is None:
            os.environ.pop("REMORA_CREDENTIALS", None)
        else:
            os.environ["REMORA_CREDENTIALS"] = previous


def wait_ready(proxy: Proxy, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proxy.process.poll() is not None:
            raise AssertionError(f"proxy exited {proxy.process.returncode}:\n{proxy.logs()}")
        try:
            if httpx.get(f"http://127.0.0.1:{proxy.health}/healthz/ready",
                         timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"proxy not ready in {timeout}s:\n{proxy.logs()}")


# raw-socket clients -------------------------------------------------------------------------------
@dataclass
class RawResponse:
    """A response as read off the wire by `read_response`."""

    version: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    framing: str  # "length", "chunked", "close" or "none"

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)


def connect(port: int, *, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_response(reader: BinaryIO, *, method: str = "GET") -> RawResponse:
    """One HTTP/1.x response from a socket file, framed as RFC 9112 §6.3 says; skips 1xx."""
    while True:
        line = reader.readline()
        if not line:
            raise ConnectionError("connection closed before a response")
        version, status_text = line.decode("latin-1").split(" ", 2)[:2]
        headers: list[tuple[str, str]] = []
        while (field_line := reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = field_line.decode("latin-1").partition(":")
            headers.append((name.strip().lower(), value.strip()))
        status = int(status_text)
        if status >= 200:
            break
    response = RawResponse(version, status, headers, b"", "none")
    if method == "HEAD" or status in (204, 304):
        return response
    if (response.header("transfer-encoding") or "").lower() == "chunked":
        response.framing = "chunked"
        parts = []
        while (size := int(reader.readline().split(b";")[0], 16)) > 0:
            parts.append(reader.read(size))
            reader.readline()
        while reader.readline() not in (b"\r\n", b"\n", b""):
            pass
        response.body = b"".join(parts)
    elif (length := response.header("content-length")) is not None:
        response.framing = "length"
        response.body = reader.read(int(length))
        if len(response.body) < int(length):
            raise ConnectionError(f"body truncated at {len(response.body)} of {length}")
    else:
        response.framing = "close"
        response.body = reader.read()
    return response


def exchange(port: int, data: bytes, *, method: str = "GET",
             timeout: float = 10.0) -> RawResponse:
    """Send raw bytes on a new connection and read one response."""
    with connect(port, timeout=timeout) as sock:
        sock.sendall(data)
        return read_response(sock.makefile("rb"), method=method)


def closed_by_peer(sock: socket.socket, *, timeout: float) -> bool:
    """Whether the peer closes the connection within `timeout` (bytes before EOF are skipped)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the peer sends until it closes (a reset, or the socket's timeout, ends the
    reading too)."""
    chunks = []
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def send_and_read(port: int, data: bytes) -> bytes:
    """Send `data` on a new connection, half-close, and read everything until the peer closes."""
    with connect(port) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        return read_until_closed(sock)


# an upstream that records the raw bytes it receives ----------------------------------------------
DRIP_PIECE = 64 * 1024


@dataclass
class RecordedConnection:
    """One connection the recording upstream accepted: the bytes it read, the request targets a
    strict HTTP/1.1 server reads from them, and how it ended (None while open)."""

    raw: bytearray = field(default_factory=bytearray)
    targets: list[str] = field(default_factory=list)
    ended: str | None = None  # "eof" (the peer closed), "reset", "timeout", "protocol error"


@dataclass(frozen=True)
class Mark:
    """Where a recording stood, so that a test reads only what its own case caused."""

    events: int
    received: int


@dataclass
class Recording:
    """What reached the recording upstream, in arrival order across its connections: events
    ("head", target) when a request head is read, ("end", target) when the request is
    complete, ("answered", target) when its response is written."""

    connections: list[RecordedConnection] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)
    sent: int = 0  # response body bytes written for /big and /drip
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def targets(self) -> list[str]:
        """The request heads read, complete or not."""
        return [target for kind, target in self.events if kind == "head"]

    def mark(self) -> Mark:
        with self.lock:
            return Mark(len(self.events), len(self.received))

    def events_since(self, mark: Mark) -> list[tuple[str, str]]:
        with self.lock:
            return self.events[mark.events:]

    def targets_since(self, mark: Mark) -> list[str]:
        return [target for kind, target in self.events_since(mark) if kind == "head"]

    def completed_since(self, mark: Mark) -> list[str]:
        return [target for kind, target in self.events_since(mark) if kind == "end"]

    def raw_since(self, mark: Mark) -> bytes:
        with self.lock:
            return b"".join(self.received[mark.received:])

    def connection_with(self, target: str) -> RecordedConnection:
        """The connection that carried the request for `target` (the last one, if several)."""
        with self.lock:
            found = [c for c in self.connections if target in c.targets]
        assert found, f"{target} never reached the upstream"
        return found[-1]


class RecordingHandler(socketserver.BaseRequestHandler):
    """Frames what it reads as a strict RFC 9112 server would (the proxy's own decoder, without
    its size limits: the proxy adds headers) and answers each complete request 200 with its
    target as the body; /slow/S after S seconds; /big/N with N bytes as fast as the peer takes
    them; /drip/N with N pieces of 64 KiB, 20 ms apart."""

    server: RecordingUpstream

    def handle(self) -> None:
        recording = self.server.recording
        connection = RecordedConnection()
        with recording.lock:
            recording.connections.append(connection)
        decoder = RequestDecoder(max_header_bytes=1 << 20, max_header_count=1000,
                                 accept_http_10=True)
        sock: socket.socket = self.request
        sock.settimeout(10)
        ended = "eof"
        try:
            while data := sock.recv(65536):
                with recording.lock:
                    connection.raw += data
                    recording.received.append(data)
                try:
                    complete = self.record(connection, decoder.feed(data))
                except ProtocolError:
                    ended = "protocol error"
                    break
                for target in complete:  # recorded first: what arrived together shows it
                    self.respond(target)
                    with recording.lock:
                        recording.events.append(("answered", target))
                if decoder.error is not None:
                    ended = "protocol error"
                    break
        except TimeoutError:
            ended = "timeout"
        except OSError:
            ended = "reset"
        finally:
            with recording.lock:
                connection.ended = ended

    def record(self, connection: RecordedConnection, events: list[RequestEvent]) -> list[str]:
        """Record the heads and ends among `events`; the targets of the complete requests."""
        complete = []
        recording = self.server.recording
        with recording.lock:
            for event in events:
                if isinstance(event, RequestHead):
                    connection.targets.append(event.target)
                    recording.events.append(("head", event.target))
                elif isinstance(event, EndOfMessage):
                    complete.append(connection.targets[-1])
                    recording.events.append(("end", connection.targets[-1]))
        return complete

    def respond(self, target: str) -> None:
        sock: socket.socket = self.request
        kind, _, argument = target.strip("/").partition("/")
        if kind in ("big", "drip"):
            self.stream(int(argument), drip=kind == "drip")
            return
        if kind == "slow":
            time.sleep(float(argument))
        body = target.encode("latin-1")
        sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))

    def stream(self, count: int, *, drip: bool) -> None:
        size = count * DRIP_PIECE if drip else count
        sock: socket.socket = self.request
        sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        block = b"x" * (DRIP_PIECE if drip else 1 << 20)
        recording = self.server.recording
        while size:
            piece = block[:size]
            sock.sendall(piece)
            size -= len(piece)
            with recording.lock:
                recording.sent += len(piece)
            if drip:
                time.sleep(0.02)


class RecordingUpstream(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), RecordingHandler)
        self.recording = Recording()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@contextlib.contextmanager
def recording_upstream() -> Iterator[RecordingUpstream]:
    upstream = RecordingUpstream()
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        yield upstream
    finally:
        upstream.shutdown()
        upstream.server_close()


# process and log probes ---------------------------------------------------------------------------
def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def peak_rss_bytes(pid: int) -> int:
    """VmHWM (peak resident set) of a process, from /proc/PID/status."""
    return _status_bytes(pid, "VmHWM")


def rss_bytes(pid: int) -> int:
    """VmRSS (resident set now) of a process, from /proc/PID/status."""
    return _status_bytes(pid, "VmRSS")


def _status_bytes(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {name} in /proc status")


def wait_for(predicate: Callable[[], object], *, timeout: float, interval: float = 0.05,
             message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"{message} not reached within {timeout}s")


def access_records(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_access_record(path: Path, predicate: Callable[[dict[str, object]], bool], *,
                       timeout: float = 10.0) -> dict[str, object]:
    """The first access-log record matching `predicate`, waiting for the proxy's flush."""
    found: list[dict[str, object]] = []

    def check() -> bool:
        found[:] = [record for record in access_records(path) if predicate(record)]
        return bool(found)

    wait_for(check, timeout=timeout, message=f"access log record in {path}")
    return found[0]


def cluster_hosts(proxy: Proxy) -> dict[str, list[dict[str, object]]]:
    """/clusters?format=json as {cluster name: hosts}."""
    rows = httpx.get(f"{proxy.admin_url}/clusters?format=json", timeout=5).json()
    return {row["name"]: row["hosts"] for row in rows["cluster_statuses"]}


# chaos: upstream processes to SIGKILL and restart, a steady keep-alive load ----------------------
# A separate process (so SIGKILL is real) that starts in ~0.1 s: only http.server is imported, and
# each response leaves in one write, so a kill never cuts a response halfway through.
UPSTREAM_SCRIPT = """\
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = sys.argv[2].encode()
SERVICE_TIME = float(sys.argv[3])
HEAD = b"HTTP/1.1 200 OK\\r\\ncontent-type: text/plain\\r\\ncontent-length: %d\\r\\n\\r\\n"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        time.sleep(SERVICE_TIME)
        self.wfile.write(HEAD % len(NAME) + NAME)


ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print("ready", flush=True)
server.serve_forever()
"""


class UpstreamProcess:
    """An upstream in its own process on a fixed port, killed with SIGKILL and restarted there."""

    def __init__(self, name: str, port: int | None = None, *, service_time: float = 0.0) -> None:
        self.name = name
        self.port = port or free_port()
        self.service_time = service_time  # seconds each request takes
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            process = subprocess.Popen(
                [sys.executable, "-c", UPSTREAM_SCRIPT, str(self.port), self.name,
                 str(self.service_time)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )
            assert process.stdout is not None
            if process.stdout.readline() == b"ready\n":
                self.process = process
                return
            process.wait()  # it could not bind (yet): try again
            if time.monotonic() > deadline:
                raise AssertionError(f"upstream {self.name} cannot listen on {self.port}")
            time.sleep(0.05)

    def kill(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()

    def __enter__(self) -> UpstreamProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


@contextlib.contextmanager
def killing(victim: UpstreamProcess, *, down: float, up: float) -> Iterator[list[int]]:
    """While the block runs: SIGKILL `victim`, leave it dead `down` seconds, restart it on its
    port, let it live `up` seconds, and again. Yields [kills so far]."""
    stop = threading.Event()
    kills = [0]

    def run() -> None:
        while not stop.wait(up):
            victim.kill()
            kills[0] += 1
            stop.wait(down)
            victim.start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield kills
    finally:
        stop.set()
        thread.join(timeout=15)


@dataclass
class LoadResult:
    """What a steady load saw: per-request latency (s) and every failure with its cause."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def success_rate(self) -> float:
        return 1 - len(self.failures) / self.requests if self.requests else 0.0

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] * 1000

    def summary(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "failures": len(self.failures),
            "success_rate": round(self.success_rate, 6),
            "p50_ms": round(self.percentile_ms(50), 2),
            "p99_ms": round(self.percentile_ms(99), 2),
            "max_ms": round(max(self.latencies, default=0.0) * 1000, 2),
        }


def steady_load(port: int, *, host: str, path: str, clients: int, rate: float, seconds: float,
                timeout: float = 10.0) -> LoadResult:
    """`clients` keep-alive connections sending GET `path` at `rate` requests/s in total (each
    on its own schedule: remora.loadgen's PINNED dispatch) for `seconds`; a non-200 or a broken
    connection is a failure, and a latency runs from when the request was sent."""
    target = Target.build(f"http://127.0.0.1:{port}{path}", headers=[("host", host)])
    run = LoadRun(target, schedule(rate, seconds), clients, timeout, dispatch=Dispatch.PINNED,
                  retry_stale=False)  # fmt: skip
    results, _ = run_load(run)
    result = LoadResult()
    for one in results:
        result.latencies.append(one.service_time)
        if one.status is None:
            result.failures.append(f"error: {one.error}")
        elif one.status != 200:
            result.failures.append(f"{one.status} {one.excerpt!r}")
    return result


# The chaos scenario (tests/e2e/test_proxy_chaos.py and bench/chaos.py): three instances
# behind a route with a timeout and retries, outlier detection on, one instance killed again and
# again.
CHAOS_ROUTE_TIMEOUT = 3.0
CHAOS_CLUSTER = "outbound|8000||chaos.default.svc.cluster.local"
CHAOS_RULES = f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: chaos}}
spec:
  hosts: [chaos]
  http:
  - timeout: {CHAOS_ROUTE_TIMEOUT}s
    retries: {{attempts: 3, retryOn: "5xx,reset,connect-failure", perTryTimeout: 1s}}
    route: [{{destination: {{host: chaos}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: chaos}}
spec:
  host: chaos
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 3
      interval: 1s
      baseEjectionTime: 2s
      maxEjectionPercent: 50
"""


@dataclass
class ChaosRun:
    load: LoadResult
    kills: int
    victim_errors: int  # failed tries on the killed instance (/clusters rq_error)
    victim_connect_failures: int  # /clusters cx_connect_fail
    ejections: int  # envoy_cluster_outlier_detection_ejections_enforced_total

    def summary(self) -> dict[str, float | int]:
        return {**self.load.summary(), "kills": self.kills, "victim_errors": self.victim_errors,
                "victim_connect_failures": self.victim_connect_failures,
                "ejections": self.ejections}


def chaos_run(tmp: Path, *, seconds: float, clients: int = 4, rate: float = 300.0,
              down: float = 0.3, up: float = 0.5, service_time: float = 0.01) -> ChaosRun:
    """Three upstream processes (each request takes `service_time` s, so some are in flight
    when the kill comes) behind a `remora proxy`; instance 0 is SIGKILLed and restarted (dead
    `down` s, alive `up` s) while `clients` keep-alive clients send `rate` req/s in all."""
    config = tmp / "chaos-config"
    config.mkdir(exist_ok=True)
    with contextlib.ExitStack() as stack:
        instances = [stack.enter_context(UpstreamProcess(f"chaos-{i}", service_time=service_time))
                     for i in range(3)]
        endpoints: list[tuple[int, dict[str, str]]] = [(u.port, {}) for u in instances]
        (config / "chaos.yaml").write_text(
            service_yaml("chaos", 8000, endpoints) + "---\n" + CHAOS_RULES)
        proxy = stack.enter_context(run_proxy(config, tmp=tmp))
        with killing(instances[0], down=down, up=up) as kills:
            load = steady_load(proxy.outbound, host="chaos:8000", path="/", clients=clients,
                               rate=rate, seconds=seconds, timeout=CHAOS_ROUTE_TIMEOUT + 5)
        victim = next(row for row in cluster_hosts(proxy)[CHAOS_CLUSTER]
                      if row["address"] == f"127.0.0.1:{instances[0].port}")
        metrics = httpx.get(f"{proxy.admin_url}/stats/prometheus", timeout=5).text
        ejections = sum(int(float(line.rsplit(" ", 1)[1])) for line in metrics.splitlines()
                        if line.startswith("envoy_cluster_outlier_detection_ejections_enforced"))
        return ChaosRun(load, kills[0], victim_errors=int(str(victim["rq_error"])),
                        victim_connect_failures=int(str(victim["cx_connect_fail"])),
                        ejections=ejections)
