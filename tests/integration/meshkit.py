"""Real peers for end-to-end proxy tests: small HTTP upstreams and a `remora proxy` process,
all on 127.0.0.1 with free ports, always stopped."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

REMORA = [sys.executable, "-m", "remora.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EchoHandler(BaseHTTPRequestHandler):
    """Answers with JSON describing the request and which upstream served it.

    /bytes/N streams N bytes; /status/N answers N; /slow/S sleeps S seconds; /close answers
    with a Content-Length it never fulfils and closes (a broken upstream).
    """

    protocol_version = "HTTP/1.1"
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

    def handle_any(self) -> None:
        self.server.hits += 1
        url = urlsplit(self.path)
        received = self._body_length()
        parts = url.path.strip("/").split("/")
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
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "received": received,
        }).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("x-upstream", self.server.name)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = handle_any  # noqa: N815


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), EchoHandler)
        self.name = name
        self.hits = 0

    @property
    def port(self) -> int:
        return int(self.server_address[1])


@contextlib.contextmanager
def echo_servers(*names: str) -> Iterator[dict[str, EchoServer]]:
    servers = {name: EchoServer(name) for name in names}
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers.values()]
    for thread in threads:
        thread.start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.shutdown()
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
              expect_ready: bool = True) -> Iterator[Proxy]:
    ports = {name: free_port() for name in ("outbound", "inbound", "admin", "health")}
    stderr_path = tmp / f"proxy-{ports['admin']}.log"
    command = [
        *REMORA, "proxy", "-f", str(config),
        "--outbound-port", str(ports["outbound"]), "--inbound-port", str(ports["inbound"]),
        "--admin-port", str(ports["admin"]), "--health-port", str(ports["health"]), *args,
    ]
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(command, stdout=stderr, stderr=stderr,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proxy = Proxy(config, process, stderr_path=stderr_path, **ports)
    try:
        if expect_ready:
            wait_ready(proxy, ready_timeout)
        yield proxy
    finally:
        proxy.stop()


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
