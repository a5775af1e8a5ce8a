"""`remora services | instances | config`: the registry and the config center, from a terminal.

They speak the control plane's Nacos v1 open API (what Nacos clients use), so what they show is
what a Nacos client gets: `services` and `instances` as tables (or -o json|yaml),
`config get|set|listen` as nacos-sdk-python's get_config / publish_config / watchers.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Annotated, Any
from urllib.parse import unquote_plus

import typer
from rich.console import Console
from rich.table import Table

from remora.cli.kubectl import DEFAULT_SERVER, Client, Server, ServerError
from remora.cli.output import OutputFormat, render

NacosNamespace = Annotated[str, typer.Option(
    "-n", "--namespace", help="Nacos namespace (tenant); public by default.")]
Group = Annotated[str, typer.Option("-g", "--group", help="Nacos group.")]
Output = Annotated[str, typer.Option("-o", "--output", help="table, json or yaml.")]
LISTEN_TIMEOUT_MS = 30_000  # Nacos clients long-poll for 30 s

config_app = typer.Typer(help="Configs of the config center (Nacos-compatible).",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("services")(services)
    app.command("instances")(instances)
    app.add_typer(config_app, name="config")


def _emit(rows: list[dict[str, Any]], output: str, columns: list[str], title: str) -> None:
    if output in (OutputFormat.JSON.value, OutputFormat.YAML.value):
        typer.echo(render(rows, OutputFormat(output)), nl=False)
        return
    if output != "table":
        raise typer.BadParameter("table, json or yaml", param_hint="-o")
    table = Table(title=title, box=None, header_style="bold")
    for column in columns:
        table.add_column(column.upper())
    for row in rows:
        table.add_row(*(str(row.get(column, "")) for column in columns))
    Console(width=160).print(table)


def _instances(client: Client, service: str, *, namespace: str, group: str,
               healthy_only: bool = False) -> dict[str, Any]:
    params = {"serviceName": service, "groupName": group, "healthyOnly": str(healthy_only)}
    if namespace:
        params["namespaceId"] = namespace
    answer: dict[str, Any] = client.call("GET", "/nacos/v1/ns/instance/list", params=params)
    return answer


def services(namespace: NacosNamespace = "", group: Group = "DEFAULT_GROUP",
             output: Output = "table", server: Server = DEFAULT_SERVER) -> None:
    """Services of the registry with their instance counts (Nacos /ns/service/list)."""
    client = Client(server)
    params = {"pageNo": "1", "pageSize": "10000", "groupName": group}
    if namespace:
        params["namespaceId"] = namespace
    names = client.call("GET", "/nacos/v1/ns/service/list", params=params).get("doms", [])
    rows = []
    for name in sorted(names):
        hosts = _instances(client, name, namespace=namespace, group=group)["hosts"]
        rows.append({"name": name, "group": group, "namespace": namespace or "public",
                     "instances": len(hosts),
                     "healthy": sum(1 for host in hosts if host.get("healthy"))})
    _emit(rows, output, ["name", "group", "namespace", "instances", "healthy"], "services")


def instances(service: Annotated[str, typer.Argument(help="Service name.")],
              namespace: NacosNamespace = "", group: Group = "DEFAULT_GROUP",
              healthy_only: Annotated[bool, typer.Option(
                  help="Only healthy instances (Nacos healthyOnly).")] = False,
              output: Output = "table", server: Server = DEFAULT_SERVER) -> None:
    """Instances of a service (Nacos /ns/instance/list)."""
    answer = _instances(Client(server), service, namespace=namespace, group=group,
                        healthy_only=healthy_only)
    rows = [
        {"ip": h["ip"], "port": h["port"], "weight": h.get("weight"),
         "healthy": h.get("healthy"), "enabled": h.get("enabled"),
         "ephemeral": h.get("ephemeral"), "cluster": h.get("clusterName"),
         "metadata": ",".join(f"{k}={v}" for k, v in (h.get("metadata") or {}).items())}
        for h in answer.get("hosts", [])
    ]
    title = f"{service} ({len(rows)} instances)"
    if answer.get("reachProtectionThreshold"):
        title += ": protection threshold reached, unhealthy instances included"
    _emit(rows, output, ["ip", "port", "weight", "healthy", "enabled", "ephemeral", "cluster",
                         "metadata"], title)


def _config_params(data_id: str, group: str, namespace: str) -> dict[str, str]:
    params = {"dataId": data_id, "group": group}
    if namespace:
        params["tenant"] = namespace
    return params


def _content(client: Client, params: dict[str, str]) -> str | None:
    try:
        return client.call_raw("GET", "/nacos/v1/cs/configs", params=params).decode()
    except ServerError as exc:
        if exc.code == 404:
            return None
        raise


@config_app.command("get")
def config_get(data_id: Annotated[str, typer.Argument(help="dataId.")],
               group: Group = "DEFAULT_GROUP", namespace: NacosNamespace = "",
               server: Server = DEFAULT_SERVER) -> None:
    """Print a config's content (exit 1 when there is none)."""
    content = _content(Client(server), _config_params(data_id, group, namespace))
    if content is None:
        typer.echo(f"Error: config {group}/{data_id} does not exist", err=True)
        raise typer.Exit(1)
    typer.echo(content, nl=not content.endswith("\n"))


@config_app.command("set")
def config_set(data_id: Annotated[str, typer.Argument(help="dataId.")],
               content: Annotated[str | None, typer.Argument(
                   help="The content; - or omitted: read stdin.")] = None,
               group: Group = "DEFAULT_GROUP", namespace: NacosNamespace = "",
               config_type: Annotated[str, typer.Option(
                   "--type", help="text, json, yaml, properties, ...")] = "text",
               server: Server = DEFAULT_SERVER) -> None:
    """Publish a config (listeners are told)."""
    text = sys.stdin.read() if content in (None, "-") else content
    params = {**_config_params(data_id, group, namespace), "content": text or "",
              "type": config_type}
    Client(server).call_raw("POST", "/nacos/v1/cs/configs", params=params)
    typer.echo(f"config {group}/{data_id} published")


@config_app.command("listen")
def config_listen(data_id: Annotated[str, typer.Argument(help="dataId.")],
                  group: Group = "DEFAULT_GROUP", namespace: NacosNamespace = "",
                  once: Annotated[bool, typer.Option(
                      help="Exit after the first change.")] = False,
                  server: Server = DEFAULT_SERVER) -> None:
    """Print the content now and on every change (Nacos long polling), until Ctrl-C."""
    client = Client(server)
    params = _config_params(data_id, group, namespace)
    content = _content(client, params)
    typer.echo(content if content is not None else f"# {group}/{data_id} does not exist yet")
    while True:
        md5 = hashlib.md5(content.encode()).hexdigest() if content is not None else ""
        probe = "\x02".join([data_id, group, md5] + ([namespace] if namespace else [])) + "\x01"
        changed = client.call_raw(
            "POST", "/nacos/v1/cs/configs/listener", params={"Listening-Configs": probe},
            headers={"Long-Pulling-Timeout": str(LISTEN_TIMEOUT_MS)},
            timeout=LISTEN_TIMEOUT_MS / 1000 + 10,
        )
        if not unquote_plus(changed.decode()).strip():
            continue  # the poll timed out with no change
        content = _content(client, params)
        typer.echo(content if content is not None else f"# {group}/{data_id} was deleted")
        if once:
            return
