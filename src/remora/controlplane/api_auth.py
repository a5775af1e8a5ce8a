"""Nacos's auth API: log in for a token; users, roles and permissions (global admins only).

Paths, parameters and answers follow Nacos 2.x's v1 auth API, so its clients and scripts work
unchanged: `POST /nacos/v1/auth/login` (also `/auth/users/login`) with `username` and
`password` answers `{"accessToken", "tokenTtl", "globalAdmin", "username"}` or 403
`user not found!`; management calls answer `{"code": 200, "message": "create user ok!", ...}`
and list calls a page (`totalCount`, `pageNumber`, `pagesAvailable`, `pageItems`). Unlike
Nacos, user lists never carry password hashes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from remora.controlplane.access import ADMIN_ROLE, Permission
from remora.controlplane.accounts import AccountError, Accounts
from remora.controlplane.auth import UNKNOWN_USER, Auth
from remora.controlplane.nacos import request_values

router = APIRouter(prefix="/nacos/v1/auth", tags=["auth"])


def _auth(request: Request) -> Auth | None:
    return request.app.state.controlplane.auth  # type: ignore[no-any-return]


def _accounts(request: Request) -> Accounts:
    auth = _auth(request)
    if auth is None:
        raise AccountError("authentication is off on this control plane (--no-auth)",
                           status=501)
    return auth.accounts


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise AccountError(f"Param '{name}' is required.")
    return value


def _ok(message: str) -> JSONResponse:
    return JSONResponse({"code": 200, "message": message, "data": None})


def _page(params: dict[str, str], items: list[dict[str, Any]]) -> JSONResponse:
    try:
        number = max(1, int(params.get("pageNo") or 1))
        size = max(1, min(1000, int(params.get("pageSize") or 100)))
    except ValueError:
        raise AccountError("pageNo and pageSize must be integers") from None
    return JSONResponse({
        "totalCount": len(items), "pageNumber": number,
        "pagesAvailable": (len(items) + size - 1) // size,
        "pageItems": items[(number - 1) * size:number * size]})


Call = Callable[[Request, dict[str, str]], Awaitable[Response]]


def _managing(call: Call) -> Callable[[Request], Awaitable[Response]]:
    """A management route: `call` gets the parameters; refusals become Nacos's RestResult."""
    async def route(request: Request) -> Response:
        try:
            return await call(request, await request_values(request))
        except AccountError as exc:
            return JSONResponse({"code": exc.status, "message": str(exc), "data": None},
                                status_code=exc.status)
        except ValueError as exc:  # a Permission with a bad action or resource
            return JSONResponse({"code": 400, "message": str(exc), "data": None},
                                status_code=400)
    # not functools.wraps: FastAPI would read the parameters of `call` through __wrapped__
    route.__name__, route.__doc__ = call.__name__, call.__doc__
    return route


@router.post("/login", summary="Log in: an accessToken for username and password")
@router.post("/users/login", include_in_schema=False)
async def login(request: Request) -> Response:
    auth = _auth(request)
    params = await request_values(request)
    if auth is None:
        return JSONResponse({"accessToken": "", "tokenTtl": 0, "globalAdmin": True,
                             "username": params.get("username", "")})
    username, password = params.get("username", ""), params.get("password", "")
    token = await auth.login(username, password) if username and password else None
    if token is None:
        return PlainTextResponse(UNKNOWN_USER, status_code=403)
    principal = auth.accounts.principal(username)
    return JSONResponse({"accessToken": token, "tokenTtl": auth.tokens.ttl,
                         "globalAdmin": bool(principal and principal.admin),
                         "username": username})


@router.get("/users", summary="Users (a page)")
@_managing
async def list_users(request: Request, params: dict[str, str]) -> Response:
    users = sorted(_accounts(request).users)
    return _page(params, [{"username": name} for name in users])


@router.post("/users", summary="Create a user")
@_managing
async def create_user(request: Request, params: dict[str, str]) -> Response:
    await _accounts(request).create_user(_required(params, "username"),
                                         _required(params, "password"))
    return _ok("create user ok!")


@router.put("/users", summary="Change a user's password")
@_managing
async def update_user(request: Request, params: dict[str, str]) -> Response:
    await _accounts(request).set_password(_required(params, "username"),
                                          _required(params, "newPassword"))
    return _ok("update user ok!")


@router.delete("/users", summary="Delete a user")
@_managing
async def delete_user(request: Request, params: dict[str, str]) -> Response:
    await _accounts(request).delete_user(_required(params, "username"))
    return _ok("delete user ok!")


@router.get("/roles", summary="Role bindings (a page; ?username= for one user's)")
@_managing
async def list_roles(request: Request, params: dict[str, str]) -> Response:
    accounts = _accounts(request)
    wanted = params.get("username", "")
    items = [{"role": role, "username": user}
             for user, roles in sorted(accounts.roles.items()) if not wanted or user == wanted
             for role in sorted(roles)]
    return _page(params, items)


@router.post("/roles", summary="Give a user a role")
@_managing
async def add_role(request: Request, params: dict[str, str]) -> Response:
    await _accounts(request).bind_role(_required(params, "role"),
                                       _required(params, "username"))
    return _ok("add role ok!")


@router.delete("/roles", summary="Take a role from a user (or from everyone)")
@_managing
async def delete_role(request: Request, params: dict[str, str]) -> Response:
    role, user = _required(params, "role"), params.get("username", "")
    await _accounts(request).unbind_role(role, user or None)
    return _ok(f"delete role of user {user} ok!" if user else "delete role ok!")


@router.get("/permissions", summary="A role's permissions (a page)")
@_managing
async def list_permissions(request: Request, params: dict[str, str]) -> Response:
    accounts = _accounts(request)
    wanted = params.get("role", "")
    roles = [wanted] if wanted else sorted(accounts.permissions)
    items = [{"role": p.role, "resource": p.resource, "action": p.action}
             for role in roles for p in accounts.permissions.get(role, [])]
    return _page(params, items)


@router.post("/permissions", summary="Grant a role r, w or rw on a resource pattern")
@_managing
async def add_permission(request: Request, params: dict[str, str]) -> Response:
    role = _required(params, "role")
    if role == ADMIN_ROLE:
        raise AccountError(f"{ADMIN_ROLE} may do everything already")
    await _accounts(request).grant(Permission(role, _required(params, "resource"),
                                              _required(params, "action")))
    return _ok("add permission ok!")


@router.delete("/permissions", summary="Revoke a permission")
@_managing
async def delete_permission(request: Request, params: dict[str, str]) -> Response:
    await _accounts(request).revoke(Permission(_required(params, "role"),
                                               _required(params, "resource"),
                                               _required(params, "action")))
    return _ok("delete permission ok!")
