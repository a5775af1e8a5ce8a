"""`remora proxy-config routes|clusters|endpoints|listeners POD`: what one proxy runs, in
`istioctl proxy-config`'s tables, from the proxy's admin port (/config_dump, /clusters).

The admin port of a pod is found as `remora get pods` finds the pod (remora.cli.pods): the
running `remora up`'s state records each sidecar's and gateway's admin port; a proxy that
reports its admin port to the control plane is found through GET /api/remora/v1/proxies.
`-o json|yaml` prints the section of the config dump the table was made from.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer

from remora.cli.kubectl import DEFAULT_SERVER, Client, Namespace, Server
from remora.errors import RemoraError

ADMIN_TIMEOUT = 10.0

app = typer.Typer(
    help="Show what one proxy runs, as istioctl proxy-config does: routes, clusters, "
         "endpoints, listeners, secret.",
    no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})
Pod = Annotated[str, typer.Argument(help="The pod (NAME or NAME.NAMESPACE) whose proxy to ask.")]
Output = Annotated[str, typer.Option("-o", "--output", help="short, json or yaml.")]


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="proxy-config")


def admin_url(pod: str, namespace: str, server: str) -> str:
    """http://<pod IP>:<admin> of the pod's proxy (127.0.0.1 in the host network)."""
    from remora.cli import pods  # noqa: PLC0415

    name, _, ns = pod.partition(".")
    namespace = ns or namespace
    for item in pods.list_pods(Client(server), namespace=namespace):
        if item["metadata"]["name"] == name:
            port = (item["metadata"].get("annotations") or {}).get("remora.io/admin-port")
            if not port:
                raise RemoraError(f"the proxy of pod {name}.{namespace} does not say its admin "
                                  "port (start it with `remora up`, or a proxy that reports it)")
            return f"http://{item.get('status', {}).get('podIP') or '127.0.0.1'}:{port}"
    raise RemoraError(f'pods "{name}" not found in namespace {namespace} '
                      "(see `remora get pods -A`)")


def fetch(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=ADMIN_TIMEOUT) as answer:
            return json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise RemoraError(f"cannot read {url}: {getattr(exc, 'reason', exc)}") from None


def dump(pod: str, namespace: str, server: str) -> dict[str, Any]:
    data = fetch(admin_url(pod, namespace, server) + "/config_dump")
    return data if isinstance(data, dict) else {}


def emit(rows: list[list[str]], data: Any, output: str) -> None:
    from remora.cli.output import OutputFormat, render  # noqa: PLC0415
    from remora.cli.pods import format_rows  # noqa: PLC0415

    if output in ("json", "yaml"):
        typer.echo(render(data, OutputFormat(output)), nl=False)
    elif output == "short":
        typer.echo(format_rows(rows))
    else:
        raise typer.BadParameter(f"{output!r}: use short, json or yaml", param_hint="-o")


def domains_column(domains: list[str]) -> str:
    """istioctl's DOMAINS: the first two, then `+ N more...`."""
    shown = ", ".join(domains[:2])
    return shown + (f" + {len(domains) - 2} more..." if len(domains) > 2 else "")


def match_column(match: dict[str, Any]) -> str:
    """istioctl's MATCH: the URI match (`/*` for a prefix, the path for exact), else `/*`."""
    uri = match.get("uri") or {}
    if "prefix" in uri:
        return f"{uri['prefix']}*"
    if "exact" in uri:
        return str(uri["exact"])
    if "regex" in uri:
        return str(uri["regex"])
    return "/*"


def vs_column(written: str) -> str:
    """`ns/name` -> istioctl's `name.ns`; "" for a service's default route."""
    namespace, _, name = written.partition("/")
    return f"{name}.{namespace}" if name else written


@app.command("routes")
@app.command("route", hidden=True)
def routes(pod: Pod, namespace: Namespace = "default",
           name: Annotated[str, typer.Option("--name", help="Only this route table.")] = "",
           output: Output = "short", server: Server = DEFAULT_SERVER) -> None:
    """The route tables of a proxy: NAME DOMAINS MATCH VIRTUAL SERVICE."""
    tables = dump(pod, namespace, server).get("routeTables") or {}
    if name:
        tables = {key: value for key, value in tables.items() if key == name}
    rows = [["NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"]]
    for table_name, table in tables.items():
        for vhost in table.get("virtualHosts") or []:
            for route in vhost.get("routes") or []:
                rows.append([table_name, domains_column(vhost.get("domains") or []),
                             match_column(route.get("match") or {}),
                             vs_column(route.get("virtualService") or "")])
    emit(rows, list(tables.values()), output)


@app.command("clusters")
@app.command("cluster", hidden=True)
def clusters(pod: Pod, namespace: Namespace = "default",
             fqdn: Annotated[str, typer.Option("--fqdn", help="Only this service.")] = "",
             direction: Annotated[str, typer.Option(
                 "--direction", help="inbound or outbound only.")] = "",
             output: Output = "short", server: Server = DEFAULT_SERVER) -> None:
    """The clusters of a proxy: SERVICE FQDN PORT SUBSET DIRECTION TYPE DESTINATION RULE."""
    found = dump(pod, namespace, server).get("clusters") or {}
    picked = [c for c in found.values()
              if (not fqdn or c.get("host") == fqdn)
              and (not direction or str(c.get("name", "")).startswith(direction + "|"))]
    rows = [["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"]]
    rules = destination_rules(Client(server)) if picked else []
    for cluster in picked:
        inbound = str(cluster.get("name", "")).startswith("inbound|")
        host = str(cluster.get("host") or "")
        rule = next((r for r, ns, written in rules
                     if host and _host_matches(written, ns, host)), "") if not inbound else ""
        if not host and not inbound:  # PassthroughCluster, BlackHoleCluster: as istioctl
            rows.append([str(cluster.get("name", "")), "-", "-", "-", "ORIGINAL_DST", ""])
            continue
        rows.append([host, str(cluster.get("port", "-")), cluster.get("subset") or "-",
                     "inbound" if inbound else "outbound", "STATIC" if inbound else "EDS",
                     rule])
    emit(rows, picked, output)


def destination_rules(client: Client) -> list[tuple[str, str, str]]:
    """(`name.namespace`, namespace, host) of every DestinationRule, for the clusters' column
    (the control plane's: a config dump does not name the rule a cluster's policy came from)."""
    from remora.cli.kubectl import resolve_kind  # noqa: PLC0415

    items = client.call("GET", resolve_kind("destinationrules").collection_path(None))["items"]
    return [(f"{m['name']}.{m.get('namespace', 'default')}", m.get("namespace", "default"),
             str((dr.get("spec") or {}).get("host", "")))
            for dr in items for m in [dr.get("metadata") or {}]]


def _host_matches(written: str, namespace: str, host: str) -> bool:
    from remora.cli.describe import host_matches  # noqa: PLC0415

    return host_matches(written, namespace, host)


@app.command("endpoints")
@app.command("endpoint", hidden=True)
def endpoints(pod: Pod, namespace: Namespace = "default",
              cluster: Annotated[str, typer.Option("--cluster", help="Only this cluster.")] = "",
              output: Output = "short", server: Server = DEFAULT_SERVER) -> None:
    """The endpoints of a proxy's clusters: ENDPOINT STATUS OUTLIER CHECK CLUSTER (/clusters)."""
    answer = fetch(admin_url(pod, namespace, server) + "/clusters?format=json")
    statuses = [s for s in answer.get("cluster_statuses") or []
                if not cluster or s.get("name") == cluster]
    rows = [["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"]]
    for status in statuses:
        for host in status.get("hosts") or []:
            ejected = host.get("health_flags") == "/failed_outlier_check"
            rows.append([host.get("address", ""), "HEALTHY" if not ejected else "UNHEALTHY",
                         "FAILED" if ejected else "OK", status.get("name", "")])
    emit(rows, {"cluster_statuses": statuses}, output)


@app.command("listeners")
@app.command("listener", hidden=True)
def listeners(pod: Pod, namespace: Namespace = "default",
              port: Annotated[int | None, typer.Option("--port", help="Only this port.")] = None,
              output: Output = "short", server: Server = DEFAULT_SERVER) -> None:
    """The listeners of a proxy: ADDRESSES PORT MATCH DESTINATION.

    A sidecar has one outbound listener that picks its route table by the request's
    destination port: one row per port."""
    data = dump(pod, namespace, server)
    tables = data.get("routeTables") or {}
    rows = [["ADDRESSES", "PORT", "MATCH", "DESTINATION"]]
    picked = [item for item in data.get("listeners") or []
              if port is None or item.get("port") == port]
    for listener in picked:
        local = str(listener.get("port", ""))
        if listener.get("direction") == "outbound":
            for name in (n for n in tables if n.isdigit()):
                rows.append(["127.0.0.1", local, f"destination port {name}", f"Route: {name}"])
            policy = (data.get("mesh") or {}).get("outboundTrafficPolicy", "ALLOW_ANY")
            rows.append(["127.0.0.1", local, "ALL", "BlackHoleCluster"
                         if policy == "REGISTRY_ONLY" else "PassthroughCluster"])
        elif listener.get("direction") == "inbound":
            rows.append(["127.0.0.1", local, "ALL",
                         f"Inline Route: {listener.get('routeTable') or '-'}"])
        else:
            tls = " (TLS)" if listener.get("tls") else ""
            rows.append(["0.0.0.0", local, "ALL", f"Route: {listener.get('routeTable')}{tls}"])
    emit(rows, picked, output)


@app.command("secret")
@app.command("secrets", hidden=True)
def secret(pod: Pod, namespace: Namespace = "default",
           output: Output = "short", server: Server = DEFAULT_SERVER) -> None:
    """The proxy's workload certificate and roots: RESOURCE NAME TYPE STATUS VALID CERT SERIAL
    NUMBER NOT AFTER NOT BEFORE, as istioctl proxy-config secret (the proxy's /certs)."""
    answer = fetch(admin_url(pod, namespace, server) + "/certs")
    rows = [["RESOURCE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER", "NOT AFTER",
             "NOT BEFORE", "IDENTITY"]]
    for entry in answer.get("certificates") or []:
        for name, kind, certificates in (("default", "Cert Chain", entry.get("cert_chain")),
                                         ("ROOTCA", "CA", entry.get("ca_cert"))):
            for cert in (certificates or [])[:1] if name == "default" else certificates or []:
                valid = int(cert.get("seconds_until_expiration", 0)) > 0
                sans = ",".join(s.get("uri", "") for s in cert.get("subject_alt_names") or [])
                rows.append([name, kind, "ACTIVE", str(valid).lower(),
                             cert.get("serial_number", ""), cert.get("expiration_time", ""),
                             cert.get("valid_from", ""), sans or "-"])
    if len(rows) == 1 and output == "short":
        typer.echo(f"{pod}: no workload certificate (the proxy has no identity token, or the "
                   "CA has not issued one yet: see its log)")
        return
    emit(rows, answer, output)
