"""RMR0001 NotEnforced: what the input sets that Remora does not enforce (remora.api.unenforced),
each message naming the field path, and the Istio kinds Remora does not model at all."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from remora.analysis.context import Context
from remora.analysis.messages import NOT_ENFORCED, Message
from remora.api.errors import Source
from remora.api.loader import Unsupported
from remora.api.meshconfig import MeshConfig
from remora.api.unenforced import findings, mesh_findings, not_modelled

_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def check(context: Context) -> None:
    for resource in context.resources:
        for finding in findings(resource):
            context.report(resource, NOT_ENFORCED, finding.message, path=yaml_path(finding.path))


@dataclass(frozen=True, slots=True)
class MeshFile:
    """A mesh config read from a file (istioctl analyze --meshConfigFile)."""

    config: MeshConfig
    file: str


def mesh_file_messages(mesh: MeshFile) -> list[Message]:
    """RMR0001 for what a --meshConfigFile sets that Remora does not act on."""
    source = Source(mesh.file, 1)
    return [Message(NOT_ENFORCED, NOT_ENFORCED.format(found.message), "MeshConfig", source)
            for found in mesh_findings(mesh.config, "MeshConfig", "")]


def not_modelled_messages(items: Iterable[Unsupported]) -> list[Message]:
    """Objects of an Istio kind Remora does not model (EnvoyFilter, WasmPlugin, ...)."""
    out = []
    for item in items:
        entry = not_modelled(item.kind)
        if entry is not None:
            text = f"{item.kind} is NOT enforced by Remora (not modelled): {entry.reason}"
            out.append(Message(NOT_ENFORCED, text, f"{item.kind} {item.name}", item.source))
    return out


def yaml_path(path: str) -> tuple[str | int, ...]:
    """`spec.subsets[0].tls` -> ("spec", "subsets", 0, "tls"), to point at the field's line."""
    return tuple(name if name else int(index) for name, index in _PART.findall(path))
