"""Benchmark: the control plane — registrations, list queries, and push latency to proxies.

Starts `remora controlplane` (SQLite store in a temp dir, one process) on 127.0.0.1 and drives
it over HTTP as clients would:
  - register_per_s: 10,000 ephemeral instances through the Nacos v1 API (POST
    /nacos/v1/ns/instance), 64 requests in flight, over 100 services;
  - list_per_s: GET /nacos/v1/ns/instance/list?healthyOnly=true for those services, 64 in
    flight, for a fixed time;
  - push_p50_ms / push_p99_ms: 100 lightweight proxy subscribers on the push stream, one
    VirtualService change applied, time until each subscriber has received the new version
    and ACKed it.
Anchors: Nacos 1.0 on three 16-core nodes ≈ 13,000 registrations/s, ≈ 15,600 queries/s;
Nacos config publish → listener 35–183 ms. Targets on 2 cores with SQLite: ≥ 5,000
registrations/s, ≥ 10,000 list queries/s, push p99 ≤ 100 ms to 100 proxies.

    .venv/bin/python bench/controlplane.py [--instances N] [--proxies N]
                                           [--store sqlite|etcd|both] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from _http import Connection
from _procs import Service, free_port, usage, wait_for_http

REMORA = Path(sys.executable).with_name("remora")
CONCURRENCY = 64
SERVICES = 100
LIST_SECONDS = 5.0
HEAD = re.compile(rb'\{"type":"(?P<type>snapshot|delta)",(?:"base":"[0-9a-f]*",)?'
                  rb'"version":"(?P<version>[0-9a-f]+)"')
RECEIVED: dict[int, float] = {}  # when each subscriber last received a view (before its ACK)
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


async def pooled(port: int, count: int, job: Any) -> float:
    """Run `await job(connection, i)` for i in range(count) over CONCURRENCY keep-alive
    connections; seconds taken."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        connection = await Connection.open("127.0.0.1", port)
        try:
            while not queue.empty():
                await job(connection, queue.get_nowait())
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - started


async def register(port: int, instances: int) -> float:
    async def one(connection: Connection, i: int) -> None:
        check(*await connection.request("POST", "/nacos/v1/ns/instance", params={
            "serviceName": f"svc-{i % SERVICES}", "ip": f"10.{i // 65536 % 256}."
            f"{i // 256 % 256}.{i % 256}", "port": 8080, "ephemeral": "true",
            # ephemeral, as Nacos clients register; long beat timeouts (Nacos's preserved.*
            # metadata) so that instances without a beating client stay put during the run
            "metadata": json.dumps({"version": f"v{i % 3}",
                                    "preserved.heart.beat.timeout": "600000",
                                    "preserved.ip.delete.timeout": "600000"}),
        }))

    return instances / await pooled(port, instances, one)


async def list_queries(port: int) -> float:
    deadline = time.perf_counter() + LIST_SECONDS
    done = 0

    async def one(connection: Connection, i: int) -> None:
        nonlocal done
        if time.perf_counter() < deadline:
            check(*await connection.request("GET", "/nacos/v1/ns/instance/list", params={
                "serviceName": f"svc-{i % SERVICES}", "healthyOnly": "true"}))
            done += 1

    seconds = await pooled(port, 10_000_000, one)
    return done / seconds


async def subscriber(port: int, index: int, versions: dict[int, str],
                     seen: dict[int, asyncio.Queue[tuple[str, float]]]) -> None:
    """A lightweight proxy: reads its stream, parses each view message, ACKs it."""
    node = {"id": f"sidecar~127.0.0.1~bench-{index}.default~default.svc.cluster.local",
            "mode": "sidecar", "namespace": "default", "labels": {"app": f"client-{index}"}}
    stream = await Connection.open("127.0.0.1", port)
    acks = await Connection.open("127.0.0.1", port)
    try:
        async for line in stream.stream_lines("/api/remora/v1/discovery", {"node": node}):
            head = HEAD.match(line)  # lightweight: the type and version lead every line
            if head is None:
                continue
            message = {"type": head["type"].decode(), "version": head["version"].decode()}
            received = time.perf_counter()
            check(*await acks.post_json("/api/remora/v1/discovery/ack",
                                        {"node": node["id"], "version": message["version"]}))
            RECEIVED[index] = received
            versions[index] = message["version"]
            # which change this is: the benchmark's route change sets the timeout to 2s
            marker = "changed" if b'"timeout":"2s"' in line else message["version"]
            seen[index].put_nowait((marker, time.perf_counter()))
    finally:
        stream.close()
        acks.close()


async def push(client: httpx.AsyncClient, port: int, proxies: int) -> list[float]:
    """Milliseconds from the change's apply to each subscriber's ACK of the new version."""
    await client.post("/api/remora/apply", content=VS.format(timeout=1),
                      headers={"content-type": "application/yaml"})
    versions: dict[int, str] = {}
    seen = {i: asyncio.Queue[tuple[str, float]]() for i in range(proxies)}
    tasks = [asyncio.create_task(subscriber(port, i, versions, seen)) for i in range(proxies)]
    try:
        for i in range(proxies):  # everyone has the first view
            await asyncio.wait_for(seen[i].get(), 120)
        await asyncio.sleep(0.5)  # a lone change, not the tail of a burst (no debounce wait)
        started = time.perf_counter()
        response = await client.post("/api/remora/apply", content=VS.format(timeout=2),
                                     headers={"content-type": "application/yaml"})
        response.raise_for_status()
        log(f"  apply answered in {(time.perf_counter() - started) * 1000:.1f} ms")
        latencies: list[float] = []
        receipts: list[float] = []
        for i in range(proxies):
            while True:
                marker, at = await asyncio.wait_for(seen[i].get(), 120)
                if marker == "changed":
                    latencies.append((at - started) * 1000)
                    receipts.append((RECEIVED[i] - started) * 1000)
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


async def measure(url: str, port: int, *, instances: int, proxies: int) -> dict[str, Any]:
    log(f"registering {instances:,} instances ...")
    register_rate = await register(port, instances)
    log(f"  {register_rate:,.0f} registrations/s")
    log(f"list queries for {LIST_SECONDS:g} s ...")
    list_rate = await list_queries(port)
    log(f"  {list_rate:,.0f} queries/s")
    limits = httpx.Limits(max_connections=proxies + 8)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        log(f"push to {proxies} subscribers ...")
        latencies = await push(client, port, proxies)
    return {
        "register_per_s": round(register_rate),
        "list_per_s": round(list_rate),
        "push_p50_ms": round(statistics.median(latencies), 1),
        "push_p99_ms": round(quantile(latencies, 99), 1),
        "push_max_ms": round(max(latencies), 1),
    }


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


def run(*, instances: int, proxies: int, store: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="remora-cp-bench-") as tmp:
        folder = Path(tmp)
        etcd, url_of_store = (start_etcd(folder) if store == "etcd" else (None, "sqlite"))
        port = free_port()
        argv = [str(REMORA), "controlplane", "--listen", f"127.0.0.1:{port}",
                "--data-dir", str(folder / "data"), "--store", url_of_store,
                "--log-level", "warning"]
        service = Service("remora controlplane", argv, log=folder / "cp.log", cwd=folder)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_http(f"{url}/healthz", service)
            report = asyncio.run(measure(url, port, instances=instances, proxies=proxies))
            report["rss_mb"] = round(usage(service.pid).rss_mb, 1)
        finally:
            service.stop()
            if etcd is not None:
                etcd.stop()
    report["store"] = store
    report["settings"] = {"instances": instances, "services": SERVICES, "proxies": proxies,
                          "concurrency": CONCURRENCY, "list_seconds": LIST_SECONDS}
    return report


def print_table(report: dict[str, Any]) -> None:
    table = Table(title=f"Remora control plane ({report['store']}, 127.0.0.1)")
    for column in ("figure", "value", "target"):
        table.add_column(column)
    for key in ("register_per_s", "list_per_s", "push_p50_ms", "push_p99_ms", "push_max_ms",
                "rss_mb"):
        target = TARGETS.get(key)
        value = report[key]
        mark = ""
        if target is not None:
            ok = value <= target if key.endswith("_ms") else value >= target
            mark = " [green]✓[/]" if ok else " [red]✗[/]"
        goal = "" if target is None else (f"<= {target}" if key.endswith("_ms")
                                          else f">= {target:,}")
        table.add_row(key, f"{value:,}{mark}", goal)
    Console().print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--proxies", type=int, default=100)
    parser.add_argument("--store", choices=["sqlite", "etcd", "both"], default="both")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    stores = ["sqlite", "etcd"] if args.store == "both" else [args.store]
    reports = {}
    for store in stores:
        log(f"-- store: {store}")
        reports[store] = run(instances=args.instances, proxies=args.proxies, store=store)
        print_table(reports[store])
    if args.json:
        first = reports[stores[0]]
        print(json.dumps({**first, "by_store": reports}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
