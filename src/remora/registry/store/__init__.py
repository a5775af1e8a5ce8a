"""Where the control plane keeps its state: one key-value interface, SQLite or etcd behind it."""

from __future__ import annotations

from pathlib import Path

from remora.registry.store.base import Store, StoreError
from remora.registry.store.etcd import EtcdStore
from remora.registry.store.sqlite import SqliteStore


async def open_store(url: str, *, data_dir: Path) -> Store:
    """The opened store `url` names: "sqlite" (or "") is data_dir/remora.db,
    "etcd://h:p,...[/root]" a cluster (keys under /root when given); async because opening
    connects (and starts SQLite's lease sweeper)."""
    if url in ("", "sqlite"):
        return await SqliteStore(data_dir / "remora.db").open()
    if url.startswith("etcd://"):
        return await EtcdStore.from_url(url).open()
    raise StoreError(f"unknown store {url!r}: expected 'sqlite' or 'etcd://host:port,...'")
