"""Delegation: IST0101 for a delegate VirtualService that is not in the input, RMR0001 for a
delegate that delegates again (Istio supports one level: virtual_service.proto, Delegate)."""

from __future__ import annotations

from remora.analysis.context import Context
from remora.analysis.messages import DELEGATE_CHAIN, REFERENCED_RESOURCE_NOT_FOUND, go_quote
from remora.analysis.models import VirtualService


def check(ctx: Context) -> None:
    for vs in ctx.of(VirtualService):
        for i, rule in enumerate(vs.spec.http):
            if rule.delegate is None:
                continue
            namespace = rule.delegate.namespace or vs.namespace
            name = rule.delegate.name or ""
            target = ctx.find(VirtualService, namespace, name)
            if target is None:
                ctx.report(
                    vs,
                    REFERENCED_RESOURCE_NOT_FOUND,
                    "delegate virtualservice",
                    go_quote(f"{namespace}/{name}"),
                    path=("spec", "http", i, "delegate"),
                )
                continue
            for j, inner in enumerate(target.spec.http):
                if inner.delegate is not None:
                    again = f"{inner.delegate.namespace or target.namespace}/{inner.delegate.name}"
                    ctx.report(
                        target,
                        DELEGATE_CHAIN,
                        target.key,
                        again,
                        path=("spec", "http", j, "delegate"),
                    )
