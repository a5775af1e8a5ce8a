"""IST0101 for an http rule delegating to a VirtualService that is not in the input.

A delegate VirtualService is `namespace/name` (namespace defaults to the delegating one's);
a delegate that delegates again is a schema error already (validation.go: "delegate HTTP route
cannot contain delegate").
"""

from __future__ import annotations

from remora.analysis.context import Context
from remora.analysis.messages import REFERENCED_RESOURCE_NOT_FOUND, go_quote
from remora.analysis.models import VirtualService


def check(ctx: Context) -> None:
    for vs in ctx.of(VirtualService):
        for i, rule in enumerate(vs.spec.http):
            if rule.delegate is None:
                continue
            namespace = rule.delegate.namespace or vs.namespace
            name = rule.delegate.name or ""
            if ctx.find(VirtualService, namespace, name) is None:
                ctx.report(
                    vs,
                    REFERENCED_RESOURCE_NOT_FOUND,
                    "delegate virtualservice",
                    go_quote(f"{namespace}/{name}"),
                    path=("spec", "http", i, "delegate"),
                )
