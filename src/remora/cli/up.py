"""`remora up | down | status | logs`: run Kubernetes + Istio YAML locally as a mesh.

`up` validates the YAML (file:line issues refuse it), then supervises the control plane, the
gateways and every pod with its sidecar until Ctrl-C / SIGTERM / `remora down`; with --detach
it starts that supervisor in the background and returns once everything is ready. The
supervisor's state directory (--state-dir) is what `status`, `logs` and `down` read.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from remora.cli.output import OutputFormat, render
from remora.errors import RemoraError
from remora.runner.ports import HOST, port_is_free
from remora.runner.state import DEFAULT_STATE_DIR, StateDir, alive

StateDirOption = Annotated[Path, typer.Option(
    "--state-dir", help="Where pids, ports, logs and data are kept.")]
FOLLOW_POLL = 0.2


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)
    app.command("status")(status)
    app.command("logs")(logs)
    app.command("exec")(exec_)


def up(
    filename: Annotated[list[str], typer.Option(
        "-f", "--filename", help="YAML file or directory (recursive). Repeatable.")],
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    controlplane_port: Annotated[int, typer.Option(help="The control plane's port.")] = 15080,
    controlplane_tls: Annotated[bool, typer.Option(
        "--controlplane-tls/--no-controlplane-tls",
        help="Serve the control plane over https with a certificate of the mesh's own CA "
             "(as istiod; the default): the runner, the CLI and every proxy verify it with the "
             "mesh's root (<state>/controlplane/root-cert.pem), and proxies renew their "
             "certificates on them. --no-controlplane-tls: plain http.")] = True,
    detach: Annotated[bool, typer.Option(
        "--detach", "-d", help="Run in the background; return once everything is ready.")]
    = False,
    hpa_interval: Annotated[float, typer.Option(
        help="Seconds between autoscaler runs (Kubernetes: 15).")] = 15.0,
    timeout: Annotated[float, typer.Option(
        help="--detach: seconds to wait for everything to be ready.")] = 120.0,
    network: Annotated[str | None, typer.Option(
        help="namespace: each pod in its own network namespace, its traffic captured by its "
             "sidecar as Istio's iptables rules do (root only; the default as root). host: "
             "apps on 127.0.0.1 ports, reaching the mesh through http_proxy (the default "
             "otherwise).")] = None,
    pod_cidr: Annotated[str | None, typer.Option(
        help="--network namespace: the pods' addresses (default 10.244.0.0/16, or the next "
             "/16 no host route uses).")] = None,
    service_cidr: Annotated[str, typer.Option(
        help="--network namespace: the Services' ClusterIPs.")] = "10.96.0.0/12",
) -> None:
    """Run the workloads of the YAML as local processes, each with a sidecar, in one mesh."""
    # the models and the runner load only for `up` (and `down`): `status` and `logs` read files
    import asyncio  # noqa: PLC0415

    from remora.api.loader import load_paths  # noqa: PLC0415
    from remora.runner import control  # noqa: PLC0415
    from remora.runner import spec as specs  # noqa: PLC0415

    loaded = load_paths(filename)
    loaded.raise_for_issues()
    state_root = state_dir.resolve()
    mode = _network_mode(network)
    for workload in specs.workloads(loaded.resources):  # refuse what cannot run, before starting
        for instance in specs.instances_for(loaded.resources, workload=workload.key,
                                            replicas=1, state_dir=state_root):
            if mode == "namespace":
                _check_capture(instance)
    state = StateDir(state_root)
    if (pid := state.running_supervisor()) is not None:
        raise RemoraError(f"remora up already runs for {state_dir} (pid {pid}): "
                          "`remora down` first, or use another --state-dir")
    if not port_is_free(controlplane_port):
        raise RemoraError(f"port {controlplane_port} is in use: choose --controlplane-port")
    # the supervisor's modules (httpx, asyncio machinery) load only for `up`: every other
    # command, `remora proxy` included, starts without them
    from remora.runner.supervisor import REMORA  # noqa: PLC0415
    from remora.runner.up import UpOptions, serve  # noqa: PLC0415

    cluster_network = None
    if mode == "namespace":
        from remora.runner import netns  # noqa: PLC0415
        from remora.runner.podnet import ClusterNetwork, free_pod_cidr  # noqa: PLC0415

        netns.preflight()
        routes = netns.host_routes()
        pod_cidr = pod_cidr or free_pod_cidr(routes)
        cluster_network = ClusterNetwork.for_state(state_root, pod_cidr=pod_cidr,
                                                   service_cidr=service_cidr)
        cluster_network.check_routes(routes)  # before anything starts (again when it does)
    if detach:
        argv = [*REMORA, "up", *(a for f in filename for a in ("-f", str(Path(f).resolve()))),
                "--state-dir", str(state_root), "--controlplane-port", str(controlplane_port),
                "--hpa-interval", str(hpa_interval), "--network", mode,
                *(("--pod-cidr", pod_cidr) if pod_cidr else ()), "--service-cidr", service_cidr,
                "--controlplane-tls" if controlplane_tls else "--no-controlplane-tls"]
        process = control.spawn_detached(argv, state)
        shown = control.wait_until_ready(state, process, timeout=timeout)
        _print_ready(shown)
        return
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    options = UpOptions(paths=tuple(filename), state=state, controlplane_port=controlplane_port,
                        hpa_interval=hpa_interval, network=cluster_network,
                        controlplane_tls=controlplane_tls)
    asyncio.run(serve(loaded.resources, options, say=typer.echo))


def _network_mode(asked: str | None) -> str:
    """--network as given, else namespace as root and host otherwise (with the warning that
    then anything on the machine reaches an app's port around its sidecar)."""
    import os  # noqa: PLC0415

    if asked not in (None, "namespace", "host"):
        raise typer.BadParameter(f"{asked!r} is not namespace or host", param_hint="--network")
    if asked is not None:
        return asked
    if os.geteuid() == 0:
        return "namespace"
    typer.echo("Warning: not root, so --network host: app ports on 127.0.0.1 are reachable "
               "directly, around their sidecars", err=True)
    return "host"


def _check_capture(instance: Any) -> None:
    """Bad capture annotations refuse the run; the ones Remora does not act on are named."""
    from remora.runner import capture  # noqa: PLC0415
    from remora.runner.up import capture_spec  # noqa: PLC0415

    capture_spec(instance)
    for key in capture.unsupported_annotations(instance.annotations):
        typer.echo(f"Warning: {instance.workload}: annotation {key} is not acted on by Remora",
                   err=True)


def _print_ready(status: dict[str, Any]) -> None:
    typer.echo(f"ready in {status.get('ready_after') or 0:.1f} s: "
               f"{len(status.get('instances', []))} instances; "
               f"control plane {status['controlplane']['url']}")
    for gateway in status.get("gateways", []):
        for port, local in gateway["listen"].items():
            mapped = f" (Gateway port {port})" if str(local) != port else ""
            typer.echo(f"gateway {gateway['name']}: http://{HOST}:{local}{mapped}")
    typer.echo(f"state: {status['state_dir']}; `remora status`, `remora logs NAME`, "
               "`remora down`")


def down(
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the stop.")] = 120.0,
) -> None:
    """Stop everything `remora up` started: apps, sidecars, gateways, control plane."""
    from remora.runner import control  # noqa: PLC0415

    found = control.stop(StateDir(state_dir.resolve()), timeout=timeout)
    typer.echo(f"stopped ({found} processes)" if found else f"nothing runs for {state_dir}")


def status(
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    output: Annotated[str, typer.Option("-o", "--output", help="table, json or yaml.")]
    = "table",
) -> None:
    """Instances and gateways: ready, restarts, last exit, req/s, 5xx answered, ports."""
    state = StateDir(state_dir.resolve())
    shown = state.read_status()
    if shown is None:
        raise RemoraError(f"nothing was started with --state-dir {state_dir}")
    shown["supervisor"] = state.running_supervisor()
    for instance in shown.get("instances", []):
        for role in ("app", "sidecar"):
            process = instance.get(role) or {}
            process["alive"] = bool(process.get("pid")) and alive(process)
    if output != "table":
        typer.echo(render(shown, OutputFormat(output)), nl=False)
        return
    _print_status(shown)


def _print_status(shown: dict[str, Any]) -> None:
    from rich.console import Console  # noqa: PLC0415  (the table only: not -o json, logs)
    from rich.table import Table  # noqa: PLC0415

    console = Console(width=200, highlight=False)
    supervisor = shown["supervisor"]
    console.print(f"phase {shown['phase']}"
                  + (f" (supervisor pid {supervisor})" if supervisor else " (not running)")
                  + f"; control plane {shown['controlplane']['url']}")
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "WORKLOAD", "READY", "STATUS", "RESTARTS", "LAST EXIT", "REQ/S",
                   "ERRORS", "IP", "PORTS", "AGE"):
        table.add_column(column)
    now = time.time()
    for item in shown.get("instances", []):
        ports = item["ports"]
        apps = ",".join(f"{k}→{v}" for k, v in ports["app"].items())
        table.add_row(
            item["name"], f"{item['kind']}/{item['workload']}",
            "1/1" if item["ready"] else "0/1", item["phase"], str(item["restarts"]),
            item.get("last_exit") or "-", _number(item.get("rps")), _errors(item),
            item.get("ip", HOST),
            f"app {apps or '-'} in {ports['inbound']} out {ports['outbound']}",
            f"{int(now - item['created'])}s")
    for gateway in shown.get("gateways", []):
        process = gateway.get("process") or {}
        running = bool(process.get("pid")) and alive(process)
        listen = ", ".join(f"{port}→{local}" for port, local in gateway["listen"].items())
        table.add_row(
            gateway["name"], f"gateway ({gateway['namespace']})", "1/1" if running else "0/1",
            "Running" if running else "Stopped", "0", "-", _number(gateway.get("rps")),
            _errors(gateway), HOST, f"listen {listen}",
            f"{int(now - process['since'])}s" if running else "-")
    console.print(table)


def _errors(item: dict[str, Any]) -> str:
    """5xx answered since the proxy started, with the most frequent code and flags:
    `12 (503 UH)`."""
    count = item.get("errors")
    if count is None:
        return "-"
    codes: dict[str, int] = item.get("error_codes") or {}
    if not count or not codes:
        return str(count)
    top = max(codes, key=lambda code: codes[code])
    return f"{count} ({top}{', ...' if len(codes) > 1 else ''})"


def _number(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def exec_(
    pod: Annotated[str, typer.Argument(help="A pod, or a workload (its first pod).")],
    command: Annotated[list[str], typer.Argument(help="The command and its arguments.")],
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
) -> None:
    """Run a command in a pod, as `kubectl exec POD -- CMD`.

    In its network namespace (its IP, its /etc/hosts, its traffic captured by its sidecar);
    in the host network, with http_proxy set to its sidecar, as its app has."""
    import os  # noqa: PLC0415

    state = StateDir(state_dir.resolve())
    shown = state.read_status()
    if shown is None:
        raise RemoraError(f"nothing was started with --state-dir {state_dir}")
    instances = shown.get("instances", [])
    found = next((i for i in instances if i["name"] == pod), None) or next(
        (i for i in instances if i["workload"] == pod), None)
    if found is None:
        names = ", ".join(i["name"] for i in instances) or "none"
        raise RemoraError(f"no pod {pod!r} (pods: {names})")
    env = {**os.environ, "POD_NAME": found["name"], "POD_NAMESPACE": found["namespace"],
           "POD_IP": found.get("ip", HOST)}
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "no_proxy",
                 "NO_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(name, None)
    network = found.get("network", "host")
    argv = list(command)
    if network == "host":
        proxy = f"http://{HOST}:{found['ports']['outbound']}"
        env.update({"http_proxy": proxy, "HTTP_PROXY": proxy})
    elif not Path("/var/run/netns", network).exists():
        raise RemoraError(f"pod {found['name']} is not running (its network namespace "
                          f"{network} is gone): see `remora status`")
    else:
        argv = ["ip", "netns", "exec", network, *argv]
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        raise RemoraError(f"cannot run {command[0]!r} in {found['name']}: "
                          f"{exc.strerror or exc}") from None


def logs(
    name: Annotated[str, typer.Argument(
        help="A pod, a workload (all its pods), a gateway or `controlplane`.")],
    state_dir: StateDirOption = DEFAULT_STATE_DIR,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing.")] = False,
    container: Annotated[str, typer.Option(
        "-c", "--container", help="The app's container (its name, or `app`), or the sidecar "
                                  "(`istio-proxy`, as Istio names it, or `sidecar`).")] = "app",
) -> None:
    """Print a process's output (the app's, or its sidecar's with -c istio-proxy)."""
    state = StateDir(state_dir.resolve())
    files = _log_files(state, name, sidecar=_is_sidecar(state, name, container))
    prefix = len(files) > 1
    offsets = {file: 0 for file in files}
    while True:
        for file in files:
            offsets[file] = _print_new(file, offsets[file], f"[{file.stem}] " if prefix else "")
        if not follow:
            return
        time.sleep(FOLLOW_POLL)


SIDECAR_CONTAINERS = ("istio-proxy", "sidecar")  # istio-proxy: the injected container's name


def _is_sidecar(state: StateDir, name: str, container: str) -> bool:
    """Whether `-c container` names the sidecar; a name that is neither the pod's app
    container nor its sidecar is an error, as kubectl logs answers it."""
    if container in SIDECAR_CONTAINERS:
        return True
    shown = state.read_status() or {}
    apps = {i.get("container", "app") for i in shown.get("instances", [])
            if name in (i["name"], i["workload"])}
    if container == "app" or container in apps or not apps:
        return False
    choices = " ".join(sorted(apps | {"istio-proxy"}))
    raise RemoraError(f"container {container} is not valid for pod {name}: "
                      f"choose one of: [{choices}]")


def _log_files(state: StateDir, name: str, *, sidecar: bool) -> list[Path]:
    shown = state.read_status() or {}
    pods = [i["name"] for i in shown.get("instances", [])
            if name in (i["name"], i["workload"])]
    stems = [f"{pod}.sidecar" if sidecar else pod for pod in pods] or [name]
    files = [state.log(stem) for stem in stems if state.log(stem).exists()]
    if not files:
        raise RemoraError(f"no logs for {name!r} in {state.logs}")
    return files


def _print_new(file: Path, offset: int, prefix: str) -> int:
    with file.open("rb") as stream:
        stream.seek(offset)
        data = stream.read()
    if data:
        text = data.decode(errors="replace")
        if prefix:
            text = "".join(prefix + line for line in text.splitlines(keepends=True))
        sys.stdout.write(text)
        sys.stdout.flush()
    return offset + len(data)
