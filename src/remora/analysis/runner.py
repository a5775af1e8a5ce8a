"""Run every analyzer over a load result and order the messages as istioctl analyze does."""

from __future__ import annotations

from collections.abc import Callable

from remora.analysis import authz, destinationrule, envoyfilter, gateway, unenforced
from remora.analysis.context import Context
from remora.analysis.messages import Message
from remora.analysis.schema import schema_messages
from remora.analysis.unenforced import MeshFile
from remora.analysis.virtualservice import (
    delegates,
    destinations,
    gateways,
    jwtclaims,
    meshhosts,
    rules,
)
from remora.api.loader import LoadResult
from remora.gcpause import no_gc_pauses

Analyzer = Callable[[Context], None]

ANALYZERS: tuple[Analyzer, ...] = (
    destinations.check_hosts,
    destinations.check_subsets,
    delegates.check,
    gateways.check,
    meshhosts.check,
    rules.check,
    jwtclaims.check,
    destinationrule.check,
    authz.check,
    gateway.check_conflicts,
    envoyfilter.check,
    unenforced.check,
)


def analyze(result: LoadResult, *, namespace: str | None,
            mesh: MeshFile | None = None) -> list[Message]:
    """Findings about the loaded resources; `namespace` None means all namespaces (-A); `mesh`
    a --meshConfigFile (else the mesh config is ConfigMap istio-system/istio, else defaults).

    Every check sees every resource; only messages about resources in `namespace` are kept;
    the mesh config concerns every namespace, so its messages are always kept.
    """
    context = Context(result.resources, namespace=namespace,
                      mesh_file=mesh.config if mesh is not None else None)
    with no_gc_pauses():
        for analyzer in ANALYZERS:
            analyzer(context)
    messages = context.messages + schema_messages(result.issues, namespace=namespace)
    messages += unenforced.not_modelled_messages(result.unsupported)
    if mesh is not None:
        messages += unenforced.mesh_file_messages(mesh)
    return sort_messages(messages)


def sort_messages(messages: list[Message]) -> list[Message]:
    """istioctl's order (diag.Messages.SortedDedupedCopy): level (errors first), code, resource
    (kind/name/namespace), then text; identical lines once."""
    ordered = sorted(messages, key=_sort_key)
    out: list[Message] = []
    for message in ordered:
        if out and str(out[-1]) == str(message):
            continue
        out.append(message)
    return out


def _sort_key(message: Message) -> tuple[int, str, int, str, str]:
    kind, _, key = message.subject.partition(" ")
    namespace, slash, name = key.partition("/")
    if not slash:
        namespace, name = "", key
    comparator = f"{kind}/{name}/{namespace}"
    return (
        -message.type.level.rank,
        message.type.code,
        1 if message.subject else 0,
        comparator,
        str(message),
    )
