"""Kubernetes Status objects for every failure, and request bodies read within bounds.

A client's mistake gets the status Kubernetes' API server gives it (400 malformed, 404 unknown,
409 conflict, 413 too large, 415 content type, 422 invalid) as a `kind: Status` body, so
kubectl-minded clients and scripts read our errors as they read the API server's. Only a bug in
Remora is a 500, and it is logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from remora.api.errors import format_path
from remora.api.yamlaliases import AliasBombError
from remora.api.yamlsource import load_all
from remora.controlplane.resources import (
    BadRequestError,
    Cause,
    ResourceError,
)
from remora.controlplane.selectors import SelectorError
from remora.registry.store.base import StoreError

log = logging.getLogger(__name__)

MAX_BODY = 4 * 1024 * 1024
"""Largest request body accepted (the Kubernetes API server's limit is 3 MiB per object)."""
JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")

_REASONS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
            409: "Conflict", 410: "Expired", 413: "RequestEntityTooLarge",
            415: "UnsupportedMediaType", 422: "Invalid", 500: "InternalError",
            503: "ServiceUnavailable"}


class PayloadTooLargeError(ResourceError):
    code, reason = 413, "RequestEntityTooLarge"


class UnsupportedMediaTypeError(ResourceError):
    code, reason = 415, "UnsupportedMediaType"


def status(code: int, message: str, *, reason: str | None = None,
           causes: Iterable[Cause] = (), **extra: Any) -> dict[str, Any]:
    """A `kind: Status` failure body (apimachinery metav1.Status)."""
    body: dict[str, Any] = {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason or _REASONS.get(code, HTTPStatus(code).phrase),
        "code": code,
    }
    listed = [{"field": c.field, "message": c.message, "reason": "FieldValueInvalid"}
              for c in causes]
    if listed:
        body["details"] = {"causes": listed}
    body.update(extra)
    return body


def error_body(exc: ResourceError) -> dict[str, Any]:
    return status(exc.code, exc.message, reason=exc.reason, causes=exc.causes)


def install_error_handlers(app: FastAPI) -> None:
    """Every exception becomes a Status; only unexpected ones are 500s (and logged)."""

    async def resource_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ResourceError)
        return JSONResponse(error_body(exc), status_code=exc.code)

    async def selector_error(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status(400, f"unable to parse labelSelector: {exc}"), status_code=400)

    async def store_error(_: Request, exc: Exception) -> JSONResponse:
        log.warning("store unavailable: %s", exc)
        return JSONResponse(status(503, f"storage unavailable: {exc}"), status_code=503)

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return JSONResponse(status(exc.status_code, str(exc.detail)), status_code=exc.status_code,
                            headers=exc.headers)

    async def request_invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        causes = [Cause(format_path([p for p in e["loc"] if isinstance(p, str | int)]), e["msg"])
                  for e in exc.errors()]
        return JSONResponse(status(400, "invalid request parameters", causes=causes),
                            status_code=400)

    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error serving %s %s", request.method, request.url.path,
                      exc_info=exc)
        return JSONResponse(status(500, f"internal error: {type(exc).__name__}"), status_code=500)

    app.add_exception_handler(ResourceError, resource_error)
    app.add_exception_handler(SelectorError, selector_error)
    app.add_exception_handler(StoreError, store_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, request_invalid)
    app.add_exception_handler(Exception, bug)


async def read_body(request: Request, *, limit: int = MAX_BODY) -> bytes:
    """The request body, refusing more than `limit` bytes (413) before or while reading it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request entity too large: limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request entity too large: limit is {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_documents(request: Request, *, yaml_by_default: bool = False) -> list[Any]:
    """The documents of a JSON or (multi-document) YAML body; 400 when it does not parse,
    415 for another content type. A JSON body is one document."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not media and yaml_by_default:
        media = YAML_TYPES[0]
    if media not in JSON_TYPES + YAML_TYPES:
        raise UnsupportedMediaTypeError(
            f"the body of the request is of an unsupported media type {media or 'none'!r}; "
            f"supported: {', '.join(JSON_TYPES + YAML_TYPES)}")
    raw = await read_body(request)
    try:
        text = raw.decode("utf-8")
        if media in JSON_TYPES:
            return [json.loads(text, parse_constant=_no_constant)]
        return [_as_json(d) for d in load_all(text)]
    except UnicodeDecodeError:
        raise BadRequestError("the request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"the request body is not valid JSON: {exc}") from None
    except yaml.YAMLError as exc:
        raise BadRequestError(f"the request body is not valid YAML: {_one_line(exc)}") from None
    except AliasBombError as exc:
        raise BadRequestError(
            f"the request body is not valid YAML: line {exc.line}: {exc}") from None
    except RecursionError:
        raise BadRequestError("the request body is nested too deeply") from None
    except (TypeError, ValueError) as exc:
        raise BadRequestError(f"the request body is not a JSON-compatible object: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _as_json(document: Any) -> Any:
    """YAML's data as JSON has it (as Kubernetes converts YAML): timestamps become strings;
    NaN, infinities and keys that are not scalars are refused."""
    return json.loads(json.dumps(document, default=str, allow_nan=False))


def _one_line(exc: yaml.YAMLError) -> str:
    return " ".join(str(exc).split())
