"""`remora proxy-status`: which version each connected proxy was sent and runs, and what it
skipped - `istioctl proxy-status` for Remora's push (GET /api/remora/v1/proxies)."""

from __future__ import annotations

import io
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from remora.cli.kubectl import DEFAULT_SERVER, Client, Server
from remora.cli.output import OutputFormat, render

PROXIES_PATH = "/api/remora/v1/proxies"


def register(app: typer.Typer) -> None:
    app.command("proxy-status")(proxy_status)


def proxy_status(
    output: Annotated[OutputFormat, typer.Option("-o", "--output", help="text, json or yaml.")]
    = OutputFormat.TEXT,
    server: Server = DEFAULT_SERVER,
) -> None:
    """One row per connected proxy: versions sent and acknowledged, SYNCED or STALE, and the
    resources it skipped (they did not compile for it; everything else was applied)."""
    proxies = Client(server).call("GET", PROXIES_PATH)
    if output is not OutputFormat.TEXT:
        typer.echo(render(proxies, output), nl=False)
        return
    typer.echo(table(proxies))


def sync_state(proxy: dict[str, Any]) -> str:
    """SYNCED when it runs what it was sent; STALE while an ACK is due; NACKED when it refused
    the last version (it keeps serving the one before)."""
    if proxy.get("error") and proxy.get("nacked") == proxy.get("sent"):
        return "NACKED"
    return "SYNCED" if proxy.get("synced") else "STALE"


def table(proxies: list[dict[str, Any]]) -> str:
    """The proxies as a table, then one line per skipped resource or refusal."""
    if not proxies:
        return "No proxies connected."
    grid = Table(box=None, pad_edge=False, show_edge=False, header_style="", padding=(0, 3, 0, 0))
    for header in ("NAME", "MODE", "NAMESPACE", "SENT", "ACKED", "SYNCED", "ERRORS"):
        grid.add_column(header, no_wrap=True)
    details: list[str] = []
    for proxy in sorted(proxies, key=lambda p: str(p.get("id"))):
        skipped = proxy.get("resourceErrors") or []
        errors = len(skipped) + (1 if proxy.get("error") else 0)
        grid.add_row(str(proxy.get("id")), str(proxy.get("mode")), str(proxy.get("namespace")),
                     proxy.get("sent") or "-", proxy.get("acked") or "-", sync_state(proxy),
                     str(errors))
        if proxy.get("error"):
            details.append(f"{proxy.get('id')}: refused {proxy.get('nacked')}: {proxy['error']}")
        details.extend(
            f"{proxy.get('id')}: skipped {item['kind']} {item['namespace']}/{item['name']}: "
            f"{item['message']}" for item in skipped)
    console = Console(file=io.StringIO(), width=10_000, highlight=False, color_system=None)
    console.print(grid)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(lines + (["", *details] if details else []))
