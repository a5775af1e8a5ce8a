"""Analysis messages: levels, message types with Istio's codes and templates, formatted messages.

The codes, names, levels and templates are Istio's (istio/istio pkg/config/analysis/msg/
messages.yaml); a message prints the way `istioctl analyze` prints one:
`Error [IST0101] (VirtualService default/reviews vs.yaml:12) Referenced host not found: "x"`.
Checks Remora adds where Istio has none use `RMR####` codes, defined at the end of this module.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from remora.api.errors import Source

ISTIO_DOCS = "https://istio.io/latest/docs/reference/config/analysis"
REMORA_DOCS = "docs/analyze.md"


@functools.total_ordering
class Level(enum.Enum):
    """Severity, ordered INFO < WARNING < ERROR (so `level >= threshold` selects the worse)."""

    INFO = "Info"
    WARNING = "Warning"
    ERROR = "Error"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank < other.rank


_RANKS = {Level.INFO: 0, Level.WARNING: 1, Level.ERROR: 2}


@dataclass(frozen=True)
class MessageType:
    """One kind of finding: code (IST0101), name, level and a printf-style template."""

    code: str
    name: str
    level: Level
    template: str

    @property
    def documentation_url(self) -> str:
        if self.code.startswith("IST"):
            return f"{ISTIO_DOCS}/{self.code.lower()}/"
        return f"{REMORA_DOCS}#{self.code.lower()}"

    def format(self, *args: object) -> str:
        """Fill the template; args are already rendered with the helpers below."""
        return self.template % args


@dataclass(frozen=True)
class Message:
    """A finding about one resource (subject), pointing at the field it is about (source)."""

    type: MessageType
    text: str
    subject: str = ""  # "VirtualService default/reviews"
    source: Source | None = None

    @property
    def origin(self) -> str:
        """istioctl's " (VirtualService default/reviews vs.yaml:12)" part, without the space."""
        if not self.subject:
            return f"({self.source})" if self.source else ""
        return f"({self.subject} {self.source})" if self.source else f"({self.subject})"

    def __str__(self) -> str:
        origin = self.origin
        head = f"{self.type.level.value} [{self.type.code}]"
        return f"{head} {origin} {self.text}" if origin else f"{head} {self.text}"

    def to_dict(self) -> dict[str, Any]:
        """The object `istioctl analyze -o json` prints for a message."""
        out: dict[str, Any] = {"code": self.type.code, "level": self.type.level.value}
        if self.subject:
            out["origin"] = self.subject
        if self.source:
            out["reference"] = str(self.source)
        out["message"] = self.text
        out["documentationUrl"] = self.type.documentation_url
        return out


# ---------------------------------------------------------------------------------------------
# Rendering arguments as Go's fmt does (%q, %v of slices), so texts match istioctl's
# ---------------------------------------------------------------------------------------------


def go_quote(value: str) -> str:
    """Go's %q for a string: double quotes, backslash escapes."""
    out = ['"']
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif not ch.isprintable():
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_list(values: Iterable[object]) -> str:
    """Go's %v for a slice: `[a b c]`."""
    return "[" + " ".join(str(v) for v in values) + "]"


def go_quoted_list(values: Iterable[str]) -> str:
    """Go's %q for a []string: `["a" "b"]`."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def selector_string(labels: dict[str, str]) -> str:
    """klabels.SelectorFromSet(labels).String(): `k1=v1,k2=v2`, keys sorted."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


# ---------------------------------------------------------------------------------------------
# The catalogue: Istio's message types used by Remora's analyzers
# ---------------------------------------------------------------------------------------------

_E, _W, _I = Level.ERROR, Level.WARNING, Level.INFO

REFERENCED_RESOURCE_NOT_FOUND = MessageType(
    "IST0101", "ReferencedResourceNotFound", _E, "Referenced %s not found: %s"
)
SCHEMA_VALIDATION_ERROR = MessageType(
    "IST0106", "SchemaValidationError", _E, "Schema validation error: %s"
)
CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS = MessageType(
    "IST0109",
    "ConflictingMeshGatewayVirtualServiceHosts",
    _E,
    "The VirtualServices %s associated with mesh gateway define the same host %s which can lead "
    "to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a "
    "single resource.",
)
VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED = MessageType(
    "IST0112",
    "VirtualServiceDestinationPortSelectorRequired",
    _E,
    "This VirtualService routes to a service %s that exposes multiple ports %s. Specifying a "
    "port in the destination is required to disambiguate.",
)
NO_MATCHING_WORKLOADS_FOUND = MessageType(
    "IST0127",
    "NoMatchingWorkloadsFound",
    _W,
    "No matching workloads for this resource with the following labels: %s",
)
VIRTUAL_SERVICE_UNREACHABLE_RULE = MessageType(
    "IST0130", "VirtualServiceUnreachableRule", _W, "VirtualService rule %s not used (%s)."
)
VIRTUAL_SERVICE_INEFFECTIVE_MATCH = MessageType(
    "IST0131",
    "VirtualServiceIneffectiveMatch",
    _I,
    "VirtualService rule %s match %s is not used (duplicate/overlapping match in rule %s).",
)
VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY = MessageType(
    "IST0132",
    "VirtualServiceHostNotFoundInGateway",
    _W,
    "one or more host %s defined in VirtualService %s not found in Gateway %s.",
)
CONFLICTING_GATEWAYS = MessageType(
    "IST0145",
    "ConflictingGateways",
    _E,
    "Conflict with gateways %s (workload selector %s, port %s, hosts %s).",
)
JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN = MessageType(
    "IST0149",
    "JwtClaimBasedRoutingWithoutRequestAuthN",
    _E,
    "The virtual service uses the JWT claim based routing (key: %s) but found no request "
    "authentication for the gateway (%s) pod (%s). The request authentication must first be "
    "applied for the gateway pods to validate the JWT token and make the claims available for "
    "routing.",
)
DESTINATION_RULE_SUBSET_NOT_SELECT_PODS = MessageType(
    "IST0173",
    "DestinationRuleSubsetNotSelectPods",
    _E,
    "The Subset %s defined in the DestinationRule does not select any pods. Which may lead to "
    "503 UH (NoHealthyUpstream).",
)
UNKNOWN_DESTINATION_RULE_HOST = MessageType(
    "IST0174",
    "UnknownDestinationRuleHost",
    _W,
    "The host %s defined in the DestinationRule does not match any services in the mesh.",
)

# Remora's own checks (no Istio equivalent) take RMR#### codes, documented in docs/analyze.md.
NOT_ENFORCED = MessageType("RMR0001", "NotEnforced", _W, "%s")
"""A kind or field Remora accepts (or, for kinds it does not model, skips) without enforcing
it: remora.api.unenforced. A Warning, so it never fails an analysis on its own (exit 0)."""

ENVOY_FILTER_PATCH_NOT_APPLIED = MessageType("RMR0002", "EnvoyFilterPatchNotApplied", _W, "%s")
"""An EnvoyFilter HTTP_FILTER patch that Remora will not apply although it models it: its anchor
is not in Remora's filter chain (Istio's rule: a patch whose filter is not found is not applied),
or it would leave a filter after the router (Envoy refuses such a chain)."""

ALL_TYPES: tuple[MessageType, ...] = (
    REFERENCED_RESOURCE_NOT_FOUND,
    SCHEMA_VALIDATION_ERROR,
    CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
    VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
    NO_MATCHING_WORKLOADS_FOUND,
    VIRTUAL_SERVICE_UNREACHABLE_RULE,
    VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
    VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
    CONFLICTING_GATEWAYS,
    JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN,
    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
    UNKNOWN_DESTINATION_RULE_HOST,
    NOT_ENFORCED,
    ENVOY_FILTER_PATCH_NOT_APPLIED,
)
