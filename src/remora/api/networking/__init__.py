"""Istio networking.istio.io resources: VirtualService, DestinationRule, Gateway, ..."""

from remora.api.networking import (
    destination_rule,
    envoy_filter,
    gateway,
    service_entry,
    sidecar,
    virtual_service,
)

__all__ = ["destination_rule", "envoy_filter", "gateway", "service_entry", "sidecar",
           "virtual_service"]
