"""Istio networking.istio.io resources: VirtualService, DestinationRule, Gateway, ...

The modules are imported where used, not here: the serving proxy reads the table of HTTP
filters (httpfilters) without loading the resource models and their validation.
"""
