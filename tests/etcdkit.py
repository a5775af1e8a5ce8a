"""A real three-member etcd cluster on 127.0.0.1 for tests: Debian's etcd-server (/usr/bin/etcd),
free ports, data in a temp dir (on /dev/shm when there is one: etcd fsyncs every write), members
that can be SIGKILLed and restarted, always stopped. Start it once per module (it takes ~1 s)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from remora.runner.ports import free_port

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
MISSING = "" if os.access(ETCD, os.X_OK) else (
    "etcd is not installed (Debian package etcd-server; `make test` installs it)")



@dataclass
class Member:
    name: str
    client: int
    peer: int
    data: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client}"

    def healthy(self) -> bool:
        try:
            answer = httpx.get(f"http://{self.endpoint}/health", timeout=1)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and answer.json().get("health") == "true"


@dataclass
class EtcdCluster:
    """Three members; `url` is what `--store` takes."""

    root: Path
    members: list[Member] = field(default_factory=list)
    token: str = field(default_factory=lambda: f"remora-{uuid.uuid4().hex[:8]}")

    @property
    def url(self) -> str:
        return "etcd://" + ",".join(member.endpoint for member in self.members)

    @property
    def endpoints(self) -> list[str]:
        return [member.endpoint for member in self.members]

    def _initial(self) -> str:
        return ",".join(f"{m.name}=http://127.0.0.1:{m.peer}" for m in self.members)

    def start_member(self, member: Member, *, state: str = "new") -> None:
        command = [
            ETCD, "--name", member.name, "--data-dir", str(member.data),
            "--listen-client-urls", f"http://{member.endpoint}",
            "--advertise-client-urls", f"http://{member.endpoint}",
            "--listen-peer-urls", f"http://127.0.0.1:{member.peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{member.peer}",
            "--initial-cluster", self._initial(), "--initial-cluster-state", state,
            "--initial-cluster-token", self.token,
            # a killed member's peers elect a new leader within about a second
            "--heartbeat-interval", "50", "--election-timeout", "500",
            "--logger", "zap", "--log-level", "warn",
        ]
        with member.log.open("ab") as out:
            member.process = subprocess.Popen(command, stdout=out, stderr=out)

    def wait_healthy(self, members: list[Member] | None = None, *, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        for member in members or self.members:
            while not member.healthy():
                assert member.process is not None
                if member.process.poll() is not None:
                    raise AssertionError(f"etcd {member.name} exited:\n{member.log.read_text()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"etcd {member.name} not healthy in {timeout}s:\n"
                                         f"{member.log.read_text()}")
                time.sleep(0.05)

    def kill(self, index: int) -> Member:
        """SIGKILL one member (its data stays for restart)."""
        member = self.members[index]
        if member.process is not None and member.process.poll() is None:
            member.process.send_signal(signal.SIGKILL)
            member.process.wait(timeout=10)
        return member

    def restart(self, index: int) -> None:
        member = self.members[index]
        self.start_member(member, state="existing")
        self.wait_healthy([member])

    def stop(self) -> None:
        for index in range(len(self.members)):
            self.kill(index)


@contextlib.contextmanager
def etcd_cluster(size: int = 3) -> Iterator[EtcdCluster]:
    """Start a cluster (skipping the test when etcd is not installed); always stopped."""
    if MISSING:
        if os.environ.get("CI"):  # CI installs etcd-server: there a missing etcd is a failure
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="remora-etcd-",
                                 dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None))
    cluster = EtcdCluster(root)
    cluster.members = [Member(f"m{i}", client=free_port(), peer=free_port(),
                              data=root / f"m{i}", log=root / f"m{i}.log") for i in range(size)]
    try:
        for member in cluster.members:
            cluster.start_member(member)
        cluster.wait_healthy()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
