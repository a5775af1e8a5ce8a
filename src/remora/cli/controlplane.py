"""`remora controlplane` (alias `remora server`): run the control plane's HTTP API."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from remora.controlplane import DEFAULT_LISTEN, HEADER_TIMEOUT, IDLE_TIMEOUT


def register(app: typer.Typer) -> None:
    app.command("controlplane")(controlplane)
    app.command("server", help="Alias of `remora controlplane`.")(controlplane)


def controlplane(
    listen: Annotated[str, typer.Option(
        help="HOST:PORT to serve the API on (several: comma-separated).")] = DEFAULT_LISTEN,
    data_dir: Annotated[Path, typer.Option(help="Where the state is kept.")] = Path(".remora"),
    store: Annotated[str, typer.Option(
        help="sqlite (data-dir/remora.db) or etcd://HOST:PORT,...")] = "sqlite",
    drain_timeout: Annotated[int, typer.Option(
        help="Seconds to finish in-flight requests on SIGTERM.")] = 5,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
    auth: Annotated[bool, typer.Option(
        "--auth/--no-auth", help="Require a token on every API (Nacos's auth; the default). "
        "--no-auth lets anyone who can reach the API do anything.")] = True,
    admin_password: Annotated[str, typer.Option(
        envvar="REMORA_ADMIN_PASSWORD", show_default=False,
        help="Password of the first admin, created on first start (default: random, written "
             "with the username to DATA_DIR/credentials.json).")] = "",
    tls: Annotated[str, typer.Option(
        help="auto: serve HTTPS with a certificate the mesh's CA signs for the control plane "
             "(istiod's: DNS istiod.istio-system.svc, remora-controlplane, localhost; IP "
             "127.0.0.1 and the listen addresses; renewed at half life), the mesh's root "
             "written to DATA_DIR/root-cert.pem for proxies' --ca-cert; off: plain HTTP "
             "(unless --tls-cert).")] = "off",
    tls_cert: Annotated[Path | None, typer.Option(
        help="Serve HTTPS with this certificate (PEM; with --tls-key).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The certificate's private key.")] = None,
    header_timeout: Annotated[float, typer.Option(
        help="Seconds a client has to send a request's head (the Kubernetes API server's "
             "ReadHeaderTimeout).")] = HEADER_TIMEOUT,
    idle_timeout: Annotated[int, typer.Option(
        help="Seconds an idle keep-alive connection is kept (the Kubernetes API server's "
             "IdleTimeout).")] = IDLE_TIMEOUT,
) -> None:
    """Run the control plane: resources, registry and config center behind one HTTP API."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    # imported here: FastAPI, uvicorn and the etcd client are heavy for every other command
    from remora.controlplane.server import ServerOptions, run  # noqa: PLC0415

    if (tls_cert is None) != (tls_key is None):
        raise typer.BadParameter("--tls-cert and --tls-key go together")
    if tls not in ("auto", "off"):
        raise typer.BadParameter(f"{tls!r} is not auto or off", param_hint="--tls")
    if tls == "auto" and tls_cert is not None:
        raise typer.BadParameter("give --tls auto or --tls-cert/--tls-key, not both")
    run(ServerOptions(listen=listen, data_dir=data_dir, store=store, log_level=log_level,
                      drain_timeout=drain_timeout, auth=auth, admin_password=admin_password,
                      tls_cert=tls_cert, tls_key=tls_key, tls_auto=tls == "auto",
                      header_timeout=header_timeout,
                      idle_timeout=idle_timeout))
