"""An EnvoyFilter HTTP_FILTER patch as the snapshot carries it, and applying patches to a
listener's chain: plain data, no api model.

remora.mesh.envoyfilter compiles EnvoyFilters into these; the proxy applies them when it builds
its chains (remora.proxy.chain). Nothing here loads the api's models, so a proxy that receives a
compiled snapshot holds and applies them without pydantic.

Applying, as Istio edits an HTTP connection manager's filters
(pilot/pkg/networking/core/envoyfilter/http_filter_patch.go): ADD appends; INSERT_FIRST
prepends; INSERT_BEFORE / INSERT_AFTER go before / after the first filter named by the anchor
(match...subFilter.name), at the start / end when there is no anchor; REPLACE replaces the first
filter of that name; REMOVE removes every filter of that name. A patch whose anchor is not in
the chain is not applied (Istio's rule). Envoy refuses a chain whose last filter is not the
router or with a filter after it; where Istio would have the whole listener refused, Remora
leaves out the one patch that would do that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from remora.api.networking import httpfilters
from remora.mesh.frozen import EMPTY, thaw

if TYPE_CHECKING:
    from remora.api.networking.httpfilters import Context

PatchContext = Literal["ANY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY"]
HttpOperation = Literal["ADD", "INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST", "REPLACE",
                        "REMOVE"]
FilterEntry = tuple[str, Mapping[str, Any]]
"""One HTTP filter of a chain: its name and its typed_config (read-only; empty when none)."""

__all__ = ["EMPTY", "FilterEntry", "HttpFilterPatch", "HttpOperation", "NotApplied",
           "PatchContext", "PatchedChain", "http_filter_chain", "patch_http_filters"]


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


@dataclass(frozen=True, slots=True)
class NotApplied:
    """A patch that left a chain as it was, and why (the proxy may log it)."""

    patch: HttpFilterPatch
    reason: str


@dataclass(frozen=True, slots=True)
class PatchedChain:
    """The HTTP filters of one listener after the patches, and the patches not applied."""

    filters: tuple[FilterEntry, ...]
    not_applied: tuple[NotApplied, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.filters)


def http_filter_chain(
    context: Context, port: int, patches: Iterable[HttpFilterPatch], *,
    base: Sequence[str] | None = None,
) -> tuple[FilterEntry, ...]:  # fmt: skip
    """The HTTP filters (name, typed_config) of the listener for `context` and `port` (the
    destination port outbound, the app's container port inbound, the server port at a
    gateway): `base` (default: Remora's chain for the context) with the patches applied."""
    return patch_http_filters(context, port, patches, base=base).filters


def patch_http_filters(
    context: Context, port: int, patches: Iterable[HttpFilterPatch], *,
    base: Sequence[str] | None = None,
) -> PatchedChain:  # fmt: skip
    """`http_filter_chain`, with the patches that were not applied and why."""
    names = httpfilters.REMORA_CHAINS[context] if base is None else tuple(base)
    chain: list[FilterEntry] = [(name, EMPTY) for name in names]
    guarded = _well_ended(chain)
    skipped: list[NotApplied] = []
    for patch in patches:
        if not patch.applies_to(context, port):
            continue
        patched = _apply(chain, patch)
        if isinstance(patched, str):
            skipped.append(NotApplied(patch, patched))
        elif guarded and not _well_ended(patched):
            skipped.append(NotApplied(patch, f"it would leave a filter after "
                                             f"{httpfilters.TERMINAL}, or none last: Envoy "
                                             f"refuses such a chain"))
        else:
            chain = patched
    return PatchedChain(tuple(chain), tuple(skipped))


def _apply(chain: list[FilterEntry], patch: HttpFilterPatch) -> list[FilterEntry] | str:
    """The chain after one patch (a new list), or why the patch does not apply."""
    operation, anchor = patch.operation, patch.anchor
    if operation == "ADD" or (operation == "INSERT_AFTER" and not anchor):
        return [*chain, patch.entry]
    if operation == "INSERT_FIRST" or (operation == "INSERT_BEFORE" and not anchor):
        return [patch.entry, *chain]
    if not anchor:  # REPLACE and REMOVE need one (Istio skips them without)
        return f"{operation} names no filter (match.listener.filterChain.filter.subFilter)"
    found = [i for i, (name, _) in enumerate(chain) if httpfilters.canonical_name(name) == anchor]
    if not found:
        return f"{anchor} is not in the chain"
    first = found[0]
    if operation == "INSERT_BEFORE":
        return [*chain[:first], patch.entry, *chain[first:]]
    if operation == "INSERT_AFTER":
        return [*chain[:first + 1], patch.entry, *chain[first + 1:]]
    if operation == "REPLACE":
        return [*chain[:first], patch.entry, *chain[first + 1:]]
    return [entry for i, entry in enumerate(chain) if i not in found]  # REMOVE: every one


def _well_ended(chain: Sequence[FilterEntry]) -> bool:
    """Envoy's rule: the terminal filter (the router) is last, and only last."""
    terminal = [httpfilters.implementation_of(name, config) == httpfilters.TERMINAL
                for name, config in chain]
    return bool(terminal) and terminal[-1] and not any(terminal[:-1])
