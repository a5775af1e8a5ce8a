"""Where the control plane keeps its state: one key-value interface, SQLite or etcd behind it."""

from __future__ import annotations

from pathlib import Path

from remora.registry.store.base import Store, StoreError
from remora.registry.store.sqlite import SqliteStore


async def open_store(url: str, *, data_dir: Path) -> Store:
    """The opened store `url` names: "sqlite" (or "") is data_dir/remora.db, "etcd://h:p,..."
    a cluster; async because opening connects (and starts the lease sweeper)."""
    if url in ("", "sqlite"):
        return await SqliteStore(data_dir / "remora.db").open()
    if url.startswith("etcd://"):
        raise StoreError("etcd store not available yet")
    raise StoreError(f"unknown store {url!r}: expected 'sqlite' or 'etcd://host:port,...'")
