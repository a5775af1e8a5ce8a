"""kindnames.SERVED is what the config model serves, so `remora get` needs no model import."""

from __future__ import annotations

from remora.api.kinds import KINDS
from remora.controlplane.kindnames import SERVED, TYPES, lookup


def test_served_lists_every_kind_the_models_serve_as_they_serve_it() -> None:
    table = {(group, kind): (versions, namespaced)
             for group, kind, versions, namespaced, _, _ in SERVED}
    models = {key: (info.versions, info.model.NAMESPACED) for key, info in KINDS.items()}
    assert table == models
    assert len(table) == len(SERVED), "a kind is listed twice"


def test_every_name_kubectl_users_type_finds_one_type() -> None:
    for rtype in TYPES:
        for name in (rtype.plural, rtype.singular, rtype.kind, *rtype.short_names,
                     f"{rtype.plural}.{rtype.group}"):
            assert lookup(name) == [rtype], name
