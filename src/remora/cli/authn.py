"""`remora authn tls-check POD [HOST]`: whether a pod's calls to each destination are mutual
TLS, and whether that agrees with what the destination accepts — istioctl's `authn
tls-check`, from the proxies' own admin ports.

CLIENT is what the pod's sidecar does for new connections to the endpoint (/clusters:
ISTIO_MUTUAL by auto mTLS or a DestinationRule, DISABLE otherwise); SERVER is the
PeerAuthentication mode the destination's sidecar applies on that port (its config dump),
`-` when the endpoint is no pod of this mesh. STATUS is CONFLICT when the two cannot talk:
plain text to a STRICT port, or mTLS to a port whose PeerAuthentication is DISABLE.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from remora.cli.kubectl import DEFAULT_SERVER, Client, Namespace, Server
from remora.cli.proxyconfig import Output, Pod, admin_url, emit, fetch
from remora.errors import RemoraError

app = typer.Typer(help="Mutual TLS between workloads, as istioctl authn shows it.",
                  no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="authn")


def status_of(client: str, server: str) -> str:
    """OK when a connection made as `client` is accepted by a port in mode `server`."""
    if server == "-":
        return "-"
    if client == "ISTIO_MUTUAL":
        return "OK" if server in ("STRICT", "PERMISSIVE") else "CONFLICT"
    return "OK" if server in ("PERMISSIVE", "DISABLE") else "CONFLICT"


def _server_mode(pods: list[dict[str, Any]], address: str, port: int,
                 dumps: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """The destination pod's mode on `port`, and the pod ("-" when none is found)."""
    for pod in pods:
        if (pod.get("status") or {}).get("podIP", "127.0.0.1") != address:
            continue
        name = pod["metadata"]["name"]
        url = pod["metadata"].get("annotations", {}).get("remora.io/admin-port")
        if not url:
            continue
        if name not in dumps:
            try:
                dumps[name] = fetch(f"http://{address}:{url}/config_dump")
            except RemoraError:
                dumps[name] = {}
        dump = dumps[name]
        inbound = {item.get("port") for item in dump.get("listeners") or []
                   if item.get("direction") == "inbound"}
        identity = dump.get("identity") or {}
        served = identity.get("containerPort") or identity.get("appPort")
        if port in inbound:  # the host network: the endpoint is the sidecar's inbound port
            port = served or port
        elif port != served:
            continue
        mtls = dump.get("inboundMtls") or {}
        mode = (mtls.get("portLevelMtls") or {}).get(str(port)) or mtls.get("mode", "-")
        return str(mode), f"{name}.{pod['metadata']['namespace']}"
    return "-", "-"


@app.command("tls-check")
def tls_check(pod: Pod,
              host: Annotated[str, typer.Argument(help="Only this service (FQDN or name).")]
              = "",
              namespace: Namespace = "default", output: Output = "short",
              server: Server = DEFAULT_SERVER) -> None:
    """HOST:PORT ENDPOINT STATUS SERVER CLIENT for each endpoint the pod's sidecar may call."""
    from remora.cli import pods as pod_list  # noqa: PLC0415

    base = admin_url(pod, namespace, server)
    clusters = (fetch(base + "/config_dump").get("clusters") or {})
    statuses = fetch(base + "/clusters?format=json").get("cluster_statuses") or []
    everyone = pod_list.list_pods(Client(server), namespace=None)
    dumps: dict[str, dict[str, Any]] = {}
    rows = [["HOST:PORT", "ENDPOINT", "STATUS", "SERVER", "CLIENT", "DESTINATION POD"]]
    data = []
    for status in statuses:
        cluster = clusters.get(status.get("name")) or {}
        fqdn = str(cluster.get("host") or "")
        if not fqdn or not str(status.get("name", "")).startswith("outbound|"):
            continue
        if host and host not in (fqdn, fqdn.split(".", maxsplit=1)[0]):
            continue
        for endpoint in status.get("hosts") or []:
            address, _, port = str(endpoint.get("address", "")).rpartition(":")
            mode, destination = _server_mode(everyone, address, int(port or 0), dumps)
            client = str(endpoint.get("tls_mode", "DISABLE"))
            verdict = status_of(client, mode)
            subset = f" ({cluster['subset']})" if cluster.get("subset") else ""
            rows.append([f"{fqdn}:{cluster.get('port', '')}{subset}", endpoint.get("address", ""),
                         verdict, mode, client, destination])
            data.append({"host": fqdn, "port": cluster.get("port"), "subset": cluster.get("subset"),
                         "endpoint": endpoint.get("address"), "status": verdict,
                         "server": mode, "client": client, "destination": destination,
                         "expectedIdentities": endpoint.get("expected_identities", [])})
    emit(rows, data, output)
