"""`remora identity`: join tokens for proxies, and the CA's roots (the control plane's CA API).

    remora identity token -n default --service-account web     # the token a proxy joins with
    remora identity certificate --sa web --out certs/          # a certificate, for curl --cert
    remora identity ca                                         # the roots, which one signs
    remora identity rotate-root                                # a new root, signing in 10 s
    remora identity remove-root FINGERPRINT                    # once proxies have the new one

A join token lets its holder get certificates as `spiffe://<trust domain>/ns/NS/sa/SA`, so
issuing one needs write on `NS:remora:identity/SA`; rotating roots needs a global admin.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from remora.cli.kubectl import DEFAULT_SERVER, Client, Server
from remora.cli.output import OutputFormat, render

Output = Annotated[str, typer.Option("-o", "--output", help="text, json or yaml.")]
API = "/api/remora/v1"

identity_app = typer.Typer(help="Join tokens for proxies and the roots of the mesh's CA.",
                           no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(identity_app, name="identity")


def _structured(answer: Any, output: str) -> bool:
    """Print `answer` as JSON or YAML when asked; False when the caller prints text."""
    if output in (OutputFormat.JSON.value, OutputFormat.YAML.value):
        typer.echo(render(answer, OutputFormat(output)), nl=False)
        return True
    if output not in ("text", "table"):
        raise typer.BadParameter("text, json or yaml", param_hint="-o")
    return False


def _seconds(text: str) -> int:
    from remora.api.duration import parse_duration  # noqa: PLC0415

    try:
        seconds = int(parse_duration(text))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--ttl") from None
    if seconds <= 0:
        raise typer.BadParameter("must be longer than a second", param_hint="--ttl")
    return seconds


@identity_app.command("token")
def token(
    namespace: Annotated[str, typer.Option("-n", "--namespace", help="The workload's namespace.")
                         ] = "default",
    service_account: Annotated[str, typer.Option("--service-account", "--sa",
                                                 help="The workload's service account.")
                               ] = "default",
    ttl: Annotated[str, typer.Option("--ttl", help="How long the token is good for (Go "
                                                   "duration: 720h, 90m).")] = "720h",
    pod: Annotated[str, typer.Option("--pod", help="The pod it is for (recorded in the "
                                                   "token).")] = "",
    output: Output = "text",
    server: Server = DEFAULT_SERVER,
) -> None:
    """Print a join token for the proxies of one service account (hand it to the proxy)."""
    body: dict[str, Any] = {"namespace": namespace, "serviceAccount": service_account,
                            "ttlSeconds": _seconds(ttl)}
    if pod:
        body["pod"] = pod
    answer = Client(server).call("POST", f"{API}/identitytokens",
                                 body=json.dumps(body).encode())
    if not _structured(answer, output):
        typer.echo(answer["token"])


@identity_app.command("certificate")
def certificate(
    out: Annotated[Path, typer.Option("--out", help="The directory to write cert-chain.pem, "
                                                    "key.pem and root-cert.pem into.")],
    namespace: Annotated[str, typer.Option("-n", "--namespace", help="The workload's namespace.")
                         ] = "default",
    service_account: Annotated[str, typer.Option("--service-account", "--sa",
                                                 help="The workload's service account.")
                               ] = "default",
    ttl: Annotated[str, typer.Option("--ttl", help="The certificate's lifetime.")] = "24h",
    server: Server = DEFAULT_SERVER,
) -> None:
    """Get a workload certificate of the mesh, in Istio's file-mounted layout: for a client
    that must reach a STRICT workload (curl --cert), or `remora proxy --workload-certs`.
    The key is made here and written 0600; it never leaves this machine."""
    from remora.proxy.certs import new_request  # noqa: PLC0415 (the proxy's own CSR)

    client = Client(server)
    grant = client.call("POST", f"{API}/identitytokens", body=json.dumps({
        "namespace": namespace, "serviceAccount": service_account, "ttlSeconds": 600}).encode())
    key, csr = new_request()
    issued = client.call("POST", f"{API}/certificates", body=json.dumps({
        "csr": csr, "token": grant["token"], "ttlSeconds": _seconds(ttl)}).encode())
    out.mkdir(parents=True, exist_ok=True)
    (out / "cert-chain.pem").write_text("".join(issued["certChain"]))
    (out / "root-cert.pem").write_text("".join(issued["roots"]))
    descriptor = os.open(out / "key.pem", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key)
    typer.echo(f"{issued['identity']}, valid until {issued['expiresAt']}: {out}/cert-chain.pem, "
               "key.pem, root-cert.pem")


@identity_app.command("ca")
def ca(output: Output = "table", server: Server = DEFAULT_SERVER) -> None:
    """The CA's roots (the trust bundle), which one signs, and certificates issued."""
    answer = Client(server).call("GET", f"{API}/ca")
    if _structured(answer, output):
        return
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    counters = answer.get("counters", {})
    refused = sum(v for k, v in counters.items() if k.startswith("refused"))
    table = Table(title=f"CA ({answer['source']}, trust domain {answer['trustDomain']}; "
                        f"{counters.get('issued', 0)} issued, {refused} refused)",
                  box=None, header_style="bold")
    for column in ("FINGERPRINT (SHA-256)", "SUBJECT", "NOT AFTER", "SIGNS"):
        table.add_column(column)
    for root in answer["roots"]:
        signs = "yes" if root["fingerprint"] == answer["signing"] else ""
        table.add_row(root["fingerprint"], root["subject"], root["notAfter"], signs)
    Console(width=160).print(table)
    if answer["signing"] not in {root["fingerprint"] for root in answer["roots"]}:
        typer.echo(f"signed by intermediate {answer['signing']} (Secret cacerts)")


@identity_app.command("rotate-root")
def rotate_root(
    grace: Annotated[str, typer.Option("--grace", help="How long the new root is only trusted "
                                                       "before it signs: the time the trust "
                                                       "bundle takes to reach every proxy.")]
    = "10s",
    server: Server = DEFAULT_SERVER,
) -> None:
    """Add a new self-signed root: trusted at once, signing new certificates after --grace;
    the old ones stay trusted."""
    from remora.api.duration import parse_duration  # noqa: PLC0415

    try:
        seconds = int(parse_duration(grace))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--grace") from None
    answer = Client(server).call("POST", f"{API}/ca/roots", body=json.dumps(
        {"activateAfterSeconds": seconds}).encode())
    old = [root["fingerprint"] for root in answer["roots"] if root["fingerprint"] !=
           answer["added"]]
    typer.echo(f"root {answer['added']} added: it signs new certificates in {seconds} s")
    for fingerprint in old:
        typer.echo(f"once every proxy has renewed, stop trusting the old one: remora identity "
                   f"remove-root {fingerprint}")


@identity_app.command("remove-root")
def remove_root(fingerprint: Annotated[str, typer.Argument(help="SHA-256, as `remora "
                                                                "identity ca` shows it.")],
                server: Server = DEFAULT_SERVER) -> None:
    """Stop trusting a root (never the one that signs)."""
    Client(server).call("DELETE", f"{API}/ca/roots/{fingerprint}")
    typer.echo(f"root {fingerprint} removed")
