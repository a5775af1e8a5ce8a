"""A large view goes out in pieces of at most WRITE_CHUNK bytes that join into the one NDJSON
line (so the server's flow control holds back a slow stream after one piece, not the whole
snapshot)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from remora.controlplane.push import WRITE_CHUNK, PushServer, write_pieces
from remora.registry.store.sqlite import SqliteStore

NODE = {"id": "sidecar~127.0.0.1~client.default", "mode": "sidecar", "namespace": "default"}


def test_a_large_snapshot_is_written_in_pieces_of_one_line(tmp_path: Path) -> None:
    async def main() -> None:
        store = await SqliteStore(tmp_path / "db").open()
        for i in range(300):  # 300 Services: a snapshot of ~200 KB
            service = {"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": f"svc-{i}", "namespace": "default"},
                       "spec": {"selector": {"app": f"svc-{i}"}, "ports": [
                           {"name": f"http-{port}", "port": port} for port in (80, 81, 82)]}}
            await store.put(f"/resources/core/Service/default/svc-{i}",
                            json.dumps(service).encode())
        push = PushServer(store)
        stream = push.subscribe(NODE)
        pieces = [await anext(stream)]
        while not pieces[-1].endswith(b"\n"):
            pieces.append(await asyncio.wait_for(anext(stream), 5))
        await stream.aclose()
        await store.close()
        assert len(pieces) > 1 and all(len(piece) <= WRITE_CHUNK for piece in pieces)
        line = b"".join(pieces)
        assert line.count(b"\n") == 1
        snapshot = json.loads(line)
        assert snapshot["type"] == "snapshot"
        clusters = [d for d in snapshot["documents"] if d["section"].startswith("cluster/")
                    and "||svc-" in d["section"]]
        assert len(clusters) == 900  # the proxy's compiled snapshot: a cluster per port

    asyncio.run(main())


@given(st.lists(st.binary(max_size=3 * WRITE_CHUNK) | st.binary(max_size=64), min_size=1,
                max_size=6))
@settings(max_examples=200, deadline=None)
def test_a_line_in_parts_is_written_as_the_line_in_bounded_pieces(parts: list[bytes]) -> None:
    writes = list(write_pieces(tuple(parts)))
    assert b"".join(writes) == b"".join(parts)
    assert all(0 < len(piece) <= WRITE_CHUNK for piece in writes)
    if 0 < len(b"".join(parts)) <= WRITE_CHUNK:
        assert len(writes) == 1  # a small line is one write
