"""check_typed_config: is an EnvoyFilter's typed_config a valid config of the filter it inserts?

The one place where the configs of the HTTP filters Remora implements are checked before they
reach a proxy: `remora analyze` and the control plane's apply (remora.analysis.envoyfilter)
refuse an EnvoyFilter whose config does not pass, and the compiler leaves such an EnvoyFilter
out of a snapshot (remora.mesh.envoyfilter). The api model cannot do it (it sits below
remora.policy), so this hook is where each filter's own `from_api` is called.

Wired here: the compressor and the older gzip filter (remora.policy.compression, Envoy's
compressor.v3.Compressor and gzip.v3.Gzip forms) and the cache (remora.policy.httpcache,
CacheConfig v3 with SimpleHttpCacheConfig). cors, fault and router take their settings from
routes (VirtualService corsPolicy and fault), so their typed_config is not read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from remora.api.networking import httpfilters
from remora.policy.compression import CompressorConfig, CompressorConfigError
from remora.policy.httpcache import CacheConfig, CacheConfigError

Check = Callable[[Mapping[str, Any]], object]
"""Builds (or just validates) a filter's config from its typed_config; ValueError if invalid."""


class FilterConfigError(ValueError):
    """A typed_config its filter cannot take: `path` is the field below the HTTP filter
    (`typed_config.memory_level`), `message` what is wrong with it."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


_CHECKS: dict[str, Check] = {
    httpfilters.COMPRESSOR: partial(CompressorConfig.from_api, filter_name=httpfilters.COMPRESSOR),
    httpfilters.GZIP: partial(CompressorConfig.from_api, filter_name=httpfilters.GZIP),
    httpfilters.CACHE: CacheConfig.from_api,
}


def check_typed_config(filter_name: str, typed_config: Mapping[str, Any]) -> None:
    """Raise FilterConfigError (naming the field below the HTTP filter, `typed_config...`) when
    `typed_config` is not a valid config of `filter_name` (one of httpfilters.IMPLEMENTED). A
    filter without a check here takes any config: it does not read it."""
    if filter_name not in httpfilters.IMPLEMENTED:
        raise FilterConfigError("name", f"{filter_name} is not an HTTP filter Remora implements")
    check = _CHECKS.get(filter_name)
    if check is None:
        return
    try:
        check(typed_config)
    except (CompressorConfigError, CacheConfigError) as exc:
        issue = exc.issues[0]
        raise FilterConfigError(exc.path or "typed_config", issue.message) from None
    except ValueError as exc:
        raise FilterConfigError("typed_config", str(exc)) from None
