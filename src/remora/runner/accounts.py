"""The users `remora up` gives the processes it starts, each allowed only what it needs.

The control plane's first admin (its `credentials.json`) applies the user's YAML. Then:

    remora-runner            registers and deregisters instances of the Services it runs
                             (`<nacos namespace>:DEFAULT_GROUP:naming/<service>` rw); reads the
                             Deployments, StatefulSets and HPAs of its namespaces and writes
                             their `status` and the workloads' `scale` (runner/controllers.py);
                             creates its pods' identity tokens (`<ns>:remora:identity/*` w),
                             which get their sidecars a workload certificate; nothing else
    remora-sidecar           subscribes as a sidecar (`*:remora:discovery/sidecar` r)
    remora-gateway-<ns>      subscribes as a gateway of namespace <ns> — whose view carries that
                             namespace's TLS Secrets — and nothing else

Each gets a random password, kept in `<state>/credentials/<user>.json` (mode 0600) and handed
to its processes as REMORA_CREDENTIALS; apps get none of them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from remora.api.resource import Resource
from remora.runner.cpclient import ControlPlaneClient, nacos_namespace
from remora.runner.state import StateDir

RUNNER = "remora-runner"
SIDECAR = "remora-sidecar"
NACOS_GROUP = "DEFAULT_GROUP"
CONTROLLED = ("Deployment", "StatefulSet", "HorizontalPodAutoscaler")


@dataclass(frozen=True, slots=True)
class Account:
    """A user to create: its role is named after it and holds `grants` (resource, action)."""

    username: str
    grants: tuple[tuple[str, str], ...]


def plan_accounts(resources: Sequence[Resource], gateway_namespaces: Iterable[str]
                  ) -> list[Account]:
    """The runner, the sidecars, and one gateway account per namespace with gateways."""
    gateway_namespaces = sorted(set(gateway_namespaces))
    services = sorted({(r.namespace, r.name) for r in resources if r.kind == "Service"})
    namespaces = sorted({r.namespace for r in resources if r.kind in CONTROLLED})
    identities = sorted({*namespaces, *gateway_namespaces})
    return [
        Account(RUNNER, (*((f"{nacos_namespace(ns)}:{NACOS_GROUP}:naming/{name}", "rw")
                           for ns, name in services),
                         *(grant for ns in namespaces for grant in controller_grants(ns)),
                         *((f"{ns}:remora:identity/*", "w") for ns in identities))),
        Account(SIDECAR, (("*:remora:discovery/sidecar", "r"),)),
        *(Account(gateway_user(ns), ((f"{ns}:remora:discovery/gateway", "r"),))
          for ns in gateway_namespaces),
    ]


def controller_grants(namespace: str) -> tuple[tuple[str, str], ...]:
    """Read the controlled kinds; write their status, and the workloads' scale."""
    kinds = (("apps", "deployments"), ("apps", "statefulsets"),
             ("autoscaling", "horizontalpodautoscalers"))
    return (*((f"{namespace}:{group}:{plural}/*", "r") for group, plural in kinds),
            *((f"{namespace}:{group}:{plural}/*/status", "w") for group, plural in kinds),
            *((f"{namespace}:apps:{plural}/*/scale", "w") for plural in ("deployments",
                                                                         "statefulsets")))


def gateway_user(namespace: str) -> str:
    return f"remora-gateway-{namespace}"


async def provision(client: ControlPlaneClient, accounts: Sequence[Account], *,
                    state: StateDir) -> dict[str, Path]:
    """Create each account through the auth API (as the admin `client` is); its
    credentials file by username."""
    from remora.credentials import Credentials, write_file  # noqa: PLC0415 (one caller)

    files: dict[str, Path] = {}
    for account in accounts:
        password = secrets.token_urlsafe(18)
        await client.auth("POST", "users", {"username": account.username, "password": password})
        await client.auth("POST", "roles", {"role": account.username,
                                            "username": account.username})
        for resource, action in account.grants:
            await client.auth("POST", "permissions", {"role": account.username,
                                                      "resource": resource, "action": action})
        path = state.root / "credentials" / f"{account.username}.json"
        write_file(path, Credentials(client.url, account.username, password))
        files[account.username] = path
    return files
