"""Where clients find credentials (remora.credentials): env first, then files for the server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from remora.credentials import Credentials, find, read_file, remember, same_server, write_file


def test_same_server_treats_local_names_alike_and_ports_apart() -> None:
    assert same_server("http://localhost:8848", "http://127.0.0.1:8848/")
    assert same_server("0.0.0.0:8848", "http://127.0.0.1:8848")
    assert not same_server("http://127.0.0.1:8848", "http://127.0.0.1:15080")
    assert not same_server("https://127.0.0.1:8848", "http://127.0.0.1:8848")


def test_remember_keeps_one_entry_per_server_owner_readable_only(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    remember(Credentials("http://127.0.0.1:1", "a", token="t1"), path)
    remember(Credentials("http://127.0.0.1:2", "b", password="p"), path)
    remember(Credentials("http://localhost:1", "c", token="t2"), path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text()) == {"servers": {
        "http://127.0.0.1:2": {"username": "b", "password": "p"},
        "http://localhost:1": {"username": "c", "token": "t2"}}}
    assert {c.username for c in read_file(path)} == {"b", "c"}


def test_find_prefers_the_token_then_the_named_file_then_files_for_the_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("REMORA_TOKEN", "REMORA_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    assert find("http://127.0.0.1:8848") is None
    write_file(tmp_path / ".remora" / "credentials.json",
               Credentials("http://127.0.0.1:8848", "admin", "pw"))
    assert find("http://127.0.0.1:9999") is None  # another server's file is not used
    assert find("http://localhost:8848") == Credentials("http://127.0.0.1:8848", "admin", "pw")
    named = tmp_path / "other.json"
    write_file(named, Credentials("http://elsewhere:1", "proxy", "pw2"))
    monkeypatch.setenv("REMORA_CREDENTIALS", str(named))
    assert find("http://127.0.0.1:8848").username == "proxy"  # type: ignore[union-attr]
    monkeypatch.setenv("REMORA_TOKEN", "tok")
    assert find("http://x:1") == Credentials("http://x:1", token="tok")
