"""The resources of a running control plane as `remora analyze` input: what `istioctl analyze`
with no file reads from the cluster.

Every served kind is listed across all namespaces (one GET each), `status` dropped, and the
objects loaded as one document stream, so the analyzers see exactly what the control plane
stores; messages name the resources (`VirtualService default/front`) with no file or line.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from remora.errors import RemoraError

if TYPE_CHECKING:
    from remora.api.loader import LoadResult
    from remora.cli.kubectl import Client


def stored_objects(client: Client) -> list[dict[str, Any]]:
    """Every stored object of every served kind, without its status."""
    from remora.cli.kubectl import ServerError  # noqa: PLC0415
    from remora.controlplane.kindnames import TYPES  # noqa: PLC0415

    objects: list[dict[str, Any]] = []
    for rtype in TYPES:
        try:
            items = client.call("GET", rtype.collection_path(None))["items"]
        except ServerError as exc:
            if exc.code in (401, 403):
                raise RemoraError(f"cannot list {rtype.plural} to analyze them: {exc}") from None
            continue  # a kind this control plane does not serve
        objects.extend({k: v for k, v in item.items() if k != "status"} for item in items)
    return objects


def load_from(client: Client, *, namespace: str) -> LoadResult:
    """The control plane's resources, loaded as `remora analyze -f` loads files."""
    from remora.api.loader import load_text  # noqa: PLC0415 - the models: analyze only

    text = "\n---\n".join(json.dumps(obj) for obj in stored_objects(client))
    return load_text(text, file="", namespace=namespace)
