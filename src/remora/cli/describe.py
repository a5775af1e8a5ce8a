"""`remora describe KIND NAME`: kubectl describe for pods, services, deployments and Istio
resources, with the mesh hints of `istioctl x describe`.

Every object gets kubectl's header (Name, Namespace, Labels, Annotations), then what kubectl's
describer for its kind shows (a Pod's containers and conditions, a Service's selector, ports and
endpoints, a Deployment's replicas), then, for other kinds, the generic describer's Spec and
Status trees (keys in Title Case, nested by indentation). A Service, and a Pod through the
Services that select it, also lists the VirtualServices and DestinationRules that apply to it:
a VirtualService naming the service among its hosts or routing to it, a DestinationRule whose
host is the service (short names resolved in the rule's namespace, as Istio does).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from remora.cli.kubectl import DEFAULT_SERVER, Client, Namespace, Server, ServerError
from remora.errors import RemoraError

DOMAIN = "svc.cluster.local"


def register(app: typer.Typer) -> None:
    app.command("describe")(describe)


def describe(
    kind: Annotated[str, typer.Argument(help="Kind: pod, svc, deploy, vs, dr, gw, ...")],
    names: Annotated[list[str] | None, typer.Argument(help="Names (default: all).")] = None,
    namespace: Namespace = "default",
    server: Server = DEFAULT_SERVER,
) -> None:
    """Show details of resources and pods, with the rules that apply (kubectl describe)."""
    client = Client(server)
    if kind.lower() in ("pods", "pod", "po"):
        from remora.cli import pods  # noqa: PLC0415

        found = {p["metadata"]["name"]: p for p in pods.list_pods(client, namespace=namespace)}
        wanted = names or sorted(found)
        missing = [n for n in wanted if n not in found]
        if missing:
            raise RemoraError(f'pods "{missing[0]}" not found')
        typer.echo("\n\n".join(describe_pod(client, found[n]) for n in wanted))
        return
    from remora.cli.kubectl import _item_path, resolve_kind  # noqa: PLC0415

    rtype = resolve_kind(kind)
    if names:
        objects = [client.call("GET", _item_path(rtype, namespace, name)) for name in names]
    else:
        objects = client.call("GET", rtype.collection_path(namespace))["items"]
    typer.echo("\n\n".join(describe_object(client, obj) for obj in objects))


# ---------------------------------------------------------------------------------------------
# What applies to a service
# ---------------------------------------------------------------------------------------------


def fqdn(host: str, namespace: str) -> str:
    """A host as Istio resolves it in `namespace`: `reviews` -> reviews.<ns>.svc.cluster.local."""
    parts = host.split(".")
    if host == "*" or host.startswith("*") or len(parts) > 3:
        return host
    if len(parts) == 1:
        return f"{host}.{namespace}.{DOMAIN}"
    if len(parts) == 2:
        return f"{host}.{DOMAIN}"
    return f"{host}.cluster.local" if parts[2] == "svc" else host


def host_matches(written: str, namespace: str, service_fqdn: str) -> bool:
    name = fqdn(written, namespace)
    if name.startswith("*"):
        return service_fqdn.endswith(name[1:]) and name != "*"
    return name == service_fqdn


def _destinations(vs: dict[str, Any]) -> list[str]:
    spec = vs.get("spec") or {}
    hosts = []
    for kind in ("http", "tcp", "tls"):
        for rule in spec.get(kind) or []:
            for route in rule.get("route") or []:
                host = (route.get("destination") or {}).get("host")
                if host:
                    hosts.append(host)
            mirror = (rule.get("mirror") or {}).get("host")
            if mirror:
                hosts.append(mirror)
    return hosts


def rules_for(client: Client, service_fqdn: str) -> tuple[list[dict[str, Any]],
                                                         list[dict[str, Any]]]:
    """(VirtualServices, DestinationRules) of any namespace that apply to the service."""
    from remora.cli.kubectl import resolve_kind  # noqa: PLC0415

    def every(kind: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = client.call(
            "GET", resolve_kind(kind).collection_path(None))["items"]
        return items

    services = []
    for vs in every("virtualservices"):
        ns = vs["metadata"].get("namespace", "default")
        hosts = (vs.get("spec") or {}).get("hosts") or []
        if any(host_matches(h, ns, service_fqdn) for h in hosts if h != "*") or any(
                host_matches(h, ns, service_fqdn) for h in _destinations(vs)):
            services.append(vs)
    rules = [dr for dr in every("destinationrules")
             if host_matches(str((dr.get("spec") or {}).get("host", "")),
                             dr["metadata"].get("namespace", "default"), service_fqdn)]
    return services, rules


def _hint_lines(client: Client, service_fqdn: str, labels: dict[str, str] | None) -> list[str]:
    """istioctl x describe's lines: each VirtualService with its routes, each DestinationRule
    with the subsets that match the pod (or all of them) and its traffic policy."""
    services, rules = rules_for(client, service_fqdn)
    lines = []
    for vs in services:
        spec = vs.get("spec") or {}
        count = len(spec.get("http") or [])
        gateways = ", ".join(spec.get("gateways") or []) or "mesh"
        lines.append(f"VirtualService: {_ref(vs)}")
        lines.append(f"   {count} HTTP route(s); gateways: {gateways}")
    for dr in rules:
        spec = dr.get("spec") or {}
        subsets = [s for s in spec.get("subsets") or []
                   if labels is None or all(labels.get(k) == v
                                            for k, v in (s.get("labels") or {}).items())]
        lines.append(f'DestinationRule: {_ref(dr)} for "{spec.get("host")}"')
        if spec.get("subsets"):
            names = ", ".join(s.get("name", "") for s in subsets) or "(none)"
            lines.append(f"   {'Matching subsets' if labels is not None else 'Subsets'}: {names}")
        policy = spec.get("trafficPolicy")
        lines.append(f"   Traffic Policy: {json.dumps(policy)}" if policy
                     else "   No Traffic Policy")
    if not services:
        lines.append("No VirtualServices apply (the service's default route)")
    if not rules:
        lines.append("No DestinationRules apply")
    return lines


def _ref(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('name')}.{meta.get('namespace', 'default')}"


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------


def _pairs(rows: list[tuple[str, str]], indent: int = 0) -> list[str]:
    """`Key:  value` lines with the values aligned, as kubectl's describers print them."""
    width = max((len(key) for key, _ in rows), default=0) + 2
    out = []
    for key, value in rows:
        lines = value.split("\n") if value else [""]
        out.append(f"{' ' * indent}{(key + ':').ljust(width)}{lines[0]}".rstrip())
        out.extend(f"{' ' * (indent + width)}{line}" for line in lines[1:])
    return out


def _map(values: dict[str, Any] | None, sep: str = "=") -> str:
    if not values:
        return "<none>"
    return "\n".join(f"{k}{sep}{v}" for k, v in sorted(values.items()))


def _when(stamp: Any) -> str:
    """kubectl's time: `Mon, 07 Dec 2026 01:51:09 +0000`."""
    try:
        moment = datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    return moment.strftime("%a, %d %b %Y %H:%M:%S +0000")


def _header(obj: dict[str, Any]) -> list[tuple[str, str]]:
    meta = obj.get("metadata") or {}
    rows = [("Name", str(meta.get("name", "")))]
    if "namespace" in meta:
        rows.append(("Namespace", str(meta["namespace"])))
    rows += [("Labels", _map(meta.get("labels"))),
             ("Annotations", _map(meta.get("annotations"), ": "))]
    return rows


def title(key: str) -> str:
    """`creationTimestamp` -> `Creation Timestamp` (kubectl's generic describer)."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key)
    return spaced[:1].upper() + spaced[1:]


def tree(value: Any, indent: int) -> list[str]:
    """Nested maps and lists as kubectl's generic describer prints them."""
    pad = " " * indent
    if isinstance(value, dict):
        scalars = [(title(k), _scalar(v)) for k, v in value.items()
                   if not isinstance(v, dict | list)]
        out = _pairs(scalars, indent) if scalars else []
        for key, item in value.items():
            if isinstance(item, dict | list):
                out.append(f"{pad}{title(key)}:")
                out.extend(tree(item, indent + 2))
        return out
    if isinstance(value, list):
        out = []
        for item in value:
            out.extend(tree(item, indent) if isinstance(item, dict | list)
                       else [f"{pad}{_scalar(item)}"])
        return out
    return [f"{pad}{_scalar(value)}"]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def describe_object(client: Client, obj: dict[str, Any]) -> str:
    kind = obj.get("kind")
    if kind == "Service":
        return describe_service(client, obj)
    if kind in ("Deployment", "StatefulSet"):
        return describe_workload(client, obj)
    meta = obj.get("metadata") or {}
    lines = _pairs([*_header(obj), ("API Version", str(obj.get("apiVersion", ""))),
                    ("Kind", str(kind))])
    shown = {k: v for k, v in meta.items()
             if k not in ("name", "namespace", "labels", "annotations")}
    for section, value in (("Metadata", shown), ("Spec", obj.get("spec")),
                           ("Status", obj.get("status")), ("Data", obj.get("data"))):
        if value:
            lines.append(f"{section}:")
            lines.extend(tree(value, 2))
    lines.append("Events:       <none>")
    return "\n".join(lines)


def describe_service(client: Client, obj: dict[str, Any]) -> str:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    namespace = str(meta.get("namespace", "default"))
    rows = [*_header(obj), ("Selector", _map(spec.get("selector")).replace("\n", ",")),
            ("Type", str(spec.get("type") or "ClusterIP"))]
    for port in spec.get("ports") or []:
        protocol = port.get("protocol", "TCP")
        rows.append(("Port", f"{port.get('name') or '<unset>'}  {port.get('port')}/{protocol}"))
        rows.append(("TargetPort", f"{port.get('targetPort', port.get('port'))}/{protocol}"))
    rows.append(("Endpoints", _endpoints(client, str(meta.get("name")), namespace)))
    rows.append(("Session Affinity", str(spec.get("sessionAffinity") or "None")))
    lines = _pairs(rows)
    lines += _hint_lines(client, fqdn(str(meta.get("name")), namespace), None)
    lines.append("Events:            <none>")
    return "\n".join(lines)


def _endpoints(client: Client, service: str, namespace: str) -> str:
    """The service's ready instances in the registry (Nacos), as kubectl lists Endpoints."""
    try:
        answer = client.call("GET", "/nacos/v1/ns/instance/list", params={
            "serviceName": service, "healthyOnly": "true",
            "namespaceId": "public" if namespace == "default" else namespace})  # as the runner
    except ServerError:
        return "<none>"
    hosts = [f"{h.get('ip')}:{h.get('port')}" for h in (answer or {}).get("hosts") or []]
    return ",".join(sorted(hosts)) or "<none>"


def describe_workload(client: Client, obj: dict[str, Any]) -> str:
    from remora.cli import pods  # noqa: PLC0415

    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    namespace = str(meta.get("namespace", "default"))
    mine = [p for p in pods.list_pods(client, namespace=namespace)
            if any(ref.get("name") == meta.get("name")
                   for ref in p["metadata"].get("ownerReferences") or [])]
    ready = sum(1 for p in mine if pods.ready_column(p).split("/")[0] ==
                pods.ready_column(p).split("/")[1])
    desired = spec.get("replicas", 1)
    rows = [("Name", str(meta.get("name"))), ("Namespace", namespace),
            ("CreationTimestamp", _when(meta.get("creationTimestamp"))),
            *_header(obj)[2:],
            ("Selector", _map((spec.get("selector") or {}).get("matchLabels")).replace("\n", ",")),
            ("Replicas", f"{desired} desired | {len(mine)} total | {ready} available | "
                         f"{len(mine) - ready} unavailable")]
    lines = _pairs(rows)
    template = spec.get("template") or {}
    lines.append("Pod Template:")
    lines.extend(_pairs([("Labels", _map((template.get("metadata") or {}).get("labels")))], 2))
    lines.append("  Containers:")
    for container in (template.get("spec") or {}).get("containers") or []:
        lines.append(f"   {container.get('name')}:")
        lines.extend(tree({k: v for k, v in container.items() if k != "name"}, 4))
    lines.append("Pods:")
    lines.extend(f"  {p['metadata']['name']}  {pods.ready_column(p)}  {pods.status_column(p)}"
                 for p in mine)
    if not mine:
        lines.append("  <none>")
    lines.append("Events:          <none>")
    return "\n".join(lines)


def describe_pod(client: Client, pod: dict[str, Any]) -> str:
    from remora.cli import pods  # noqa: PLC0415
    from remora.cli.kubectl import resolve_kind  # noqa: PLC0415

    meta, status = pod["metadata"], pod.get("status") or {}
    owner = next(iter(meta.get("ownerReferences") or []), None)
    rows = [("Name", meta["name"]), ("Namespace", meta["namespace"]),
            ("Node", "localhost/127.0.0.1"), ("Start Time", _when(status.get("startTime"))),
            ("Labels", _map(meta.get("labels"))),
            ("Annotations", _map(meta.get("annotations"), ": ")),
            ("Status", pods.status_column(pod)), ("IP", str(status.get("podIP") or ""))]
    if owner:
        rows.append(("Controlled By", f"{owner.get('kind')}/{owner.get('name')}"))
    lines = _pairs(rows)
    lines.append("Containers:")
    statuses = {s["name"]: s for s in status.get("containerStatuses") or []}
    for container in (pod.get("spec") or {}).get("containers") or []:
        state = statuses.get(container["name"], {})
        running = "running" in (state.get("state") or {})
        reason = ((state.get("state") or {}).get("waiting") or {}).get("reason", "")
        crows = []
        for port in container.get("ports") or []:
            named = f" ({port['name']})" if port.get("name") else ""
            crows.append(("Port", f"{port.get('containerPort')}/TCP{named}"))
            if port.get("hostPort"):
                crows.append(("Host Port", f"{port['hostPort']}/TCP"))
        crows += [("State", "Running" if running else f"Waiting\n  Reason:  {reason}"),
                  ("Ready", str(bool(state.get("ready")))),
                  ("Restart Count", str(state.get("restartCount", 0)))]
        last = ((state.get("lastState") or {}).get("terminated") or {}).get("message")
        if last:
            crows.append(("Last State", f"Terminated\n  Message:  {last}"))
        lines.append(f"  {container['name']}:")
        lines.extend(_pairs(crows, 4))
    lines.append("Conditions:")
    conditions = [("Type", "Status")] + [(str(c["type"]), str(c["status"]))
                                         for c in status.get("conditions") or []]
    width = max(len(kind) for kind, _ in conditions) + 2
    lines.extend(f"  {kind.ljust(width)}{value}" for kind, value in conditions)
    labels = dict(meta.get("labels") or {})
    services = client.call("GET", resolve_kind("services").collection_path(meta["namespace"]))
    for service in services["items"]:
        selector = (service.get("spec") or {}).get("selector") or {}
        if selector and all(labels.get(k) == v for k, v in selector.items()):
            ports = ", ".join(f"{p.get('name') or ''} {p.get('port')}/HTTP"
                              for p in (service.get("spec") or {}).get("ports") or [])
            lines.append("--------------------")
            lines.append(f"Service: {_ref(service)}")
            lines.append(f"   Port: {ports}")
            lines.extend(_hint_lines(client, fqdn(service["metadata"]["name"],
                                                  meta["namespace"]), labels))
    lines.append("Events:            <none>")
    return "\n".join(lines)
