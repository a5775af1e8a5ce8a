"""The resource models the analyzers read, imported from wherever remora.api defines them."""

from remora.api.kube.core import Namespace, Service
from remora.api.kube.workloads import Deployment, StatefulSet
from remora.api.networking.destination_rule import DestinationRule
from remora.api.networking.gateway import Gateway
from remora.api.networking.http_route import HTTPMatchRequest, HTTPRouteDestination
from remora.api.networking.service_entry import ServiceEntry, WorkloadEntry
from remora.api.networking.shared import Destination
from remora.api.networking.virtual_service import RouteDestination, VirtualService
from remora.api.security import AuthorizationPolicy, RequestAuthentication

__all__ = [
    "AuthorizationPolicy",
    "Deployment",
    "Destination",
    "DestinationRule",
    "Gateway",
    "HTTPMatchRequest",
    "HTTPRouteDestination",
    "Namespace",
    "RequestAuthentication",
    "RouteDestination",
    "Service",
    "ServiceEntry",
    "StatefulSet",
    "VirtualService",
    "WorkloadEntry",
]
