"""(c) for the proxy benchmark: a Remora sidecar with a realistic routing config in front of (a).

The mesh: Service `backend` (port 8080, selector app=backend) whose endpoints are two
WorkloadEntries, version v1 and v2, both the nginx upstream; a DestinationRule with subsets v1/v2;
a VirtualService with three match rules (uri prefix, header, uri regex) that the benchmark's
requests do not match, then the default route splitting 90/10 over v1/v2. So every request walks
the whole rule list, picks a weighted subset and is counted in metrics and the access log.

The proxy is fed as a sidecar is in a mesh: a `remora controlplane` (sqlite, no auth) holds the
config and pushes the proxy its compiled snapshot (`remora proxy --controlplane`), so the proxy
measured serves with no validation or YAML machinery loaded. The control plane is a process of
its own, idle once it has pushed, and not counted in the proxy's RSS or CPU (istiod's are not
counted in a sidecar's either).

(f), the heavier chain (`start(..., heavy=True)`): the same mesh with one more rule before the
default, matched by the benchmark's requests by a header (HEAVY_HEADER), with retries and a
response header set (headers.response.set), and an EnvoyFilter that inserts
envoy.filters.http.compressor with the gzip library (Envoy's defaults: DEFAULT_COMPRESSION, i.e.
zlib level 6, window_bits 12, memory_level 5) before envoy.filters.http.router on
SIDECAR_OUTBOUND, for application/json of at least 100 bytes.
"""

from __future__ import annotations

import sys
import urllib.request
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from _procs import Service, wait_for_http
from remora.runner.ports import free_port

SERVICE_PORT = 8080
HOST = f"backend:{SERVICE_PORT}"
HEAVY_HEADER = ("x-bench-chain", "heavy")  # (f)'s requests carry it: the header match
HEAVY_RESPONSE_HEADER = ("x-bench-route", "heavy-chain")  # what the matched route sets
REMORA = Path(sys.executable).with_name("remora")

_CONFIG = """\
apiVersion: v1
kind: Service
metadata: {{name: backend, namespace: default, labels: {{app: backend}}}}
spec:
  selector: {{app: backend}}
  ports:
  - {{name: http, port: {service_port}, targetPort: {upstream}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: backend-v1, namespace: default}}
spec:
  address: 127.0.0.1
  labels: {{app: backend, version: v1}}
  ports: {{http: {upstream}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: backend-v2, namespace: default}}
spec:
  address: 127.0.0.1
  labels: {{app: backend, version: v2}}
  ports: {{http: {upstream}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: backend, namespace: default}}
spec:
  host: backend{traffic_policy}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: backend, namespace: default}}
spec:
  hosts: [backend]
  http:
  - name: api-v2
    match: [{{uri: {{prefix: /api/v2/}}}}]
    route: [{{destination: {{host: backend, subset: v2}}}}]
  - name: canary-header
    match: [{{headers: {{x-canary: {{exact: always}}}}}}]
    route: [{{destination: {{host: backend, subset: v2}}}}]
  - name: legacy-regex
    match: [{{uri: {{regex: "/legacy/[0-9]+/.*"}}}}]
    route: [{{destination: {{host: backend, subset: v1}}}}]{heavy_rule}
  - name: default{route_policy}
    route:
    - {{destination: {{host: backend, subset: v1}}, weight: 90}}
    - {{destination: {{host: backend, subset: v2}}, weight: 10}}
{envoy_filter}"""


@dataclass(frozen=True)
class RemoraProxy:
    service: Service
    port: int  # outbound listener
    admin_port: int
    access_log: Path

    def requests_counted(self) -> int:
        """The sum of istio_requests_total on /stats/prometheus: proof metrics were on."""
        url = f"http://127.0.0.1:{self.admin_port}/stats/prometheus"
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
        return int(
            sum(
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "istio_requests_total"
            )
        )

    def access_log_lines(self) -> int:
        """Lines in the access log (all flushed once the proxy has stopped)."""
        with self.access_log.open("rb") as log:
            return sum(1 for _ in log)


# (e): the same mesh with the resilience settings of issue 4 on the cluster and the route.
_TRAFFIC_POLICY = """
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1000, connectTimeout: 1s}
      http: {http1MaxPendingRequests: 1000, maxRetries: 100}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s,
                       maxEjectionPercent: 50}"""
_ROUTE_POLICY = """
    timeout: 10s
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,reset,connect-failure"}"""

# (f): the header-matched rule and the compressor. The request header and the response header
# are HEAVY_HEADER and HEAVY_RESPONSE_HEADER.
_MATCH, _SET = HEAVY_HEADER, HEAVY_RESPONSE_HEADER
_HEAVY_RULE = f"""
  - name: heavy-chain
    match: [{{headers: {{{_MATCH[0]}: {{exact: {_MATCH[1]}}}}}}}]
    headers: {{response: {{set: {{{_SET[0]}: {_SET[1]}}}}}}}
    retries: {{attempts: 3, perTryTimeout: 2s, retryOn: "5xx,reset,connect-failure"}}
    route: [{{destination: {{host: backend, subset: v1}}}}]"""
_ENVOY_FILTER = """\
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: gzip, namespace: default}
spec:
  configPatches:
  - applyTo: HTTP_FILTER
    match:
      context: SIDECAR_OUTBOUND
      listener: {filterChain: {filter: {name: envoy.filters.network.http_connection_manager,
                                        subFilter: {name: envoy.filters.http.router}}}}
    patch:
      operation: INSERT_BEFORE
      value:
        name: envoy.filters.http.compressor
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor
          response_direction_config:
            common_config: {min_content_length: 100, content_type: [application/json]}
          compressor_library:
            name: text_optimized
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip
"""


def mesh_config(*, upstream: int, resilience: bool = False, heavy: bool = False) -> str:
    """The benchmark's mesh YAML (bench/hotpath.py routes through the same config)."""
    return _CONFIG.format(
        service_port=SERVICE_PORT, upstream=upstream,
        traffic_policy=_TRAFFIC_POLICY if resilience else "",
        route_policy=_ROUTE_POLICY if resilience else "",
        heavy_rule=_HEAVY_RULE if heavy else "",
        envoy_filter=_ENVOY_FILTER if heavy else "",
    )


class FedProxy(Service):
    """`remora proxy` and the control plane that feeds it, stopped together."""

    def __init__(self, name: str, argv: list[str], *, log: Path, cwd: Path,
                 controlplane: Service) -> None:
        super().__init__(name, argv, log=log, cwd=cwd)
        self.controlplane = controlplane

    def stop(self, timeout: float = 10.0) -> None:
        try:
            super().stop(timeout)
        finally:
            self.controlplane.stop(timeout)


def start_controlplane(workdir: Path, config: str) -> tuple[Service, str]:
    """A control plane holding `config` (YAML); its URL."""
    port = free_port()
    argv = [str(REMORA), "controlplane", "--listen", f"127.0.0.1:{port}", "--data-dir",
            str(workdir / "cp-data"), "--store", "sqlite", "--no-auth", "--log-level", "warning"]
    service = Service("remora controlplane", argv, log=workdir / "controlplane.log", cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/healthz", service)
        request = urllib.request.Request(f"{url}/api/remora/apply", data=config.encode(),
                                         headers={"content-type": "application/yaml"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()
    except BaseException:
        service.stop()
        raise
    return service, url


def start(
    workdir: Path, *, upstream: int, resilience: bool = False, heavy: bool = False
) -> RemoraProxy:
    """Start a control plane with the mesh config and `remora proxy` (sidecar, 1 process) fed
    by it; wait until the proxy is ready. `resilience`: with connectionPool,
    outlierDetection, a route timeout and retries. `heavy`: (f), with the header-matched rule
    (retries, a response header) and the gzip compressor inserted by an EnvoyFilter."""
    workdir.mkdir(parents=True)
    config = mesh_config(upstream=upstream, resilience=resilience, heavy=heavy)
    (workdir / "mesh.yaml").write_text(config)
    controlplane, url = start_controlplane(workdir, config)
    port, inbound, admin, health = (free_port() for _ in range(4))
    access_log = workdir / "access.log"
    argv = [str(REMORA), "proxy", "--controlplane", url, "--mode", "sidecar",
            "--namespace", "default", "--labels", "app=client,version=v1",
            "--outbound-port", str(port), "--inbound-port", str(inbound),
            "--admin-port", str(admin), "--health-port", str(health),
            "--access-log", str(access_log), "--log-level", "warning"]  # fmt: skip
    service = FedProxy("remora proxy", argv, log=workdir / "remora.log", cwd=workdir,
                       controlplane=controlplane)
    try:
        wait_for_http(f"http://127.0.0.1:{admin}/healthz/ready", service)
    except BaseException:
        with suppress(Exception):
            service.stop()
        raise
    return RemoraProxy(service=service, port=port, admin_port=admin, access_log=access_log)
