"""The registry's documents for the push are derived again only for the services that changed
(istiod's incremental EDS, Nacos 2's per-service merge), and all of them when the set of
Kubernetes Services changes (it decides each service's labels and ports)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from remora.controlplane.push import encode
from remora.controlplane.registry_cache import RegistryEntries
from remora.registry.model import Instance
from remora.registry.service import Registry
from remora.registry.store.sqlite import SqliteStore

KUBE_A = {("default", "a"): {"apiVersion": "v1", "kind": "Service",
                             "metadata": {"name": "a", "namespace": "default"},
                             "spec": {"selector": {"app": "a"}, "ports": [{"name": "http",
                                                                           "port": 80}]}}}


def addresses(entries: list[Any]) -> list[str]:
    return sorted(key for key, _, kind, *_ in entries if kind == "WorkloadEntry")


def test_only_changed_services_are_derived_again(tmp_path: Path) -> None:
    async def main() -> None:
        store = await SqliteStore(tmp_path / "db").open()
        registry = Registry(store)
        await registry.start(background=False)
        cache = RegistryEntries(registry, encode=encode)
        try:
            for ip, service in (("10.0.0.1", "a"), ("10.0.0.2", "b"), ("10.0.0.3", "c")):
                await registry.register(Instance(ip=ip, port=80, service=service))
            assert len(addresses(cache.entries({}))) == 3
            assert cache.derived == 3

            assert len(cache.entries({})) == 6  # nothing changed: nothing derived
            assert cache.derived == 3

            await registry.register(Instance(ip="10.0.0.4", port=80, service="b"))
            assert addresses(cache.entries({})) == [
                "WorkloadEntry/default/a-10-0-0-1-80", "WorkloadEntry/default/b-10-0-0-2-80",
                "WorkloadEntry/default/b-10-0-0-4-80", "WorkloadEntry/default/c-10-0-0-3-80"]
            assert cache.derived == 4  # b alone

            await registry.deregister(namespace="public", group="DEFAULT_GROUP", service="c",
                                      cluster="DEFAULT", address="10.0.0.3:80")
            entries = cache.entries({})
            assert "WorkloadEntry/default/c-10-0-0-3-80" not in addresses(entries)
            assert "Service/default/c" not in {key for key, *_ in entries}
            assert cache.derived == 5

            entries = cache.entries(KUBE_A)  # a Kubernetes Service now owns a's endpoints
            assert cache.derived == 8
            assert "Service/default/a" not in {key for key, *_ in entries}
        finally:
            await registry.close()
            await store.close()

    asyncio.run(main())
