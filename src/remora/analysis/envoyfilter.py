"""EnvoyFilter checks (istio.io/latest/docs/reference/config/networking/envoy-filter/).

IST0106 (an error, so `remora apply` refuses it too): a filter's typed_config that the filter's
own config code rejects (remora.policy.filterconfig). RMR0002 (a warning): an HTTP_FILTER patch
Remora models but will not apply: its anchor (match...subFilter.name) is in no chain it can
meet (Istio's rule: a patch whose filter is not found is not applied), or it would leave a
filter after the router, which Envoy refuses. What Remora does not act on at all (other
`applyTo`s, MERGE, proxy matches, ...) is RMR0001 (remora.analysis.unenforced).
"""

from __future__ import annotations

from remora.analysis.context import Context
from remora.analysis.messages import ENVOY_FILTER_PATCH_NOT_APPLIED, SCHEMA_VALIDATION_ERROR
from remora.analysis.unenforced import yaml_path
from remora.api.networking import httpfilters
from remora.api.networking.envoy_filter import INSERTING, EnvoyConfigObjectPatch, EnvoyFilter
from remora.policy.filterconfig import FilterConfigError, check_typed_config

_RELATIVE = frozenset({"INSERT_BEFORE", "INSERT_AFTER", "REPLACE", "REMOVE"})


def check(context: Context) -> None:
    filters = context.of(EnvoyFilter)
    inserted = frozenset(_inserted_names(filters))
    for envoy_filter in filters:
        for index, patch in enumerate(envoy_filter.spec.config_patches):
            if patch.apply_to != "HTTP_FILTER" or patch.patch is None:
                continue
            where = f"spec.configPatches[{index}]"
            _check_config(context, envoy_filter, patch, where)
            problem = _anchor_problem(patch, inserted) or _order_problem(patch)
            if problem is not None:
                context.report(envoy_filter, ENVOY_FILTER_PATCH_NOT_APPLIED,
                               f"{where}: {problem}", path=yaml_path(where))


def _inserted_names(filters: list[EnvoyFilter]) -> list[str]:
    """The filters EnvoyFilters put in chains: anchors for the others' patches."""
    out = []
    for envoy_filter in filters:
        for patch in envoy_filter.spec.config_patches:
            body = patch.patch
            if patch.apply_to == "HTTP_FILTER" and body is not None and \
                    body.operation in INSERTING and body.value:
                out.append(httpfilters.canonical_name(str(body.value.get("name", ""))))
    return out


def _check_config(context: Context, envoy_filter: EnvoyFilter, patch: EnvoyConfigObjectPatch,
                  where: str) -> None:
    body = patch.patch
    if body is None or body.operation not in INSERTING or not body.value:
        return
    name = str(body.value.get("name", ""))
    typed_config = httpfilters.typed_config_of(body.value)
    implementation = httpfilters.implementation_of(name, typed_config)
    if implementation is None:  # the model refuses these: not reached for loaded resources
        return
    try:
        check_typed_config(implementation, dict(typed_config or {}))
    except FilterConfigError as exc:
        key = "typedConfig" if "typedConfig" in body.value else "typed_config"
        inner = exc.path.removeprefix("typed_config") if exc.path.startswith("typed_config") \
            else f".{exc.path}"
        field = f"{where}.patch.value.{key}{inner}" if exc.path != "name" \
            else f"{where}.patch.value.name"
        context.report(envoy_filter, SCHEMA_VALIDATION_ERROR, f"{field}: {exc.message}",
                       path=yaml_path(field))


def _contexts(patch: EnvoyConfigObjectPatch) -> tuple[httpfilters.Context, ...]:
    context = patch.match.context if patch.match is not None else None
    if context in httpfilters.CONTEXTS:
        return (context,)
    return httpfilters.CONTEXTS if context in (None, "ANY") else ()


def _anchor_problem(patch: EnvoyConfigObjectPatch, inserted: frozenset[str]) -> str | None:
    assert patch.patch is not None
    anchor, operation = patch.anchor, patch.patch.operation
    if operation in ("REPLACE", "REMOVE") and not anchor:
        return (f"{operation} names no filter (match.listener.filterChain.filter.subFilter."
                f"name): Istio skips such a patch, and so does Remora")
    if operation not in _RELATIVE or not anchor:
        return None
    contexts = _contexts(patch)
    if not contexts or anchor in inserted or \
            any(anchor in httpfilters.REMORA_CHAINS[c] for c in contexts):
        return None
    shown = {", ".join(httpfilters.REMORA_CHAINS[c]): c for c in contexts}
    chains = next(iter(shown)) if len(shown) == 1 \
        else "; ".join(f"{c}: {chain}" for chain, c in shown.items())
    why = httpfilters.ISTIO_ONLY.get(anchor)
    what = f"{anchor} is an Istio filter Remora's chain does not have ({why})" if why \
        else f"{anchor} is in no HTTP filter chain of Remora's"
    return (f"{what}, so this {patch.patch.operation} patch is not applied, as Istio does when a "
            f"patch's filter is not found (Remora's chain: {chains})")


def _order_problem(patch: EnvoyConfigObjectPatch) -> str | None:
    """A patch that would leave a filter after the router, or no router last: Envoy refuses the
    chain, Remora leaves the patch out (remora.mesh.envoyfilter)."""
    body = patch.patch
    assert body is not None
    anchor, router = patch.anchor, httpfilters.TERMINAL
    value = body.value or {}
    name = str(value.get("name", ""))
    is_router = httpfilters.implementation_of(name, httpfilters.typed_config_of(value)) == router
    after = body.operation == "ADD" or (body.operation == "INSERT_AFTER"
                                        and anchor in ("", router))
    if after and not is_router:
        return (f"{body.operation} puts {name} after {router}, the last filter of every chain: "
                f"Envoy refuses that, and Remora does not apply the patch")
    if anchor == router and (body.operation == "REMOVE"
                             or (body.operation == "REPLACE" and not is_router)):
        return (f"{body.operation} of {router} leaves the chain without its router: Envoy "
                f"refuses that, and Remora does not apply the patch")
    return None
