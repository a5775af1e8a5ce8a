"""Where clients find the current mesh (remora.context): flag, env, a running `remora up`,
the default — and its credentials next to it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from remora import context
from remora.credentials import Credentials, find, write_file
from remora.runner import procfs


def fake_up(root: Path, url: str, *, pid: int) -> Path:
    state = root / ".remora" / "up"
    state.mkdir(parents=True)
    (state / "status.json").write_text(json.dumps({"controlplane": {"url": url}}))
    (state / "supervisor.pid").write_text(f"{pid} {procfs.start_ticks(pid)}\n")
    return state


def test_flag_then_env_then_running_up_then_default(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name in context.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    assert context.current() == context.Current(context.DEFAULT_SERVER, "default")
    state = fake_up(tmp_path, "http://127.0.0.1:15080", pid=os.getpid())
    (tmp_path / "sub").mkdir()
    found = context.current(cwd=tmp_path / "sub")  # from a subdirectory too
    assert (found.server, found.up_state) == ("http://127.0.0.1:15080", state.resolve())
    monkeypatch.setenv("REMORA_SERVER", "http://127.0.0.1:2")
    assert context.current().server == "http://127.0.0.1:2"
    monkeypatch.setenv("REMORA_CONTROLPLANE", "http://127.0.0.1:1")
    assert context.current().server == "http://127.0.0.1:1"
    assert context.current("http://127.0.0.1:3").origin == "--server"


def test_a_stopped_up_is_not_the_current_mesh(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for name in context.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    fake_up(tmp_path, "http://127.0.0.1:15080", pid=os.getpid())
    pid_file = tmp_path / ".remora" / "up" / "supervisor.pid"
    pid_file.write_text(f"{os.getpid()} 1\n")  # the pid was reused by another process
    assert context.current(cwd=tmp_path).server == context.DEFAULT_SERVER
    assert context.stopped_up(tmp_path) == (tmp_path / ".remora" / "up").resolve()


def test_credentials_follow_the_running_up_found_from_a_subdirectory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REMORA_TOKEN", "REMORA_CREDENTIALS", *context.ENV_VARS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    state = fake_up(tmp_path, "http://127.0.0.1:15080", pid=os.getpid())
    write_file(state / "controlplane" / "credentials.json",
               Credentials("http://127.0.0.1:15080", "admin", "pw"))
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    server = context.current().server
    assert find(server) == Credentials("http://127.0.0.1:15080", "admin", "pw")
