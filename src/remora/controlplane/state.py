"""The control plane's state: one store and the services built over it, shared by every router."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from remora.controlplane.resources import ResourceStore
from remora.registry.store.base import Store


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class ControlPlane:
    """What the HTTP API serves. `registry` and `configs` are filled by their owners (the
    service registry and the config center) when the control plane runs them."""

    store: Store
    resources: ResourceStore
    clock: Callable[[], datetime] = utcnow
    registry: Any = None  # remora.registry.service.Registry
    configs: Any = None  # remora.registry.configs.ConfigCenter
    push: Any = None  # remora.controlplane.push.PushServer
    auth: Any = None  # remora.controlplane.auth.Auth; None: every caller may do everything
    ca: Any = None  # remora.controlplane.ca.CertificateAuthority

    @classmethod
    async def open(cls, store: Store, *, clock: Callable[[], datetime] = utcnow,
                   auth: bool = False) -> ControlPlane:
        """The state over `store`, with the built-in namespaces present; `auth` turns on
        accounts and tokens (the `remora controlplane` default)."""
        from remora.registry.configs import ConfigCenter  # noqa: PLC0415 (one edit per owner)
        from remora.registry.service import Registry  # noqa: PLC0415

        resources = ResourceStore(store, clock=clock)
        await resources.ensure_namespaces()
        registry, configs = Registry(store), ConfigCenter(store)
        await registry.start()
        await configs.start()
        from remora.controlplane.push import PushServer  # noqa: PLC0415

        push = PushServer(store, registry=registry)
        await push.start()
        from remora.controlplane.ca import CertificateAuthority  # noqa: PLC0415

        ca = await CertificateAuthority.open(store, resources, clock=clock)
        accounts = None
        if auth:
            from remora.controlplane.auth import Auth  # noqa: PLC0415

            accounts = await Auth.open(store)
        return cls(store=store, resources=resources, clock=clock, registry=registry,
                   configs=configs, push=push, auth=accounts, ca=ca)

    async def close(self) -> None:
        for part in (self.push, self.registry, self.configs, self.auth):
            if part is not None:
                await part.close()
        await self.store.close()
