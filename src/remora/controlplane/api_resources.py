"""The resource API at Kubernetes' paths, so kubectl users recognise it, plus one bulk apply.

- `/apis/{group}/{version}/namespaces/{namespace}/{plural}[/{name}]` and
  `/api/v1/namespaces/{namespace}/{plural}[/{name}]`: list (GET, `?labelSelector=`,
  `?watch=true&resourceVersion=N` streams JSON lines), create (POST), get, replace (PUT), delete;
- `/apis/{group}/{version}/{plural}[/{name}]`, `/api/v1/{plural}[/{name}]`: lists across
  namespaces, and the cluster-scoped kinds (Namespace);
- `.../{name}/status` and, for Deployments and StatefulSets, `.../{name}/scale`: the
  subresources controllers write (subresources.py);
- `POST /api/remora/apply`: YAML or JSON, many documents, `kubectl apply` per object.
Analyzer warnings travel as `Warning: 299 - "..."` headers, as the API server sends them.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, NamedTuple

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, StreamingResponse

from remora.api.resource import DEFAULT_NAMESPACE, split_api_version
from remora.controlplane import subresources
from remora.controlplane.access import WRITE, Need, kube
from remora.controlplane.auth_gate import require
from remora.controlplane.distribution import with_proxy_status, with_validation_messages
from remora.controlplane.kindnames import ResourceType, by_kind, by_plural
from remora.controlplane.resources import (
    SINGLE_RESOURCE_ANALYZERS,
    Applied,
    BadRequestError,
    Cause,
    Mode,
    NotFoundError,
    ResourceError,
    ResourceStore,
    validate,
)
from remora.controlplane.selectors import parse_selector
from remora.controlplane.state import ControlPlane
from remora.controlplane.status import error_body, read_documents, status

router = APIRouter(tags=["resources"])

_EXAMPLE = {
    "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
    "metadata": {"name": "reviews", "namespace": "default"},
    "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]},
}
_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "additionalProperties": True},
                         "example": _EXAMPLE},
    "application/yaml": {"schema": {"type": "string"}},
}}}
_STATUS: dict[int | str, dict[str, Any]] = {code: {"description": text} for code, text in (
    (400, "malformed body or parameters (Status)"), (404, "unknown kind, namespace or name"),
    (409, "conflict (Status)"), (413, "body too large"), (415, "unsupported content type"),
    (422, "invalid object (Status with causes)"))}

Selector = Annotated[str | None, Query(alias="labelSelector")]
Watch = Annotated[bool, Query()]
Version = Annotated[str | None, Query(alias="resourceVersion")]
Timeout = Annotated[float | None, Query(alias="timeoutSeconds", ge=0, le=86400)]


def _resources(request: Request) -> ResourceStore:
    state: ControlPlane = request.app.state.controlplane
    return state.resources


Resources = Annotated[ResourceStore, Depends(_resources)]


def _type(group: str, version: str, plural: str) -> ResourceType:
    rtype = by_plural(group, plural)
    if rtype is None or version not in rtype.versions:
        api = f"{group}/{version}" if group else version
        raise NotFoundError(f"the server could not find the requested resource ({plural} in {api})")
    return rtype


class Target(NamedTuple):
    """The type a path names and the version it asks for."""

    rtype: ResourceType
    version: str


def _group_target(group: Annotated[str, PathParam(examples=["networking.istio.io"])],
                  version: Annotated[str, PathParam(examples=["v1"])],
                  plural: Annotated[str, PathParam(examples=["virtualservices"])]) -> Target:
    return Target(_type(group, version, plural), version)


def _core_target(plural: Annotated[str, PathParam(examples=["services"])]) -> Target:
    """/api/v1 only: the core group has one version, and /api/remora/... is Remora's own."""
    return Target(_type("", "v1", plural), "v1")


def _as_version(obj: dict[str, Any], rtype: ResourceType, version: str) -> dict[str, Any]:
    """The object as the requested version shows it (Istio's versions share one schema)."""
    obj["apiVersion"] = f"{rtype.group}/{version}" if rtype.group else version
    return obj


def _warnings(applied: Applied) -> dict[str, str]:
    if not applied.warnings:
        return {}
    return {"Warning": ", ".join(f'299 - {json.dumps(w)}' for w in applied.warnings)}


def _in_namespace(namespace: Annotated[str, PathParam(examples=["default"])]) -> str | None:
    return namespace


def _cluster_wide() -> str | None:
    return None


def _routes(prefix: str, resolve: Callable[..., Target],
            scope: Callable[..., str | None]) -> None:
    """Register the handlers under `prefix` (with {group} for /apis, without for /api);
    `scope` gives the {namespace} of the path, or None for the cluster-wide paths."""
    Path = Annotated[Target, Depends(resolve)]  # noqa: N806 (type aliases)
    Scope = Annotated[str | None, Depends(scope)]  # noqa: N806

    async def list_(*, target: Path, namespace: Scope, resources: Resources,
                    label_selector: Selector = None, watch: Watch = False,
                    resource_version: Version = None, timeout: Timeout = None) -> Response:
        """List or watch a kind's objects (across namespaces on the cluster-wide path)."""
        rtype, version = target
        if namespace is not None:
            _check_scope(rtype, namespace)
        return await _list(resources, rtype, version, namespace, label_selector=label_selector,
                           watch=watch, resource_version=resource_version, timeout=timeout)

    async def create(*, request: Request, target: Path, namespace: Scope,
                     resources: Resources) -> JSONResponse:
        """Create one object (409 AlreadyExists when it does)."""
        rtype, version = target
        document = await _one_document(request, rtype, namespace=_check_scope(rtype, namespace))
        applied = await resources.apply(document, mode=Mode.CREATE,
                                        namespace=namespace or DEFAULT_NAMESPACE)
        return JSONResponse(_as_version(applied.object, rtype, version), status_code=201,
                            headers=_warnings(applied))

    async def get(*, request: Request, target: Path, namespace: Scope, name: str,
                  resources: Resources) -> dict[str, Any]:
        """Read one object (its status says when connected proxies could not apply it)."""
        rtype, version = target
        obj = await resources.get(rtype, _check_scope(rtype, namespace), name)
        obj = with_validation_messages(obj, SINGLE_RESOURCE_ANALYZERS)
        obj = with_proxy_status(request.app.state.controlplane.push, obj)
        return _as_version(obj, rtype, version)

    async def replace(*, request: Request, target: Path, namespace: Scope, name: str,
                      resources: Resources) -> JSONResponse:
        """Replace an existing object (404 when absent; 409 on a stale resourceVersion)."""
        rtype, version = target
        document = await _one_document(request, rtype, namespace=_check_scope(rtype, namespace),
                                       name=name)
        applied = await resources.apply(document, mode=Mode.UPDATE,
                                        namespace=namespace or DEFAULT_NAMESPACE)
        return JSONResponse(_as_version(applied.object, rtype, version),
                            headers=_warnings(applied))

    async def delete(*, target: Path, namespace: Scope, name: str,
                     resources: Resources) -> dict[str, Any]:
        """Delete one object; answers with its last state."""
        rtype, version = target
        obj = await resources.delete(rtype, _check_scope(rtype, namespace), name)
        return _as_version(obj, rtype, version)

    path = f"{prefix}/namespaces/{{namespace}}/{{plural}}" if scope is _in_namespace \
        else f"{prefix}/{{plural}}"
    router.add_api_route(path, list_, methods=["GET"], responses=_STATUS)
    router.add_api_route(path, create, methods=["POST"], status_code=201,
                         openapi_extra=_BODY, responses=_STATUS)
    item = f"{path}/{{name}}"
    router.add_api_route(item, get, methods=["GET"], responses=_STATUS)
    router.add_api_route(item, replace, methods=["PUT"], openapi_extra=_BODY, responses=_STATUS)
    router.add_api_route(item, delete, methods=["DELETE"], responses=_STATUS)
    _subresource_routes(item, resolve, scope)


def _subresource_routes(item: str, resolve: Callable[..., Target],
                        scope: Callable[..., str | None]) -> None:
    """`{item}/status` and `{item}/scale` (subresources.py)."""
    Path = Annotated[Target, Depends(resolve)]  # noqa: N806 (type aliases)
    Scope = Annotated[str | None, Depends(scope)]  # noqa: N806

    async def get_status(*, target: Path, namespace: Scope, name: str,
                         resources: Resources) -> dict[str, Any]:
        """Read one object through its status subresource."""
        rtype, version = target
        obj = await resources.get(rtype, _check_scope(rtype, namespace), name)
        return _as_version(obj, rtype, version)

    async def replace_status(*, request: Request, target: Path, namespace: Scope, name: str,
                             resources: Resources) -> dict[str, Any]:
        """Replace only the object's `.status` (what a controller reports)."""
        rtype, version = target
        ns = _check_scope(rtype, namespace)
        document = await _one_document(request, rtype, namespace=ns, name=name)
        obj = await subresources.write_status(resources, rtype, ns, name, document)
        return _as_version(obj, rtype, version)

    async def get_scale(*, target: Path, namespace: Scope, name: str,
                        resources: Resources) -> dict[str, Any]:
        """The autoscaling/v1 Scale of a Deployment or StatefulSet."""
        rtype, _ = target
        return await subresources.get_scale(resources, rtype, _check_scope(rtype, namespace),
                                            name)

    async def replace_scale(*, request: Request, target: Path, namespace: Scope, name: str,
                            resources: Resources) -> dict[str, Any]:
        """Set `spec.replicas` from a Scale (what a HorizontalPodAutoscaler does)."""
        rtype, _ = target
        documents = await read_documents(request)
        if len(documents) != 1:
            raise BadRequestError(f"expected one Scale in the body, got {len(documents)}")
        return await subresources.write_scale(resources, rtype, _check_scope(rtype, namespace),
                                              name, documents[0])

    router.add_api_route(f"{item}/status", get_status, methods=["GET"], responses=_STATUS)
    router.add_api_route(f"{item}/status", replace_status, methods=["PUT"],
                         openapi_extra=_BODY, responses=_STATUS)
    router.add_api_route(f"{item}/scale", get_scale, methods=["GET"], responses=_STATUS)
    router.add_api_route(f"{item}/scale", replace_scale, methods=["PUT"], responses=_STATUS)


def _check_scope(rtype: ResourceType, namespace: str | None) -> str:
    """The namespace an object of `rtype` is addressed in ("" when cluster-scoped); 404 when
    the path puts a namespaced kind outside a namespace, or a cluster-scoped one inside."""
    if rtype.namespaced and namespace is None:
        raise NotFoundError(f"{rtype.plural} are namespaced: use .../namespaces/NAMESPACE/"
                            f"{rtype.plural}")
    if not rtype.namespaced and namespace is not None:
        raise NotFoundError(f"{rtype.plural} are not namespaced")
    return namespace or ""


async def _one_document(request: Request, rtype: ResourceType, *, namespace: str,
                        name: str | None = None) -> Any:
    """The single object of a POST/PUT body, checked against the path it was sent to."""
    documents = await read_documents(request)
    if len(documents) != 1:
        raise BadRequestError(f"expected one object in the body, got {len(documents)}")
    document = documents[0]
    if not isinstance(document, dict):
        return document  # validate() reports it
    if document.get("kind") != rtype.kind:
        raise BadRequestError(f"the kind of the object ({document.get('kind')!r}) does not match "
                              f"the path ({rtype.plural})")
    meta = document.get("metadata")
    if isinstance(meta, dict):
        if namespace and meta.get("namespace") not in (None, namespace):
            raise BadRequestError("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
        if name is not None and meta.get("name") != name:
            raise BadRequestError("the name of the object does not match the name on the URL")
    return document


async def _list(resources: ResourceStore, rtype: ResourceType, version: str,
                namespace: str | None, *, label_selector: str | None, watch: bool,
                resource_version: str | None, timeout: float | None) -> Response:
    selector = parse_selector(label_selector)
    if watch:
        stream = resources.watch(rtype, namespace, resource_version=resource_version,
                                 selector=selector)
        return StreamingResponse(_lines(stream, rtype, version, timeout),
                                 media_type="application/json")
    items, revision = await resources.list(rtype, namespace, selector)
    return JSONResponse({
        "apiVersion": f"{rtype.group}/{version}" if rtype.group else version,
        "kind": f"{rtype.kind}List",
        "metadata": {"resourceVersion": str(revision)},
        "items": [_as_version(item, rtype, version) for item in items],
    })


async def _lines(stream: AsyncIterator[Any], rtype: ResourceType, version: str,
                 timeout: float | None) -> AsyncIterator[bytes]:
    """Watch events as JSON lines; a failure becomes an ERROR event with a Status, as the API
    server ends a watch (e.g. 410 Expired for a compacted resourceVersion)."""
    try:
        async with asyncio.timeout(timeout):
            async for event in stream:
                _as_version(event.object, rtype, version)
                yield json.dumps(event.to_dict(), separators=(",", ":")).encode() + b"\n"
    except TimeoutError:
        return
    except ResourceError as exc:
        yield json.dumps({"type": "ERROR", "object": error_body(exc)}).encode() + b"\n"
    finally:
        await stream.aclose()  # type: ignore[attr-defined]




@router.post("/api/remora/apply", openapi_extra=_BODY, responses=_STATUS)
async def apply(request: Request, resources: Resources,
                namespace: Annotated[str, Query()] = DEFAULT_NAMESPACE) -> JSONResponse:
    """`kubectl apply` for a stream of objects (YAML or JSON, `kind: List` too): every object is
    validated first (422 with every message, nothing written); then each is applied in order;
    one that fails does not stop the rest, and the answer is the first failure's status."""
    documents = _flatten(await read_documents(request, yaml_by_default=True))
    for document in documents:
        _may_write(request, document, namespace)
    problems: list[ResourceError] = []
    for document in documents:
        try:
            validate(document, namespace=namespace)
        except ResourceError as exc:
            problems.append(exc)
    if problems:
        causes = [cause for p in problems for cause in p.causes] or \
            [Cause("", p.message) for p in problems]
        message = "; ".join(p.message for p in problems)
        return JSONResponse(status(problems[0].code, message, reason=problems[0].reason,
                                   causes=causes), status_code=problems[0].code)
    items: list[dict[str, Any]] = []
    failures: list[ResourceError] = []
    for document in documents:
        try:
            applied = await resources.apply(document, namespace=namespace)
        except ResourceError as exc:
            failures.append(exc)
            items.append({"error": error_body(exc)})
            continue
        items.append({"action": applied.action.value, "resource": applied.type.qualified,
                      "object": applied.object, "warnings": applied.warnings})
    if failures:
        first = failures[0]
        body = status(first.code, "; ".join(f.message for f in failures), reason=first.reason,
                      causes=first.causes, items=items)
        return JSONResponse(body, status_code=first.code)
    return JSONResponse({"kind": "ApplyResult", "apiVersion": "remora.io/v1", "items": items})


def _may_write(request: Request, document: Any, namespace: str) -> None:
    """403 unless the caller may write this object (checked before anything is written)."""
    if not isinstance(document, dict):
        return  # validate() reports it
    group, _ = split_api_version(str(document.get("apiVersion", "")))
    rtype = by_kind(group, str(document.get("kind", "")))
    if rtype is None:
        return  # validate() reports the unknown kind
    meta = document.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    scope = str(meta.get("namespace") or namespace) if rtype.namespaced else ""
    name = str(meta.get("name") or "")
    require(request, Need((kube(scope, rtype.group, rtype.plural, name),), WRITE),
            f'{rtype.qualified} "{name}"')


def _flatten(documents: list[Any]) -> list[Any]:
    """`kind: List` documents (what `kubectl get -o yaml` prints) become their items."""
    out: list[Any] = []
    for document in documents:
        if isinstance(document, dict) and str(document.get("kind", "")).endswith("List") \
                and isinstance(document.get("items"), list):
            out.extend(document["items"])
        else:
            out.append(document)
    return out


for _prefix, _resolve in (("/apis/{group}/{version}", _group_target), ("/api/v1", _core_target)):
    for _scope in (_cluster_wide, _in_namespace):
        _routes(_prefix, _resolve, _scope)
