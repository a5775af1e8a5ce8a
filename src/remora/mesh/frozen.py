"""JSON values made read-only for the snapshot, and back: what /config_dump shows of api objects.

The snapshot keeps the configuration it was compiled from only as JSON-able data (a route's
match block, a cluster's trafficPolicy), frozen: mappings as MappingProxyType, lists as tuples.
`thaw` gives back the dicts and lists `freeze` was given (the pair of
remora.api.networking.httpfilters, which loads no models, so the proxy can use it). The compiler
makes those values with `config_dump`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from remora.api.networking.httpfilters import freeze, thaw

if TYPE_CHECKING:
    from pydantic import BaseModel

EMPTY: Mapping[str, Any] = MappingProxyType({})
__all__ = ["EMPTY", "config_dump", "freeze", "thaw"]


def config_dump(model: BaseModel) -> Mapping[str, Any]:
    """An api object as /config_dump shows it, frozen: JSON with Istio's camelCase names, what
    is unset or default left out."""
    data = model.model_dump(mode="json", by_alias=True, exclude_none=True, exclude_defaults=True)
    return MappingProxyType({key: freeze(value) for key, value in data.items()})
