"""The config center: namespaced, grouped configs with MD5s, history and change listeners.

Nacos's model: a config is (tenant, group, dataId) → content; clients compare MD5s (hex MD5 of
the UTF-8 content, "" for an absent config) and long-poll for a difference. Contents live in
the store under `/configs/<ns>/<group>/<dataId>`, each change also under
`/configs-history/<ns>/<group>/<dataId>/<revision>` (the last `history_limit` kept), and are
mirrored in memory, so a listener wakes on any writer's change the store's watch reports.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from remora.registry.limits import check_content, check_param, stored_record
from remora.registry.mirror import StoreMirror
from remora.registry.model import DEFAULT_GROUP, DEFAULT_NAMESPACE
from remora.registry.store.base import Entry, Store

CONFIGS_PREFIX = "/configs/"
HISTORY_PREFIX = "/configs-history/"
HISTORY_LIMIT = 10


def md5_hex(content: str) -> str:
    return hashlib.md5(content.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True, order=True)
class ConfigKey:
    """Where a config lives; Nacos's empty tenant is the `public` namespace."""

    data_id: str
    group: str = DEFAULT_GROUP
    namespace: str = DEFAULT_NAMESPACE

    def __post_init__(self) -> None:
        if not self.namespace:
            object.__setattr__(self, "namespace", DEFAULT_NAMESPACE)
        if not self.group:
            object.__setattr__(self, "group", DEFAULT_GROUP)
        check_param("dataId", self.data_id)
        check_param("group", self.group)
        check_param("tenant", self.namespace)

    @property
    def path(self) -> str:
        return f"{self.namespace}/{self.group}/{self.data_id}"

    @classmethod
    def from_store_key(cls, key: str) -> ConfigKey:
        namespace, group, data_id = key.removeprefix(CONFIGS_PREFIX).split("/", 2)
        return cls(data_id=data_id, group=group, namespace=namespace)


@dataclass(frozen=True, slots=True)
class Config:
    """A config's value at one store revision. `op` is "U" (published) or "D" (deleted)
    in history entries, as Nacos's his_config_info records them."""

    key: ConfigKey
    content: str
    md5: str
    type: str = "text"
    app_name: str = ""
    modified_ms: int = 0
    revision: int = 0
    op: str = "U"

    def to_json(self) -> bytes:
        return json.dumps({
            "namespace": self.key.namespace, "group": self.key.group,
            "dataId": self.key.data_id, "content": self.content, "md5": self.md5,
            "type": self.type, "appName": self.app_name, "modified": self.modified_ms,
            "op": self.op,
        }, separators=(",", ":")).encode()

    @classmethod
    def from_entry(cls, entry: Entry) -> Config:
        data: dict[str, Any] = json.loads(entry.value)
        with stored_record():
            key = ConfigKey(data_id=data["dataId"], group=data["group"],
                            namespace=data["namespace"])
        return cls(key=key, content=data["content"], md5=data["md5"], type=data.get("type", "text"),
                   app_name=data.get("appName", ""), modified_ms=int(data.get("modified", 0)),
                   revision=entry.modified, op=data.get("op", "U"))


class ConfigCenter:
    """Publish, read, delete and listen to configs; `start()` before use, `close()` after."""

    def __init__(self, store: Store, *, history_limit: int = HISTORY_LIMIT,
                 wall: Callable[[], float] = time.time) -> None:
        self._store = store
        self._history_limit = history_limit
        self._wall = wall
        self._mirror: StoreMirror[Config] = StoreMirror(
            store, CONFIGS_PREFIX, decode=Config.from_entry, on_change=self._changed)
        self._waiters: dict[ConfigKey, set[asyncio.Event]] = {}

    async def start(self) -> None:
        await self._mirror.start()

    async def close(self) -> None:
        await self._mirror.close()

    def _changed(self, key: str, old: Config | None, new: Config | None) -> None:
        config = new or old
        if config is not None:
            for event in self._waiters.get(config.key, ()):
                event.set()

    def get(self, key: ConfigKey) -> Config | None:
        return self._mirror.get(CONFIGS_PREFIX + key.path)

    def md5(self, key: ConfigKey) -> str:
        config = self.get(key)
        return config.md5 if config else ""

    async def configs(self, *, namespace: str, group: str = "") -> list[Config]:
        """Every config of a namespace (and group), in key order."""
        prefix = f"{CONFIGS_PREFIX}{namespace or DEFAULT_NAMESPACE}/{group + '/' if group else ''}"
        entries, _ = await self._store.list(prefix)
        return [Config.from_entry(entry) for entry in entries]

    async def publish(self, key: ConfigKey, content: str, *, type: str = "text",
                      app_name: str = "") -> Config:
        """Store a new value; RegistryError when it is over Nacos's 10 MB."""
        check_content(content)
        config = Config(key=key, content=content, md5=md5_hex(content), type=type or "text",
                        app_name=app_name, modified_ms=int(self._wall() * 1000))
        entry = await self._store.put(CONFIGS_PREFIX + key.path, config.to_json())
        self._mirror.put(entry)
        await self._remember(config, revision=entry.modified)
        return Config.from_entry(entry)

    async def remove(self, key: ConfigKey) -> bool:
        """Delete a config; False when there was none."""
        deleted = await self._store.delete(CONFIGS_PREFIX + key.path)
        if deleted is None:
            return False
        self._mirror.deleted(deleted.key, deleted.modified + 1)
        gone = Config.from_entry(deleted)
        tombstone = Config(key=key, content=gone.content, md5=gone.md5, type=gone.type,
                           app_name=gone.app_name, modified_ms=int(self._wall() * 1000), op="D")
        await self._remember(tombstone, revision=await self._store.revision())
        return True

    async def history(self, key: ConfigKey) -> list[Config]:
        """Past values of a config, newest first (at most `history_limit`)."""
        entries, _ = await self._store.list(f"{HISTORY_PREFIX}{key.path}/")
        return [Config.from_entry(entry) for entry in reversed(entries)]

    async def _remember(self, config: Config, *, revision: int) -> None:
        prefix = f"{HISTORY_PREFIX}{config.key.path}/"
        await self._store.put(f"{prefix}{revision:020d}", config.to_json())
        entries, _ = await self._store.list(prefix)
        for entry in entries[:max(0, len(entries) - self._history_limit)]:
            await self._store.delete(entry.key)

    def changed(self, probes: Mapping[ConfigKey, str]) -> list[ConfigKey]:
        """The probed keys whose MD5 differs from the client's."""
        return [key for key, md5 in probes.items() if self.md5(key) != md5]

    async def wait_changed(self, probes: Mapping[ConfigKey, str], *,
                           timeout: float) -> list[ConfigKey]:
        """Nacos long polling: the changed keys at once if any differ, else as soon as one
        changes, else [] after `timeout` seconds."""
        changed = self.changed(probes)
        if changed or timeout <= 0:
            return changed
        event = asyncio.Event()
        self._listen(probes, event)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await event.wait()
                    event.clear()
                    if changed := self.changed(probes):
                        return changed
        except TimeoutError:
            return []
        finally:
            self._unlisten(probes, event)

    def _listen(self, keys: Iterable[ConfigKey], event: asyncio.Event) -> None:
        for key in keys:
            self._waiters.setdefault(key, set()).add(event)

    def _unlisten(self, keys: Iterable[ConfigKey], event: asyncio.Event) -> None:
        for key in keys:
            waiting = self._waiters.get(key)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._waiters[key]
