"""Records stored before the registry's checks existed (issue 11's `ip=bad_host!`) do not
stop the registry: each is skipped with a warning, everything else is served."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from remora.registry.model import Instance
from remora.registry.service import Registry
from remora.registry.store.sqlite import SqliteStore


def test_a_stored_instance_now_invalid_is_skipped_not_fatal(tmp_path: Path) -> None:
    """An instance stored before validation (issue 11's `ip=bad_host!`) is ignored with a
    warning when the registry loads, and the valid ones are served."""
    async def main() -> None:
        store = await SqliteStore(tmp_path / "remora.db").open()
        good = Instance(ip="10.0.0.1", port=80, service="web")
        await store.put(good.key, good.to_json())
        bad = json.loads(good.to_json())
        bad["ip"] = "bad_host!"
        await store.put(good.key.replace("10.0.0.1", "bad_host!"), json.dumps(bad).encode())
        registry = Registry(store)
        await registry.start(background=False)
        try:
            hosts = registry.instances(namespace="public", group="DEFAULT_GROUP",
                                       service="web").hosts
            assert [h.ip for h in hosts] == ["10.0.0.1"]
        finally:
            await registry.close()
            await store.close()

    asyncio.run(main())
