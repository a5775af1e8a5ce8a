"""`remora`'s lazy command table: help as before, and a command imports only what it needs.

The import checks run `remora` in a fresh interpreter and look at `sys.modules` when the
command is done: they catch a heavy import creeping back into start-up without timing it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import typer

from remora.cli import main
from remora.cli.main import COMMANDS, LazyCommand, LazyGroup

HEAVY = ("asyncio", "httpx", "uvloop", "fastapi", "remora.analysis", "remora.api",
         "remora.proxy", "remora.mesh", "remora.runner.control", "remora.runner.spec")
"""Modules no read-only command (`version`, `get`, `status`) may load: the config model (pydantic
models) among them. typer itself imports pydantic to convert parameters, so pydantic is not."""


def modules_after(args: list[str], *, prefixes: tuple[str, ...] = HEAVY) -> dict[str, object]:
    """Run `remora ARGS` in a fresh interpreter: its exit status and which of `prefixes`
    (modules or packages) it loaded."""
    script = textwrap.dedent(f"""
        import json, sys
        from remora.cli.main import main
        code = main({args!r})
        prefixes = {prefixes!r}
        loaded = sorted(m for m in sys.modules
                        if any(m == p or m.startswith(p + ".") for p in prefixes))
        print("\\n" + json.dumps({{"code": code, "loaded": loaded}}))
    """)
    with tempfile.TemporaryDirectory() as home:  # no credentials a user saved for some port
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=60, check=False, env={**os.environ, "HOME": home})
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def _loaded_group() -> LazyGroup:
    group = typer.main.get_group(main.app)
    assert isinstance(group, LazyGroup)
    for module in {module for module, _ in COMMANDS.values()}:
        group.load(module)
    return group


def test_the_table_has_each_commands_own_help_and_every_command() -> None:
    group = _loaded_group()
    assert list(group.commands) == list(COMMANDS), "a module registers a command not in COMMANDS"
    for name, (_, help_text) in COMMANDS.items():
        command = group.commands[name]
        assert not isinstance(command, LazyCommand), name
        own = inspect.cleandoc(command.help or "").split("\n\n")[0]
        assert help_text == own, f"{name}: COMMANDS says {help_text!r}, the command {own!r}"


def test_each_module_defines_a_register_function() -> None:
    for module, _ in COMMANDS.values():
        assert callable(getattr(importlib.import_module(module), "register", None)), module


def _help(group: LazyGroup, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        group.main(["--help"], prog_name="remora")
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_help_is_the_same_before_and_after_the_modules_are_imported(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    lazy_group = typer.main.get_group(main.app)
    assert isinstance(lazy_group, LazyGroup)
    lazy = _help(lazy_group, capsys)
    loaded = _help(_loaded_group(), capsys)
    assert lazy == loaded
    for name in COMMANDS:
        assert f" {name} " in lazy


def test_help_imports_no_command_module() -> None:
    done = modules_after(["--help"], prefixes=("remora.cli",))
    assert done["loaded"] == ["remora.cli", "remora.cli.main"]


def test_version_loads_nothing_heavy() -> None:
    done = modules_after(["version"], prefixes=(*HEAVY, "rich", "yaml", "remora.cli"))
    assert done == {"code": 0, "loaded": ["remora.cli", "remora.cli.main"]}


def test_a_command_runs_and_usage_errors_exit_64() -> None:
    assert modules_after(["get"], prefixes=())["code"] == main.EXIT_INCORRECT_USAGE
    assert modules_after(["no-such-command"], prefixes=())["code"] == main.EXIT_INCORRECT_USAGE
    assert modules_after(["get", "--help"], prefixes=())["code"] == 0


class _ControlPlane(BaseHTTPRequestHandler):
    """Answers every GET with one VirtualService, as the resource API lists them."""

    def do_GET(self) -> None:
        item = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": "reviews", "namespace": "default",
                             "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"hosts": ["reviews"]}}
        body = json.dumps({"kind": "VirtualServiceList", "items": [item]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def control_plane() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ControlPlane)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()
    server.server_close()


def test_get_loads_neither_the_models_nor_asyncio(control_plane: str) -> None:
    for output in ("table", "wide", "json"):  # and neither rich nor yaml: tables are plain text
        done = modules_after(["get", "vs", "--server", control_plane, "-o", output],
                             prefixes=(*HEAVY, "rich", "yaml"))
        assert done == {"code": 0, "loaded": []}, output
    done = modules_after(["get", "vs", "--server", control_plane, "-o", "yaml"])
    assert done == {"code": 0, "loaded": []}


def test_status_loads_neither_the_models_nor_the_runner(tmp_path: Path) -> None:
    status = {"phase": "Ready", "controlplane": {"url": "http://127.0.0.1:1"},
              "instances": [], "gateways": []}
    (tmp_path / "status.json").write_text(json.dumps(status))
    for output in ("table", "json"):
        done = modules_after(["status", "--state-dir", str(tmp_path), "-o", output])
        assert done == {"code": 0, "loaded": []}, output
    done = modules_after(["status", "--state-dir", str(tmp_path), "-o", "json"],
                         prefixes=("rich", "yaml"))
    assert done == {"code": 0, "loaded": []}
