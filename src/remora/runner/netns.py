"""Pods with their own network: the bridge, a network namespace and veth pair per pod, and the
pod's capture rules, made with iproute2 and iptables as the kubelet's CNI plugin (bridge +
host-local IPAM) and Istio's istio-init container do (the I/O shell of remora.runner.podnet).

Everything created carries the run's prefix (ClusterNetwork.prefix): the bridge `rmrXXXXX`,
veths `rmrXXXXXv<n>`, namespaces `rmrXXXXX-<pod>` with their /etc/netns/<ns>/hosts. `stop()`
removes it all; a run that crashed leaves names the next `up` with the same state directory
(or `remora down`) finds and removes (`remove_leftovers`), processes in them killed first.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from remora.runner.podnet import ClusterNetwork, NetworkError
from remora.runner.probes import Opener

log = logging.getLogger("remora.up")

NETNS_RUN = Path("/var/run/netns")
NETNS_ETC = Path("/etc/netns")
RUN_DIR = Path("/run/remora")  # what the sidecars read: /run/remora/<prefix>/
PROXY_UID = 1337  # Istio's istio-proxy user: its traffic is not captured
PROXY_USER = "istio-proxy"
_CLONE_NEWNET = 0x40000000


def preflight() -> None:
    """What namespace mode needs, checked before anything starts, each miss naming its fix."""
    if os.geteuid() != 0:
        raise NetworkError("--network namespace needs root (network namespaces, iptables); "
                           "run as root, or use --network host")
    for tool, package in (("ip", "iproute2"), ("iptables-restore", "iptables"),
                          ("setpriv", "util-linux")):
        if shutil.which(tool) is None:
            raise NetworkError(f"--network namespace needs `{tool}`: apt-get install "
                               f"{package}, or use --network host")


async def run(*argv: str, stdin: bytes | None = None, check: bool = True,
              cwd: str | None = None) -> str:
    """Run a command; its stdout, or NetworkError with what it printed on stderr."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=cwd)
    out, err = await process.communicate(stdin)
    if check and process.returncode != 0:
        raise NetworkError(f"`{' '.join(argv)}` failed: {err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


@dataclass(frozen=True, slots=True)
class PodNetwork:
    """A pod's network namespace, its address and the host end of its veth; whether its
    sidecar runs as the proxy user (else as root in the proxy group, which the capture rules
    let through as well: Istio's rules exempt both --uid-owner and --gid-owner 1337)."""

    namespace: str
    ip: str
    veth: str
    proxy_user: bool = True

    def exec_argv(self, argv: tuple[str, ...] | list[str]) -> list[str]:
        """`argv` run inside the pod (`ip netns exec`: its network, its /etc/hosts)."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def proxy_argv(self, argv: tuple[str, ...] | list[str]) -> list[str]:
        """`argv` run inside the pod as the proxy user, whose traffic the rules let through."""
        user = [f"--reuid={PROXY_UID}"] if self.proxy_user else []
        return self.exec_argv(["setpriv", *user, f"--regid={PROXY_UID}", "--clear-groups", "--",
                               *argv])


@dataclass
class HostNetwork:
    """The bridge and the pods' namespaces of one run."""

    plan: ClusterNetwork
    record: Path  # what exists, for the next `up` after a crash
    pods: dict[str, PodNetwork] = field(default_factory=dict)
    proxy_user: bool = True  # the sidecars run as user 1337 (see `start`)
    _next_veth: int = 0

    async def start(self) -> None:
        """Leftovers of a crashed run removed, CIDRs checked against the host's routes, the
        proxy user present, then the bridge."""
        await remove_leftovers(self.plan.prefix)
        self.plan.check_routes(host_routes())
        await ensure_proxy_user()
        self.proxy_user, _ = await asyncio.gather(proxy_user_runs(), self._bridge())
        self._write_record()

    async def _bridge(self) -> None:
        bridge, plan = self.plan.bridge, self.plan
        await run("ip", "link", "add", bridge, "type", "bridge")
        await run("ip", "addr", "add", f"{plan.gateway}/{plan.pod_cidr.prefixlen}", "dev", bridge)
        await run("ip", "link", "set", bridge, "up")

    def plan_pod(self, pod: str, ip: str) -> PodNetwork:
        """The namespace, address and veth `pod` will have (created by `create_pod`)."""
        self._next_veth += 1
        net = self.pods[pod] = PodNetwork(self.plan.namespace(pod), ip,
                                          self.plan.veth(self._next_veth), self.proxy_user)
        self._write_record()
        return net

    async def create_pod(self, net: PodNetwork, *, hosts: str, rules: str) -> None:
        """The namespace: veth to the bridge, the pod IP on its eth0, loopback up, the
        default route via the bridge, its hosts file and capture rules."""
        ns, prefix = net.namespace, self.plan.pod_cidr.prefixlen
        etc = NETNS_ETC / ns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(hosts, encoding="utf-8")
        await run("ip", "netns", "add", ns)
        await run("ip", "link", "add", net.veth, "type", "veth", "peer", "name", "eth0",
                  "netns", ns)
        await run("ip", "link", "set", net.veth, "master", self.plan.bridge, "up")
        await run("ip", "-n", ns, "addr", "add", f"{net.ip}/{prefix}", "dev", "eth0")
        await run("ip", "-n", ns, "link", "set", "eth0", "up")
        await run("ip", "-n", ns, "link", "set", "lo", "up")
        await run("ip", "-n", ns, "route", "add", "default", "via", str(self.plan.gateway))
        await run(*net.exec_argv(["iptables-restore", "--noflush"]), stdin=rules.encode())

    async def remove_pod(self, pod: str) -> None:
        net = self.pods.pop(pod, None)
        if net is not None:
            await _remove_namespace(net.namespace)
            self._write_record()

    async def stop(self) -> None:
        """Every namespace, veth and hosts file, then the bridge: the host as it was."""
        await asyncio.gather(*(_remove_namespace(net.namespace) for net in self.pods.values()))
        self.pods.clear()
        await remove_leftovers(self.plan.prefix)
        self.record.unlink(missing_ok=True)

    def private_copy(self, credentials: Path) -> Path:
        """A copy of a credentials file the sidecars (user 1337) can read and no one else:
        the state directory may be closed to other users."""
        return self.write_private(credentials.name, credentials.read_bytes())

    def private_path(self, name: str) -> Path:
        return RUN_DIR / self.plan.prefix / name

    def write_private(self, name: str, content: bytes) -> Path:
        """A file only the sidecars' user reads (0600, owned by 1337)."""
        path = self.private_path(name)
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        path.touch(mode=0o600)
        os.chown(path, PROXY_UID, PROXY_UID)
        path.write_bytes(content)
        return path

    def status(self) -> dict[str, object]:
        plan = self.plan
        return {"mode": "namespace", "bridge": plan.bridge, "gateway": str(plan.gateway),
                "pod_cidr": str(plan.pod_cidr), "service_cidr": str(plan.service_cidr)}

    def _write_record(self) -> None:
        self.record.write_text(json.dumps({
            "prefix": self.plan.prefix, "bridge": self.plan.bridge,
            "pod_cidr": str(self.plan.pod_cidr), "service_cidr": str(self.plan.service_cidr),
            "namespaces": sorted(net.namespace for net in self.pods.values())}) + "\n")


def host_routes() -> list[tuple[str, str]]:
    """(destination, device) of the host's IPv4 unicast routes, every table."""
    shown = subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"],
                           capture_output=True, text=True, check=False)
    if shown.returncode != 0:
        raise NetworkError(f"`ip route` failed: {shown.stderr.strip()}")
    return [(str(r.get("dst", "")), str(r.get("dev", ""))) for r in json.loads(shown.stdout)
            if r.get("type", "unicast") == "unicast"]


async def ensure_proxy_user() -> None:
    """Istio's istio-proxy user and group (1337), created when missing."""
    import grp  # noqa: PLC0415 - Unix only, as this module
    import pwd  # noqa: PLC0415

    try:
        grp.getgrgid(PROXY_UID)
    except KeyError:
        await run("groupadd", "--system", "--gid", str(PROXY_UID), PROXY_USER)
    try:
        pwd.getpwuid(PROXY_UID)
    except KeyError:
        await run("useradd", "--system", "--uid", str(PROXY_UID), "--gid", str(PROXY_UID),
                  "--no-create-home", "--home-dir", "/nonexistent", "--shell",
                  "/usr/sbin/nologin", PROXY_USER)


async def proxy_user_runs(python: str = sys.executable) -> bool:
    """Whether user 1337 can run the interpreter with Remora (a Python under /root, as pyenv
    installs it, is closed to other users); if not, the sidecars run as root in group 1337,
    which the capture rules exempt as well, and the log says why."""
    probe = ["setpriv", f"--reuid={PROXY_UID}", f"--regid={PROXY_UID}", "--clear-groups", "--",
             python, "-c", "import remora.proxy.launch"]
    try:
        await run(*probe, cwd="/")
    except NetworkError as exc:
        log.warning("the sidecars run as root in group %d (%s): user %d cannot run %s with "
                    "Remora (%s); make it readable by others (chmod o+rX) to run them as %s",
                    PROXY_UID, PROXY_USER, PROXY_UID, python, exc, PROXY_USER)
        return False
    return True


def leftovers(prefix: str) -> dict[str, list[str]]:
    """What exists on this host with a run's prefix: namespaces, links, /etc/netns dirs."""
    namespaces = sorted(p.name for p in NETNS_RUN.glob(f"{prefix}-*")) \
        if NETNS_RUN.is_dir() else []
    links = sorted(name for name in os.listdir("/sys/class/net") if name.startswith(prefix))
    etc = sorted(p.name for p in NETNS_ETC.glob(f"{prefix}-*")) if NETNS_ETC.is_dir() else []
    run = [prefix] if (RUN_DIR / prefix).exists() else []
    return {"namespaces": namespaces, "links": links, "etc": etc, "run": run}


async def remove_leftovers(prefix: str) -> int:
    """Remove everything with `prefix` (processes in its namespaces killed first); how many
    things were removed."""
    found = leftovers(prefix)
    await asyncio.gather(*(_remove_namespace(ns) for ns in found["namespaces"]))
    for link in found["links"]:
        if Path("/sys/class/net", link).exists():
            await run("ip", "link", "del", link, check=False)
    for name in found["etc"]:
        shutil.rmtree(NETNS_ETC / name, ignore_errors=True)
    for name in found["run"]:
        shutil.rmtree(RUN_DIR / name, ignore_errors=True)
    return sum(len(items) for items in found.values())


async def _remove_namespace(namespace: str) -> None:
    """Kill what still runs in the namespace, delete it (its veth goes with it) and its
    /etc/netns directory."""
    if (NETNS_RUN / namespace).exists():
        pids = (await run("ip", "netns", "pids", namespace, check=False)).split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
                os.kill(int(pid), signal.SIGKILL)
        await run("ip", "netns", "del", namespace, check=False)
    shutil.rmtree(NETNS_ETC / namespace, ignore_errors=True)


# sockets inside a pod ------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def socket_in(namespace: str) -> socket.socket:
    """A TCP socket of the pod's network (the runner's probes reach the app there at
    127.0.0.1, as Istio's rewritten probes do): this thread enters the namespace only to
    create it, and a socket keeps the namespace it was made in."""
    with open("/proc/thread-self/ns/net", "rb") as home, \
            open(NETNS_RUN / namespace, "rb") as pod:
        _setns(pod.fileno())
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            _setns(home.fileno())
    sock.setblocking(False)
    return sock


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def opener_in(namespace: str) -> Opener:
    """asyncio.open_connection as seen from inside the pod."""
    async def open_connection(host: str, port: int, context: ssl.SSLContext | None = None
                              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sock = socket_in(namespace)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock, ssl=context,
                                             server_hostname="" if context else None)

    return open_connection
