"""What each API call needs, and Nacos's permission matching (resource patterns with `*`,
actions r / w / rw; ROLE_ADMIN may do everything) — nacos.io/docs/latest/manual/admin/auth."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from remora.controlplane.access import (
    ADMIN,
    ADMIN_ROLE,
    AUTHENTICATED,
    Need,
    Permission,
    Principal,
    need_for,
)
from remora.controlplane.auth_gate import query_params


def principal(*grants: tuple[str, str]) -> Principal:
    return Principal("bob", frozenset({"dev"}),
                     tuple(Permission("dev", resource, action) for resource, action in grants))


@pytest.mark.parametrize(("method", "path", "params", "need"), [
    ("POST", "/nacos/v1/ns/instance", {"serviceName": "web", "namespaceId": "prod"},
     Need(("prod:DEFAULT_GROUP:naming/web",), "w")),
    ("POST", "/nacos/v1/ns/instance", {"serviceName": "g1@@web"},
     Need(("public:g1:naming/web",), "w")),
    ("GET", "/nacos/v1/ns/instance/list", {"serviceName": "web", "groupName": "g2"},
     Need(("public:g2:naming/web",), "r")),
    ("PUT", "/nacos/v1/ns/instance/beat", {"serviceName": "DEFAULT_GROUP@@web"},
     Need(("public:DEFAULT_GROUP:naming/web",), "w")),
    ("GET", "/nacos/v1/ns/service/list", {}, Need(("public:DEFAULT_GROUP:naming/*",), "r")),
    ("GET", "/nacos/v1/cs/configs", {"dataId": "app.yaml", "group": "G", "tenant": "t1"},
     Need(("t1:G:config/app.yaml",), "r")),
    ("POST", "/nacos/v1/cs/configs", {"dataId": "a"}, Need(("public:DEFAULT_GROUP:config/a",),
                                                          "w")),
    ("POST", "/nacos/v1/cs/configs/listener",
     {"Listening-Configs": "a\x02G\x02md5\x01b\x02H\x02md5\x02t\x01"},
     Need(("public:G:config/a", "t:H:config/b"), "r")),
    ("GET", "/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews", {},
     Need(("default:networking.istio.io:virtualservices/reviews",), "r")),
    ("DELETE", "/api/v1/namespaces/prod/secrets/tls", {}, Need(("prod:core:secrets/tls",), "w")),
    ("PUT", "/apis/apps/v1/namespaces/default/deployments/web/status", {},
     Need(("default:apps:deployments/web/status",), "w")),
    ("PUT", "/apis/apps/v1/namespaces/default/deployments/web/scale", {},
     Need(("default:apps:deployments/web/scale",), "w")),
    ("GET", "/api/v1/secrets", {}, Need(("*:core:secrets/*",), "r")),
    ("GET", "/api/v1/namespaces", {}, Need((":core:namespaces/*",), "r")),
    ("DELETE", "/api/v1/namespaces/prod", {}, Need((":core:namespaces/prod",), "w")),
    ("GET", "/api/remora/v1/proxies", {}, Need(("*:remora:proxies/*",), "r")),
    ("POST", "/api/remora/apply", {}, AUTHENTICATED),
    ("POST", "/api/remora/v1/discovery", {}, AUTHENTICATED),
    ("POST", "/nacos/v1/auth/users", {}, ADMIN),
    ("GET", "/something/else", {}, ADMIN),  # a path nobody classified is closed
])
def test_needs(method: str, path: str, params: dict[str, str], need: Need) -> None:
    assert need_for(method, path, params) == need


@pytest.mark.parametrize("path", ["/healthz", "/nacos/v1/auth/login", "/nacos/v1/auth/users/login"])
def test_open_paths_need_nothing(path: str) -> None:
    assert need_for("POST", path, {}) is None


def test_a_namespace_wide_grant_covers_its_services_and_no_other_namespace() -> None:
    bob = principal(("public:*:*", "rw"))
    assert bob.allows(Need(("public:DEFAULT_GROUP:naming/web",), "w"))
    assert not bob.allows(Need(("prod:DEFAULT_GROUP:naming/web",), "r"))


def test_read_only_grants_refuse_writes() -> None:
    bob = principal(("public:*:naming/*", "r"))
    assert bob.allows(Need(("public:G:naming/web",), "r"))
    assert not bob.allows(Need(("public:G:naming/web",), "w"))


def test_a_one_service_grant_does_not_cover_the_service_list_or_a_lookalike() -> None:
    bob = principal(("public:DEFAULT_GROUP:naming/web", "rw"))
    assert not bob.allows(Need(("public:DEFAULT_GROUP:naming/*",), "r"))
    assert not bob.allows(Need(("public:DEFAULT_GROUP:naming/web2",), "r"))


def test_pattern_characters_other_than_star_are_literal() -> None:
    bob = principal(("public:a.b:naming/web", "r"))
    assert not bob.allows(Need(("public:aXb:naming/web",), "r"))


def test_a_subresource_grant_is_not_a_grant_of_the_object() -> None:
    runner = principal(("default:apps:deployments/*/status", "w"),
                       ("default:apps:deployments/*", "r"))
    assert runner.allows(need_for("PUT", "/apis/apps/v1/namespaces/default/deployments/web/status",
                                  {}))
    assert runner.allows(need_for("GET", "/apis/apps/v1/namespaces/default/deployments", {}))
    assert not runner.allows(need_for("PUT", "/apis/apps/v1/namespaces/default/deployments/web",
                                      {}))
    assert not runner.allows(need_for("PUT", "/apis/apps/v1/namespaces/other/deployments/web/"
                                      "status", {}))


def test_every_resource_of_a_need_must_be_granted() -> None:
    bob = principal(("public:G:config/a", "r"))
    assert not bob.allows(Need(("public:G:config/a", "public:G:config/b"), "r"))


def test_admin_may_do_everything_and_others_no_admin_work() -> None:
    admin = Principal("root", frozenset({ADMIN_ROLE}))
    assert admin.allows(ADMIN)
    assert admin.allows(Need(("anything:at:all",), "w"))
    assert not principal(("*", "rw")).allows(ADMIN)


def test_a_permission_refuses_unknown_actions() -> None:
    with pytest.raises(ValueError, match="action"):
        Permission("dev", "public:*:*", "x")


@pytest.mark.parametrize("raw", [
    "", "a=1", "a=1&b=", "a", "a=1&a=2", "k%20ey=v%2Bal+ue", "x=%E4%BD%A0&&y=%", "=v&t=a=b",
    "serviceName=DEFAULT_GROUP%40%40web&accessToken=eyJ.a-b_c.d",
])
def test_the_gates_query_parser_reads_what_parse_qsl_reads(raw: str) -> None:
    assert query_params(raw) == dict(parse_qsl(raw, keep_blank_values=True))
