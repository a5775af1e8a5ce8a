"""JSON values made read-only for the snapshot, and back: what /config_dump shows of api objects.

The snapshot keeps the configuration it was compiled from only as JSON-able data (a route's
match block, a cluster's trafficPolicy), frozen: mappings as MappingProxyType, lists as tuples.
`thaw` gives back the dicts and lists `freeze` was given. (remora.api.networking.httpfilters has
the same pair for typed_config; this one imports nothing, so the proxy can use it.) The compiler
makes those values with `config_dump`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

EMPTY: Mapping[str, Any] = MappingProxyType({})


def freeze(value: Any) -> Any:
    """A JSON value made read-only: mappings as MappingProxyType, lists as tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """The inverse of `freeze`: plain dicts and lists, as JSON is parsed."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw(item) for item in value]
    return value


def config_dump(model: BaseModel) -> Mapping[str, Any]:
    """An api object as /config_dump shows it, frozen: JSON with Istio's camelCase names, what
    is unset or default left out."""
    data = model.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
    return MappingProxyType({key: freeze(value) for key, value in data.items()})
