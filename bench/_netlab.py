"""A scratch pod network for bench/capture.py's kernel-path runs: the captured path's kernel
part with no proxy in it.

Four network namespaces on a bridge of their own, wired as `remora up --network namespace`
wires pods (a veth pair each, one bridge, addresses of one /24): a client and a server with no
rules (`plain`), and a client and a server with the nat rules Remora loads into every pod
(remora.runner.capture's `iptables_restore(CaptureSpec())`: conntrack on, REDIRECT to 15001 and
15006; `captured`). Everything is named PREFIX + this process id (not `rmr…`, which is
`remora up`'s) and removed on exit, processes first; `leftovers()` says what is still there.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from _procs import cpu_seconds, per_request
from _wrk import wrk
from remora.runner.capture import CaptureSpec, iptables_restore
from remora.runner.ports import free_port

PREFIX = "capb"
SUBNET = "10.239.0"  # a /24: the bridge .1, then the namespaces in ROLES' order
ROLES = ("plain-client", "plain-server", "captured-client", "captured-server")


def _ip(*args: str, stdin: str | None = None) -> None:
    subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True, check=True)


@dataclass
class Lab:
    prefix: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return self.prefix

    def namespace(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    def address(self, role: str) -> str:
        return f"{SUBNET}.{ROLES.index(role) + 2}"

    def exec_argv(self, role: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespace(role)]

    def start(self, argv: list[str], *, env: dict[str, str], cwd: Path,
              log: Path) -> subprocess.Popen[bytes]:  # fmt: skip
        with log.open("wb") as out:
            process = subprocess.Popen(argv, env={**os.environ, **env}, cwd=cwd, stdout=out,
                                       stderr=subprocess.STDOUT)  # fmt: skip
        self.processes.append(process)
        return process


def names_with_prefix(prefix: str) -> list[str]:
    """Network namespaces (`ip netns list`) and links (`ip link`) whose names start with
    `prefix`: what a run left behind."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           check=False).stdout.split()  # fmt: skip
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True,
                                      check=False).stdout or "[]")  # fmt: skip
    names += [str(link.get("ifname", "")) for link in links]
    return sorted({name for name in names if name.startswith(prefix)})


def lab_prefix() -> str:
    """The names this process's lab has: PREFIX and the process id."""
    return f"{PREFIX}{os.getpid()}"


@contextlib.contextmanager
def lab() -> Iterator[Lab]:
    """The four namespaces on their bridge, the captured pair's rules loaded; on exit the
    processes started in it killed, then the namespaces (their veths go with them) and the
    bridge deleted."""
    made = Lab(lab_prefix())
    taken = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    if f"{SUBNET}." in taken:
        raise RuntimeError(f"{SUBNET}.0/24 is routed on this host already:\n{taken}")
    rules = iptables_restore(CaptureSpec())
    try:
        _ip("link", "add", made.bridge, "type", "bridge")
        _ip("addr", "add", f"{SUBNET}.1/24", "dev", made.bridge)
        _ip("link", "set", made.bridge, "up")
        for index, role in enumerate(ROLES):
            ns, veth = made.namespace(role), f"{made.prefix}v{index}"
            _ip("netns", "add", ns)
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", veth, "master", made.bridge, "up")
            _ip("-n", ns, "addr", "add", f"{made.address(role)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            if role.startswith("captured"):
                _ip("netns", "exec", ns, "iptables-restore", "--noflush", stdin=rules)
        yield made
    finally:
        for process in made.processes:
            process.kill()
            process.wait()
        for index, role in enumerate(ROLES):  # a veth goes with its namespace, but later
            for argv in (["link", "del", f"{made.prefix}v{index}"],
                         ["netns", "del", made.namespace(role)]):  # fmt: skip
                subprocess.run(["ip", *argv], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", made.bridge], capture_output=True, check=False)


# the runs ------------------------------------------------------------------------------------
# What each case is, and which hop of the captured path it stands for (bench/capture.py):
CASES = {
    "loopback": "loopback, host netns: every hop of the explicit path",
    "loopback_rules": "loopback in a pod with the rules (conntrack): wrk → sidecar, "
                      "sidecar → app",
    "veth": "veth + bridge, no rules",
    "veth_rules": "veth + bridge, rules at both ends, REDIRECT :9090 → :15006: sidecar → "
                  "sidecar",
}  # fmt: skip
APP_PORT = 15006  # the servers' (the inbound capture port: REDIRECT's target)
# One request in flight: each request pays the whole path once, with no batching of several
# connections' packets into one wake-up that would make a costlier path look cheaper. wrk and
# the app share one CPU (PIN): left to the scheduler, a ping-pong sometimes runs on one core and
# sometimes bounces between two idle ones (a wake-up across CPUs costs a VM exit here), and the
# same case measured 11,000 and 60,000 req/s in two runs.
CONNECTIONS = 1
PIN = ("taskset", "-c", str((os.cpu_count() or 1) - 1))
SERVICE_PORT = 9090  # what the captured client dials


@dataclass(frozen=True)
class Case:
    """A wrk run's way to an app: the app's process, the argv prefix wrk runs under, the URL."""

    app: subprocess.Popen[bytes]
    prefix: tuple[str, ...]
    url: str


def cases(made: Lab, app: Path, workdir: Path, *, host_port: int) -> dict[str, Case]:
    """Start the app in the host's network (127.0.0.1:`host_port`) and in both servers
    (0.0.0.0:APP_PORT); the ways to them, by CASES' names. The captured client's wrk runs in
    group 1337 (Istio's proxy group), as a sidecar's upstream connection does: not redirected
    on the way out."""
    def start(role: str | None) -> subprocess.Popen[bytes]:
        where = [] if role is None else made.exec_argv(role)
        env = {"PORT": str(host_port)} if role is None else {"PORT": str(APP_PORT),
                                                              "BIND": "0.0.0.0"}  # fmt: skip
        return made.start([*PIN, *where, sys.executable, str(app)], env=env, cwd=workdir,
                          log=workdir / f"app-{role or 'host'}.log")  # fmt: skip

    host, plain, captured = start(None), start("plain-server"), start("captured-server")
    proxy_group = ("setpriv", f"--regid={CaptureSpec().proxy_gid}", "--clear-groups", "--")
    found = {
        "loopback": Case(host, PIN, f"http://127.0.0.1:{host_port}/"),
        "loopback_rules": Case(captured, (*PIN, *made.exec_argv("captured-server")),
                               f"http://127.0.0.1:{APP_PORT}/"),
        "veth": Case(plain, (*PIN, *made.exec_argv("plain-client")),
                     f"http://{made.address('plain-server')}:{APP_PORT}/"),
        "veth_rules": Case(captured, (*PIN, *made.exec_argv("captured-client"), *proxy_group),
                           f"http://{made.address('captured-server')}:{SERVICE_PORT}/"),
    }  # fmt: skip
    for address, port in (("127.0.0.1", host_port), (made.address("plain-server"), APP_PORT),
                          (made.address("captured-server"), APP_PORT)):  # fmt: skip
        _wait_listening(address, port)
    return found


def _wait_listening(address: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((address, port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the kernel-path app did not listen on {address}:{port}")


def measure(workdir: Path, app_text: str, *, rounds: int, seconds: int,
            leftovers: list[str]) -> dict[str, Any]:  # fmt: skip
    """The captured path's kernel part alone: wrk (CONNECTIONS) straight at the app
    (`app_text`) along each of CASES, the cases alternating within each round; per case the
    median req/s, wrk's p50 and the CPU µs per request of the app and wrk together, and its
    kernel part. The captured path has two loopback hops with the rules (wrk → front's
    sidecar, back's sidecar → app) and one veth hop with them (sidecar → sidecar) where the
    explicit path has three plain loopback hops: `predicted_extra_cpu_us` is 2 ×
    loopback_rules' extra + veth_rules' extra. What the lab left goes into `leftovers`."""
    where = workdir / "kernel"
    where.mkdir()
    app = where / "app.py"
    app.write_text(app_text)
    runs: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in CASES}
    try:
        with lab() as made:
            ways = cases(made, app, where, host_port=free_port())
            for way in ways.values():  # warm-up
                wrk(way.url, prefix=way.prefix, connections=CONNECTIONS, seconds=1)
            for _ in range(rounds):
                for name, way in ways.items():
                    runs[name].append(_one(name, way, seconds))
    finally:
        leftovers += names_with_prefix(lab_prefix())
    found = {name: {key: round(statistics.median(r[index] for r in done), 3 if index == 1 else 1)
                    for index, key in enumerate(("rps", "p50_ms", "cpu_us", "kernel_us"))}
             for name, done in runs.items()}  # fmt: skip
    for case in found.values():
        case["extra_us"] = round(case["cpu_us"] - found["loopback"]["cpu_us"], 1)
    predicted = 2 * found["loopback_rules"]["extra_us"] + found["veth_rules"]["extra_us"]
    return {"cases": found, "predicted_extra_cpu_us": round(predicted, 1),
            "settings": f"wrk -t1 -c{CONNECTIONS}, wrk and the app on CPU {PIN[-1]}, {rounds} "
                        f"rounds of {seconds} s"}  # fmt: skip


def _one(name: str, way: Case, seconds: int) -> tuple[float, float, float, float]:
    """req/s, p50 ms, CPU µs per request (app + wrk) and its kernel part, of one wrk run."""
    before = cpu_seconds({"app": way.app.pid}, children="wrk")
    result = wrk(way.url, prefix=way.prefix, connections=CONNECTIONS, seconds=seconds)
    used = per_request(before, cpu_seconds({"app": way.app.pid}, children="wrk"),
                       max(1, result.requests))  # fmt: skip
    if result.non_2xx or result.socket_errors or not result.requests:
        raise RuntimeError(f"kernel path {name}: {result}")
    total, system = (sum(part[i] for part in used.values()) for i in (0, 1))
    print(f"  kernel path {name}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.3f} ms, "
          f"{total:.1f} µs/request (kernel {system:.1f})", file=sys.stderr, flush=True)
    return result.rps, result.p50_ms, total, system


def table(report: dict[str, Any]) -> Table:
    """The kernel path's cases, and its prediction beside what the pairs measured."""
    kernel = report["kernel_path"]
    shown = Table(title=f"the kernel's part alone: wrk straight at the app, {kernel['settings']}",
                  caption=f"predicted extra per request of the captured path: 2 × "
                          f"loopback_rules + veth_rules = {kernel['predicted_extra_cpu_us']} "
                          f"µs; measured through the sidecars: {report['extra_cpu_us']} µs "
                          f"(kernel {report['extra_kernel_us']} µs)")  # fmt: skip
    for column in ("case", "req/s", "p50 ms", "µs/request (app + wrk)", "kernel µs",
                   "vs loopback"):  # fmt: skip
        shown.add_column(column)
    for name, case in kernel["cases"].items():
        shown.add_row(f"{name}: {CASES[name]}", f"{case['rps']:,.0f}", str(case["p50_ms"]),
                      str(case["cpu_us"]), str(case["kernel_us"]), f"{case['extra_us']:+} µs")
    return shown
