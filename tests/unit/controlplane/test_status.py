"""Request bodies the resource API refuses as the Kubernetes API server does: a 400 or 422
Status naming the problem and the field, nothing applied (a YAML alias bomb among them)."""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

import httpx

from remora.controlplane.app import create_app
from remora.controlplane.state import ControlPlane
from remora.registry.store.sqlite import SqliteStore
from tests.unit.api.test_yamlaliases import billion_laughs


def apply(tmp_path: Path, body: str) -> httpx.Response:
    async def main() -> httpx.Response:
        state = await ControlPlane.open(await SqliteStore(tmp_path / "remora.db").open())
        transport = httpx.ASGITransport(app=create_app(state))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://cp") as http:
                return await http.post("/api/remora/apply", content=body,
                                       headers={"content-type": "application/yaml"})
        finally:
            await state.close()

    return asyncio.run(main())


def test_apply_refuses_a_yaml_alias_bomb_without_expanding_it(tmp_path: Path) -> None:
    bomb = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n" + "".join(
        f"  {line}\n" for line in billion_laughs().splitlines())
    tracemalloc.start()
    answer = apply(tmp_path, bomb)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert answer.status_code == 400
    body = answer.json()
    assert body["kind"] == "Status"
    assert body["reason"] == "BadRequest"
    assert body["message"].startswith(
        "the request body is not valid YAML: line 1: document contains excessive aliasing")
    assert peak < 50 * 1024 * 1024  # the expansion (~490 M "lol"s) was never built


def test_apply_refuses_an_int32_weight_overflow_with_the_field_as_cause(tmp_path: Path) -> None:
    vs = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
          "spec:\n  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n"
          f"      weight: {2**40}\n")
    answer = apply(tmp_path, vs)
    assert answer.status_code == 422
    assert answer.json()["details"]["causes"] == [{
        "field": "spec.http[0].route[0].weight", "message": "must be <= 2147483647",
        "reason": "FieldValueInvalid"}]
