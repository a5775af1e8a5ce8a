"""The config center: MD5 as Nacos computes it (MD5Utils.md5Hex of the UTF-8 content), history
(his_config_info keeps updates and deletes), long-poll waits (LongPollingService: answer at once
when an MD5 differs, at the first change, or empty at the timeout)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable

import pytest

from remora.registry.configs import ConfigKey
from remora.registry.model import RegistryError

from .conftest import Scenario, World

Run = Callable[[Scenario], None]
APP = ConfigKey(data_id="app.yaml")
DB = ConfigKey(data_id="db.properties", group="infra", namespace="prod")


def test_publish_get_md5_and_delete(world: Run) -> None:
    async def scenario(w: World) -> None:
        assert w.configs.get(APP) is None and w.configs.md5(APP) == ""
        published = await w.configs.publish(APP, "port: 80\nname: ünï", type="yaml")
        assert published.md5 == hashlib.md5("port: 80\nname: ünï".encode()).hexdigest()
        found = w.configs.get(APP)
        assert found is not None and found.content == "port: 80\nname: ünï"
        assert found.type == "yaml" and found.key.namespace == "public"
        assert ConfigKey(data_id="app.yaml", group="", namespace="") == APP  # Nacos defaults
        assert await w.configs.remove(APP)
        assert not await w.configs.remove(APP)
        assert w.configs.get(APP) is None

    world(scenario)


def test_history_keeps_the_last_n_newest_first_with_deletes(world: Run) -> None:
    async def scenario(w: World) -> None:
        for n in range(5):
            await w.configs.publish(DB, f"v{n}")
        await w.configs.remove(DB)
        history = await w.configs.history(DB)
        assert [(c.op, c.content) for c in history] == [("D", "v4"), ("U", "v4"), ("U", "v3")]
        assert (await w.configs.history(APP)) == []

    world(scenario)


def test_configs_are_namespaced_and_grouped(world: Run) -> None:
    async def scenario(w: World) -> None:
        await w.configs.publish(DB, "a")
        await w.configs.publish(ConfigKey(data_id="db.properties", namespace="prod"), "b")
        await w.configs.publish(ConfigKey(data_id="db.properties"), "c")
        prod = await w.configs.configs(namespace="prod")
        assert [(c.key.group, c.content) for c in prod] == [("DEFAULT_GROUP", "b"), ("infra", "a")]
        infra = await w.configs.configs(namespace="prod", group="infra")
        assert [c.content for c in infra] == ["a"]

    world(scenario)


def test_wait_answers_at_once_when_an_md5_differs(world: Run) -> None:
    async def scenario(w: World) -> None:
        await w.configs.publish(APP, "x")
        probes = {APP: "stale", DB: ""}  # DB absent: "" is its MD5, unchanged
        assert await w.configs.wait_changed(probes, timeout=30) == [APP]

    world(scenario)


def test_wait_wakes_on_a_change_of_a_probed_key_only(world: Run) -> None:
    async def scenario(w: World) -> None:
        waiting = asyncio.ensure_future(w.configs.wait_changed({APP: ""}, timeout=30))
        await asyncio.sleep(0.01)
        await w.configs.publish(DB, "not watched")
        await asyncio.sleep(0.01)
        assert not waiting.done()
        await w.configs.publish(APP, "watched")
        assert await asyncio.wait_for(waiting, 5) == [APP]

    world(scenario)


def test_wait_returns_nothing_at_the_timeout(world: Run) -> None:
    async def scenario(w: World) -> None:
        await w.configs.publish(APP, "x")
        assert await w.configs.wait_changed({APP: w.configs.md5(APP)}, timeout=0.05) == []
        assert await w.configs.wait_changed({APP: w.configs.md5(APP)}, timeout=0) == []

    world(scenario)


def test_wait_sees_a_write_made_by_another_writer_of_the_store(world: Run) -> None:
    async def scenario(w: World) -> None:
        waiting = asyncio.ensure_future(w.configs.wait_changed({APP: ""}, timeout=30))
        await asyncio.sleep(0.01)
        # another replica's publish reaches this one only through the store's watch
        await w.store.put("/configs/public/DEFAULT_GROUP/app.yaml",
                          b'{"namespace":"public","group":"DEFAULT_GROUP","dataId":"app.yaml",'
                          b'"content":"x","md5":"9dd4e461268c8034f5c8564e155c67a6"}')
        assert await asyncio.wait_for(waiting, 5) == [APP]

    world(scenario)


@pytest.mark.parametrize("bad", ["", "a b", "a/b", "x?y"])
def test_keys_nacos_refuses(bad: str) -> None:
    with pytest.raises(RegistryError):
        ConfigKey(data_id=bad)
