"""Nacos v1 open API (naming and config) over the registry and config center.

Clients send parameters in the query string or a form body (nacos-sdk-python puts everything
in the query, the long-poll probe in the body); both are read. Answers follow Nacos 1.4:
"ok" / "true" bodies, the /instance/list JSON, beat codes 10200 / 20404, and 400 with
"caused: ...;" for a missing or bad parameter (WebUtils.required, ResponseExceptionHandler).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute

from remora.controlplane.access import PARAMS
from remora.controlplane.state import ControlPlane
from remora.registry.configs import ConfigCenter, ConfigKey
from remora.registry.health import beat_timing
from remora.registry.model import (
    DEFAULT_CLUSTER,
    DEFAULT_GROUP,
    DEFAULT_NAMESPACE,
    Instance,
    RegistryError,
    Service,
    grouped,
    service_key,
    split_grouped,
)
from remora.registry.service import Registry

OK_CODE = 10200
NOT_FOUND_CODE = 20404
CACHE_MILLIS = 3000
WORD_SEPARATOR = "\x02"
LINE_SEPARATOR = "\x01"
MIN_HOLD = 10.0
"""Nacos holds a long poll at least 10 s and answers 0.5 s before the client's timeout."""


class _Params:
    """A request's parameters, query and form merged, read the way Nacos's WebUtils does."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def optional(self, name: str, default: str = "") -> str:
        value = self._values.get(name, "")
        # nacos-sdk-python sends clusterName=None when none is given
        return default if value in ("", "None") else value

    def required(self, name: str) -> str:
        value = self.optional(name)
        if not value:
            raise RegistryError(f"Param '{name}' is required.")
        return value

    def flag(self, name: str, default: bool) -> bool:
        """BooleanUtils.toBoolean: true/on/yes/y/t in any case."""
        value = self.optional(name)
        return default if not value else value.lower() in ("true", "on", "yes", "y", "t")

    def number(self, name: str, default: float) -> float:
        value = self.optional(name)
        try:
            number = float(value) if value else default
        except ValueError:
            number = math.nan
        if not math.isfinite(number):  # nan, inf: no parameter means them
            raise RegistryError(f"Param '{name}' must be a number, got {value!r}")
        return number

    def port(self) -> int:
        value = self.required("port")
        if not value.isdigit():
            raise RegistryError(f"Param 'port' must be an integer, got {value!r}")
        return int(value)

    def service(self) -> tuple[str, str, str]:
        """(namespace, group, service) from namespaceId, serviceName and groupName."""
        group, name = split_grouped(self.required("serviceName"), self.optional("groupName"))
        return self.optional("namespaceId", DEFAULT_NAMESPACE), group, name

    def metadata(self) -> dict[str, str] | None:
        """UtilsAndCommons.parseMetadata: a JSON object, else `k=v,k=v`."""
        raw = self.optional("metadata")
        return _metadata(raw) if raw else None

    def cluster(self) -> str:
        return self.optional("cluster") or self.optional("clusterName", DEFAULT_CLUSTER)


def _metadata(raw: str) -> dict[str, str]:
    try:
        data = json.loads(raw)
    except ValueError:
        pairs = [item.split("=", 1) for item in raw.split(",") if item]
        if any(len(pair) != 2 for pair in pairs):
            raise RegistryError(f"metadata must be JSON or k=v,k=v, got {raw!r}") from None
        return {key: value for key, value in pairs}
    if not isinstance(data, dict):
        raise RegistryError(f"metadata must be a JSON object, got {raw!r}")
    return {str(key): str(value) for key, value in data.items()}


async def request_values(request: Request) -> dict[str, str]:
    """A request's parameters, query and form merged (as the auth gate read them, if it ran)."""
    parsed: dict[str, str] | None = request.scope.get(PARAMS)  # read once, at the door
    if parsed is not None:
        return parsed
    values = dict(request.query_params)
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body = (await request.body()).decode("utf-8", "replace")
        values.update(parse_qsl(body, keep_blank_values=True))
    return values


async def _params(request: Request) -> _Params:
    return _Params(await request_values(request))


def _host(instance: Instance) -> dict[str, Any]:
    timing = beat_timing(instance.metadata)
    return {
        "instanceId": instance.instance_id, "ip": instance.ip, "port": instance.port,
        "weight": instance.weight, "healthy": instance.healthy, "enabled": instance.enabled,
        "ephemeral": instance.ephemeral, "clusterName": instance.cluster,
        "serviceName": grouped(instance.group, instance.service),
        "metadata": dict(instance.metadata),
        "instanceHeartBeatInterval": int(timing.interval * 1000),
        "instanceIdGenerator": "simple",
        "instanceHeartBeatTimeOut": int(timing.timeout * 1000),
        "ipDeleteTimeout": int(timing.delete_timeout * 1000),
    }


def _service_json(service: Service, registry: Registry) -> dict[str, Any]:
    checker = service.health_checker
    clusters = sorted({host.cluster for host in registry.instances(
        namespace=service.namespace, group=service.group, service=service.name).hosts})
    return {
        "namespaceId": service.namespace, "groupName": service.group, "name": service.name,
        "protectThreshold": service.protect_threshold, "metadata": dict(service.metadata),
        "selector": dict(service.selector),
        "clusters": [{"name": name, "metadata": {},
                      "healthChecker": {"type": checker.type}} for name in clusters],
    }


def _now_ms() -> int:
    return int(time.time() * 1000)


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


async def answer(handler: Handler, request: Request) -> Response:
    """Run a handler; a RegistryError becomes Nacos's plain-text 400 (or its own status)."""
    try:
        return await handler(request)
    except RegistryError as exc:
        return PlainTextResponse(f"caused: {exc};", status_code=exc.status)


class _NacosRoute(APIRoute):
    """Routes whose RegistryErrors are answered as Nacos answers them."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await answer(handler, request)

        return handle


router = APIRouter(prefix="/nacos/v1", tags=["nacos"], route_class=_NacosRoute)


def _registry(request: Request) -> Registry:
    state: ControlPlane = request.app.state.controlplane
    registry: Registry = state.registry
    return registry


def _configs(request: Request) -> ConfigCenter:
    state: ControlPlane = request.app.state.controlplane
    configs: ConfigCenter = state.configs
    return configs


def _enabled(params: _Params, default: bool) -> bool:
    """`enabled`, else the older `enable` (InstanceController.parseInstance)."""
    return params.flag("enabled" if params.optional("enabled") else "enable", default)


def _instance(params: _Params) -> Instance:
    namespace, group, service = params.service()
    return Instance(
        ip=params.required("ip"), port=params.port(), service=service,
        namespace=namespace, group=group, cluster=params.cluster(),
        weight=params.number("weight", 1.0), healthy=params.flag("healthy", True),
        enabled=_enabled(params, True), ephemeral=params.flag("ephemeral", True),
        metadata=params.metadata() or {},
    )


def _address(params: _Params) -> str:
    return f"{params.required('ip')}:{params.port()}"


@router.post("/ns/instance", response_class=PlainTextResponse)
async def register(request: Request) -> Response:
    await _registry(request).register(_instance(await _params(request)))
    return PlainTextResponse("ok")


@router.delete("/ns/instance", response_class=PlainTextResponse)
async def deregister(request: Request) -> Response:
    params = await _params(request)
    namespace, group, service = params.service()
    await _registry(request).deregister(namespace=namespace, group=group, service=service,
                                        cluster=params.cluster(), address=_address(params))
    return PlainTextResponse("ok")


@router.put("/ns/instance", response_class=PlainTextResponse)
async def update(request: Request) -> Response:
    """Change an instance; attributes the request leaves out keep their values."""
    params = await _params(request)
    namespace, group, service = params.service()
    registry = _registry(request)
    current = registry.get_instance(namespace=namespace, group=group, service=service,
                                    cluster=params.cluster(), address=_address(params))
    if current is None:
        raise RegistryError(f"instance not exist: {_instance(params).instance_id}")
    metadata = params.metadata()
    await registry.update(current.with_(
        weight=params.number("weight", current.weight), enabled=_enabled(params, current.enabled),
        metadata=current.metadata if metadata is None else metadata))
    return PlainTextResponse("ok")


@router.get("/ns/instance")
async def detail(request: Request) -> Response:
    params = await _params(request)
    namespace, group, service = params.service()
    found = _registry(request).get_instance(namespace=namespace, group=group, service=service,
                                            cluster=params.cluster(), address=_address(params))
    if found is None:
        raise RegistryError("no matched ip found!", status=404)
    return JSONResponse({"service": grouped(group, service), "ip": found.ip, "port": found.port,
                         "clusterName": found.cluster, "weight": found.weight,
                         "healthy": found.healthy, "instanceId": found.instance_id,
                         "metadata": dict(found.metadata)})


_LIST_CACHE: dict[tuple[int, int, str, str, str, str, bool], bytes] = {}
"""Encoded /instance/list answers by (the service's stamp, query): lists are read far more
often than a service changes, and encoding the hosts was most of a query's cost. The stamp is
per service, so registrations elsewhere (a storm of them, at 10,000 instances) leave the
answers for this service cached."""


@router.get("/ns/instance/list")
async def list_instances(request: Request) -> Response:
    params = await _params(request)
    namespace, group, service = params.service()
    clusters = params.optional("clusters")
    healthy_only = params.flag("healthyOnly", False)
    registry = _registry(request)
    key = (id(registry),
           registry.stamp(service_key(namespace=namespace, group=group, service=service)),
           namespace, group, service, clusters, healthy_only)
    body = _LIST_CACHE.get(key)
    if body is None:
        if len(_LIST_CACHE) > 10_000:
            _LIST_CACHE.clear()  # answers at older stamps are never asked for again
        body = _LIST_CACHE[key] = _list_body(registry, namespace=namespace, group=group,
                                             service=service, clusters=clusters,
                                             healthy_only=healthy_only)
    return Response(body, media_type="application/json")


def _list_body(registry: Registry, *, namespace: str, group: str, service: str, clusters: str,
               healthy_only: bool) -> bytes:
    found = registry.instances(namespace=namespace, group=group, service=service,
                               clusters=clusters.split(","), healthy_only=healthy_only)
    hosts = [_host(instance) for instance in found.hosts]
    svc = registry.get_service(namespace=namespace, group=group, name=service)
    checksum = hashlib.md5(json.dumps(hosts, sort_keys=True).encode()).hexdigest()
    return json.dumps({
        "name": grouped(group, service), "groupName": group, "clusters": clusters,
        "cacheMillis": CACHE_MILLIS, "hosts": hosts, "lastRefTime": _now_ms(),
        "checksum": checksum, "allIPs": False,
        "reachProtectionThreshold": found.reach_protection_threshold, "valid": True,
        "dom": grouped(group, service), "useSpecifiedURL": False, "env": "",
        "metadata": dict(svc.metadata) if svc else {},
    }).encode()


def _beat_info(params: _Params) -> dict[str, Any]:
    raw = params.optional("beat")
    try:
        info = json.loads(raw) if raw else {}
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise RegistryError(f"Param 'beat' must be a JSON object, got {raw!r}")
    return info


@router.put("/ns/instance/beat")
async def beat(request: Request) -> Response:
    """A client beat; an unknown instance is registered again from the beat's content
    (Nacos 1.4 InstanceController.beat), or answered 20404 when the beat has none."""
    params = await _params(request)
    info = _beat_info(params)
    namespace, group, service = params.service()
    cluster = str(info.get("cluster") or params.cluster())
    ip = str(info.get("ip") or params.required("ip"))
    port = info.get("port") or params.port()
    if not isinstance(port, int) or isinstance(port, bool):
        raise RegistryError(f"beat port must be an integer, got {port!r}")
    weight = info.get("weight", 1.0)
    if not isinstance(weight, int | float) or isinstance(weight, bool):
        raise RegistryError(f"beat weight must be a number, got {weight!r}")
    registry = _registry(request)
    timing = await registry.heartbeat(namespace=namespace, group=group, service=service,
                                      cluster=cluster, address=f"{ip}:{port}")
    if timing is None and not info:
        return JSONResponse({"clientBeatInterval": 5000, "code": NOT_FOUND_CODE})
    if timing is None:
        metadata = info.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise RegistryError("beat metadata must be a JSON object")
        instance = await registry.register(Instance(
            ip=ip, port=port, service=service, namespace=namespace, group=group,
            cluster=cluster, weight=float(weight),
            metadata={str(k): str(v) for k, v in metadata.items()}))
        timing = beat_timing(instance.metadata)
    return JSONResponse({"clientBeatInterval": int(timing.interval * 1000), "code": OK_CODE,
                         "lightBeatEnabled": False})


def _service(params: _Params, current: Service | None = None) -> Service:
    """A service from the request; attributes it leaves out keep `current`'s values."""
    namespace, group, name = params.service()
    base = current or Service(name=name, namespace=namespace, group=group)
    raw_selector = params.optional("selector")
    try:
        selector = json.loads(raw_selector) if raw_selector else dict(base.selector)
    except ValueError:
        selector = None
    if not isinstance(selector, dict):
        raise RegistryError(f"Param 'selector' must be a JSON object, got {raw_selector!r}")
    metadata = params.metadata()
    return Service(
        name=name, namespace=namespace, group=group, health_checker=base.health_checker,
        protect_threshold=params.number("protectThreshold", base.protect_threshold),
        metadata=base.metadata if metadata is None else metadata, selector=selector)


@router.post("/ns/service", response_class=PlainTextResponse)
async def create_service(request: Request) -> Response:
    await _registry(request).create_service(_service(await _params(request)))
    return PlainTextResponse("ok")


@router.put("/ns/service", response_class=PlainTextResponse)
async def update_service(request: Request) -> Response:
    params = await _params(request)
    namespace, group, name = params.service()
    registry = _registry(request)
    current = registry.get_service(namespace=namespace, group=group, name=name)
    if current is None:
        raise RegistryError(f"service {grouped(group, name)} not found")
    await registry.update_service(_service(params, current))
    return PlainTextResponse("ok")


@router.delete("/ns/service", response_class=PlainTextResponse)
async def delete_service(request: Request) -> Response:
    namespace, group, name = (await _params(request)).service()
    await _registry(request).delete_service(namespace=namespace, group=group, name=name)
    return PlainTextResponse("ok")


@router.get("/ns/service")
async def get_service(request: Request) -> Response:
    namespace, group, name = (await _params(request)).service()
    registry = _registry(request)
    svc = registry.get_service(namespace=namespace, group=group, name=name)
    if svc is None:
        raise RegistryError("service not found!", status=404)
    return JSONResponse(_service_json(svc, registry))


def _page(params: _Params, items: list[Any]) -> tuple[int, int, list[Any]]:
    """(pageNo, pageSize, the items of that page)."""
    page_no = max(1, int(params.number("pageNo", 1)))
    page_size = max(1, int(params.number("pageSize", 100)))
    return page_no, page_size, items[(page_no - 1) * page_size:page_no * page_size]


@router.get("/ns/service/list")
async def list_services(request: Request) -> Response:
    params = await _params(request)
    found = _registry(request).services(
        namespace=params.optional("namespaceId", DEFAULT_NAMESPACE),
        group=params.optional("groupName", DEFAULT_GROUP))
    _, _, page = _page(params, found)
    return JSONResponse({"count": len(found), "doms": [svc.name for svc in page]})


def _config_key(params: _Params) -> ConfigKey:
    return ConfigKey(data_id=params.required("dataId"), group=params.optional("group"),
                     namespace=params.optional("tenant"))


@router.get("/cs/configs")
async def get_config(request: Request) -> Response:
    params = await _params(request)
    if params.optional("search") and not params.optional("dataId"):
        return JSONResponse(await _config_page(_configs(request), params))
    config = _configs(request).get(_config_key(params))
    if config is None:
        return PlainTextResponse("config data not exist", status_code=404)
    return PlainTextResponse(config.content, headers={
        "Content-MD5": config.md5, "Config-Type": config.type,
        "Last-Modified": str(config.modified_ms)})


@router.post("/cs/configs", response_class=PlainTextResponse)
async def publish_config(request: Request) -> Response:
    params = await _params(request)
    await _configs(request).publish(_config_key(params), params.required("content"),
                                    type=params.optional("type", "text"),
                                    app_name=params.optional("appName"))
    return PlainTextResponse("true")


@router.delete("/cs/configs", response_class=PlainTextResponse)
async def delete_config(request: Request) -> Response:
    await _configs(request).remove(_config_key(await _params(request)))
    return PlainTextResponse("true")


@router.post("/cs/configs/listener", response_class=PlainTextResponse)
async def listen(request: Request) -> Response:
    """Long polling: answer the changed keys at once, at the first change, or empty just
    before the client's Long-Pulling-Timeout (no header, or No-Hangup: answer at once)."""
    params = await _params(request)
    probes = _parse_probes(params.required("Listening-Configs"))
    raw_timeout = request.headers.get("Long-Pulling-Timeout", "")
    if not raw_timeout.isdigit() or \
            request.headers.get("Long-Pulling-Timeout-No-Hangup", "").lower() == "true":
        hold = 0.0
    else:
        hold = max(MIN_HOLD, int(raw_timeout) / 1000 - 0.5)
    changed = await _configs(request).wait_changed(
        {key: md5 for key, (md5, _) in probes.items()}, timeout=hold)
    lines = []
    for key in changed:
        tenant = probes[key][1]
        fields = [key.data_id, key.group, *([tenant] if tenant else [])]
        lines.append(WORD_SEPARATOR.join(fields) + LINE_SEPARATOR)
    # MD5Util.compareMd5ResultString: URLEncoder.encode of the joined lines
    return PlainTextResponse(quote_plus("".join(lines)))


def _parse_probes(raw: str) -> dict[ConfigKey, tuple[str, str]]:
    """`dataId^2group^2md5[^2tenant]^1...` → key → (md5, tenant as the client sent it)."""
    probes = {}
    for line in raw.split(LINE_SEPARATOR):
        if not line:
            continue
        fields = line.split(WORD_SEPARATOR)
        if len(fields) not in (3, 4):
            raise RegistryError(f"invalid Listening-Configs entry {line!r}")
        tenant = fields[3] if len(fields) == 4 else ""
        key = ConfigKey(data_id=fields[0], group=fields[1], namespace=tenant)
        probes[key] = (fields[2], tenant)
    return probes


async def _config_page(center: ConfigCenter, params: _Params) -> dict[str, Any]:
    """The `search=accurate` page nacos-sdk-python's get_configs reads (pageItems)."""
    found = await center.configs(namespace=params.optional("tenant"),
                                 group=params.optional("group"))
    page_no, page_size, page = _page(params, found)
    return {
        "totalCount": len(found), "pageNumber": page_no,
        "pagesAvailable": (len(found) + page_size - 1) // page_size,
        "pageItems": [{"dataId": c.key.data_id, "group": c.key.group, "content": c.content,
                       "md5": c.md5, "tenant": params.optional("tenant"), "type": c.type,
                       "appName": c.app_name} for c in page],
    }
