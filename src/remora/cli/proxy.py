"""`remora proxy`: run one sidecar or gateway proxy from static Istio/Kubernetes config."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from remora.mesh.snapshot import ListenerPorts, ProxyIdentity
from remora.proxy.env import ProxyOptions
from remora.proxy.launch import Launch, exec_proxy


class Mode(StrEnum):
    SIDECAR = "sidecar"
    GATEWAY = "gateway"


def parse_labels(text: str) -> dict[str, str]:
    """`app=x,version=v1` → {"app": "x", "version": "v1"} (kubectl's label syntax)."""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not key=value", param_hint="--labels")
        labels[key] = value
    return labels


def register(app: typer.Typer) -> None:
    app.command("proxy")(proxy)


def proxy(
    filename: Annotated[list[str] | None, typer.Option(
        "-f", "--filename", help="Config file or directory (recursive). Repeatable.")] = None,
    controlplane: Annotated[str | None, typer.Option(
        help="Control plane URL(s), comma-separated: get config pushed instead of -f.")] = None,
    mode: Annotated[Mode, typer.Option(help="sidecar or gateway.")] = Mode.SIDECAR,
    namespace: Annotated[str, typer.Option("-n", "--namespace",
                                           help="This proxy's namespace.")] = "default",
    labels: Annotated[str, typer.Option(help="This workload's labels: app=x,version=v1.")] = "",
    workload: Annotated[str, typer.Option(help="Workload name (metrics); default: app label.")]
    = "",
    app_port: Annotated[int | None, typer.Option(
        help="Sidecar: the local app port inbound traffic goes to.")] = None,
    container_port: Annotated[int | None, typer.Option(
        help="Sidecar: the app's port as its pod declares it (containerPort, what a Service's "
             "targetPort names); default: --app-port.")] = None,
    container_port_name: Annotated[str, typer.Option(
        help="Sidecar: that port's name in the pod spec (a targetPort may name it).")] = "",
    outbound_port: Annotated[int, typer.Option(help="Sidecar outbound listener.")] = 15001,
    inbound_port: Annotated[int, typer.Option(help="Sidecar inbound listener.")] = 15006,
    admin_port: Annotated[int, typer.Option(help="Admin port.")] = 15000,
    health_port: Annotated[int, typer.Option(help="Health port (/healthz/ready).")] = 15021,
    bind: Annotated[str, typer.Option(help="Address the listeners bind.")] = "127.0.0.1",
    locality: Annotated[str, typer.Option(
        help="This proxy's region/zone/subzone (locality load balancing).")] = "",
    access_log: Annotated[str | None, typer.Option(
        help="JSON access log: a file, or - for stdout.")] = None,
    drain_timeout: Annotated[float, typer.Option(help="Seconds to finish in-flight requests.")]
    = 5.0,
    idle_timeout: Annotated[float, typer.Option(
        help="Seconds a keep-alive connection may sit idle (Envoy's idle_timeout; 0: "
             "never).")] = 3600.0,
    stream_idle_timeout: Annotated[float, typer.Option(
        help="Seconds a request may go with nothing sent either way (Envoy's "
             "stream_idle_timeout; 0: never).")] = 300.0,
    request_timeout: Annotated[float, typer.Option(
        help="Seconds a client has to send a whole request (Envoy's request_timeout; 0: "
             "never).")] = 0.0,
    max_connection_duration: Annotated[float, typer.Option(
        help="Seconds a client connection may stay open; then it is closed after the "
             "response in flight (Envoy's max_connection_duration; 0: no limit).")] = 0.0,
    max_connections: Annotated[int | None, typer.Option(
        help="Downstream connections the proxy serves at once; more are closed and counted "
             "(default: half of the open-files limit, which is raised to its hard limit).")]
    = None,
    headers_timeout: Annotated[float, typer.Option(
        help="Seconds a client has to send a request head (Envoy's request_headers_timeout; "
             "0: never).")] = 10.0,
    original_dst: Annotated[bool, typer.Option(
        help="Sidecar: connections arrive through a pod's iptables capture rules; route each "
             "by the address it was sent to (SO_ORIGINAL_DST), as Envoy's virtual listeners "
             "do.")] = False,
    ip: Annotated[str, typer.Option(
        help="This workload's IP, as it reports itself (Istio's INSTANCE_IPS).")] = "127.0.0.1",
    service_account: Annotated[str, typer.Option(
        help="The workload's service account: its identity is spiffe://<trust domain>/ns/"
             "<namespace>/sa/<service account>.")] = "default",
    identity_token_file: Annotated[Path | None, typer.Option(
        help="A file holding the identity token (from `remora identity token`, or the one "
             "`remora up` hands its sidecars) that gets this proxy a workload certificate "
             "from the control plane's CA: mutual TLS with the mesh's other sidecars.")]
        = None,
    workload_certs: Annotated[Path | None, typer.Option(
        help="A directory with cert-chain.pem, key.pem and root-cert.pem (Istio's "
             "file-mounted certificates) instead of a certificate from the CA; changes to "
             "them are picked up.")] = None,
    ca_cert: Annotated[Path | None, typer.Option(
        help="The mesh's root (PEM) the control plane's certificate must chain to over "
             "https (Istio's CA_ROOT_CA; `remora controlplane --tls auto` writes it to "
             "DATA_DIR/root-cert.pem); default: the system's trust store.")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
) -> None:
    """Run a proxy: sidecar (outbound 15001, inbound 15006) or gateway (Gateway servers)."""
    if bool(filename) == bool(controlplane):
        raise typer.BadParameter("give either -f FILE|DIR or --controlplane URL[,URL]")
    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise typer.BadParameter(f"{log_level!r} is not debug, info, warning or error",
                                 param_hint="--log-level")
    label_map = parse_labels(labels)
    identity = ProxyIdentity(
        mode=mode.value,
        namespace=namespace,
        labels=label_map,
        workload=workload or label_map.get("app", "unknown"),
        service_account=service_account,
        ip=ip,
        app_port=app_port,
        container_port=container_port,
        container_port_name=container_port_name,
        locality=locality,
    )
    ports = ListenerPorts(outbound=outbound_port, inbound=inbound_port, admin=admin_port,
                          health=health_port)
    options = ProxyOptions(bind=bind, access_log=access_log, drain_timeout=drain_timeout,
                           idle_timeout=idle_timeout, headers_timeout=headers_timeout,
                           stream_idle_timeout=stream_idle_timeout,
                           request_timeout=request_timeout,
                           max_connection_duration=max_connection_duration,
                           max_connections=max_connections, original_dst=original_dst)
    urls = [url.strip() for url in (controlplane or "").split(",") if url.strip()]
    if controlplane and not urls:
        raise typer.BadParameter("give at least one URL", param_hint="--controlplane")
    if identity_token_file is not None and not urls:
        raise typer.BadParameter("the CA is the control plane's: give --controlplane too",
                                 param_hint="--identity-token-file")
    if workload_certs is not None and identity_token_file is not None:
        raise typer.BadParameter("give one of --workload-certs and --identity-token-file")
    if workload_certs is not None and not workload_certs.is_dir():
        raise typer.BadParameter(f"{workload_certs} is not a directory",
                                 param_hint="--workload-certs")
    if identity_token_file is not None and not identity_token_file.is_file():
        raise typer.BadParameter(f"{identity_token_file} is not a readable file",
                                 param_hint="--identity-token-file")
    if ca_cert is not None and not urls:
        raise typer.BadParameter("it verifies the control plane: give --controlplane too",
                                 param_hint="--ca-cert")
    if ca_cert is not None and not ca_cert.is_file():
        raise typer.BadParameter(f"{ca_cert} is not a readable file", param_hint="--ca-cert")
    # the proxy serves from a process image without the CLI's machinery (remora.proxy.launch)
    exec_proxy(Launch(identity=identity, ports=ports, options=options,
                      files=tuple(filename or ()), controlplanes=tuple(urls),
                      log_level=log_level,
                      identity_token_file=str(identity_token_file) if identity_token_file
                      else None,
                      workload_certs=str(workload_certs) if workload_certs else None,
                      ca_cert=str(ca_cert.absolute()) if ca_cert else None))
