"""The mesh of bench/mtls.py: nginx, and sidecars fed by files with Istio's file-mounted
certificates (cert-chain.pem, key.pem, root-cert.pem), signed by a root of
remora.controlplane.ca as the control plane's CA signs workload certificates.

A server sidecar per configuration (plain: PeerAuthentication PERMISSIVE; mtls: STRICT) in
front of nginx, a client sidecar per configuration and way (keepalive; newconn:
maxRequestsPerConnection 1) whose Service back:9090 is a WorkloadEntry at that server's inbound
port (tlsMode istio, serviceAccount back: auto mTLS takes it; plain's DestinationRule says tls
DISABLE). `start_mesh(..., prefix=CALLGRIND)` runs the sidecars under valgrind's callgrind.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client.parser import text_string_to_metric_families

import _nginx
from _procs import Service, family, wait_for_http
from remora.controlplane.ca import new_root, self_signed, sign_csr
from remora.runner.ports import free_port

TRUST_DOMAIN = "cluster.local"
CONFIGS = ("plain", "mtls")
WAYS = ("keepalive", "newconn")
# Where each process runs, two cores: the load's half (wrk, the client sidecar) on one, the
# serving half (the server sidecar, nginx) on the other, about 165 µs of CPU a request each.
# Left to the scheduler, the four shared the cores differently from run to run and the same
# pair measured 0.5 and 1.07 (bench/mtls.py, 2026-12-08).
CLIENT_CPU, SERVER_CPU = 0, min(1, (os.cpu_count() or 1) - 1)
WRK_PREFIX = ("taskset", "-c", str(CLIENT_CPU))
# `remora proxy` execs `python -m remora.proxy`: the child is the one counted
CALLGRIND = ("valgrind", "--tool=callgrind", "--trace-children=yes", "--dump-instr=no")


def mount_certificates(directory: Path, root: tuple[str, str], account: str) -> Path:
    """cert-chain.pem, key.pem (0600) and root-cert.pem for spiffe://.../sa/`account`: a P-256
    key made here, a CSR naming the identity, signed as the control plane's CA signs."""
    key = ec.generate_private_key(ec.SECP256R1())
    spiffe = f"spiffe://{TRUST_DOMAIN}/ns/default/sa/{account}"
    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
           .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe)]),
                          critical=True)
           .sign(key, hashes.SHA256()))  # fmt: skip
    now = datetime.now(UTC)
    signer, _ = self_signed([{"cert": root[0], "key": root[1]}], now)
    issued = sign_csr(csr.public_bytes(serialization.Encoding.PEM).decode(), spiffe=spiffe,
                      signer=signer, now=now)
    directory.mkdir(parents=True)
    (directory / "cert-chain.pem").write_text("".join(issued.chain))
    key_file = directory / "key.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    key_file.chmod(0o600)
    (directory / "root-cert.pem").write_text("".join(issued.roots))
    return directory


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
    directory: Path

    def wait_ready(self, timeout: float = 20.0) -> None:
        try:
            wait_for_http(f"http://127.0.0.1:{self.admin}/healthz/ready", self.service,
                          timeout=timeout)  # fmt: skip
        except BaseException:
            self.service.stop()
            raise

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


def launch_sidecar(workdir: Path, name: str, config: str, *, account: str, certs: Path,
                   app_port: int | None = None, prefix: Sequence[str] = ()) -> Sidecar:
    """`remora proxy -f` on `config` as workload `account` with its mounted certificates,
    started through `prefix` (callgrind writes its counts beside the sidecar's log)."""
    directory = workdir / name
    directory.mkdir()
    (directory / "config").mkdir()
    (directory / "config" / "mesh.yaml").write_text(config)
    outbound, inbound, admin, health = (free_port() for _ in range(4))
    if prefix:
        prefix = [*prefix, f"--callgrind-out-file={directory / 'callgrind.%p'}"]
    argv = [*prefix, sys.executable, "-m", "remora.cli.main", "proxy",
            "-f", str(directory / "config"), "--mode", "sidecar",
            "--namespace", "default", "--labels", f"app={account},version=v1",
            "--workload", f"{account}-v1", "--service-account", account,
            "--workload-certs", str(certs), "--outbound-port", str(outbound),
            "--inbound-port", str(inbound), "--admin-port", str(admin),
            "--health-port", str(health), "--log-level", "warning"]  # fmt: skip
    if app_port is not None:
        argv += ["--app-port", str(app_port), "--container-port", "9090"]
    service = Service(name, argv, log=directory / "proxy.log", cwd=directory)
    pin(service.pid, SERVER_CPU if app_port is not None else CLIENT_CPU)
    return Sidecar(service, outbound, inbound, admin, directory)


def pin(pid: int, cpu: int) -> None:
    """`pid` and its children (nginx's worker; a sidecar's exec keeps its pid) on `cpu`."""
    for member in family(pid):
        os.sched_setaffinity(member, {cpu})


@dataclass
class Mesh:
    nginx: Service
    servers: dict[str, Sidecar]  # by config
    clients: dict[tuple[str, str], Sidecar]  # by (config, way)

    def stop(self) -> None:
        for sidecar in [*self.clients.values(), *self.servers.values()]:
            sidecar.service.stop()
        self.nginx.stop()


def start_mesh(workdir: Path, *, prefix: Sequence[str] = (),
               ready_timeout: float = 20.0) -> Mesh:  # fmt: skip
    """nginx and the six sidecars, all started before the first is waited for."""
    workdir.mkdir(parents=True, exist_ok=True)
    root = new_root(now=datetime.now(UTC), trust_domain=TRUST_DOMAIN)
    front = mount_certificates(workdir / "certs-front", root, "front")
    back = mount_certificates(workdir / "certs-back", root, "back")
    nginx_port = free_port()
    nginx = _nginx.start_upstream(workdir / "nginx", nginx_port)
    pin(nginx.pid, SERVER_CPU)
    mesh = Mesh(nginx, {}, {})
    try:
        for config in CONFIGS:
            mesh.servers[config] = launch_sidecar(workdir, f"server-{config}",
                                                  server_config(config), account="back",
                                                  certs=back, app_port=nginx_port,
                                                  prefix=prefix)  # fmt: skip
            for way in WAYS:
                text = client_config(config, way, inbound=mesh.servers[config].inbound)
                mesh.clients[config, way] = launch_sidecar(
                    workdir, f"client-{config}-{way}", text, account="front", certs=front,
                    prefix=prefix)  # fmt: skip
        for sidecar in [*mesh.servers.values(), *mesh.clients.values()]:
            sidecar.wait_ready(ready_timeout)
    except BaseException:
        mesh.stop()
        raise
    return mesh
