"""Istio security.istio.io kinds: PeerAuthentication, AuthorizationPolicy, RequestAuthentication.

Field lists follow istio/api security/v1beta1/*.proto; the rules are those of istio/istio
pkg/config/validation/validation.go (ValidateAuthorizationPolicy, ValidatePeerAuthentication,
ValidateRequestAuthentication), pkg/config/security/security.go and the CRDs' CEL rules.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from remora.api.base import Duration, Spec, fail
from remora.api.common import PolicyTargetReference, WorkloadSelector
from remora.api.resource import Resource, served

_yaml_key = functools.cache(to_camel)  # field name -> YAML key, on validation paths

# ---------------------------------------------------------------------------------------------
# Shared checks: selectors and targetRefs (validation.go validateOneOfSelectorType,
# validateWorkloadSelector, validatePolicyTargetReference)
# ---------------------------------------------------------------------------------------------

# validatePolicyTargetReference: (canonical group, kind) a policy may target.
ALLOWED_TARGET_KINDS = frozenset({
    ("", "Service"),
    ("core", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
})


def check_selector(selector: WorkloadSelector | None) -> None:
    """Istio rejects empty keys and `*` in a workload selector (validateWorkloadSelector)."""
    if selector is None:
        return
    for key, value in selector.match_labels.items():
        if not key:
            fail("key must not be empty", "selector", "matchLabels")
        if "*" in key or "*" in value:
            fail(f"wildcard is not supported in selector: {key}={value}",
                 "selector", "matchLabels", key)  # fmt: skip


def check_target_ref(ref: PolicyTargetReference, *path: str | int) -> None:
    """validatePolicyTargetReference: same namespace only; Service, ServiceEntry or Gateway."""
    if ref.namespace:
        fail("must not be set; cross namespace referencing is not supported",
             *path, "namespace")  # fmt: skip
    if ((ref.group or "").lower(), ref.kind) not in ALLOWED_TARGET_KINDS:
        fail(f"targetRef must be to a Service, ServiceEntry, Gateway or GatewayClass, "
             f"got {ref.group or 'core'}/{ref.kind}", *path, "kind")  # fmt: skip


def check_targeting(
    selector: WorkloadSelector | None,
    target_ref: PolicyTargetReference | None,
    target_refs: list[PolicyTargetReference],
) -> None:
    """selector, targetRef and targetRefs are mutually exclusive (CRD rule and validation.go)."""
    if sum((selector is not None, target_ref is not None, bool(target_refs))) > 1:
        fail("only one of targetRefs or selector can be set")
    check_selector(selector)
    if target_ref is not None:
        check_target_ref(target_ref, "targetRef")
    if len(target_refs) > 16:
        fail("must have at most 16 items", "targetRefs")
    for i, ref in enumerate(target_refs):
        check_target_ref(ref, "targetRefs", i)


def _check_ips(values: list[str], field: str) -> None:
    """security.ValidateIPs: each value is an IP address or a CIDR range."""
    for i, value in enumerate(values):
        try:
            if "/" in value:
                ipaddress.ip_network(value, strict=False)
            else:
                ipaddress.ip_address(value)
        except ValueError:
            kind = "CIDR range" if "/" in value else "IP address"
            fail(f"bad {kind} {value!r}", field, i)


def _check_ports(values: list[str], field: str) -> None:
    """security.ValidatePorts: decimal port numbers 0-65535, written as strings."""
    for i, value in enumerate(values):
        if not value.isdigit() or not value.isascii() or int(value) > 65535:
            fail(f"bad port {value!r}: must be a number 0-65535", field, i)


def _check_not_empty(values: list[str], field: str) -> None:
    """security.CheckEmptyValues: no empty strings in a match list."""
    for i, value in enumerate(values):
        if value == "":
            fail("empty value not allowed", field, i)


def _check_service_accounts(values: list[str], field: str) -> None:
    """security.CheckServiceAccount: `sa` or `namespace/sa`, no wildcards, at most 16 values."""
    if len(values) > 16:
        fail("may not have more than 16 values", field)
    for i, value in enumerate(values):
        if value == "":
            fail("empty value not allowed", field, i)
        if "*" in value:
            fail("wildcard not allowed", field, i)
        if len(value) > 320:
            fail("value cannot exceed 320 characters", field, i)
        parts = value.split("/")
        if len(parts) > 2 or any(not part for part in parts):
            fail(f"expected format 'serviceAccount' or 'namespace/serviceAccount', got {value!r}",
                 field, i)  # fmt: skip


_PATH_LITERAL = re.compile(r"[a-zA-Z0-9\-._~%!$&'()+,;:@=]+")


def _check_path_templates(values: list[str], field: str) -> None:
    """security.CheckValidPathTemplate: `{*}` and `{**}` segments, `{**}` last, pchar literals."""
    for i, path in enumerate(values):
        templated = "{*}" in path or "{**}" in path
        seen_any = False
        for glob in path.strip("/").split("/"):
            if glob in ("{*}", "{**}"):
                if seen_any:
                    fail(f"invalid path {path!r}: {{**}} is not the last operator", field, i)
                seen_any = glob == "{**}"
                continue
            if "{" in glob or "}" in glob:
                fail(f"invalid path {path!r}: contains '{{' or '}}' beyond a supported path "
                     "template", field, i)  # fmt: skip
            if templated and not _PATH_LITERAL.fullmatch(glob):
                fail(f"invalid path {path!r}: segment {glob!r} is not a valid literal", field, i)


# ---------------------------------------------------------------------------------------------
# PeerAuthentication
# ---------------------------------------------------------------------------------------------

MtlsMode = Literal["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]


class MutualTLS(Spec):
    """PeerAuthentication.MutualTLS: the mTLS mode (UNSET inherits from the parent scope)."""

    mode: MtlsMode | None = None

    @property
    def effective_mode(self) -> MtlsMode:
        return self.mode or "UNSET"


def _port_key(value: Any) -> Any:
    """portLevelMtls keys are uint32 ports; YAML gives ints, JSON gives numeric strings."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


PortKey = Annotated[int, BeforeValidator(_port_key)]


class PeerAuthenticationSpec(Spec):
    """security.istio.io PeerAuthentication spec."""

    selector: WorkloadSelector | None = None
    mtls: MutualTLS | None = None
    port_level_mtls: dict[PortKey, MutualTLS] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _rules(self) -> PeerAuthenticationSpec:
        check_selector(self.selector)
        # CRD rule "portLevelMtls requires selector"; validation.go "mesh/namespace peer
        # authentication cannot have port level mTLS".
        if "port_level_mtls" in self.model_fields_set:
            if self.selector is None or not self.selector.match_labels:
                fail("portLevelMtls requires a selector", "portLevelMtls")
            if not self.port_level_mtls:
                fail("port level mTLS, if defined, must have at least one element",
                     "portLevelMtls")  # fmt: skip
        for port in self.port_level_mtls:
            if not 0 < port <= 65535:
                fail("port must be between 1-65535", "portLevelMtls", str(port))
        return self


@served("security.istio.io", "v1beta1", "v1")
class PeerAuthentication(Resource):
    """Which mTLS mode workloads accept: workload > namespace > mesh (root namespace)."""

    KIND: ClassVar[str] = "PeerAuthentication"

    spec: PeerAuthenticationSpec = Field(default_factory=PeerAuthenticationSpec)


# ---------------------------------------------------------------------------------------------
# AuthorizationPolicy
# ---------------------------------------------------------------------------------------------


class Source(Spec):
    """Rule.From.source: the peer identity, namespace, IP, or request principal. Fields AND."""

    principals: list[str] = Field(default_factory=list)
    not_principals: list[str] = Field(default_factory=list)
    request_principals: list[str] = Field(default_factory=list)
    not_request_principals: list[str] = Field(default_factory=list)
    namespaces: list[str] = Field(default_factory=list)
    not_namespaces: list[str] = Field(default_factory=list)
    service_accounts: list[str] = Field(default_factory=list)
    not_service_accounts: list[str] = Field(default_factory=list)
    ip_blocks: list[str] = Field(default_factory=list)
    not_ip_blocks: list[str] = Field(default_factory=list)
    remote_ip_blocks: list[str] = Field(default_factory=list)
    not_remote_ip_blocks: list[str] = Field(default_factory=list)
    trust_domains: list[str] = Field(default_factory=list)
    not_trust_domains: list[str] = Field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in type(self).model_fields)

    @property
    def has_tcp_fields(self) -> bool:
        """Fields a TCP connection can be matched on (not request principals)."""
        return bool(self.principals or self.not_principals or self.namespaces
                    or self.not_namespaces or self.ip_blocks or self.not_ip_blocks
                    or self.remote_ip_blocks or self.not_remote_ip_blocks
                    or self.service_accounts or self.not_service_accounts)  # fmt: skip

    @model_validator(mode="after")
    def _rules(self) -> Source:
        if self.is_empty:
            fail("`from.source` must not be empty")
        # CRD rule: "Cannot set serviceAccounts with namespaces or principals".
        if (self.service_accounts or self.not_service_accounts) and (
            self.principals or self.not_principals or self.namespaces or self.not_namespaces
        ):
            fail("cannot set serviceAccounts with namespaces or principals")
        for name in ("ip_blocks", "not_ip_blocks", "remote_ip_blocks", "not_remote_ip_blocks"):
            _check_not_empty(getattr(self, name), _yaml_key(name))
            _check_ips(getattr(self, name), _yaml_key(name))
        for name in ("principals", "not_principals", "request_principals",
                     "not_request_principals", "namespaces", "not_namespaces",
                     "trust_domains", "not_trust_domains"):  # fmt: skip
            _check_not_empty(getattr(self, name), _yaml_key(name))
        _check_service_accounts(self.service_accounts, "serviceAccounts")
        _check_service_accounts(self.not_service_accounts, "notServiceAccounts")
        return self


class Operation(Spec):
    """Rule.To.operation: hosts, ports, methods and paths of the request. Fields AND."""

    hosts: list[str] = Field(default_factory=list)
    not_hosts: list[str] = Field(default_factory=list)
    ports: list[str] = Field(default_factory=list)
    not_ports: list[str] = Field(default_factory=list)
    methods: list[str] = Field(default_factory=list)
    not_methods: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)
    not_paths: list[str] = Field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in type(self).model_fields)

    @model_validator(mode="after")
    def _rules(self) -> Operation:
        if self.is_empty:
            fail("`to.operation` must not be empty")
        for name in type(self).model_fields:
            _check_not_empty(getattr(self, name), _yaml_key(name))
        _check_ports(self.ports, "ports")
        _check_ports(self.not_ports, "notPorts")
        _check_path_templates(self.paths, "paths")
        _check_path_templates(self.not_paths, "notPaths")
        return self


class From(Spec):
    """Rule.From: one source."""

    source: Source


class To(Spec):
    """Rule.To: one operation."""

    operation: Operation


# security.go ValidateAttribute: the `when` keys Istio supports.
_EXACT_KEYS = frozenset({
    "source.ip", "remote.ip", "source.namespace", "source.serviceAccount", "source.principal",
    "request.auth.principal", "request.auth.audiences", "request.auth.presenter",
    "destination.ip", "destination.port", "connection.sni",
})
_MAP_KEYS = ("request.headers", "request.experimental.inline.headers", "request.auth.claims",
             "experimental.envoy.filters.")  # fmt: skip
_MAP_KEY = re.compile(r"[^\[]+\[.+\]")


def _attribute_error(key: str) -> str | None:
    """Why a `when` key is rejected, or None when Istio supports it."""
    if key in _EXACT_KEYS:
        return None
    if key.startswith(_MAP_KEYS):
        return None if _MAP_KEY.fullmatch(key) else f"bad key {key!r}: should have format a[b]"
    if key == "destination.namespace":
        return f"attribute {key} is replaced by the metadata.namespace"
    if key.startswith("destination.labels"):
        return f"attribute {key} is replaced by the workload selector"
    if key in ("destination.name", "destination.user"):
        return f"deprecated attribute {key}: only supported in v1alpha1"
    return f"unknown attribute: {key}"


class Condition(Spec):
    """Rule.when[]: an extra attribute condition (key, values, notValues)."""

    key: str
    values: list[str] = Field(default_factory=list)
    not_values: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules(self) -> Condition:
        if not self.key:
            fail("must not be empty", "key")
        error = _attribute_error(self.key)
        if error is not None:
            fail(error, "key")
        if not self.values and not self.not_values:
            fail(f"at least one of values or notValues must be set for key {self.key}")
        for field, values in (("values", self.values), ("notValues", self.not_values)):
            _check_not_empty(values, field)
            if self.key in ("source.ip", "remote.ip", "destination.ip"):
                _check_ips(values, field)
            elif self.key == "destination.port":
                _check_ports(values, field)
            elif self.key == "source.serviceAccount":
                _check_service_accounts(values, field)
        return self


class Rule(Spec):
    """AuthorizationPolicy rule: from (OR) AND to (OR) AND when (AND)."""

    from_: list[From] = Field(default_factory=list, alias="from")
    to: list[To] = Field(default_factory=list)
    when: list[Condition] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules(self) -> Rule:
        # validation.go: "`from` must not be empty" / "`to` must not be empty" when present.
        if "from_" in self.model_fields_set and not self.from_:
            fail("`from` must not be empty", "from")
        if "to" in self.model_fields_set and not self.to:
            fail("`to` must not be empty", "to")
        return self

    @property
    def sources(self) -> list[Source]:
        return [f.source for f in self.from_]

    @property
    def operations(self) -> list[Operation]:
        return [t.operation for t in self.to]


class ExtensionProvider(Spec):
    """AuthorizationPolicy.provider: the extension provider (meshConfig) of a CUSTOM action."""

    name: str | None = None


Action = Literal["ALLOW", "DENY", "AUDIT", "CUSTOM"]

# validation.go: source/when fields CUSTOM (ext_authz) cannot evaluate.
_CUSTOM_UNSUPPORTED_SOURCE = ("namespaces", "not_namespaces", "service_accounts",
                              "not_service_accounts", "trust_domains", "not_trust_domains",
                              "principals", "not_principals", "request_principals",
                              "not_request_principals")  # fmt: skip


class AuthorizationPolicySpec(Spec):
    """security.istio.io AuthorizationPolicy spec."""

    selector: WorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: list[PolicyTargetReference] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    action: Action | None = None
    provider: ExtensionProvider | None = None

    @property
    def effective_action(self) -> Action:
        """ALLOW when unset (the proto's zero value)."""
        return self.action or "ALLOW"

    @field_validator("rules")
    @classmethod
    def _at_most_512(cls, rules: list[Rule]) -> list[Rule]:
        if len(rules) > 512:  # CRD: MaxItems=512
            fail("must have at most 512 items")
        return rules

    @model_validator(mode="after")
    def _rules(self) -> AuthorizationPolicySpec:
        check_targeting(self.selector, self.target_ref, self.target_refs)
        action = self.effective_action
        if action == "CUSTOM":
            if not self.rules:
                fail("CUSTOM action without rules is meaningless as it will never be triggered, "
                     "add an empty rule `{}` if you want it be triggered for every request",
                     "rules")  # fmt: skip
            if self.provider is None or not self.provider.name:
                fail("provider.name must not be empty with the CUSTOM action", "provider")
            self._check_custom_rules()
        elif self.provider is not None:
            fail(f"provider must not be set with non CUSTOM action, found {action}", "provider")
        if action == "DENY" and not self.rules:
            fail("DENY action without rules is meaningless as it will never be triggered, "
                 "add an empty rule `{}` if you want it be triggered for every request",
                 "rules")  # fmt: skip
        return self

    def _check_custom_rules(self) -> None:
        for r, rule in enumerate(self.rules):
            for f, item in enumerate(rule.from_):
                for name in _CUSTOM_UNSUPPORTED_SOURCE:
                    if getattr(item.source, name):
                        fail("not supported with the CUSTOM action",
                             "rules", r, "from", f, "source", _yaml_key(name))  # fmt: skip
            for w, condition in enumerate(rule.when):
                key = condition.key
                if key in ("source.namespace", "source.serviceAccount", "source.trustDomain",
                           "source.principal") or key.startswith("request.auth."):  # fmt: skip
                    fail(f"{key} is not supported with the CUSTOM action",
                         "rules", r, "when", w, "key")  # fmt: skip


@served("security.istio.io", "v1beta1", "v1")
class AuthorizationPolicy(Resource):
    """Access control: CUSTOM, then DENY, then ALLOW policies; AUDIT only logs."""

    KIND: ClassVar[str] = "AuthorizationPolicy"

    spec: AuthorizationPolicySpec = Field(default_factory=AuthorizationPolicySpec)


# ---------------------------------------------------------------------------------------------
# RequestAuthentication
# ---------------------------------------------------------------------------------------------

_HEADER_NAME = re.compile(r"[-_A-Za-z0-9]+")


class JWTHeader(Spec):
    """JWTRule.fromHeaders[]: a header carrying the token, with an optional prefix to strip."""

    name: str
    prefix: str | None = None

    @model_validator(mode="after")
    def _rules(self) -> JWTHeader:
        if not self.name:
            fail("location header name must be non-empty string", "name")
        return self


class ClaimToHeader(Spec):
    """JWTRule.outputClaimToHeaders[]: copy a claim into a request header."""

    header: str
    claim: str

    @model_validator(mode="after")
    def _rules(self) -> ClaimToHeader:
        if not self.header:
            fail("must not be empty", "header")
        if not self.claim:
            fail("must not be empty", "claim")
        if not _HEADER_NAME.fullmatch(self.header):  # CRD Pattern ^[-_A-Za-z0-9]+$
            fail(f"invalid header name {self.header!r}", "header")
        return self


def check_jwks_uri(uri: str) -> None:
    """security.ParseJwksURI / CRD rule: an http:// or https:// URL with a host."""
    try:
        parts = urlsplit(uri)
        _ = parts.port  # raises on a bad port
    except ValueError as exc:
        fail(f"invalid URL {uri!r}: {exc}", "jwksUri")
    if parts.scheme not in ("http", "https"):
        fail(f"URI scheme {parts.scheme!r} is not supported: url must have scheme http:// or "
             "https://", "jwksUri")  # fmt: skip
    if not parts.hostname:
        fail(f"invalid URL {uri!r}: missing host", "jwksUri")


class JWTRule(Spec):
    """RequestAuthentication.jwtRules[]: how to validate tokens of one issuer."""

    issuer: str | None = None
    audiences: list[str] = Field(default_factory=list)
    jwks_uri: str | None = None
    jwks: str | None = None
    from_headers: list[JWTHeader] = Field(default_factory=list)
    from_params: list[str] = Field(default_factory=list)
    from_cookies: list[str] = Field(default_factory=list)
    output_payload_to_header: str | None = None
    forward_original_token: bool | None = None
    output_claim_to_headers: list[ClaimToHeader] = Field(default_factory=list)
    timeout: Duration | None = None
    space_delimited_claims: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules(self) -> JWTRule:
        # validation.go validateJwtRule.
        if not self.issuer and not self.jwks_uri:
            fail("issuer or jwksUri must be non-empty string")
        _check_not_empty(self.audiences, "audiences")
        if self.jwks_uri is not None and self.jwks is not None:
            fail("only one of jwks or jwksUri can be set")  # CRD XValidation
        if self.jwks_uri is not None:
            check_jwks_uri(self.jwks_uri)
        _check_not_empty(self.from_params, "fromParams")
        _check_not_empty(self.from_cookies, "fromCookies")
        return self

    @property
    def forwards_original_token(self) -> bool:
        return bool(self.forward_original_token)


class RequestAuthenticationSpec(Spec):
    """security.istio.io RequestAuthentication spec."""

    selector: WorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: list[PolicyTargetReference] = Field(default_factory=list)
    jwt_rules: list[JWTRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules(self) -> RequestAuthenticationSpec:
        check_targeting(self.selector, self.target_ref, self.target_refs)
        if len(self.jwt_rules) > 4096:  # CRD: MaxItems=4096
            fail("must have at most 4096 items", "jwtRules")
        return self


@served("security.istio.io", "v1beta1", "v1")
class RequestAuthentication(Resource):
    """Which JWTs workloads accept: an invalid token is rejected (401), none passes unnamed."""

    KIND: ClassVar[str] = "RequestAuthentication"

    spec: RequestAuthenticationSpec = Field(default_factory=RequestAuthenticationSpec)

