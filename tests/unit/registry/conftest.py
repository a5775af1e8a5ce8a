"""A registry and config center over a fresh SqliteStore, with fake clocks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from remora.registry.configs import ConfigCenter
from remora.registry.model import HealthChecker, Instance
from remora.registry.service import Registry
from remora.registry.store.sqlite import SqliteStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    store: SqliteStore
    registry: Registry
    configs: ConfigCenter
    clock: FakeClock
    store_clock: FakeClock
    probes: dict[int, bool]  # port -> what the fake prober answers


Scenario = Callable[[World], Awaitable[None]]


@pytest.fixture
def world(tmp_path: Path) -> Callable[[Scenario], None]:
    """Run a scenario against a started registry and config center (bounded in time)."""

    def run(scenario: Scenario) -> None:
        async def main() -> None:
            store_clock = FakeClock()
            store = SqliteStore(tmp_path / "remora.db", clock=store_clock)
            await store.open()
            clock = FakeClock()
            probes: dict[int, bool] = {}

            async def prober(instance: Instance, checker: HealthChecker, timeout: float) -> bool:
                return probes.get(instance.port, True)

            registry = Registry(store, clock=clock, prober=prober)
            configs = ConfigCenter(store, history_limit=3)
            await registry.start(background=False)
            await configs.start()
            try:
                await asyncio.wait_for(scenario(World(store, registry, configs, clock,
                                                      store_clock, probes)), 30)
            finally:
                await registry.close()
                await configs.close()
                await store.close()

        asyncio.run(main())

    return run
