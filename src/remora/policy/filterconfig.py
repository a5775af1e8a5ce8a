"""check_typed_config: is an EnvoyFilter's typed_config a valid config of the filter it inserts?

The one place where the configs of the HTTP filters Remora implements are checked before they
reach a proxy: `remora analyze` and the control plane's apply (remora.analysis.envoyfilter)
refuse an EnvoyFilter whose config does not pass, and the compiler leaves such an EnvoyFilter
out of a snapshot (remora.mesh.envoyfilter). The api model cannot do it (it sits below
remora.policy), so this hook is where each filter's own `from_api` is called.

WIRING (one place): the compressor and cache configs are being written as
remora.policy.compression (`from_api(dict)`, for envoy.filters.http.compressor and the older
envoy.filters.http.gzip) and remora.policy.httpcache (`CacheConfig.from_api`). Add them to
`_CHECKS` below; each raises ValueError naming the field, relative to typed_config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from remora.api.networking import httpfilters

Check = Callable[[Mapping[str, Any]], object]
"""Builds (or just validates) a filter's config from its typed_config; ValueError if invalid."""

_CHECKS: dict[str, Check] = {
    # httpfilters.COMPRESSOR: compression.CompressorConfig.from_api,  # to wire
    # httpfilters.GZIP: compression.GzipConfig.from_api,  # to wire (the older gzip config)
    # httpfilters.CACHE: httpcache.CacheConfig.from_api,  # to wire
}


def check_typed_config(filter_name: str, typed_config: Mapping[str, Any]) -> None:
    """Raise ValueError (naming the field inside typed_config) when `typed_config` is not a
    valid config of `filter_name` (one of httpfilters.IMPLEMENTED). A filter without a check
    here takes any config: its own code reads what it knows."""
    if filter_name not in httpfilters.IMPLEMENTED:
        raise ValueError(f"{filter_name} is not an HTTP filter Remora implements")
    check = _CHECKS.get(filter_name)
    if check is not None:
        check(typed_config)
