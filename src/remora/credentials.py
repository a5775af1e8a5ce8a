"""Credentials for a control plane, on the client side: where to find them, and tokens from them.

A credentials file is JSON: `{"server": URL, "username": ..., "password": ...}` (or `"token"`
instead of the password). The control plane writes one for its first admin in its data
directory (mode 0600), `remora up` writes one per role in its state directory, and
`remora auth login` keeps one per server in ~/.remora/credentials.json. Clients look, in order:

1. $REMORA_TOKEN (a token, for scripts and curl users);
2. $REMORA_CREDENTIALS (a file);
3. ./.remora/credentials.json (a control plane started here), the running `remora up`'s
   .remora/up/controlplane/credentials.json (here or in a parent: remora.context finds it as it
   finds the control plane), ~/.remora/credentials.json;

and take the first whose server is the one they talk to. Tokens are fetched from Nacos's
login API (`POST /nacos/v1/auth/login`) and fetched again shortly before `tokenTtl` runs out.
Over https the control plane is verified against the mesh's root when one is known (else the
system's trust store): the file an entry names (`"caCert": PATH`), else a `root-cert.pem`
beside the credentials file (where `remora controlplane --tls auto` writes it, in its data
directory), else $REMORA_CA_CERT.
Standard library only: every command and the proxy use it.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from remora import context
from remora.errors import RemoraError

LOGIN_PATH = "/nacos/v1/auth/login"
FILE_NAME = "credentials.json"
ROOT_CERT = "root-cert.pem"
"""The mesh's root, as `remora controlplane --tls auto` writes it beside its credentials."""
CA_ENV = "REMORA_CA_CERT"
RENEW_BEFORE = 60.0  # seconds before expiry a token is renewed


class CredentialsError(RemoraError):
    """Credentials that cannot be read, or that the control plane refuses."""


def home_file() -> Path:
    return Path(os.environ.get("HOME", "~")).expanduser() / ".remora" / FILE_NAME


def same_server(a: str, b: str) -> bool:
    """URLs naming the same control plane (localhost, 127.0.0.1 and 0.0.0.0 alike)."""
    def norm(url: str) -> tuple[str, str, int | None]:
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        host = parts.hostname or ""
        if host in ("localhost", "0.0.0.0", "::", "::1"):
            host = "127.0.0.1"
        return parts.scheme, host, parts.port or (443 if parts.scheme == "https" else 80)
    return norm(a) == norm(b)


@dataclass(frozen=True, slots=True)
class Credentials:
    server: str
    username: str = ""
    password: str = ""
    token: str = ""
    ca_cert: str = ""  # the root the server's certificate must chain to ("": not known)

    def fields(self) -> dict[str, str]:
        """What a file keeps of it (the server aside): the password, else the token; the
        root's path when there is one."""
        secret = {"password": self.password} if self.password else {"token": self.token}
        root = {"caCert": self.ca_cert} if self.ca_cert else {}
        return {"username": self.username, **secret, **root}


def read_file(path: Path) -> list[Credentials]:
    """The entries of a credentials file: one object, or {"servers": {url: {...}}}."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"cannot read credentials {path}: {exc}") from None
    entries = [dict(v, server=k) for k, v in data["servers"].items()] \
        if isinstance(data, dict) and isinstance(data.get("servers"), dict) else [data]
    beside = path.parent / ROOT_CERT
    root = str(beside.absolute()) if beside.is_file() else ""
    found = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("server"), str):
            raise CredentialsError(f"{path}: expected {{server, username, password|token}}")
        found.append(Credentials(entry["server"], str(entry.get("username", "")),
                                 str(entry.get("password", "")), str(entry.get("token", "")),
                                 str(entry.get("caCert") or root)))
    return found


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """JSON readable by its owner only (mode 0600 from the first byte)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
        out.write("\n")


def write_file(path: Path, credentials: Credentials) -> None:
    """A single-entry file."""
    _write_private(path, {"server": credentials.server, **credentials.fields()})


def remember(credentials: Credentials, path: Path | None = None) -> Path:
    """Keep `credentials` for their server in the per-user file (`remora auth login`)."""
    path = path or home_file()
    kept = [c for c in read_file(path) if not same_server(c.server, credentials.server)] \
        if path.exists() else []
    _write_private(path, {"servers": {c.server: c.fields() for c in [*kept, credentials]}})
    return path


def find(server: str) -> Credentials | None:
    """The credentials for `server`, looked up as the module docstring says."""
    token = os.environ.get("REMORA_TOKEN", "")
    if token:
        return Credentials(server, token=token)
    named = os.environ.get("REMORA_CREDENTIALS", "")
    candidates = [Path(named)] if named else [*context.credential_files(), home_file()]
    for path in candidates:
        if not path.exists():
            continue
        for entry in read_file(path):
            if named or same_server(entry.server, server):
                return entry
    return None


def tls_context(ca_file: str) -> ssl.SSLContext | None:
    """What an https server is verified with: the system's trust store and `ca_file` (the
    mesh's root) beside it, since a control plane may serve a certificate of either; None:
    the system's trust store alone."""
    if not ca_file:
        return None
    try:
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=ca_file)
        return context
    except (OSError, ssl.SSLError) as exc:
        raise CredentialsError(f"cannot read the control plane's root {ca_file}: "
                               f"{getattr(exc, 'strerror', None) or exc}") from None


def login(server: str, username: str, password: str, *, timeout: float = 30.0,
          context: ssl.SSLContext | None = None) -> tuple[str, float]:
    """(accessToken, seconds it lives) from the control plane's login API."""
    body = urllib.parse.urlencode({"username": username, "password": password}).encode()
    request = urllib.request.Request(server.rstrip("/") + LOGIN_PATH, data=body, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        reason = exc.read().decode(errors="replace").strip() or f"HTTP {exc.code}"
        raise CredentialsError(f"login to {server} as {username!r} refused: {reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        cause: object = getattr(exc, "reason", exc)
        if isinstance(cause, ssl.SSLCertVerificationError):
            cause = f"its certificate is not trusted: {cause.verify_message or cause}"
        raise CredentialsError(f"cannot log in to {server}: {cause}") from None
    return str(answer["accessToken"]), float(answer.get("tokenTtl", 18000))


class TokenSource:
    """A token for one control plane, logged in lazily and renewed before it expires.
    Thread-safe: async callers use it through asyncio.to_thread. `ca_file` is the root the
    server is verified with (default: the credentials', else $REMORA_CA_CERT)."""

    def __init__(self, server: str, credentials: Credentials | None, *,
                 ca_file: str = "") -> None:
        self.server = server
        self.credentials = credentials
        self.ca_file = ca_file or (credentials.ca_cert if credentials else "") or \
            os.environ.get(CA_ENV, "")
        self._token = credentials.token if credentials else ""
        self._expires = float("inf") if self._token else 0.0
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None

    @classmethod
    def for_server(cls, server: str, *, ca_file: str = "") -> TokenSource:
        return cls(server, find(server), ca_file=ca_file)

    def tls_context(self) -> ssl.SSLContext | None:
        """The context https requests to the server use (None: the system's trust store)."""
        if self._context is None and self.ca_file:
            self._context = tls_context(self.ca_file)
        return self._context

    def token(self, *, renew: bool = False) -> str:
        """The token ("" when there are no credentials: the server may not need one)."""
        creds = self.credentials
        if creds is None or not creds.password:
            return self._token
        with self._lock:
            if renew or time.monotonic() >= self._expires - RENEW_BEFORE:
                token, ttl = login(self.server, creds.username, creds.password,
                                   context=self.tls_context())
                self._token, self._expires = token, time.monotonic() + ttl
            return self._token

    def headers(self, *, renew: bool = False) -> dict[str, str]:
        token = self.token(renew=renew)
        return {"Authorization": f"Bearer {token}"} if token else {}
