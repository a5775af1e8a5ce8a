"""The 381-byte YAML alias bomb of issue 11, given to the CLI as a file: `remora validate`
(analyze), `apply -f` (refused by a real control plane with a 400) and `delete -f` each refuse
it with the file and line, and the control plane keeps serving."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.meshkit import run_controlplane
from tests.e2e.test_cli_kubectl import remora
from tests.unit.api.test_yamlaliases import billion_laughs

EXCESSIVE = "document contains excessive aliasing"


def bomb_file(tmp_path: Path) -> Path:
    path = tmp_path / "bomb.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n" + "".join(
        f"  {line}\n" for line in billion_laughs().splitlines()))
    return path


def test_validate_refuses_the_bomb_with_file_and_line(tmp_path: Path) -> None:
    bomb = bomb_file(tmp_path)
    done = remora(None, "validate", str(bomb))
    assert done.returncode != 0
    assert f"{bomb}:1: invalid YAML: {EXCESSIVE}" in done.stdout + done.stderr


def test_apply_and_delete_refuse_the_bomb_and_the_plane_keeps_serving(tmp_path: Path) -> None:
    bomb = bomb_file(tmp_path)
    with run_controlplane(tmp_path) as plane:
        applied = remora(plane, "apply", "-f", str(bomb))
        assert applied.returncode == 1
        assert applied.stderr.startswith(
            f"{bomb}: Error from server (BadRequest): the request body is not valid YAML: "
            f"line 1: {EXCESSIVE}")
        deleted = remora(plane, "delete", "-f", str(bomb))
        assert deleted.returncode == 1
        assert f"{bomb}:1: not valid YAML: {EXCESSIVE}" in deleted.stderr
        assert remora(plane, "get", "namespaces").returncode == 0
