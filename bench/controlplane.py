"""Benchmark: the control plane — registrations, list queries, push latency and memory by scale.

Starts `remora controlplane` (auth on, as users run it: the benchmark logs in with the
credentials the control plane writes and sends the token on every request) on 127.0.0.1 for
each store and scale, and drives it over HTTP as clients would:
  - register_per_s: N ephemeral instances through the Nacos v1 API (POST
    /nacos/v1/ns/instance, `accessToken` parameter), 64 requests in flight, over 100 services;
  - settle_s: seconds until the control plane is idle again after the last registration
    (the push and the registry's watch digesting the burst);
  - list_per_s: GET /nacos/v1/ns/instance/list?healthyOnly=true for those services, 64 in
    flight, for a fixed time, once settled;
  - push_p50_ms / push_p99_ms: P lightweight proxy subscribers on the push stream, one
    VirtualService change applied, time until each subscriber has received the new version
    and ACKed it (for each P in --proxies, on the same control plane);
  - rss_mb: the control plane's resident memory after the list phase (registry and views),
    and after each push phase (with P streams open).
Anchors: Nacos 1.0 on three 16-core nodes ≈ 13,000 registrations/s, ≈ 15,600 queries/s;
Nacos config publish → listener 35–183 ms. Targets on 2 cores: ≥ 5,000 registrations/s,
≥ 10,000 list queries/s, push p99 ≤ 100 ms to 100 proxies at 10,000 instances.

    .venv/bin/python bench/controlplane.py [--instances N[,N...]] [--proxies P[,P...]]
                                           [--store sqlite|etcd|both] [--no-auth] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from rich.console import Console
from rich.table import Table

from _http import Connection
from _procs import Service, usage, wait_for_http
from remora.loadgen import BackToBack, Dispatch, LoadRun
from remora.loadgen import Target as LoadTarget
from remora.runner.ports import free_port

REMORA = Path(sys.executable).with_name("remora")
CONCURRENCY = 64
SERVICES = 100
LIST_SECONDS = 5.0
HEAD = re.compile(rb'\{"type":"(?P<type>snapshot|delta)",(?:"base":"[0-9a-f]*",)?'
                  rb'"version":"(?P<version>[0-9a-f]+)"')
PUSH_WAIT = 120.0  # seconds for every subscriber to have a view
TARGETS = {"register_per_s": 5000, "list_per_s": 10000, "push_p99_ms": 100}

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: bench, namespace: default}}
spec:
  hosts: [bench]
  http: [{{route: [{{destination: {{host: bench}}}}], timeout: {timeout}s}}]
---
apiVersion: v1
kind: Service
metadata: {{name: bench, namespace: default}}
spec:
  selector: {{app: bench}}
  ports: [{{name: http, port: 8080}}]
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def check(status: int, body: bytes) -> None:
    if status >= 300:
        raise RuntimeError(f"control plane answered {status}: {body[:200]!r}")


@dataclass(frozen=True)
class Target:
    """The control plane under test and the token to send (None with --no-auth)."""

    port: int
    token: str | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def nacos(self, params: dict[str, object]) -> dict[str, object]:
        """Nacos parameters with the token where Nacos clients put it (`accessToken`)."""
        return params if self.token is None else {**params, "accessToken": self.token}

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.token is None else {"Authorization": f"Bearer {self.token}"}

    def load_target(self, method: str) -> LoadTarget:
        return LoadTarget.build(f"{self.url}/", method=method, headers=list(self.headers.items()))

    def request(self, method: str, path: str, params: dict[str, object]) -> bytes:
        """The bytes of one request with `params` in its query string (no body)."""
        return LoadTarget.build(f"{self.url}{path}?{urlencode(params)}", method=method,
                                headers=list(self.headers.items())).request  # fmt: skip

    async def connect(self) -> Connection:
        return await Connection.open("127.0.0.1", self.port, headers=self.headers)


def login(url: str, data_dir: Path) -> str:
    """Log in with the credentials the control plane wrote on first start."""
    credentials = json.loads((data_dir / "credentials.json").read_text())
    answer = httpx.post(f"{url}/nacos/v1/auth/login", data={
        "username": credentials["username"], "password": credentials["password"]})
    answer.raise_for_status()
    return str(answer.json()["accessToken"])


async def pooled(target: Target, request: Callable[[int], bytes], *, count: int,
                 seconds: float = math.inf, method: str = "GET") -> tuple[int, float]:
    """`request(i)` for i = 0, 1, ... (`count` of them, or as many as `seconds` allow) over
    CONCURRENCY keep-alive connections, each sending its next one when the last is answered
    (remora.loadgen: every request due at the start, PINNED); (answered, seconds taken). An
    answer >= 300 or no answer at all stops the benchmark."""
    load = LoadRun(target.load_target(method), BackToBack(count), CONCURRENCY, 30.0,
                   dispatch=Dispatch.PINNED, request_for=request, deadline=seconds,
                   versions=False)  # fmt: skip
    results, elapsed = await load.run()
    for result in results:
        if result.status is None or result.status >= 300:
            raise RuntimeError(f"control plane answered {result.outcome}: {result.excerpt!r}")
    return len(results), elapsed


async def register(target: Target, instances: int) -> float:
    def request(i: int) -> bytes:
        return target.request("POST", "/nacos/v1/ns/instance", target.nacos({
            "serviceName": f"svc-{i % SERVICES}", "ip": f"10.{i // 65536 % 256}."
            f"{i // 256 % 256}.{i % 256}", "port": 8080, "ephemeral": "true",
            # ephemeral, as Nacos clients register; long beat timeouts (Nacos's preserved.*
            # metadata) so that instances without a beating client stay put during the run
            "metadata": json.dumps({"version": f"v{i % 3}",
                                    "preserved.heart.beat.timeout": "600000",
                                    "preserved.ip.delete.timeout": "600000"}),
        }))

    done, seconds = await pooled(target, request, count=instances, method="POST")
    return done / seconds


async def list_queries(target: Target) -> float:
    requests = [target.request("GET", "/nacos/v1/ns/instance/list", target.nacos(
        {"serviceName": f"svc-{i}", "healthyOnly": "true"})) for i in range(SERVICES)]
    done, seconds = await pooled(target, lambda i: requests[i % SERVICES], count=1 << 40,
                                 seconds=LIST_SECONDS)  # fmt: skip
    return done / seconds


async def subscriber(target: Target, name: str, seen: asyncio.Queue[tuple[str, float, float]]
                     ) -> None:
    """A lightweight proxy: reads its stream, reads each view message's head, ACKs it; puts
    (change marker, received at, ACKed at) on `seen`."""
    node = {"id": f"sidecar~127.0.0.1~{name}.default~default.svc.cluster.local",
            "mode": "sidecar", "namespace": "default", "labels": {"app": name}}
    try:
        await follow(target, node, seen)
    except Exception as exc:  # say so: the waiting push round must not wait out PUSH_WAIT
        seen.put_nowait((f"failed: {exc!r}", 0.0, 0.0))
        raise


async def follow(target: Target, node: dict[str, Any],
                 seen: asyncio.Queue[tuple[str, float, float]]) -> None:
    stream = await target.connect()
    acks: Connection | None = None  # opened for the first ACK, again if the server closed it

    async def ack(version: str) -> None:
        nonlocal acks
        for retry in (False, True):
            if acks is None:
                acks = await target.connect()
            try:
                check(*await acks.post_json("/api/remora/v1/discovery/ack",
                                            {"node": node["id"], "version": version}))
                return
            except ConnectionError:  # an idle keep-alive connection closed: as httpx does
                acks.close()
                acks = None
                if retry:
                    raise

    try:
        async for line in stream.stream_lines("/api/remora/v1/discovery", {"node": node}):
            head = HEAD.match(line)  # lightweight: the type and version lead every line
            if head is None:
                continue
            received = time.perf_counter()
            version = head["version"].decode()
            await ack(version)
            # which change this is: the benchmark's route change sets the timeout to 2s (the
            # compiled route carries it in seconds)
            marker = "changed" if b'"timeout":2.0' in line else version
            seen.put_nowait((marker, received, time.perf_counter()))
    finally:
        stream.close()
        if acks is not None:
            acks.close()


def failed(marker: str, received: float, acked: float) -> tuple[str, float, float]:
    if marker.startswith("failed: "):
        raise RuntimeError(f"a subscriber {marker}")
    return marker, received, acked


async def apply(client: httpx.AsyncClient, timeout: int) -> None:
    response = await client.post("/api/remora/apply", content=VS.format(timeout=timeout),
                                 headers={"content-type": "application/yaml"})
    response.raise_for_status()


async def push(client: httpx.AsyncClient, target: Target, proxies: int, round_: int
               ) -> list[float]:
    """Milliseconds from the change's apply to each subscriber's ACK of the new version."""
    await apply(client, 1)
    seen = [asyncio.Queue[tuple[str, float, float]]() for _ in range(proxies)]
    tasks = [asyncio.create_task(subscriber(target, f"bench-{round_}-{i}", seen[i]))
             for i in range(proxies)]
    try:
        for queue in seen:  # everyone has the first view
            failed(*await asyncio.wait_for(queue.get(), PUSH_WAIT))
        await asyncio.sleep(0.5)  # a lone change, not the tail of a burst (no debounce wait)
        started = time.perf_counter()
        await apply(client, 2)
        log(f"  apply answered in {(time.perf_counter() - started) * 1000:.1f} ms")
        latencies: list[float] = []
        receipts: list[float] = []
        deadline = started + PUSH_WAIT
        for queue in seen:
            while True:
                marker, received, acked = failed(*await asyncio.wait_for(
                    queue.get(), max(0.0, deadline - time.perf_counter())))
                if marker == "changed":
                    latencies.append((acked - started) * 1000)
                    receipts.append((received - started) * 1000)
                    break
        log(f"  received p50 {statistics.median(receipts):.1f} ms, "
            f"max {max(receipts):.1f} ms; ACKed max {max(latencies):.1f} ms")
        return latencies
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def busy(pid: int, phase: Awaitable[float]) -> tuple[float, dict[str, float]]:
    """The phase's result, and the share of one core the control plane and this benchmark
    client each used meanwhile (1.0 = a core saturated: whoever is at 1.0 is the limit)."""
    server, client, started = usage(pid).cpu_s, time.process_time(), time.perf_counter()
    result = await phase
    wall = time.perf_counter() - started
    return result, {"server": round((usage(pid).cpu_s - server) / wall, 2),
                    "client": round((time.process_time() - client) / wall, 2)}


async def settle(pid: int, *, idle: float = 0.1, limit: float = 60.0) -> float:
    """Seconds until the control plane has digested the registrations (its last pushes, the
    registry's watch catching up): until it uses under `idle` of a core over half a second."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        before = usage(pid).cpu_s
        await asyncio.sleep(0.5)
        if usage(pid).cpu_s - before < idle * 0.5:
            break
    return time.perf_counter() - started


async def measure(target: Target, pid: int, *, instances: int, proxies: list[int]
                  ) -> list[dict[str, Any]]:
    """One control plane: register, list, then one push round per subscriber count."""
    log(f"registering {instances:,} instances ...")
    register_rate, register_busy = await busy(pid, register(target, instances))
    log(f"  {register_rate:,.0f} registrations/s")
    settled = await settle(pid)
    log(f"  settled {settled:.1f} s after the last registration")
    log(f"list queries for {LIST_SECONDS:g} s ...")
    list_rate, list_busy = await busy(pid, list_queries(target))
    log(f"  {list_rate:,.0f} queries/s")
    registry_rss = usage(pid).rss_mb
    rows = []
    limits = httpx.Limits(max_connections=8)
    async with httpx.AsyncClient(base_url=target.url, limits=limits, timeout=30,
                                 headers=target.headers) as client:
        for round_, count in enumerate(proxies):
            log(f"push to {count} subscribers ...")
            latencies = await push(client, target, count, round_)
            rows.append({
                "instances": instances, "proxies": count,
                "register_per_s": round(register_rate), "list_per_s": round(list_rate),
                "push_p50_ms": round(statistics.median(latencies), 1),
                "push_p99_ms": round(quantile(latencies, 99), 1),
                "push_max_ms": round(max(latencies), 1),
                "settle_s": round(settled, 1),
                "register_cpu": register_busy, "list_cpu": list_busy,
                "rss_mb": round(registry_rss, 1),
                "rss_pushed_mb": round(usage(pid).rss_mb, 1),
            })
    return rows


def start_etcd(folder: Path) -> tuple[Service, str]:
    """A single-member etcd (Debian etcd-server) on free ports; the store URL for it."""
    client, peer = free_port(), free_port()
    argv = ["/usr/bin/etcd", "--name", "bench", "--data-dir", str(folder / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{client}",
            "--advertise-client-urls", f"http://127.0.0.1:{client}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"bench=http://127.0.0.1:{peer}"]
    service = Service("etcd", argv, log=folder / "etcd.log", cwd=folder)
    wait_for_http(f"http://127.0.0.1:{client}/health", service)
    return service, f"etcd://127.0.0.1:{client}"


def run(*, instances: int, proxies: list[int], store: str, auth: bool) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="remora-cp-bench-") as tmp:
        folder = Path(tmp)
        etcd, url_of_store = (start_etcd(folder) if store == "etcd" else (None, "sqlite"))
        port = free_port()
        data_dir = folder / "data"
        argv = [str(REMORA), "controlplane", "--listen", f"127.0.0.1:{port}",
                "--data-dir", str(data_dir), "--store", url_of_store, "--log-level", "warning",
                *([] if auth else ["--no-auth"])]
        service = Service("remora controlplane", argv, log=folder / "cp.log", cwd=folder)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_http(f"{url}/healthz", service)
            target = Target(port, login(url, data_dir) if auth else None)
            rows = asyncio.run(measure(target, service.pid, instances=instances,
                                       proxies=proxies))
        finally:
            service.stop()
            if etcd is not None:
                etcd.stop()
    for row in rows:
        row.update(store=store, auth=auth, services=SERVICES, concurrency=CONCURRENCY,
                   list_seconds=LIST_SECONDS)
    return rows


COLUMNS = ("store", "instances", "proxies", "register_per_s", "list_per_s", "push_p50_ms",
           "push_p99_ms", "push_max_ms", "rss_mb", "rss_pushed_mb")


def mark(key: str, row: dict[str, Any]) -> str:
    target = TARGETS.get(key)
    if target is None:
        return ""
    ok = row[key] <= target if key.endswith("_ms") else row[key] >= target
    return " [green]✓[/]" if ok else " [red]✗[/]"


def print_table(rows: list[dict[str, Any]]) -> None:
    table = Table(title="Remora control plane (127.0.0.1; targets: "
                        + ", ".join(f"{k} {'<=' if k.endswith('_ms') else '>='} {v:,}"
                                    for k, v in TARGETS.items()) + ")")
    for column in COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(*(f"{row[key]:,}{mark(key, row)}" if isinstance(row[key], int | float)
                        else str(row[key]) for key in COLUMNS))
    Console(width=200).print(table)


def numbers(text: str) -> list[int]:
    return [int(item) for item in text.split(",") if item]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=numbers, default=[10_000],
                        help="comma-separated scales, one control plane each")
    parser.add_argument("--proxies", type=numbers, default=[100],
                        help="comma-separated subscriber counts, one push round each")
    parser.add_argument("--store", choices=["sqlite", "etcd", "both"], default="both")
    parser.add_argument("--no-auth", action="store_true",
                        help="run the control plane with --no-auth (an A/B figure)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    stores = ["sqlite", "etcd"] if args.store == "both" else [args.store]
    rows = []
    for store in stores:
        for instances in args.instances:
            log(f"-- store: {store}, {instances:,} instances")
            rows += run(instances=instances, proxies=args.proxies, store=store,
                        auth=not args.no_auth)
    print_table(rows)
    if args.json:
        print(json.dumps({"rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
