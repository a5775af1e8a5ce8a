"""`remora proxy` serves from a lean process image: the CLI checks the arguments, then execs
`python -m remora.proxy SETTINGS` in its place (same process, same PID, same output).

The CLI's machinery (typer parses options with pydantic) would otherwise stay loaded for the
life of every sidecar. A proxy fed by a control plane then loads neither validation nor YAML
machinery while it serves; one fed by files loads what compiling them needs.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, NoReturn

from remora.errors import RemoraError
from remora.mesh.snapshot import ListenerPorts, ProxyIdentity
from remora.proxy.env import ProxyOptions

if TYPE_CHECKING:
    from remora.proxy.certs import CertificateSource
    from remora.proxy.cpclient import ControlPlaneTls

EXIT_ERROR = 1  # as the CLI's (remora.cli.main)


@dataclass(frozen=True, slots=True)
class Launch:
    """Everything `remora proxy` was asked for, checked."""

    identity: ProxyIdentity
    ports: ListenerPorts
    options: ProxyOptions
    files: tuple[str, ...] = ()
    controlplanes: tuple[str, ...] = ()
    log_level: str = "info"
    identity_token_file: str | None = None  # the proof of identity for the CA (certs.py)
    workload_certs: str | None = None  # or a directory of file-mounted certificates
    ca_cert: str | None = None  # the root the control plane's certificate must chain to

    def to_json(self) -> str:
        identity = {f.name: getattr(self.identity, f.name) for f in fields(self.identity)}
        identity["labels"] = dict(self.identity.labels)
        return json.dumps({"identity": identity, "ports": asdict(self.ports),
                           "options": asdict(self.options), "files": list(self.files),
                           "controlplanes": list(self.controlplanes),
                           "log_level": self.log_level,
                           "identity_token_file": self.identity_token_file,
                           "workload_certs": self.workload_certs,
                           "ca_cert": self.ca_cert})

    @classmethod
    def from_json(cls, text: str) -> Launch:
        data = json.loads(text)
        return cls(identity=ProxyIdentity(**data["identity"]),
                   ports=ListenerPorts(**data["ports"]),
                   options=ProxyOptions(**data["options"]),
                   files=tuple(data["files"]), controlplanes=tuple(data["controlplanes"]),
                   log_level=data["log_level"],
                   identity_token_file=data.get("identity_token_file"),
                   workload_certs=data.get("workload_certs"),
                   ca_cert=data.get("ca_cert"))


def exec_proxy(launch: Launch) -> NoReturn:
    """Replace this process with the serving proxy."""
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, "-m", "remora.proxy", launch.to_json()]
    try:
        os.execv(sys.executable, argv)
    except PermissionError:
        # the interpreter's path is closed to this user (a sidecar run as Istio's 1337 from a
        # pyenv Python under /root): the running binary itself is still reachable
        os.execv("/proc/self/exe", argv)


def serve(launch: Launch) -> None:
    """Run the proxy `launch` describes until it is drained."""
    from remora.proxy.config import FileSource, SnapshotSource  # noqa: PLC0415
    from remora.proxy.process import run  # noqa: PLC0415

    logging.basicConfig(level=launch.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(message)s")
    source: SnapshotSource
    tls = None
    if launch.controlplanes:
        from remora.proxy.cpclient import ControlPlaneTls  # noqa: PLC0415

        tls = ControlPlaneTls(launch.ca_cert)  # shared: the certificate the CA issues is
    certificates = workload_certificates(launch, tls)  # presented on every connection
    if launch.controlplanes:
        from remora.proxy.discovery import RemoteSource  # noqa: PLC0415

        source = RemoteSource(launch.controlplanes, identity=launch.identity, ports=launch.ports,
                              tls=tls)
    else:
        source = FileSource(launch.files, identity=launch.identity, ports=launch.ports)
    run(source, launch.options, admin_port=launch.ports.admin, health_port=launch.ports.health,
        certificates=certificates)


def workload_certificates(launch: Launch, tls: ControlPlaneTls | None = None
                          ) -> CertificateSource | None:
    """The CA (with the identity token) or the mounted files the proxy was given, if any."""
    if not (launch.workload_certs or (launch.identity_token_file and launch.controlplanes)):
        return None
    from pathlib import Path  # noqa: PLC0415

    from remora.proxy.certs import CertificateAgent, MountedCertificates  # noqa: PLC0415

    if launch.workload_certs:
        return MountedCertificates(Path(launch.workload_certs))
    assert launch.identity_token_file is not None
    return CertificateAgent(launch.controlplanes, Path(launch.identity_token_file), tls=tls)


def main(argv: list[str]) -> int:
    """`python -m remora.proxy SETTINGS`: every failure is one line and an exit status, as in
    the CLI."""
    try:
        if len(argv) != 1:
            raise RemoraError("usage: python -m remora.proxy SETTINGS (run `remora proxy`)")
        try:
            launch = Launch.from_json(argv[0])
        except (ValueError, KeyError, TypeError) as exc:
            raise RemoraError(f"malformed proxy settings: {exc}") from None
        serve(launch)
    except KeyboardInterrupt:
        return 130
    except RemoraError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug: still one line, never a traceback
        print(f"Error: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return 0
