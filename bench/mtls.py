"""Benchmark: Istio's mutual TLS between two sidecars against the same pair in plain text, in
the same run (issue 15).

    .venv/bin/python bench/mtls.py [--quick] [--pairs N] [--json]

The issue's target: with keep-alive, mTLS throughput ≥ 0.8× plain text's
(throughput_ratio = mtls / plain req/s); the rate of new connections is reported beside it.
(Certificate issuance, ≥ 200 CSRs/s, is bench/csr.py's.)

The path, all on 127.0.0.1: wrk → a client sidecar's outbound listener (`wrk -H 'Host:
back:9090'`) → a server sidecar's inbound listener → nginx (bench/_nginx.py's upstream: a
fixed 1 KiB body, one worker). The certificates are Istio's file-mounted ones (`remora proxy
--workload-certs DIR`: cert-chain.pem, key.pem, root-cert.pem), signed here by a root of
remora.controlplane.ca (trust domain cluster.local; the client is
spiffe://cluster.local/ns/default/sa/front, the server .../sa/back). The client's config is the
Service `back` (port 9090) whose one endpoint is a WorkloadEntry at the server sidecar's
inbound port, labelled `security.istio.io/tlsMode: istio` with serviceAccount `back`, as
auto mTLS wants it.

Two configurations, each a client sidecar and a server sidecar of its own:
  plain   the client's DestinationRule sets `tls.mode: DISABLE`; the server has a
          PeerAuthentication PERMISSIVE (Istio's default), so it still peeks at each
          connection's first byte as the mTLS server does;
  mtls    no tls in the DestinationRule: auto mTLS originates ISTIO_MUTUAL (SNI, the server's
          SPIFFE identity checked); the server's PeerAuthentication is STRICT.
and two ways of loading them:
  keepalive    wrk's 16 connections, and the client sidecar's pooled upstream connections;
  newconn      the same, with the client's DestinationRule `connectionPool.http.
               maxRequestsPerConnection: 1`: a new upstream connection per request (for mtls
               a TLS handshake: key exchange, ECDSA P-256 signatures, both chains verified).
The six sidecars (a server per configuration, a client per configuration and way) start
first and stay up; only the pair being measured has load. Each run is `wrk -t1 -c16` after a
warm-up on the same connections; it counts only if the server sidecar counted as many inbound
requests as wrk sent, with the security policy of its configuration (istio_requests_total,
connection_security_policy mutual_tls or none), and, for newconn, if the client opened at
least one upstream connection per request meanwhile (/clusters cx_total).
Pairs alternate their order (plain first, then mtls first, ...) for each way; the
ratio mtls / plain is taken per pair and its median reported. Beside req/s and wrk's p50/p99:
the CPU µs per request of each process (utime + stime from /proc: both sidecars, nginx, wrk)
and the cores the rest of the machine kept busy meanwhile (others_cores).

--quick: 2 pairs of 3 s runs (~1 min; the full run, 5 pairs of 10 s, ~5 min); --json prints
one JSON object as the last stdout line. A run that fails keeps its directory (logs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

import _nginx
from _procs import CLOCK_TICKS, Service, cpu_seconds, per_request, wait_for_http
from _remora import REMORA
from _wrk import WRK, wrk
from remora.controlplane.ca import new_root, self_signed, sign_csr
from remora.runner.ports import free_port

WRK_THREADS = 1
WRK_CONNECTIONS = 16
SERVICE = "back:9090"
TRUST_DOMAIN = "cluster.local"
TARGET_RATIO = 0.8  # mTLS keep-alive req/s at least 0.8x plain text's
CSR_FIGURE = "bench/csr.py"  # where certificate issuance is measured
CONFIGS = ("plain", "mtls")
WAYS = ("keepalive", "newconn")
POLICY = {"plain": "none", "mtls": "mutual_tls"}  # connection_security_policy at the server


@dataclass(frozen=True)
class Plan:
    pairs: int  # plain + mtls, alternating which goes first, for each way
    wrk_seconds: int
    warmup_seconds: int


QUICK = Plan(pairs=2, wrk_seconds=3, warmup_seconds=1)
FULL = Plan(pairs=5, wrk_seconds=10, warmup_seconds=2)


@dataclass
class Sample:
    """One measured wrk run through one pair of sidecars."""

    config: str  # plain | mtls
    way: str  # keepalive | newconn
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    counted: int  # requests the server sidecar counted inbound, with the config's policy
    upstream_cx: int  # connections the client sidecar opened to the server meanwhile
    cpu_us: dict[str, float] = field(default_factory=dict)  # per request, per process
    system_us: dict[str, float] = field(default_factory=dict)  # its kernel part (stime)
    others_cores: float = 0.0  # cores busy meanwhile that none of ours used


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- certificates: Istio's file-mounted layout, signed by a root of the mesh's CA code --------


def mount_certificates(directory: Path, root: tuple[str, str], account: str) -> Path:
    """cert-chain.pem, key.pem (0600) and root-cert.pem for spiffe://.../sa/`account`: a P-256
    key made here, a CSR naming the identity, signed as the control plane's CA signs."""
    key = ec.generate_private_key(ec.SECP256R1())
    spiffe = f"spiffe://{TRUST_DOMAIN}/ns/default/sa/{account}"
    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
           .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe)]),
                          critical=True)
           .sign(key, hashes.SHA256()))  # fmt: skip
    signer = self_signed([{"cert": root[0], "key": root[1]}])
    issued = sign_csr(csr.public_bytes(serialization.Encoding.PEM).decode(), spiffe=spiffe,
                      signer=signer, now=datetime.now(UTC))  # fmt: skip
    directory.mkdir(parents=True)
    (directory / "cert-chain.pem").write_text("".join(issued.chain))
    key_file = directory / "key.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    key_file.chmod(0o600)
    (directory / "root-cert.pem").write_text("".join(issued.roots))
    return directory


# -- the sidecars' configs ---------------------------------------------------------------------


def server_config(config: str) -> str:
    mode = "STRICT" if config == "mtls" else "PERMISSIVE"
    return f"""\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: back, namespace: default}}
spec:
  selector: {{matchLabels: {{app: back}}}}
  mtls: {{mode: {mode}}}
"""


def client_config(config: str, way: str, *, inbound: int) -> str:
    """Service back:9090 → the server sidecar's inbound port; the DestinationRule of the pair."""
    policy = []
    if config == "plain":
        policy.append("    tls: {mode: DISABLE}")
    if way == "newconn":
        policy.append("    connectionPool: {http: {maxRequestsPerConnection: 1}}")
    rule = ("""\
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: back, namespace: default}
spec:
  host: back
  trafficPolicy:
""" + "\n".join(policy) + "\n") if policy else ""
    return f"""\
apiVersion: v1
kind: Service
metadata: {{name: back, namespace: default}}
spec:
  selector: {{app: back}}
  ports: [{{name: http, port: 9090, targetPort: 9090}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: back-0, namespace: default}}
spec:
  address: 127.0.0.1
  labels: {{app: back, security.istio.io/tlsMode: istio}}
  serviceAccount: back
  ports: {{http: {inbound}}}
{rule}"""


@dataclass(frozen=True)
class Sidecar:
    service: Service
    outbound: int
    inbound: int
    admin: int

    def stats(self) -> str:
        return _get(f"http://127.0.0.1:{self.admin}/stats/prometheus")

    def inbound_requests(self, policy: str) -> int:
        """istio_requests_total as the destination reported them, with `policy`."""
        return int(sum(sample.value for family in text_string_to_metric_families(self.stats())
                       for sample in family.samples
                       if sample.name == "istio_requests_total"
                       and sample.labels.get("reporter") == "destination"
                       and sample.labels.get("connection_security_policy") == policy))  # fmt: skip

    def upstream_connections(self) -> int:
        """cx_total over the hosts of every cluster (/clusters?format=json)."""
        rows = json.loads(_get(f"http://127.0.0.1:{self.admin}/clusters?format=json"))
        return sum(host["cx_total"] for row in rows["cluster_statuses"] for host in row["hosts"])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


def start_sidecar(workdir: Path, name: str, config: str, *, account: str, certs: Path,
                  app_port: int | None = None) -> Sidecar:  # fmt: skip
    """`remora proxy -f` on `config` as workload `account` with its mounted certificates."""
    directory = workdir / name
    directory.mkdir()
    (directory / "config").mkdir()
    (directory / "config" / "mesh.yaml").write_text(config)
    outbound, inbound, admin, health = (free_port() for _ in range(4))
    argv = [str(REMORA), "proxy", "-f", str(directory / "config"), "--mode", "sidecar",
            "--namespace", "default", "--labels", f"app={account},version=v1",
            "--workload", f"{account}-v1", "--service-account", account,
            "--workload-certs", str(certs), "--outbound-port", str(outbound),
            "--inbound-port", str(inbound), "--admin-port", str(admin),
            "--health-port", str(health), "--log-level", "warning"]  # fmt: skip
    if app_port is not None:
        argv += ["--app-port", str(app_port), "--container-port", "9090"]
    service = Service(name, argv, log=directory / "proxy.log", cwd=directory)
    try:
        wait_for_http(f"http://127.0.0.1:{admin}/healthz/ready", service)
    except BaseException:
        service.stop()
        raise
    return Sidecar(service, outbound, inbound, admin)


@dataclass
class Mesh:
    nginx: Service
    servers: dict[str, Sidecar]  # by config
    clients: dict[tuple[str, str], Sidecar]  # by (config, way)

    def stop(self) -> None:
        for sidecar in [*self.clients.values(), *self.servers.values()]:
            sidecar.service.stop()
        self.nginx.stop()


def start_mesh(workdir: Path) -> Mesh:
    root = new_root(now=datetime.now(UTC), trust_domain=TRUST_DOMAIN)
    front = mount_certificates(workdir / "certs-front", root, "front")
    back = mount_certificates(workdir / "certs-back", root, "back")
    nginx_port = free_port()
    nginx = _nginx.start_upstream(workdir / "nginx", nginx_port)
    mesh = Mesh(nginx, {}, {})
    try:
        for config in CONFIGS:
            mesh.servers[config] = start_sidecar(workdir, f"server-{config}",
                                                 server_config(config), account="back",
                                                 certs=back, app_port=nginx_port)  # fmt: skip
            for way in WAYS:
                text = client_config(config, way, inbound=mesh.servers[config].inbound)
                mesh.clients[config, way] = start_sidecar(workdir, f"client-{config}-{way}",
                                                          text, account="front", certs=front)
    except BaseException:
        mesh.stop()
        raise
    return mesh


# -- measuring ---------------------------------------------------------------------------------


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle (/proc/stat, all CPUs)."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS  # less idle and iowait


def measure(mesh: Mesh, config: str, way: str, plan: Plan) -> Sample:
    """One warm-up and one measured wrk run at the client sidecar of (`config`, `way`)."""
    client, server = mesh.clients[config, way], mesh.servers[config]
    url = f"http://127.0.0.1:{client.outbound}/"

    def load(seconds: float) -> Any:
        return wrk(url, headers=(("Host", SERVICE),), threads=WRK_THREADS,
                   connections=WRK_CONNECTIONS, seconds=seconds)  # fmt: skip

    load(plan.warmup_seconds)
    pids = {"client_sidecar": client.service.pid, "server_sidecar": server.service.pid,
            "nginx": mesh.nginx.pid}  # fmt: skip
    counted, opened = server.inbound_requests(POLICY[config]), client.upstream_connections()
    before, busy = cpu_seconds(pids, children="wrk"), busy_seconds()
    started = time.monotonic()
    result = load(plan.wrk_seconds)
    elapsed, busy = time.monotonic() - started, busy_seconds() - busy
    after = cpu_seconds(pids, children="wrk")
    counted = server.inbound_requests(POLICY[config]) - counted
    opened = client.upstream_connections() - opened
    used = per_request(before, after, max(1, result.requests))
    ours = sum(after[name][0] - before[name][0] for name in before)
    sample = Sample(config=config, way=way, rps=result.rps, p50_ms=result.p50_ms,
                    p99_ms=result.p99_ms, requests=result.requests, counted=counted,
                    upstream_cx=opened, others_cores=round(max(0.0, busy - ours) / elapsed, 2),
                    cpu_us={name: total for name, (total, _) in used.items()},
                    system_us={name: system for name, (_, system) in used.items()})
    bad = result.non_2xx + result.socket_errors
    if bad or not result.requests:
        raise RuntimeError(f"{config} {way}: {bad} bad answers of {result.requests}")
    if counted < result.requests:
        raise RuntimeError(f"{config} {way}: the server sidecar counted {counted} requests "
                           f"({POLICY[config]}) of {result.requests}")
    if way == "newconn" and opened < result.requests:
        raise RuntimeError(f"{config} newconn: {opened} upstream connections for "
                           f"{result.requests} requests")
    log(f"  {config} {way}: {sample.rps:,.0f} req/s, p50 {sample.p50_ms:.2f} ms, p99 "
        f"{sample.p99_ms:.2f} ms, upstream cx {opened}, CPU µs/request {sample.cpu_us}, "
        f"others {sample.others_cores}")
    return sample


def alternating(index: int) -> tuple[str, str]:
    return CONFIGS if index % 2 == 0 else CONFIGS[::-1]


def measure_pairs(mesh: Mesh, plan: Plan, pairs: dict[str, list[dict[str, Sample]]]) -> None:
    for index in range(plan.pairs):
        log(f"pair {index + 1}/{plan.pairs}: wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} "
            f"-d{plan.wrk_seconds}s")
        for way in WAYS:
            pair: dict[str, Sample] = {}
            pairs[way].append(pair)
            for config in alternating(index):
                pair[config] = measure(mesh, config, way, plan)


# -- the report --------------------------------------------------------------------------------


def _median(values: list[float], digits: int) -> float | None:
    return round(statistics.median(values), digits) if values else None


def config_summary(samples: list[Sample]) -> dict[str, Any]:
    names = samples[0].cpu_us if samples else {}
    return {
        "rps": _median([s.rps for s in samples], 1),
        "p50_ms": _median([s.p50_ms for s in samples], 3),
        "p99_ms": _median([s.p99_ms for s in samples], 3),
        "cpu_us_per_request": {name: _median([s.cpu_us[name] for s in samples], 1)
                               for name in names},
        "cpu_us_per_request_total": _median([sum(s.cpu_us.values()) for s in samples], 1),
        "upstream_cx_per_request": _median([s.upstream_cx / s.requests for s in samples], 3),
        "rps_runs": [round(s.rps) for s in samples],
        "others_cores": [s.others_cores for s in samples],
    }


def way_summary(pairs: list[dict[str, Sample]]) -> dict[str, Any]:
    complete = [pair for pair in pairs if len(pair) == 2]
    ratios = [pair["mtls"].rps / pair["plain"].rps for pair in complete]
    out: dict[str, Any] = {config: config_summary([p[config] for p in pairs if config in p])
                           for config in CONFIGS}  # fmt: skip
    cpu = [out[config]["cpu_us_per_request"] for config in CONFIGS]
    out |= {
        "throughput_ratio": _median(ratios, 3),  # mtls / plain req/s, median of the pairs
        "pair_ratios": [round(r, 3) for r in ratios],
        "extra_cpu_us": {name: round(cpu[1][name] - cpu[0][name], 1)
                         for name in cpu[0] if cpu[0][name] is not None
                         and cpu[1].get(name) is not None},
    }  # fmt: skip
    return out


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")  # fmt: skip
    version = subprocess.run([WRK, "-v"], capture_output=True, text=True, check=False).stdout
    return {"cpu": model, "cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "wrk": version.split(" [", 1)[0].strip(),
            "openssl": ssl.OPENSSL_VERSION,
            "loadavg_1m_at_start": round(os.getloadavg()[0], 2)}  # fmt: skip


def build_report(pairs: dict[str, list[dict[str, Sample]]], *, plan: Plan, error: str | None,
                 started: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    ways = {way: way_summary(found) for way, found in pairs.items()}
    keepalive = ways["keepalive"]["throughput_ratio"]
    return {
        "throughput_ratio": keepalive,  # keep-alive mtls / plain req/s: the target's figure
        "newconn_ratio": ways["newconn"]["throughput_ratio"],
        "meets_target": keepalive is not None and keepalive >= TARGET_RATIO,
        **ways,
        "samples": [asdict(s) for found in pairs.values() for pair in found
                    for s in pair.values()],
        "error": error,
        "machine": started,
        "settings": {"pairs": plan.pairs, "warmup_s": plan.warmup_seconds,
                     "wrk": f"-t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{plan.wrk_seconds}s",
                     "body_bytes": len(_nginx.BODY)},
        "targets": {"throughput_ratio": f">= {TARGET_RATIO}",
                    "csrs_per_s": f">= 200 ({CSR_FIGURE})"},
    }


def print_table(report: dict[str, Any]) -> None:
    table = Table(title="mTLS between two sidecars vs plain text: wrk → client sidecar → "
                        f"server sidecar → nginx, {report['settings']['wrk']}")
    for column in ("figure", "plain", "mtls", "mtls/plain"):
        table.add_column(column)
    for way in WAYS:
        found = report[way]
        plain, mtls, ratio = found["plain"], found["mtls"], found["throughput_ratio"]
        shown = "—" if ratio is None else str(ratio)
        if way == "keepalive" and ratio is not None:
            ok = ratio >= TARGET_RATIO
            shown += (" [green]✓[/]" if ok else " [red]✗[/]") + f" (target ≥ {TARGET_RATIO})"
        table.add_row(f"[bold]{way}[/]: req/s (median)", f"{plain['rps']:,.0f}" if plain["rps"]
                      else "—", f"{mtls['rps']:,.0f}" if mtls["rps"] else "—", shown)
        table.add_row("  req/s per run", str(plain["rps_runs"]), str(mtls["rps_runs"]),
                      f"per pair {found['pair_ratios']}")  # fmt: skip
        for key, label in (("p50_ms", "  wrk p50 ms"), ("p99_ms", "  wrk p99 ms"),
                           ("upstream_cx_per_request", "  upstream connections / request")):
            table.add_row(label, str(plain[key]), str(mtls[key]), "")
        for name in plain["cpu_us_per_request"]:
            table.add_row(f"  CPU µs/request, {name}", str(plain["cpu_us_per_request"][name]),
                          str(mtls["cpu_us_per_request"].get(name)),
                          f"{found['extra_cpu_us'].get(name, 0):+}")  # fmt: skip
        table.add_row("  CPU µs/request, all", str(plain["cpu_us_per_request_total"]),
                      str(mtls["cpu_us_per_request_total"]), "")  # fmt: skip
        table.add_row("  other load (cores)", str(plain["others_cores"]),
                      str(mtls["others_cores"]), "")  # fmt: skip
    console = Console(width=max(Console().width, 120))
    console.print(table)
    m = report["machine"]
    console.print(f"{m['cpu']}, {m['cpus']} CPUs, Linux {m['kernel']}, Python {m['python']}, "
                  f"{m['openssl']}, {m['wrk']}, load {m['loadavg_1m_at_start']}; certificate "
                  f"issuance: {CSR_FIGURE}")
    if report["error"]:
        console.print(f"[red]not measured to the end:[/] {report['error']}")


def run(plan: Plan) -> dict[str, Any]:
    started = machine()
    pairs: dict[str, list[dict[str, Sample]]] = {way: [] for way in WAYS}
    error: str | None = None
    workdir = Path(tempfile.mkdtemp(prefix="remora-mtls-bench-"))
    try:
        mesh = start_mesh(workdir)
        try:
            measure_pairs(mesh, plan, pairs)
        finally:
            mesh.stop()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        error = str(exc)
        log(f"error: {error}\nthe sidecars' logs are kept in {workdir}")
    if error is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return build_report(pairs, plan=plan, error=error, started=started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run (~1 min)")
    parser.add_argument("--pairs", type=int, help="pairs of runs per way (default: 5, --quick 2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    report = run(plan if args.pairs is None else replace(plan, pairs=args.pairs))
    print_table(report)
    if args.json:
        print(json.dumps(report))
    return 1 if report["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
