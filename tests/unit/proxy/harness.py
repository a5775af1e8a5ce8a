"""The proxy on an in-memory network: the data path without sockets (STYLE.md: httpx's
MockTransport, mitmproxy's playbooks).

A `ProxyHarness` compiles YAML into a snapshot, builds the proxy's env and chains exactly as a
running proxy does, and connects:
- clients: `client()` is a DownstreamConnection on a listener with a `MemoryTransport`; the
  test feeds it bytes and reads back what the proxy wrote, decoded (`responses()`);
- upstreams: every connection the pools open lands on the `MemoryNetwork`, where the test reads
  the request the proxy sent and answers it, or makes the connect fail.
Timers (timeouts, fault delays, back-off) run on a real event loop: `run(...)` lets it turn.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from remora.mesh.compile import compile_snapshot
from remora.mesh.snapshot import ListenerPorts, ProxyIdentity, Snapshot
from remora.proxy.chain import activate
from remora.proxy.codec.events import Data, EndOfMessage, ResponseHead
from remora.proxy.codec.http1 import ResponseDecoder
from remora.proxy.env import ProxyEnv, ProxyOptions
from remora.proxy.labels import Labels
from remora.proxy.server import DownstreamConnection
from remora.proxy.upstream import Pools, UpstreamConnection
from remora.telemetry.accesslog import AccessLog
from remora.telemetry.metrics import IstioMetrics
from tests.unit.mesh import load


def service_entry(name: str, *, port: int = 9080, endpoints: tuple[str, ...] = ("10.0.0.1",),
                  location: str = "MESH_INTERNAL") -> str:
    """A STATIC ServiceEntry `<name>.default.svc.cluster.local` with endpoints, then "---"."""
    addresses = ", ".join(f"{{address: {a}}}" for a in endpoints)
    return f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}}}
spec:
  hosts: [{name}.default.svc.cluster.local]
  location: {location}
  resolution: STATIC
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  endpoints: [{addresses}]
---
"""


class MemoryTransport:
    """Just enough of asyncio.Transport for the proxy's protocols; keeps what was written."""

    def __init__(self, peer: tuple[str, int] = ("127.0.0.1", 40000)) -> None:
        self.written = bytearray()
        self.peer = peer
        self.closed = False
        self.eof_written = False  # the proxy half-closed (FIN)
        self.reading = True
        self.unflushed = 0
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        assert not self.eof_written, "write after write_eof"
        self.written += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def take(self) -> bytes:
        data = bytes(self.written)
        self.written.clear()
        return data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return self.unflushed  # what the peer has not read: tests set it


@dataclass
class Upstream:
    """One connection the proxy opened to an endpoint."""

    host: str
    port: int
    protocol: UpstreamConnection
    transport: MemoryTransport

    def request(self) -> bytes:
        """What the proxy wrote on this connection since the last call."""
        return self.transport.take()

    def respond(self, data: bytes) -> None:
        self.protocol.data_received(data)

    def close(self) -> None:
        """The upstream closes the connection (after `respond`, or instead of it)."""
        self.transport.closed = True
        self.protocol.connection_lost(None)


@dataclass
class MemoryNetwork:
    """Where the pools' connections go: each connect makes an `Upstream`; a port in `refused`
    fails as a refused connection does."""

    opened: list[Upstream] = field(default_factory=list)
    refused: set[int] = field(default_factory=set)

    async def connect(self, factory: Callable[[], asyncio.Protocol], host: str, port: int
                      ) -> tuple[asyncio.BaseTransport, asyncio.Protocol]:
        if port in self.refused:
            raise ConnectionRefusedError(111, "Connection refused")
        protocol = cast("UpstreamConnection", factory())
        transport = MemoryTransport((host, port))
        protocol.connection_made(transport)  # type: ignore[arg-type]
        self.opened.append(Upstream(host, port, protocol, transport))
        return transport, protocol  # type: ignore[return-value]

    @property
    def last(self) -> Upstream:
        assert self.opened, "the proxy opened no upstream connection"
        return self.opened[-1]


@dataclass
class Response:
    head: ResponseHead
    body: bytes

    @property
    def status(self) -> int:
        return self.head.status

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.head.headers)

    def header_list(self, name: str) -> list[str]:
        return [v for k, v in self.head.headers if k == name]


class Client:
    """A client connection to one of the proxy's listeners."""

    def __init__(self, connection: DownstreamConnection, transport: MemoryTransport) -> None:
        self.connection = connection
        self.transport = transport
        self.decoder = ResponseDecoder()
        self.pending: list[str] = []  # methods of requests sent and not yet answered

    def send(self, data: bytes, *, method: str = "GET") -> None:
        self.pending.append(method)
        self.connection.data_received(data)

    def get(self, path: str, *, host: str, headers: Mapping[str, str] | None = None) -> None:
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    def responses(self) -> list[Response]:
        """The complete responses written since the last call."""
        out: list[Response] = []
        data = self.transport.take()
        while data and self.pending:
            self.decoder.start(method=self.pending[0])
            events = self.decoder.feed(data)
            data = b""
            head: ResponseHead | None = None
            body = b""
            for event in events:
                if isinstance(event, ResponseHead):
                    if event.status < 200:
                        continue
                    head = event
                elif isinstance(event, Data):
                    body += event.data
                elif isinstance(event, EndOfMessage) and head is not None:
                    out.append(Response(head, body))
                    self.pending.pop(0)
        return out

    def response(self) -> Response:
        found = self.responses()
        assert len(found) == 1, f"expected one response, got {len(found)}"
        return found[0]

    def lose(self) -> None:
        """The client goes away."""
        self.transport.closed = True
        self.connection.connection_lost(None)

    def half_close(self) -> None:
        """The client shuts down its sending side (FIN), as asyncio reports it: the
        connection closes unless the protocol keeps it open to answer."""
        if not self.connection.eof_received() or self.transport.closed:
            self.lose()


class ProxyHarness:
    """A proxy's env and chains from YAML, on a MemoryNetwork; use inside a running loop."""

    def __init__(self, yaml: str, *, mode: str = "sidecar", namespace: str = "default",
                 labels: Mapping[str, str] | None = None, app_port: int | None = None,
                 access_log: str | None = None, seed: int = 0,
                 accept_http_10: bool = False) -> None:
        self.identity = ProxyIdentity(mode=mode, namespace=namespace,  # type: ignore[arg-type]
                                      labels=dict(labels or {}), workload="client",
                                      app_port=app_port)
        self.snapshot: Snapshot = compile_snapshot(load(yaml), self.identity, version="1",
                                                   listener_ports=ListenerPorts())
        self.network = MemoryNetwork()
        self.tasks: set[asyncio.Task[Any]] = set()
        loop = asyncio.get_running_loop()
        options = ProxyOptions(access_log=access_log, accept_http_10=accept_http_10)
        self.env = ProxyEnv(
            loop=loop, rng=random.Random(seed), options=options,
            pools=Pools(connector=self.network.connect), metrics=IstioMetrics(),
            access_log=AccessLog(access_log), labels=Labels(), spawn=self.spawn,
        )
        self.env.active = activate(self.env, self.snapshot)
        self.connections: set[DownstreamConnection] = set()

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def client(self, direction: str = "outbound", *, scheme: str = "http",
               options: ProxyOptions | None = None) -> Client:
        """A client connection to the listener of `direction`, with its options (the
        listener's, as the runtime gives them, unless `options`)."""
        listener = next(x for x in self.snapshot.listeners if x.direction == direction)
        connection = DownstreamConnection(
            self.env, listener, scheme=scheme, connections=self.connections,
            options=options or self.env.active.options[listener.port])
        transport = MemoryTransport()
        connection.connection_made(transport)  # type: ignore[arg-type]
        return Client(connection, transport)

    async def settle(self, seconds: float = 0.0) -> None:
        """Let spawned work (connects, mirrors) and timers due within `seconds` run."""
        await asyncio.sleep(seconds)
        for _ in range(5):
            await asyncio.sleep(0)

    @property
    def chain_names(self) -> Mapping[str, tuple[str, ...]]:
        return {kind: chain.names for kind, chain in self.env.active.chains.items()}


def run(test: Callable[[], Any]) -> Any:
    """Run an async test body on a fresh event loop."""
    return asyncio.run(test())


# helpers added for the filter, call and cluster tests -------------------------------------------
def requests_total(proxy: ProxyHarness) -> list[tuple[dict[str, str], float]]:
    """istio_requests_total as the proxy would serve it on /stats/prometheus: (labels, count)
    per series, read back through the Prometheus text format."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    out: list[tuple[dict[str, str], float]] = []
    for family in text_string_to_metric_families(proxy.env.metrics.render().decode()):
        if family.name == "istio_requests":  # the parser drops a counter's "_total"
            out.extend((dict(s.labels), s.value) for s in family.samples
                       if s.name == "istio_requests_total")
    return out


def access_log_lines(proxy: ProxyHarness, path: str) -> list[dict[str, Any]]:
    """The JSON access log records written so far (flushed first)."""
    import json  # noqa: PLC0415

    proxy.env.access_log.flush()
    with open(path, encoding="ascii") as log:
        return [json.loads(line) for line in log if line.strip()]


def request_bytes(method: str, target: str, *, host: str,
                  headers: Mapping[str, str] | None = None, body: bytes = b"") -> bytes:
    """An HTTP/1.1 request as a client writes it; a body gets a Content-Length."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
