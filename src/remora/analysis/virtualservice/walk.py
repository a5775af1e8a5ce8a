"""Walking a VirtualService: every destination (route, mirror) with the YAML path to it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from remora.analysis.models import (
    Destination,
    HTTPRouteDestination,
    RouteDestination,
    VirtualService,
)

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Located:
    """A destination and where it is: `path` leads to the `destination` mapping."""

    destination: Destination
    path: Path
    mirror: bool = False

    def at(self, key: str) -> Path:
        return (*self.path, key)


def route_destinations(vs: VirtualService) -> Iterator[Located]:
    """tcp, tls, then http route destinations (the order istioctl checks them in)."""
    spec = vs.spec
    routes: list[tuple[str, int, Sequence[RouteDestination | HTTPRouteDestination]]] = [
        *(("tcp", i, rule.route) for i, rule in enumerate(spec.tcp)),
        *(("tls", i, rule.route) for i, rule in enumerate(spec.tls)),
        *(("http", i, rule.route) for i, rule in enumerate(spec.http)),
    ]
    for section, i, route in routes:
        for j, weighted in enumerate(route):
            yield Located(weighted.destination, ("spec", section, i, "route", j, "destination"))


def mirror_destinations(vs: VirtualService) -> Iterator[Located]:
    """http[].mirror and http[].mirrors[].destination."""
    for i, rule in enumerate(vs.spec.http):
        if rule.mirror is not None:
            yield Located(rule.mirror, ("spec", "http", i, "mirror"), mirror=True)
        for j, policy in enumerate(rule.mirrors):
            yield Located(
                policy.destination, ("spec", "http", i, "mirrors", j, "destination"), mirror=True
            )
