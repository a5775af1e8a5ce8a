"""The control plane over HTTP, as `remora up` uses it: health, bulk apply, Nacos registrations,
the workloads it watches and the status and scale it writes.

The runner never imports the control plane: it talks to the process it started, as any client
would (the resource API and the Nacos v1 open API).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from remora.credentials import Credentials, CredentialsError, TokenSource
from remora.errors import RemoraError

DEFAULT_NAMESPACE = "default"
NACOS_PUBLIC = "public"


class ControlPlaneError(RemoraError):
    """The control plane refused a request or could not be reached."""


def nacos_namespace(namespace: str) -> str:
    """Kubernetes' `default` namespace is Nacos's `public` (registry_view maps it back)."""
    return NACOS_PUBLIC if namespace == DEFAULT_NAMESPACE else namespace


async def wait_http_ok(client: httpx.AsyncClient, url: str, *, timeout: float,
                       interval: float = 0.05) -> bool:
    """Poll `url` until it answers 200 or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = await client.get(url, timeout=1.0)
            if response.status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)


class ControlPlaneClient:
    """Calls to one control plane; every failure becomes a ControlPlaneError with its reason."""

    def __init__(self, url: str, client: httpx.AsyncClient, *, ca_file: str = "") -> None:
        self.url = url.rstrip("/")
        self._client = client
        self.ca_file = ca_file  # the root logins verify an https control plane with
        self.tokens = TokenSource(self.url, None, ca_file=ca_file)

    def use(self, credentials: Credentials) -> None:
        """Call as this user from now on (its token is fetched when first needed)."""
        self.tokens = TokenSource(self.url, credentials, ca_file=self.ca_file)

    async def wait_healthy(self, timeout: float) -> bool:
        return await wait_http_ok(self._client, f"{self.url}/healthz", timeout=timeout)

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            headers = await asyncio.to_thread(self.tokens.headers)
            response = await self._client.request(method, self.url + path, timeout=30.0,
                                                  headers={**kwargs.pop("headers", {}),
                                                           **headers}, **kwargs)
        except CredentialsError as exc:
            raise ControlPlaneError(str(exc)) from None
        except httpx.HTTPError as exc:
            raise ControlPlaneError(f"control plane {self.url}: {exc}") from None
        if response.status_code >= 400:
            raise ControlPlaneError(f"control plane {method} {path}: HTTP "
                                    f"{response.status_code}: {_reason(response)}")
        return response

    async def apply(self, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`kubectl apply` of every document; the per-object results."""
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": documents})
        response = await self._call("POST", "/api/remora/apply", content=body,
                                    headers={"Content-Type": "application/json"})
        items: list[dict[str, Any]] = response.json().get("items", [])
        return items

    async def get(self, path: str) -> dict[str, Any]:
        """A GET of the resource API (a list, an object)."""
        answer: dict[str, Any] = (await self._call("GET", path)).json()
        return answer

    async def put(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A PUT of the resource API (an object, its status, its scale)."""
        response = await self._call("PUT", path, content=json.dumps(body),
                                    headers={"Content-Type": "application/json"})
        answer: dict[str, Any] = response.json()
        return answer

    async def watch(self, path: str, resource_version: str) -> AsyncIterator[dict[str, Any]]:
        """The watch events of a collection after `resource_version`, until the server ends
        the stream; ControlPlaneError when it cannot be opened or breaks."""
        try:
            headers = await asyncio.to_thread(self.tokens.headers)
            async with self._client.stream(
                    "GET", self.url + path, headers=headers, timeout=httpx.Timeout(
                        30.0, read=None),
                    params={"watch": "true", "resourceVersion": resource_version}) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise ControlPlaneError(f"control plane watch {path}: HTTP "
                                            f"{response.status_code}: {_reason(response)}")
                async for line in response.aiter_lines():
                    if line.strip():
                        yield json.loads(line)
        except CredentialsError as exc:
            raise ControlPlaneError(str(exc)) from None
        except httpx.HTTPError as exc:
            raise ControlPlaneError(f"control plane {self.url}: {exc}") from None

    async def auth(self, method: str, what: str, params: Mapping[str, str]) -> None:
        """A call of the Nacos auth API (`users`, `roles`, `permissions`)."""
        await self._call(method, f"/nacos/v1/auth/{what}", params=dict(params))

    async def register(self, *, service: str, namespace: str, port: int,
                       labels: Mapping[str, str], ip: str = "127.0.0.1") -> None:
        """A persistent instance (the runner owns its lifecycle, no beats)."""
        await self._call("POST", "/nacos/v1/ns/instance", params={
            "serviceName": service, "namespaceId": nacos_namespace(namespace), "ip": ip,
            "port": str(port), "ephemeral": "false", "metadata": json.dumps(dict(labels)),
        })

    async def identity_token(self, *, namespace: str, service_account: str, pod: str) -> str:
        """A token that proves to the CA that a sidecar runs for this pod (issue it only to
        the pod's sidecar: whoever holds it gets the service account's certificate)."""
        response = await self._call("POST", "/api/remora/v1/identitytokens", json={
            "namespace": namespace, "serviceAccount": service_account, "pod": pod})
        return str(response.json()["token"])

    async def deregister(self, *, service: str, namespace: str, port: int,
                         ip: str = "127.0.0.1") -> None:
        await self._call("DELETE", "/nacos/v1/ns/instance", params={
            "serviceName": service, "namespaceId": nacos_namespace(namespace), "ip": ip,
            "port": str(port), "ephemeral": "false",
        })


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300]
    if isinstance(body, dict):
        return str(body.get("message") or body)[:300]
    return str(body)[:300]
