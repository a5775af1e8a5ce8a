"""`remora controlplane` with its doors locked, tried from outside as users and attackers would:
real processes, curl and the `remora` CLI on 127.0.0.1."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from remora.runner.ports import free_port
from tests.e2e.meshkit import REMORA, run_controlplane, run_proxy


def remora(*args: str, env: dict[str, str], timeout: float = 60
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REMORA, *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env={"PATH": "/usr/bin:/bin", **env})


def test_the_auth_cli_manages_users_and_a_user_can_do_what_its_role_grants(
        tmp_path: Path) -> None:
    with run_controlplane(tmp_path) as plane:
        admin = {"REMORA_SERVER": plane.url, "REMORA_CREDENTIALS": str(plane.credentials)}
        steps = [
            ("auth", "users", "create", "alice", "--password", "alice-pw"),
            ("auth", "roles", "add", "dev", "alice"),
            ("auth", "permissions", "add", "dev", "default:networking.istio.io:*", "rw"),
        ]
        for step in steps:
            done = remora(*step, env=admin)
            assert done.returncode == 0, done.stderr
        listed = remora("auth", "permissions", "list", "-o", "json", env=admin)
        assert json.loads(listed.stdout) == [
            {"role": "dev", "resource": "default:networking.istio.io:*", "action": "rw"}]

        home = {"REMORA_SERVER": plane.url, "HOME": str(tmp_path / "home")}
        login = remora("auth", "login", "-u", "alice", "-p", "alice-pw", env=home)
        assert login.returncode == 0, login.stderr
        kept = tmp_path / "home" / ".remora" / "credentials.json"
        assert kept.stat().st_mode & 0o777 == 0o600 and "alice-pw" not in kept.read_text()
        vs = tmp_path / "vs.yaml"
        vs.write_text("apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                      "metadata: {name: r, namespace: default}\n"
                      "spec: {hosts: [r], http: [{route: [{destination: {host: r}}]}]}\n")
        applied = remora("apply", "-f", str(vs), env=home)
        assert applied.returncode == 0, applied.stderr
        secrets = remora("get", "secrets", "-n", "istio-system", env=home)
        assert secrets.returncode == 1
        assert 'User "alice" cannot list resource "secrets"' in secrets.stderr
        anonymous = remora("get", "vs", env={"REMORA_SERVER": plane.url,
                                             "HOME": str(tmp_path / "nobody")})
        assert anonymous.returncode == 1 and "Unauthorized" in anonymous.stderr
        assert "remora auth login" in anonymous.stderr
        token = remora("auth", "token", env=home).stdout.strip()
        curl = subprocess.run(["curl", "-s", "-H", f"Authorization: Bearer {token}",
                               f"{plane.url}/apis/networking.istio.io/v1/namespaces/default/"
                               "virtualservices/r"], capture_output=True, text=True, timeout=30,
                              check=True)
        assert json.loads(curl.stdout)["metadata"]["name"] == "r"


def test_no_auth_is_a_choice_the_log_warns_about(tmp_path: Path) -> None:
    with run_controlplane(tmp_path, args=("--no-auth",)) as plane:
        answer = httpx.post(f"{plane.url}/nacos/v1/ns/instance", timeout=10,
                            params={"serviceName": "web", "ip": "127.0.0.1", "port": "80"})
        assert answer.text == "ok"
        assert "authentication is OFF" in plane.log.read_text()


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "remora-controlplane")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(
                __import__("ipaddress").ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cp.crt", tmp_path / "cp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_the_api_is_served_over_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    data = tmp_path / "data"
    process = subprocess.Popen(
        [*REMORA, "controlplane", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data),
         "--tls-cert", str(cert), "--tls-key", str(key)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/healthz", verify=str(cert), timeout=1).text == "ok":
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        with pytest.raises(httpx.HTTPError):  # plaintext to a TLS port gets nothing
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        creds = json.loads((data / "credentials.json").read_text())
        assert creds["server"] == url
        env = {"REMORA_SERVER": url, "SSL_CERT_FILE": str(cert), "HOME": str(tmp_path),
               "REMORA_CREDENTIALS": str(data / "credentials.json")}
        got = remora("get", "namespaces", env=env)
        assert got.returncode == 0, got.stderr
        assert "istio-system" in got.stdout
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_a_bad_certificate_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    done = remora("controlplane", "--listen", f"127.0.0.1:{free_port()}", "--data-dir",
                  str(tmp_path / "d"), "--tls-cert", str(bad), "--tls-key", str(bad),
                  env={"HOME": str(tmp_path), **{k: v for k, v in os.environ.items()
                                                  if k.startswith("PYTHON")}}, timeout=30)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "TLS" in done.stderr and str(bad) in done.stderr


def test_only_the_user_who_opened_a_proxys_stream_may_ack_for_it(tmp_path: Path) -> None:
    """Otherwise any proxy token could mark another proxy synced, or hide its errors."""
    with run_controlplane(tmp_path) as plane, \
            run_proxy(tmp_path, tmp=tmp_path, controlplane=plane.url):
        (proxy,) = httpx.get(f"{plane.url}/api/remora/v1/proxies", headers=plane.headers,
                             timeout=10).json()
        for path, params in [("users", {"username": "intruder", "password": "pw"}),
                             ("roles", {"role": "proxies", "username": "intruder"}),
                             ("permissions", {"role": "proxies", "action": "r",
                                              "resource": "*:remora:discovery/sidecar"})]:
            done = httpx.post(f"{plane.url}/nacos/v1/auth/{path}", params=params,
                              headers=plane.headers, timeout=10)
            assert done.status_code == 200, done.text
        token = httpx.post(f"{plane.url}/nacos/v1/auth/login", timeout=30, data={
            "username": "intruder", "password": "pw"}).json()["accessToken"]
        forged = httpx.post(f"{plane.url}/api/remora/v1/discovery/ack", timeout=10,
                            headers={"Authorization": f"Bearer {token}"},
                            json={"node": proxy["id"], "version": "forged", "error": None})
        assert forged.status_code == 403, forged.text
        after = httpx.get(f"{plane.url}/api/remora/v1/proxies", headers=plane.headers,
                          timeout=10).json()[0]
        assert after["acked"] == proxy["acked"] != "forged"
        anonymous = httpx.post(f"{plane.url}/api/remora/v1/discovery/ack", timeout=10,
                               json={"node": proxy["id"], "version": "forged", "error": None})
        assert anonymous.status_code == 401
