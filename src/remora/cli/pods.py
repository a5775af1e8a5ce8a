"""`remora get pods` and `remora get all`: the mesh's pods as kubectl shows them.

Pods are not stored resources: they are what runs. They come from the running `remora up`
whose control plane the command talks to (its status.json: each instance with its app and
sidecar, restarts and phase; each gateway proxy), else from the control plane's connected
proxies (GET /api/remora/v1/proxies: one pod per proxy). Either way they are shaped as
Kubernetes Pod objects, so `-o yaml|json` reads like kubectl's and `describe pod` uses them.
An Istio-injected pod has two containers, the app and `istio-proxy` (READY 2/2); a gateway pod
has one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from remora import context
from remora.cli.output import OutputFormat, render
from remora.credentials import same_server

POD_NAMES = ("pods", "pod", "po")
ALL = "all"
ALL_KINDS = ("services", "deployments", "statefulsets", "horizontalpodautoscalers")
"""What `kubectl get all` lists after the pods (Remora has no ReplicaSets), in its order."""
PROXIES_PATH = "/api/remora/v1/proxies"


def timestamp(seconds: float | None) -> str | None:
    """RFC 3339 as Kubernetes writes metadata.creationTimestamp."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _container(name: str, *, ready: bool, restarts: int, running: bool, reason: str,
               last_exit: str = "") -> dict[str, Any]:
    state: dict[str, Any] = {"running": {}} if running and not reason else \
        {"waiting": {"reason": reason or "ContainerCreating"}}
    status: dict[str, Any] = {"name": name, "ready": ready, "restartCount": restarts,
                              "state": state}
    if last_exit:
        status["lastState"] = {"terminated": {"reason": "Error", "message": last_exit}}
    return status


WAITING = {"Pending": "ContainerCreating", "ContainerCreating": "ContainerCreating",
           "CrashLoopBackOff": "CrashLoopBackOff", "Restarting": "CrashLoopBackOff"}
"""The runner's pod phase -> the waiting reason kubectl shows in STATUS."""


def pod_from_instance(item: dict[str, Any]) -> dict[str, Any]:
    """A Pod object for one `remora up` instance (runner/supervisor.py Pod.status())."""
    phase = str(item.get("phase", "Pending"))
    sidecar_alive = bool((item.get("sidecar") or {}).get("alive", (item.get("sidecar") or {})
                                                          .get("pid")))
    app_alive = bool((item.get("app") or {}).get("alive", (item.get("app") or {}).get("pid")))
    ready = bool(item.get("ready"))
    reason = WAITING.get(phase, "")
    containers = [
        _container(item.get("workload") or "app", ready=ready, running=app_alive,
                   restarts=int(item.get("restarts") or 0), reason=reason,
                   last_exit=str(item.get("last_exit") or "")),
        _container("istio-proxy", ready=sidecar_alive, running=sidecar_alive, restarts=0,
                   reason="" if sidecar_alive else "ContainerCreating"),
    ]
    ports = item.get("ports") or {}
    meta: dict[str, Any] = {
        "name": item["name"], "namespace": item.get("namespace", "default"),
        "labels": dict(item.get("labels") or {}),
        "annotations": {"sidecar.istio.io/status": json.dumps({"containers": ["istio-proxy"]}),
                        "remora.io/admin-port": str(ports.get("admin", "")),
                        "remora.io/log": str(item.get("log", ""))},
        "creationTimestamp": timestamp(item.get("created")),
        "ownerReferences": [{"kind": item.get("kind", "Deployment"),
                             "name": item.get("workload", "")}],
    }
    if phase in ("Terminating", "Stopped"):
        meta["deletionTimestamp"] = meta["creationTimestamp"]
    app_ports = [{"containerPort": int(port), "hostPort": local}
                 for port, local in (ports.get("app") or {}).items()]
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"containers": [{"name": containers[0]["name"], "ports": app_ports},
                                {"name": "istio-proxy", "ports": [
                                    {"name": "http-envoy-prom", "containerPort": 15090},
                                    {"name": "admin", "containerPort": 15000,
                                     "hostPort": ports.get("admin")}]}]},
        "status": {
            "phase": "Running" if phase in ("Running", "CrashLoopBackOff", "Restarting",
                                            "Terminating")
            else "Pending" if phase in ("Pending", "ContainerCreating") else "Succeeded",
            "podIP": str(item.get("ip") or "127.0.0.1"),
            "conditions": [{"type": "Ready", "status": "True" if ready and sidecar_alive
                            else "False"},
                           {"type": "ContainersReady", "status": "True" if ready and sidecar_alive
                            else "False"}],
            "containerStatuses": containers,
            "startTime": meta["creationTimestamp"],
        },
    }


def pod_from_gateway(item: dict[str, Any], created: float | None) -> dict[str, Any]:
    """A Pod object for one gateway proxy of `remora up` (one container, istio-proxy)."""
    alive = bool((item.get("process") or {}).get("pid"))
    since = (item.get("process") or {}).get("since") or created
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": item["name"], "namespace": item.get("namespace", "default"),
                     "labels": dict(item.get("selector") or {}),
                     "annotations": {"remora.io/admin-port": str(item.get("admin", "")),
                                     "remora.io/log": str(item.get("log", ""))},
                     "creationTimestamp": timestamp(since)},
        "spec": {"containers": [{"name": "istio-proxy", "ports": [
            {"name": "admin", "containerPort": 15000, "hostPort": item.get("admin")},
            *({"name": f"port-{port}", "containerPort": int(port), "hostPort": local}
              for port, local in (item.get("listen") or {}).items())]}]},
        "status": {"phase": "Running" if alive else "Succeeded", "podIP": "127.0.0.1",
                   "conditions": [{"type": "Ready", "status": "True" if alive else "False"}],
                   "containerStatuses": [_container("istio-proxy", ready=alive, restarts=0,
                                                    running=alive, reason="")],
                   "startTime": timestamp(since)},
    }


def pod_name_of_proxy(proxy_id: str) -> str:
    """`sidecar~127.0.0.1~reviews-v1-12345.default~default.svc.cluster.local` -> the pod name
    (`reviews-v1-12345`), as istioctl reads a node id."""
    parts = proxy_id.split("~")
    return parts[2].rsplit(".", 1)[0] if len(parts) >= 3 else proxy_id


def pod_from_proxy(proxy: dict[str, Any]) -> dict[str, Any]:
    """A Pod object for a proxy the control plane knows but no `remora up` runs."""
    name = pod_name_of_proxy(str(proxy.get("id", "")))
    admin = proxy.get("adminPort")
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": proxy.get("namespace") or "default",
                     "labels": dict(proxy.get("labels") or {}),
                     "annotations": {"remora.io/proxy": str(proxy.get("id")),
                                     **({"remora.io/admin-port": str(admin)} if admin else {})},
                     "creationTimestamp": timestamp(proxy.get("connectedAt"))},
        "spec": {"containers": [{"name": "istio-proxy"}]},
        "status": {"phase": "Running", "podIP": str(proxy.get("ip") or "127.0.0.1"),
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [_container("istio-proxy", ready=True, restarts=0,
                                                    running=True, reason="")]},
    }


def up_status(server: str) -> dict[str, Any] | None:
    """The status.json of the running `remora up` whose control plane is `server`."""
    state = context.running_up()
    if state is None or not same_server(context.up_controlplane(state) or "", server):
        return None
    try:
        data = json.loads((state / context.UP_STATUS).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def up_pod_names(server: str) -> dict[str, str]:
    """pid of a proxy -> its pod's name, for the running `remora up` of `server` (a node id
    names the proxy's workload and pid, the runner knows which pod that pid serves)."""
    status = up_status(server) or {}
    names = {str((item.get("sidecar") or {}).get("pid")): item["name"]
             for item in status.get("instances", []) if (item.get("sidecar") or {}).get("pid")}
    names.update({str((item.get("process") or {}).get("pid")): item["name"]
                  for item in status.get("gateways", []) if (item.get("process") or {}).get("pid")})
    return names


def _alive(process: dict[str, Any]) -> bool:
    pid = process.get("pid")
    return bool(pid) and Path(f"/proc/{pid}").exists()


def list_pods(client: Any, *, namespace: str | None) -> list[dict[str, Any]]:
    """Every pod (in `namespace`, or all), from the runner when it is this control plane's."""
    status = up_status(client.server)
    if status is not None:
        for item in status.get("instances", []):
            for role in ("app", "sidecar"):
                process = item.get(role) or {}
                process["alive"] = _alive(process)
        pods = [pod_from_instance(item) for item in status.get("instances", [])]
        pods += [pod_from_gateway(item, status.get("started"))
                 for item in status.get("gateways", []) if _alive(item.get("process") or {})]
    else:
        pods = [pod_from_proxy(p) for p in client.call("GET", PROXIES_PATH)]
    pods = [p for p in pods if namespace is None or p["metadata"]["namespace"] == namespace]
    return sorted(pods, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))


def ready_column(pod: dict[str, Any]) -> str:
    statuses = pod["status"].get("containerStatuses") or []
    return f"{sum(1 for s in statuses if s.get('ready'))}/{len(statuses)}"


def status_column(pod: dict[str, Any]) -> str:
    """kubectl's STATUS: Terminating, else a waiting container's reason, else the phase."""
    if pod["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for container in pod["status"].get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting:
            return str(waiting.get("reason"))
    return str(pod["status"].get("phase"))


def restarts_column(pod: dict[str, Any]) -> str:
    return str(sum(int(s.get("restartCount") or 0)
                   for s in pod["status"].get("containerStatuses") or []))


def pod_rows(pods: list[dict[str, Any]], *, all_namespaces: bool, wide: bool, prefix: str = "",
             now: datetime | None = None) -> list[list[str]]:
    """kubectl's pod table: NAME READY STATUS RESTARTS AGE (wide: IP NODE), a header first."""
    from remora.cli.kubectl import age  # noqa: PLC0415 - kubectl imports this module

    moment = now or datetime.now(UTC)
    header = ["NAMESPACE"] if all_namespaces else []
    header += ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] + (["IP", "NODE"] if wide else [])
    rows = [header]
    for pod in pods:
        meta = pod["metadata"]
        row = [meta["namespace"]] if all_namespaces else []
        row += [prefix + meta["name"], ready_column(pod), status_column(pod),
                restarts_column(pod), age(meta.get("creationTimestamp"), moment)]
        if wide:
            row += [pod["status"].get("podIP") or "<none>", "localhost"]
        rows.append(row)
    return rows


def format_rows(rows: list[list[str]]) -> str:
    """Columns padded as kubectl's printer pads them (3 spaces), no trailing blanks."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                     .rstrip() for row in rows)


def selects(selector: str, labels: dict[str, str]) -> bool:
    """kubectl's equality-based -l: `a=b,c!=d,e` (e: the label is set, !e: it is not)."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def get_pods(client: Any, names: list[str], *, namespace: str, all_namespaces: bool,
             output: str, selector: str = "") -> None:
    pods = [p for p in list_pods(client, namespace=None if all_namespaces else namespace)
            if selects(selector, p["metadata"].get("labels") or {})]
    if names:
        found = {p["metadata"]["name"]: p for p in pods}
        missing = [n for n in names if n not in found]
        for name in missing:
            typer.echo(f'Error from server (NotFound): pods "{name}" not found', err=True)
        pods = [found[n] for n in names if n in found]
        if missing and not pods:
            raise typer.Exit(1)
    if output in ("json", "yaml"):
        data = pods[0] if names and len(pods) == 1 else \
            {"apiVersion": "v1", "kind": "List", "items": pods, "metadata": {}}
        typer.echo(render(data, OutputFormat(output)), nl=False)
        return
    if not pods:
        where = " in any namespace" if all_namespaces else f" in {namespace} namespace"
        typer.echo(f"No resources found{where}.", err=True)
        return
    typer.echo(format_rows(pod_rows(pods, all_namespaces=all_namespaces,
                                    wide=output == "wide")))


def get_all(client: Any, *, namespace: str, all_namespaces: bool, output: str) -> None:
    """Pods, then services, deployments, statefulsets and HPAs, each as its own table with
    `kind.group/name` names; sections with nothing are left out, as kubectl does."""
    from remora.cli import kubectl  # noqa: PLC0415 - kubectl imports this module

    scope = None if all_namespaces else namespace
    pods = list_pods(client, namespace=scope)
    sections: list[tuple[Any, list[dict[str, Any]]]] = []
    for kind in ALL_KINDS:
        rtype = kubectl.resolve_kind(kind)
        sections.append((rtype, client.call("GET", rtype.collection_path(scope))["items"]))
    if output in ("json", "yaml"):
        items = pods + [obj for _, objects in sections for obj in objects]
        typer.echo(render({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {}},
                          OutputFormat(output)), nl=False)
        return
    printed = False
    if pods:
        typer.echo(format_rows(pod_rows(pods, all_namespaces=all_namespaces,
                                        wide=output == "wide", prefix="pod/")))
        printed = True
    for rtype, objects in sections:
        if not objects:
            continue
        if printed:
            typer.echo("")
        named = [{**obj, "metadata": {**obj.get("metadata", {}), "name":
                                      f"{rtype.qualified}/{obj['metadata']['name']}"}}
                 for obj in objects]
        kubectl.print_table(rtype, named, all_namespaces=all_namespaces,
                            wide=output == "wide")
        printed = True
    if not printed:
        where = " in any namespace" if all_namespaces else f" in {namespace} namespace"
        typer.echo(f"No resources found{where}.", err=True)
