"""Kubernetes building blocks: label selectors, quantities, int-or-string, names.

Rules follow k8s.io/apimachinery (metav1 LabelSelector validation, resource.Quantity parsing,
IsDNS1123Label, IsValidPortName) as summarised in the Kubernetes API reference.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from remora.api.base import Spec, fail

# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_IANA_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")


def is_dns1123_label(value: str) -> bool:
    """IsDNS1123Label: lower-case alphanumerics and '-', at most 63 characters."""
    return len(value) <= 63 and _DNS1123_LABEL.fullmatch(value) is not None


def is_port_name(value: str) -> bool:
    """IsValidPortName (IANA_SVC_NAME): at most 15 characters, a letter, no '--'."""
    return (len(value) <= 15 and _IANA_SVC_NAME.fullmatch(value) is not None
            and "--" not in value and any(c.isalpha() for c in value))  # fmt: skip


def is_config_key(value: str) -> bool:
    """IsConfigMapKey: alphanumerics, '-', '_' or '.', at most 253 characters, not '.'/'..'."""
    return (len(value) <= 253 and _CONFIG_KEY.fullmatch(value) is not None
            and value not in (".", ".."))  # fmt: skip


def check_port_number(port: int, *path: str | int) -> None:
    if not 1 <= port <= 65535:
        fail("must be between 1 and 65535, inclusive", *path)


def check_int_or_port_name(value: int | str, *path: str | int) -> None:
    """A container port given by number (1-65535) or by name (IANA_SVC_NAME)."""
    if isinstance(value, int):
        check_port_number(value, *path)
    elif not is_port_name(value):
        fail(f"must be a port number or a port name (IANA_SVC_NAME), got {value!r}", *path)


# ---------------------------------------------------------------------------------------------
# Quantities (resource.Quantity)
# ---------------------------------------------------------------------------------------------

_QUANTITY = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))((?:[KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?")
_SUFFIX = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}  # fmt: skip


def parse_quantity(value: str | int | float) -> Decimal:
    """A Kubernetes quantity ("500m", "128Mi", "1.5", "2e3", 2) as a Decimal; ValueError if bad."""
    if isinstance(value, bool):
        raise ValueError(f"invalid quantity {value!r}")
    if isinstance(value, int | float):
        return Decimal(str(value))
    match = _QUANTITY.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"invalid quantity {value!r}: use a number with an optional suffix "
                         "such as 500m, 128Mi or 2G")  # fmt: skip
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number * Decimal(10) ** int(suffix[1:])
    return number * _SUFFIX[suffix]


def cpu_millicores(value: str | int | float) -> int:
    """CPU quantity in millicores, rounded up as Kubernetes does ("500m" -> 500, 1 -> 1000)."""
    return int((parse_quantity(value) * 1000).to_integral_value(ROUND_CEILING))


def memory_bytes(value: str | int | float) -> int:
    """Memory quantity in bytes, rounded up ("128Mi" -> 134217728, "1G" -> 10**9)."""
    return int(parse_quantity(value).to_integral_value(ROUND_CEILING))


def _quantity(value: Any) -> Any:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            parse_quantity(value)
        except (ValueError, InvalidOperation):
            fail(f"invalid quantity {value!r}: use a number with an optional suffix such as "
                 "500m, 128Mi or 2G")  # fmt: skip
    return value


Quantity = Annotated[str | int | float, BeforeValidator(_quantity)]
"""A resource quantity as written ("500m", "128Mi", 2); see parse_quantity()."""

IntOrString = int | str
"""Kubernetes' IntOrString: a number, or a name / percentage string."""


def _int_or_percent(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(r"\d+%", value):
        fail(f"must be an integer or a percentage such as \"25%\", got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        fail("must be greater than or equal to 0")
    return value


IntOrPercent = Annotated[int | str, BeforeValidator(_int_or_percent)]
"""maxSurge / maxUnavailable: a non-negative count, or a percentage ("25%")."""


def resolve_int_or_percent(value: int | str, total: int, *, round_up: bool) -> int:
    """A count, or a percentage of `total` rounded up (maxSurge) or down (maxUnavailable)."""
    if isinstance(value, int):
        return value
    scaled = Decimal(int(value.rstrip("%")) * total) / 100
    return int(scaled.to_integral_value(ROUND_CEILING if round_up else "ROUND_FLOOR"))


# ---------------------------------------------------------------------------------------------
# Label selectors
# ---------------------------------------------------------------------------------------------


class LabelSelectorRequirement(Spec):
    """matchExpressions[]: key, operator In|NotIn|Exists|DoesNotExist, values."""

    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules(self) -> LabelSelectorRequirement:
        # apimachinery ValidateLabelSelectorRequirement.
        if self.operator in ("In", "NotIn") and not self.values:
            fail("must be specified when `operator` is 'In' or 'NotIn'", "values")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            fail("may not be specified when `operator` is 'Exists' or 'DoesNotExist'", "values")
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            return labels.get(self.key) not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


class LabelSelector(Spec):
    """metav1.LabelSelector: matchLabels AND matchExpressions; empty matches everything."""

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: dict[str, str]) -> bool:
        """True when every matchLabels pair and every expression holds for `labels`."""
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            e.matches(labels) for e in self.match_expressions
        )


class LocalObjectReference(Spec):
    """A reference by name to an object in the same namespace."""

    name: str | None = None


class ObjectReference(Spec):
    """core/v1 ObjectReference."""

    api_version: str | None = None
    field_path: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None
    resource_version: str | None = None
    uid: str | None = None
