"""`remora proxy-status`: which version each connected proxy was sent and runs, and what it
skipped - `istioctl proxy-status` for Remora's push (GET /api/remora/v1/proxies).

As istioctl, a proxy is named `POD.NAMESPACE` (the pod `remora get pods` shows: a `remora up`
sidecar's pod is found by the pid in its node id) and its state is SYNCED, NOT SENT, STALE or
STALE (Never Acknowledged); Remora pushes one snapshot, not CDS/LDS/EDS/RDS apart, so there is
one state per proxy. NACKED: it refused the last version and serves the one before."""

from __future__ import annotations

import io
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from remora.cli.kubectl import DEFAULT_SERVER, Client, Server
from remora.cli.output import OutputFormat, render
from remora.errors import RemoraError

PROXIES_PATH = "/api/remora/v1/proxies"


def register(app: typer.Typer) -> None:
    app.command("proxy-status")(proxy_status)


def proxy_status(
    pod: Annotated[str | None, typer.Argument(
        help="POD[.NAMESPACE]: this proxy only, and whether it runs what it was sent.")] = None,
    output: Annotated[OutputFormat, typer.Option("-o", "--output", help="text, json or yaml.")]
    = OutputFormat.TEXT,
    server: Server = DEFAULT_SERVER,
) -> None:
    """One row per connected proxy: versions sent and acknowledged, SYNCED or STALE, and the
    resources it skipped (they did not compile for it; everything else was applied)."""
    from remora.cli.pods import up_pod_names  # noqa: PLC0415

    proxies = Client(server).call("GET", PROXIES_PATH)
    pods = up_pod_names(server)
    if pod:
        wanted = pod if "." in pod else f"{pod}.default"
        proxies = [p for p in proxies if display_name(str(p.get("id")), pods) == wanted]
        if not proxies:
            raise RemoraError(f"no connected proxy of pod {wanted} (see `remora proxy-status`)")
    if output is not OutputFormat.TEXT:
        typer.echo(render(proxies, output), nl=False)
        return
    typer.echo(table(proxies, pods=pods))
    if pod:
        typer.echo(compare(proxies[0], pod, server))


def compare(proxy: dict[str, Any], pod: str, server: str) -> str:
    """istioctl's `proxy-status POD` lines: whether the proxy runs the version the control
    plane sent it (asked of the proxy itself, at its admin port's /config_dump). Remora sends
    one snapshot, so clusters, listeners and routes match or differ together."""
    from remora.cli.proxyconfig import dump  # noqa: PLC0415

    name, _, namespace = pod.partition(".")
    running = dump(name, namespace or "default", server).get("version")
    sent = proxy.get("sent")
    if running == sent:
        return "\n".join(f"{part} Match (version {sent})"
                         for part in ("Clusters", "Listeners", "Routes"))
    return (f"Config differs: the proxy runs {running or 'nothing'}, the control plane sent "
            f"{sent or 'nothing'} (an ACK is due, or the proxy refused it: see above)")


def display_name(proxy_id: str, pods: dict[str, str] | None = None) -> str:
    """`sidecar~127.0.0.1~front-3101.default~default.svc.cluster.local` -> `POD.default`, the
    pod being the one whose sidecar has pid 3101 when `pods` (pid -> pod) knows it; an id of
    another shape is shown as it is."""
    parts = proxy_id.split("~")
    if len(parts) != 4 or "." not in parts[2]:
        return proxy_id
    workload_pid, _, namespace = parts[2].rpartition(".")
    pid = workload_pid.rpartition("-")[2]
    return f"{(pods or {}).get(pid, workload_pid)}.{namespace}"


def sync_state(proxy: dict[str, Any]) -> str:
    """SYNCED when it runs what it was sent; STALE while an ACK is due; NACKED when it refused
    the last version (it keeps serving the one before)."""
    if proxy.get("error") and proxy.get("nacked") == proxy.get("sent"):
        return "NACKED"
    if not proxy.get("sent"):
        return "NOT SENT"
    if proxy.get("synced"):
        return "SYNCED"
    return "STALE" if proxy.get("acked") else "STALE (Never Acknowledged)"


def table(proxies: list[dict[str, Any]], *, pods: dict[str, str] | None = None) -> str:
    """The proxies as a table, then one line per skipped resource or refusal."""
    if not proxies:
        return "No proxies connected."
    grid = Table(box=None, pad_edge=False, show_edge=False, header_style="", padding=(0, 3, 0, 0))
    for header in ("NAME", "MODE", "NAMESPACE", "SENT", "ACKED", "SYNCED", "ERRORS"):
        grid.add_column(header, no_wrap=True)
    details: list[str] = []
    named = [(display_name(str(p.get("id")), pods), p) for p in proxies]
    for name, proxy in sorted(named, key=lambda item: item[0]):
        skipped = proxy.get("resourceErrors") or []
        errors = len(skipped) + (1 if proxy.get("error") else 0)
        grid.add_row(name, str(proxy.get("mode")), str(proxy.get("namespace")),
                     proxy.get("sent") or "-", proxy.get("acked") or "-", sync_state(proxy),
                     str(errors))
        if proxy.get("error"):
            details.append(f"{name}: refused {proxy.get('nacked')}: {proxy['error']}")
        details.extend(
            f"{name}: skipped {item['kind']} {item['namespace']}/{item['name']}: "
            f"{item['message']}" for item in skipped)
    console = Console(file=io.StringIO(), width=10_000, highlight=False, color_system=None)
    console.print(grid)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(lines + (["", *details] if details else []))
