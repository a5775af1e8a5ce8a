"""An EnvoyFilter HTTP_FILTER patch as the snapshot carries it: plain data, no api model.

remora.mesh.envoyfilter compiles EnvoyFilters into these and applies them to a listener's
chain; this module imports nothing of the api, so a proxy that receives a compiled snapshot
can hold them without pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from remora.mesh.frozen import EMPTY, thaw

if TYPE_CHECKING:
    from remora.api.networking.httpfilters import Context

PatchContext = Literal["ANY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY"]
HttpOperation = Literal["ADD", "INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST", "REPLACE",
                        "REMOVE"]
FilterEntry = tuple[str, Mapping[str, Any]]
"""One HTTP filter of a chain: its name and its typed_config (read-only; empty when none)."""

__all__ = ["EMPTY", "FilterEntry", "HttpFilterPatch", "HttpOperation", "PatchContext"]


@dataclass(frozen=True, slots=True)
class HttpFilterPatch:
    """One HTTP_FILTER patch Remora applies, compiled: where, what, relative to which filter."""

    context: PatchContext  # match.context (ANY when unset)
    port: int | None  # match.listener.portNumber: the port of the listener; None for every port
    operation: HttpOperation
    filter_name: str  # patch.value.name: the filter put in the chain ("" for REMOVE)
    anchor: str  # match.listener.filterChain.filter.subFilter.name ("" when none); REMOVE's target
    config: Mapping[str, Any]  # patch.value.typed_config, read-only (empty for REMOVE)
    source: str  # "EnvoyFilter istio-system/gzip spec.configPatches[0]"
    implementation: str = ""  # the filter of httpfilters.IMPLEMENTED it runs ("" for REMOVE)

    def applies_to(self, context: Context, port: int) -> bool:
        return self.context in ("ANY", context) and self.port in (None, port)

    @property
    def entry(self) -> FilterEntry:
        return self.filter_name, self.config

    def to_dict(self) -> dict[str, Any]:
        return {"context": self.context, "port": self.port, "operation": self.operation,
                "filter": self.filter_name, "anchor": self.anchor,
                "config": thaw(self.config), "source": self.source}
