"""Istio networking.istio.io resources: VirtualService, DestinationRule, Gateway, ..."""
