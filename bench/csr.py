"""Benchmark: certificates the CA signs per second (POST /api/remora/v1/certificates).

One control plane in this process (SQLite store, auth on as users run it: the gate, the hot
paths and the app, over httpx's in-memory ASGI transport, so no socket or HTTP parsing is
counted), one join token, then --csrs requests of a fresh EC P-256 CSR each, --concurrency in
flight. The CSRs are made before the clock starts (a proxy makes its own key); what is timed
is the token check, the CSR check, the signature and the JSON both ways. Target: >= 200/s
(a mesh of 10,000 proxies renewing 24 h certificates needs 0.12/s; a cold start of all of
them at once, 10,000 in under a minute).

    .venv/bin/python bench/csr.py [--csrs 2000] [--concurrency 16] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rich.console import Console
from rich.table import Table

from remora.controlplane.app import create_app
from remora.controlplane.auth_gate import AuthGate
from remora.controlplane.fastpaths import FastPaths
from remora.controlplane.state import ControlPlane
from remora.registry.store.sqlite import SqliteStore

TARGET = 200
PASSWORD = "bench-admin-password"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def csrs(count: int) -> list[str]:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    return [builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM).decode() for _ in range(count)]


async def run(count: int, concurrency: int, data: Path) -> dict[str, Any]:
    store = await SqliteStore(data / "remora.db").open()
    state = await ControlPlane.open(store, auth=True)
    await state.auth.bootstrap(data_dir=data, server="http://cp", password=PASSWORD)
    app = AuthGate(FastPaths(create_app(state), state), state.auth)
    pending = csrs(count)
    latencies: list[float] = []
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://cp") as http:
            login = await http.post("/nacos/v1/auth/login",
                                    data={"username": "admin", "password": PASSWORD})
            admin = login.json()["accessToken"]
            token = (await http.post("/api/remora/v1/identitytokens", json={
                "namespace": "default", "serviceAccount": "bench"},
                headers={"Authorization": f"Bearer {admin}"})).json()["token"]

            async def worker() -> None:
                while pending:
                    csr = pending.pop()
                    started = time.perf_counter()
                    answer = await http.post("/api/remora/v1/certificates",
                                             json={"csr": csr, "token": token})
                    latencies.append(time.perf_counter() - started)
                    if answer.status_code != 200:
                        raise RuntimeError(f"{answer.status_code}: {answer.text}")

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
    finally:
        await state.close()
    latencies.sort()
    return {"csrs": count, "concurrency": concurrency, "seconds": round(elapsed, 3),
            "csrs_per_s": round(count / elapsed), "p50_ms": round(
                statistics.median(latencies) * 1000, 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
            "issued": state.ca.counters["issued"]}


def print_table(row: dict[str, Any]) -> None:
    table = Table(title=f"Remora CA: certificates signed (in-process ASGI; target csrs_per_s "
                        f">= {TARGET:,})")
    for column in row:
        table.add_column(column)
    mark = " [green]✓[/]" if row["csrs_per_s"] >= TARGET else " [red]✗[/]"
    table.add_row(*(f"{value:,}{mark if key == 'csrs_per_s' else ''}"
                    for key, value in row.items()))
    Console(width=200).print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csrs", type=int, default=2000, help="certificates to request")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args()
    log(f"-- {args.csrs:,} CSRs, {args.concurrency} in flight")
    with tempfile.TemporaryDirectory() as data:
        row = asyncio.run(run(args.csrs, args.concurrency, Path(data)))
    print_table(row)
    if args.json:
        print(json.dumps(row))
    return 0 if row["csrs_per_s"] >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
