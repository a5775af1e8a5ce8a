"""Messages several networking kinds share: Destination, Headers, WorkloadSelector, durations.

Durations here follow Istio's ValidateDuration (pkg/config/validation/agent/validation.go):
at least 1ms and whole milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from remora.api.base import Duration, Spec, fail
from remora.api.common import PortSelector
from remora.api.networking import names


def check_rule_selectors(source_labels: dict[str, str], gateways: list[str]) -> None:
    """The match fields every route kind shares that pick proxies: sourceLabels and gateways."""
    if problem := names.check_labels(source_labels):
        fail(problem, "sourceLabels")
    for position, gateway in enumerate(gateways):
        if problem := names.check_gateway_name(gateway):
            fail(problem, "gateways", position)


def check_ms_duration(seconds: float) -> float:
    """ValidateDuration: "duration must be greater than 1ms", whole milliseconds only."""
    millis = seconds * 1000
    if millis < 1 - 1e-9:
        fail("duration must be at least 1ms")
    if abs(millis - round(millis)) > 1e-6:
        fail("only durations to ms precision are supported")
    return seconds


MsDuration = Annotated[Duration, AfterValidator(check_ms_duration)]
"""A duration Istio checks with ValidateDuration (>= 1ms, ms precision)."""


class Destination(Spec):
    """Where a request or connection goes: a service host, an optional subset and port."""

    host: str
    subset: str | None = None
    port: PortSelector | None = None

    @model_validator(mode="after")
    def _valid(self) -> Destination:
        # validateDestination (pkg/config/validation/validation.go)
        if self.host == "*":
            fail(f"invalid destination host {self.host}", "host")
        if problem := names.check_wildcard_domain(self.host):
            fail(problem, "host")
        if self.subset is not None:
            if not self.subset:
                fail("subset name cannot be empty", "subset")
            if not names.is_dns1123_label(self.subset):
                fail(f"subset name is invalid: {self.subset}", "subset")
        if self.port is not None and (problem := names.check_port(self.port.number or 0)):
            fail(problem, "port", "number")
        return self

    @property
    def port_number(self) -> int | None:
        """The destination port, or None when the service's single port is meant."""
        return self.port.number if self.port is not None else None


class HeaderOperations(Spec):
    """Headers to set (overwrite), add (append) or remove."""

    set: dict[str, str] = Field(default_factory=dict)
    add: dict[str, str] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


def _check_operation_name(name: str, *, request_write: bool) -> str | None:
    """ValidateHTTPHeaderOperationName / ...WithAuthorityOperationName."""
    if not name:
        return "header name cannot be empty"
    authority = name.lower() in (":authority", "host")
    if request_write and authority:
        return None
    if name.lower() == "host":
        return f"invalid header {name!r}: cannot set Host header"
    if name.startswith(":"):
        return f'invalid header {name!r}: header cannot have ":" prefix'
    return None


class Headers(Spec):
    """Header manipulation for requests and responses (per route or per destination)."""

    request: HeaderOperations | None = None
    response: HeaderOperations | None = None

    @model_validator(mode="after")
    def _valid(self) -> Headers:
        for side in ("request", "response"):
            ops: HeaderOperations | None = getattr(self, side)
            if ops is None:
                continue
            for verb in ("set", "add"):
                for name, value in getattr(ops, verb).items():
                    writes = side == "request"
                    if problem := _check_operation_name(name, request_write=writes):
                        fail(problem, side, verb, name)
                    if problem := names.check_header_value(value):
                        fail(problem, side, verb, name)
            for position, name in enumerate(ops.remove):
                if problem := _check_operation_name(name, request_write=False):
                    fail(problem, side, "remove", position)
        return self

    def authority_values(self) -> Iterator[str]:
        """Values this sets or adds for the request authority (`:authority` or `host`)."""
        if self.request is None:
            return
        for ops in (self.request.set, self.request.add):
            for name, value in ops.items():
                if name.lower() in (":authority", "host"):
                    yield value


class WorkloadSelector(Spec):
    """networking.istio.io WorkloadSelector (Sidecar, ServiceEntry): `labels`, not matchLabels."""

    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid(self) -> WorkloadSelector:
        # ValidateAlphaWorkloadSelector: no empty keys, no wildcards (no labels only warns)
        for key, value in self.labels.items():
            if not key:
                fail(f"empty key is not supported in selector: {key}={value}", "labels")
            if "*" in key or "*" in value:
                fail(f"wildcard is not supported in selector: {key}={value}", "labels", key)
        if problem := names.check_labels(self.labels):
            fail(problem, "labels")
        return self


def check_percentage(value: float) -> str | None:
    """validatePercentage: 0, or between 0.0001 and 100."""
    if value < 0 or value > 100 or 0 < value < 0.0001:
        return f"percentage {value} is neither 0.0, nor in range [0.0001, 100.0]"
    return None
