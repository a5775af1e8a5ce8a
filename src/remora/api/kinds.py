"""Every served kind, registered by importing the model modules; see `KINDS`."""

from remora.api import kube, security, telemetry  # noqa: F401  (they register)
from remora.api.networking import (  # noqa: F401  (they register)
    destination_rule,
    envoy_filter,
    gateway,
    service_entry,
    sidecar,
    virtual_service,
)
from remora.api.resource import KINDS, KindInfo

__all__ = ["KINDS", "KindInfo"]
