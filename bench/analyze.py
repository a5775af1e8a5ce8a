"""Benchmark: load + validate + analyze 10,000 generated resources, against bare YAML parsing.

Generates a realistic mesh config in memory (per service: a Service, two Deployments, a
DestinationRule with subsets and traffic policy, a VirtualService with several matched routes, an
AuthorizationPolicy; per namespace a Gateway and its VirtualService), then times each phase and
reports resources/s and the ratio to the reference measured in the same run: PyYAML's C loader
(`yaml.load_all(text, Loader=yaml.CSafeLoader)`) over the same text.

    .venv/bin/python bench/analyze.py [--resources 10000] [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from remora.analysis import analyze
from remora.api.loader import LoadResult, load_text
from remora.api.yamlsource import read_documents

GOAL = 5_000  # resources/s overall, the issue's target on this machine
PER_SERVICE = 6  # Service, 2 Deployments, DestinationRule, VirtualService, AuthorizationPolicy
PER_NAMESPACE = 2  # Gateway and its VirtualService

# --- Generation ------------------------------------------------------------------------------

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: {svc}
  namespace: {ns}
  labels: {{app: {svc}}}
spec:
  selector: {{app: {svc}}}
  ports:
  - name: http
    port: 8080
    targetPort: 8080
  - name: grpc
    port: 9090
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {svc}-{version}
  namespace: {ns}
  labels: {{app: {svc}, version: {version}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {svc}, version: {version}}}
  template:
    metadata:
      labels: {{app: {svc}, version: {version}}}
      annotations:
        sidecar.istio.io/inject: "true"
    spec:
      containers:
      - name: {svc}
        image: registry.example.com/{ns}/{svc}:{version}.{replicas}.0
        ports:
        - containerPort: 8080
        env:
        - name: SERVICE_VERSION
          value: {version}
        resources:
          requests: {{cpu: 250m, memory: 256Mi}}
          limits: {{cpu: "1", memory: 512Mi}}
        readinessProbe:
          httpGet: {{path: /ready, port: 8080}}
          periodSeconds: 5
        livenessProbe:
          httpGet: {{path: /health, port: 8080}}
          initialDelaySeconds: 30
"""

DESTINATION_RULE = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: {svc}
  namespace: {ns}
spec:
  host: {svc}.{ns}.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      simple: {lb}
    connectionPool:
      tcp:
        maxConnections: {conns}
        connectTimeout: 2s
      http:
        http1MaxPendingRequests: {pending}
        maxRequestsPerConnection: 10
    outlierDetection:
      consecutive5xxErrors: 5
      interval: 10s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
  subsets:
  - name: v1
    labels: {{version: v1}}
  - name: v2
    labels: {{version: v2}}
    trafficPolicy:
      loadBalancer:
        consistentHash:
          httpHeaderName: x-user-id
"""

VIRTUAL_SERVICE_HEAD = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {svc}
  namespace: {ns}
spec:
  hosts:
  - {svc}
  http:
"""

ROUTE_BY_HEADER = """\
  - name: {name}
    match:
    - headers:
        x-user-tier:
          exact: {tier}
      uri:
        prefix: /api/{svc}/{path}
    route:
    - destination:
        host: {svc}
        subset: v2
        port: {{number: 8080}}
    timeout: {timeout}s
"""

ROUTE_BY_REGEX = """\
  - name: {name}
    match:
    - uri:
        regex: /api/{svc}/[0-9]+/{path}
      method:
        exact: GET
    - queryParams:
        canary:
          exact: "{path}"
    route:
    - destination:
        host: {svc}
        subset: v2
        port: {{number: 8080}}
    retries:
      attempts: 3
      perTryTimeout: 500ms
      retryOn: connect-failure,refused-stream,503
"""

ROUTE_DEFAULT = """\
  - name: default
    route:
    - destination:
        host: {svc}
        subset: v1
        port: {{number: 8080}}
      weight: {weight}
    - destination:
        host: {svc}
        subset: v2
        port: {{number: 8080}}
      weight: {rest}
    timeout: 5s
    retries:
      attempts: 2
      perTryTimeout: 2s
"""

AUTHORIZATION_POLICY = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: {svc}-callers
  namespace: {ns}
spec:
  selector:
    matchLabels: {{app: {svc}}}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/{ns}/sa/{caller}"]
    to:
    - operation:
        methods: ["GET", "POST"]
        paths: ["/api/{svc}/*"]
"""

GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: {ns}-gateway
  namespace: {ns}
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ["{ns}.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {ns}-edge
  namespace: {ns}
spec:
  hosts: ["{ns}.example.com"]
  gateways: [{ns}-gateway]
  http:
{routes}"""

EDGE_ROUTE = """\
  - match:
    - uri: {{prefix: /{svc}/}}
    route:
    - destination: {{host: {svc}, port: {{number: 8080}}}}
"""

SERVICE_NAMES = ["user", "product", "order", "payment", "cart", "inventory", "review", "search",
                 "shipping", "coupon", "account", "notify"]  # fmt: skip


def generate(resources: int, *, namespaces: int = 8, seed: int = 2) -> tuple[str, int]:
    """YAML text of about `resources` objects; returns the text and the exact count."""
    rng = random.Random(seed)
    services = max(1, (resources - namespaces * PER_NAMESPACE) // PER_SERVICE)
    per_ns = -(-services // namespaces)
    docs: list[str] = []
    made = 0
    for n in range(namespaces):
        ns = f"shop-{n}"
        names = [f"{SERVICE_NAMES[i % len(SERVICE_NAMES)]}-{i}" for i in range(per_ns)]
        names = names[: max(0, min(per_ns, services - made))]
        made += len(names)
        for i, svc in enumerate(names):
            docs.extend(_service_docs(rng, ns, svc, caller=names[i - 1]))
        edge = "".join(EDGE_ROUTE.format(svc=svc) for svc in names[:20])
        docs.append(GATEWAY.format(ns=ns, routes=edge or EDGE_ROUTE.format(svc="user-0")))
    text = "---\n".join(docs)
    return text, made * PER_SERVICE + namespaces * PER_NAMESPACE


def _service_docs(rng: random.Random, ns: str, svc: str, *, caller: str) -> list[str]:
    routes = []
    for r in range(rng.randint(1, 4)):
        template = ROUTE_BY_HEADER if r % 2 == 0 else ROUTE_BY_REGEX
        routes.append(template.format(name=f"r{r}", svc=svc, path=f"p{r}",
                                      tier=rng.choice(["gold", "vip", "beta"]),
                                      timeout=rng.randint(1, 9)))  # fmt: skip
    weight = rng.choice([100, 95, 90, 80, 50])
    routes.append(ROUTE_DEFAULT.format(svc=svc, weight=weight, rest=100 - weight))
    return [
        SERVICE.format(ns=ns, svc=svc),
        DEPLOYMENT.format(ns=ns, svc=svc, version="v1", replicas=rng.randint(1, 5)),
        DEPLOYMENT.format(ns=ns, svc=svc, version="v2", replicas=1),
        DESTINATION_RULE.format(ns=ns, svc=svc, conns=rng.choice([100, 200, 500]),
                                pending=rng.choice([10, 50, 100]),
                                lb=rng.choice(["LEAST_REQUEST", "ROUND_ROBIN", "RANDOM"])),
        VIRTUAL_SERVICE_HEAD.format(ns=ns, svc=svc) + "".join(routes),
        AUTHORIZATION_POLICY.format(ns=ns, svc=svc, caller=caller),
    ]  # fmt: skip


# --- Timing ----------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    seconds: float
    note: str = ""


def best_of(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    """The fastest of `repeat` runs (less noise than the mean), and the last run's result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def bare_yaml(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=yaml.CSafeLoader))


def remora_parse(text: str) -> list[Any]:
    return [doc.data for doc in read_documents(text, "bench.yaml")]


def measure(text: str, repeat: int) -> tuple[list[Phase], LoadResult, list[Any]]:
    reference, _ = best_of(repeat, lambda: bare_yaml(text))
    parse, _ = best_of(repeat, lambda: remora_parse(text))
    load, result = best_of(repeat, lambda: load_text(text, "bench.yaml"))
    analysis, messages = best_of(repeat, lambda: analyze(result, namespace=None))
    phases = [
        Phase("bare YAML parsing (CSafeLoader)", reference, "reference"),
        Phase("  Remora's YAML parsing", parse, "part of load"),
        Phase("load (parse + validate)", load),
        Phase("analyze (all analyzers, -A)", analysis),
        Phase("load + validate + analyze", load + analysis, "overall"),
    ]
    return phases, result, messages


def report(console: Console, phases: list[Phase], count: int, text: str) -> float:
    reference = phases[0].seconds
    table = Table(title=f"remora analyze: {count:,} resources, {len(text) / 1e6:.1f} MB of YAML")
    table.add_column("phase")
    table.add_column("seconds", justify="right")
    table.add_column("resources/s", justify="right")
    table.add_column("vs bare YAML", justify="right")
    table.add_column("")
    for phase in phases:
        rate = count / phase.seconds
        table.add_row(phase.name, f"{phase.seconds:.3f}", f"{rate:,.0f}",
                      f"{reference / phase.seconds:.2f}x", phase.note)  # fmt: skip
    console.print(table)
    overall = phases[-1]
    rate = count / overall.seconds
    verdict = "[green]met[/green]" if rate >= GOAL else "[red]missed[/red]"
    console.print(f"load+validate+analyze: {rate:,.0f} res/s = "
                  f"{reference / overall.seconds:.2f}x of bare YAML parsing "
                  f"(goal {GOAL:,} res/s: {verdict})")  # fmt: skip
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resources", type=int, default=10_000)
    parser.add_argument("--namespaces", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs per phase")
    parser.add_argument("--profile", action="store_true", help="cProfile load + analyze once")
    args = parser.parse_args(argv)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)

    text, count = generate(args.resources, namespaces=args.namespaces)
    phases, result, messages = measure(text, args.repeat)
    kinds = Counter(r.kind for r in result.resources)
    console.print("generated: " + ", ".join(f"{n:,} {k}" for k, n in kinds.most_common()))
    # RMR0001 NotEnforced is expected: the AuthorizationPolicies are not enforced yet
    messages = [m for m in messages if m.type.code != "RMR0001"]
    if result.issues or len(result.resources) != count or messages:
        loaded = f"{len(result.resources)}/{count} loaded"
        console.print(f"[red]the generated config is not clean[/red]: {len(result.issues)} "
                      f"issues, {len(messages)} messages, {loaded}")  # fmt: skip
        for line in [*map(str, result.issues[:5]), *map(str, messages[:5])]:
            console.print(f"  {line}", markup=False)
        return 1
    report(console, phases, count, text)
    if args.profile:
        profile(text)
    return 0


def profile(text: str) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    result = load_text(text, "bench.yaml")
    analyze(result, namespace=None)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    sys.exit(main())
