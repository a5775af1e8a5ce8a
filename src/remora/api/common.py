"""Types shared by several Istio resources: StringMatch, Percent, selectors, RE2 patterns."""

from __future__ import annotations

import functools
from typing import Annotated

import re2
from pydantic import AfterValidator, Field, model_validator

from remora.api.base import Spec, fail

INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1
Int32 = Annotated[int, Field(ge=-(2**31), le=INT32_MAX)]
"""Istio's int32 fields (weight, attempts, connection pool limits): the proto refuses more."""
NonNegativeInt32 = Annotated[int, Field(ge=0, le=INT32_MAX)]
UInt32 = Annotated[int, Field(ge=0, le=UINT32_MAX)]
"""Istio's uint32 fields (ports, status codes, consecutive error counts)."""
UInt64 = Annotated[int, Field(ge=0, le=2**64 - 1)]


def check_total_weight(weights: list[int | None]) -> None:
    """validateHTTPRouteDestinations / validateRouteDestinations: several destinations must not
    total 0; and the total must fit Envoy's uint32 weighted_clusters sum ("The sum of weights of
    all weighted clusters ... exceeds 4294967295")."""
    total = sum(weight or 0 for weight in weights)
    if len(weights) > 1 and total == 0:
        fail("total destination weight = 0", "route")
    if total > UINT32_MAX:
        fail(f"total destination weight {total} exceeds {UINT32_MAX}", "route")


def _quiet_options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # RE2 would also write each error to stderr
    return options


_RE2_OPTIONS = _quiet_options()


@functools.lru_cache(maxsize=4096)
def _re2_problem(pattern: str) -> str | None:
    """Why RE2 rejects `pattern`, or None. Cached: configs repeat the same patterns."""
    try:
        re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    return None


def check_re2(pattern: str) -> str:
    """Istio regexes are RE2 (Envoy's safe_regex): reject what RE2 cannot compile."""
    problem = _re2_problem(pattern)
    if problem is not None:
        fail(f"invalid RE2 regex {pattern!r}: {problem}")
    return pattern


RE2Pattern = Annotated[str, AfterValidator(check_re2)]
"""A string that must compile as an RE2 regular expression."""


class StringMatch(Spec):
    """Istio StringMatch: exactly one of exact, prefix or regex (RE2, full match)."""

    exact: str | None = None
    prefix: str | None = None
    regex: RE2Pattern | None = None

    @model_validator(mode="after")
    def _one_of(self) -> StringMatch:
        if sum(v is not None for v in (self.exact, self.prefix, self.regex)) > 1:
            fail("only one of exact, prefix or regex may be set")
        return self

    @property
    def is_empty(self) -> bool:
        """An empty StringMatch (`uri: {}`) in a header match means "header present"."""
        return self.exact is None and self.prefix is None and self.regex is None


class Percent(Spec):
    """Istio Percent: a double between 0 and 100."""

    value: Annotated[float, Field(ge=0, le=100)] = 0.0


class PortSelector(Spec):
    """Istio PortSelector: a port number."""

    number: Annotated[int, Field(ge=0, le=65535)] | None = None


class WorkloadSelector(Spec):
    """Istio WorkloadSelector: labels the selected workloads must all carry."""

    match_labels: dict[str, str] = Field(default_factory=dict)


class PolicyTargetReference(Spec):
    """A policy's targetRef (Gateway API style): group, kind, name, namespace."""

    group: str | None = None
    kind: str
    name: str
    namespace: str | None = None
