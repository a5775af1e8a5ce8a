"""The root a client verifies an https control plane with, found beside its credentials: the
entry's caCert, else root-cert.pem next to the file (`remora controlplane --tls auto`'s data
directory), else $REMORA_CA_CERT; `remember` keeps it for the server."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest

from remora.credentials import Credentials, CredentialsError, TokenSource, read_file, remember
from tests.certkit import MeshCA


def test_the_root_beside_the_credentials_is_theirs_and_remembered(tmp_path: Path) -> None:
    data = tmp_path / "cp-data"
    data.mkdir()
    (data / "credentials.json").write_text(json.dumps({
        "server": "https://127.0.0.1:8848", "username": "admin", "password": "pw"}))
    (data / "root-cert.pem").write_text(MeshCA.create("the mesh").pem)
    found = read_file(data / "credentials.json")[0]
    assert found.ca_cert == str((data / "root-cert.pem").absolute())
    home = tmp_path / "home.json"
    remember(found, home)
    kept = read_file(home)[0]  # no root beside this one: the entry names it
    assert kept.ca_cert == found.ca_cert
    context = TokenSource(kept.server, kept).tls_context()
    assert isinstance(context, ssl.SSLContext)
    # the mesh's root beside the system's (a control plane may serve either's certificate)
    subjects = [dict(item[0] for item in cert["subject"]) for cert in context.get_ca_certs()]
    assert {"organizationName": "the mesh"} in subjects


def test_without_a_root_the_system_store_and_a_bad_one_is_one_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REMORA_CA_CERT", raising=False)
    assert TokenSource("https://cp", Credentials("https://cp")).tls_context() is None
    monkeypatch.setenv("REMORA_CA_CERT", str(tmp_path / "missing.pem"))
    with pytest.raises(CredentialsError, match="cannot read the control plane's root"):
        TokenSource("https://cp", None).tls_context()
