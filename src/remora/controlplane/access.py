"""Who may do what: Nacos's permission model applied to every API of the control plane.

Nacos grants a role permissions, each a resource pattern and an action (`r`, `w` or `rw`),
and binds users to roles; `ROLE_ADMIN` may do everything, user management included
(nacos.io/docs/latest/manual/admin/auth). A resource is `namespace:group:type/name` and a
pattern's `*` matches any run of characters (Nacos's NacosRoleServiceImpl turns `*` into `.*`),
so `public:*:*` grants a whole namespace. Remora names its own APIs the same way:

    Nacos naming        public:DEFAULT_GROUP:naming/reviews
    Nacos config        public:DEFAULT_GROUP:config/app.yaml
    Kubernetes objects  default:networking.istio.io:virtualservices/reviews   (core group: core;
                        cluster-scoped kinds have an empty namespace; a list names `*`)
    subresources        default:apps:deployments/web/status, .../web/scale (as Kubernetes RBAC,
                        a grant of the object is not one of its subresources)
    push (proxies)      default:remora:discovery/sidecar, istio-system:remora:discovery/gateway
    proxy status        *:remora:proxies/*
    identity tokens     default:remora:identity/reviews (w: issue a join token for that
                        service account; its holder gets certificates as it)
    the CA              *:remora:ca/* (r: roots and counters; rotating roots is admin only)

This module is pure: it says what a request needs (`need_for`) and whether a principal has it
(`Principal.allows`). The gate (auth_gate.py) does the I/O around it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

ADMIN_ROLE = "ROLE_ADMIN"
PARAMS = "remora.params"
"""ASGI scope key: the parameters (query and form merged) the gate read, for the Nacos
handlers, which would otherwise parse them again."""
READ, WRITE = "r", "w"
ACTIONS = ("r", "w", "rw")
CORE_GROUP = "core"
PUBLIC = "public"
DEFAULT_GROUP = "DEFAULT_GROUP"
OPEN_PATHS = frozenset({
    "/healthz", "/nacos/v1/auth/login", "/nacos/v1/auth/users/login", "/openapi.json", "/docs",
    "/docs/oauth2-redirect", "/redoc", "/api/remora/v1/certificates",
})
"""Answered to anyone: liveness, logging in, the API's own description, and certificate
signing (authenticated by the identity token in its body, which its handler checks)."""
ADMIN_PREFIXES = ("/nacos/v1/auth/",)
"""User, role and permission management: global admins only, as Nacos."""
DEFERRED_PATHS = frozenset({"/api/remora/apply", "/api/remora/v1/discovery",
                            "/api/remora/v1/discovery/ack", "/api/remora/v1/identitytokens"})
"""Paths whose needs depend on the body (the objects applied, the proxy's node): the gate only
authenticates them, and their handler authorizes what the body asks for."""


@dataclass(frozen=True, slots=True)
class Need:
    """What a request needs: every resource in `resources` with `action`, or global admin."""

    resources: tuple[str, ...] = ()
    action: str = READ
    admin: bool = False

    def describe(self) -> str:
        if self.admin:
            return "global admin"
        return f"{self.action} on {', '.join(self.resources)}"


AUTHENTICATED = Need()
"""Any valid token (the body-dependent paths; their handlers check the rest)."""
ADMIN = Need(admin=True)


@dataclass(frozen=True, slots=True)
class Permission:
    """A role's grant: `resource` is a pattern where `*` matches anything."""

    role: str
    resource: str
    action: str

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action must be one of r, w, rw, got {self.action!r}")
        if not self.resource or any(c.isspace() for c in self.resource):
            raise ValueError(f"resource must be a non-empty pattern without spaces, "
                             f"got {self.resource!r}")

    def matches(self, resource: str, action: str) -> bool:
        return action in self.action and _pattern(self.resource).fullmatch(resource) is not None


@functools.lru_cache(maxsize=4096)
def _pattern(resource: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in resource.split("*")))


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a user with its roles and their permissions."""

    username: str
    roles: frozenset[str] = frozenset()
    permissions: tuple[Permission, ...] = field(default=())

    @cached_property
    def admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    def allows(self, need: Need) -> bool:
        if self.admin:
            return True
        if need.admin:
            return False
        return all(any(p.matches(resource, need.action) for p in self.permissions)
                   for resource in need.resources)


ANONYMOUS_ADMIN = Principal("anonymous", frozenset({ADMIN_ROLE}))
"""Who every caller is when authentication is off (`remora controlplane --no-auth`)."""


def naming(namespace: str, group: str, service: str) -> str:
    return f"{namespace or PUBLIC}:{group or DEFAULT_GROUP}:naming/{service}"


def config(tenant: str, group: str, data_id: str) -> str:
    return f"{tenant or PUBLIC}:{group or DEFAULT_GROUP}:config/{data_id}"


def kube(namespace: str | None, group: str, plural: str, name: str | None,
         subresource: str | None = None) -> str:
    """A Kubernetes object (or `*`: every object of the list) in `namespace` (None: all), or
    one of its subresources (`status`, `scale`)."""
    scope = "*" if namespace is None else namespace
    sub = f"/{subresource}" if subresource else ""
    return f"{scope}:{group or CORE_GROUP}:{plural}/{name or '*'}{sub}"


def discovery(namespace: str, mode: str) -> str:
    return f"{namespace}:remora:discovery/{mode}"


def identity(namespace: str, service_account: str) -> str:
    return f"{namespace}:remora:identity/{service_account}"


PROXIES = "*:remora:proxies/*"
CA = "*:remora:ca/*"
CA_ROOTS = "/api/remora/v1/ca/roots"


def _service(params: Mapping[str, str]) -> tuple[str, str]:
    """(group, service) from serviceName (`group@@service` too) and groupName."""
    name = params.get("serviceName", "")
    group, sep, service = name.partition("@@")
    if not sep:
        group, service = params.get("groupName", ""), name
    return group, service or "*"


def _action(method: str) -> str:
    return READ if method in ("GET", "HEAD") else WRITE


def _listening_keys(raw: str) -> tuple[str, ...]:
    """The config resources a long poll watches (`dataId^2group^2md5[^2tenant]^1...`)."""
    keys = []
    for line in raw.split("\x01"):
        fields = line.split("\x02")
        if len(fields) in (3, 4):
            keys.append(config(fields[3] if len(fields) == 4 else "", fields[1], fields[0]))
    return tuple(keys) or (config("", "", "*"),)


def nacos_need(method: str, path: str, params: Mapping[str, str]) -> Need:
    """A Nacos v1 call's need, from its parameters (query and form merged)."""
    action = _action(method)
    namespace = params.get("namespaceId", "")
    if path.startswith("/nacos/v1/ns/"):
        if (path.startswith(("/nacos/v1/ns/instance", "/nacos/v1/ns/service")) \
                and not path.endswith("/list")) or path == "/nacos/v1/ns/instance/list":
            group, service = _service(params)
            return Need((naming(namespace, group, service),), action)
        return Need((naming(namespace, params.get("groupName", ""), "*"),), action)
    if path == "/nacos/v1/cs/configs/listener":
        return Need(_listening_keys(params.get("Listening-Configs", "")), READ)
    if path.startswith("/nacos/v1/cs/"):
        return Need((config(params.get("tenant", ""), params.get("group", ""),
                            params.get("dataId", "") or "*"),), action)
    return ADMIN


_KUBE = re.compile(
    r"^/(?:apis/(?P<group>[^/]+)/[^/]+|api/v1)"
    r"(?:/namespaces/(?P<namespace>[^/]+)/(?P<plural>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<subresource>status|scale))?)?"
    r"|/(?P<cplural>[^/]+)(?:/(?P<cname>[^/]+))?)/?$")


@dataclass(frozen=True, slots=True)
class KubeTarget:
    """What a resource-API path names: namespace ("" cluster-scoped, None every namespace)."""

    namespace: str | None
    group: str
    plural: str
    name: str | None
    subresource: str | None = None

    @property
    def resource(self) -> str:
        return kube(self.namespace, self.group, self.plural, self.name, self.subresource)


def parse_kube(path: str) -> KubeTarget | None:
    found = _KUBE.match(path)
    if found is None:
        return None
    group = found["group"] or ""
    if found["plural"] is not None:
        return KubeTarget(found["namespace"], group, found["plural"], found["name"],
                          found["subresource"])
    if found["cplural"] == "namespaces" and not group:
        return KubeTarget("", group, "namespaces", found["cname"])  # cluster-scoped
    return KubeTarget(None, group, found["cplural"], found["cname"])


def need_for(method: str, path: str, params: Mapping[str, str]) -> Need | None:
    """What a request needs; None when it is open to anyone. Unknown paths need admin, so a
    route added later is closed until someone says who may use it."""
    if path in OPEN_PATHS:
        return None
    if path in DEFERRED_PATHS:
        return AUTHENTICATED
    if path.startswith(ADMIN_PREFIXES):
        return ADMIN
    if path.startswith("/nacos/v1/"):
        return nacos_need(method, path, params)
    if path == "/api/remora/v1/proxies":
        return Need((PROXIES,), READ)
    if path == "/api/remora/v1/ca":
        return Need((CA,), READ)
    if path == CA_ROOTS or path.startswith(CA_ROOTS + "/"):
        return ADMIN
    target = parse_kube(path)
    return ADMIN if target is None else Need((target.resource,), _action(method))
