"""VirtualService HTTP rules: HTTPRoute and the messages it is made of.

Rules follow istio/istio pkg/config/validation/virtualservice.go (validateHTTPRoute,
validateHTTPRouteConflict, validateHTTPRouteMatchRequest) and validation.go (validateHTTPRedirect,
validateHTTPRewrite, validateHTTPDirectResponse, validateCORSPolicy, validateHTTPFaultInjection,
validateHTTPRouteDestinations), and agent/validation.go (ValidateHTTPRetry).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from remora.api.base import Spec, fail
from remora.api.common import (
    Int32,
    NonNegativeInt32,
    Percent,
    RE2Pattern,
    StringMatch,
    UInt32,
    check_re2,
    check_total_weight,
)
from remora.api.networking import names
from remora.api.networking.shared import (
    Destination,
    Headers,
    MsDuration,
    check_percentage,
    check_rule_selectors,
)

MAX_REGEX_LENGTH = 1024  # validateStringRegexp: Envoy's RE2 program size, approximated by length
KB = 1024
MB = 1024 * KB

# agent.supportedRetryOnPolicies: Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on values.
RETRY_ON_POLICIES = frozenset({
    "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "retriable-4xx",
    "refused-stream", "retriable-status-codes", "retriable-headers", "envoy-ratelimited",
    "http3-post-connect-failure", "cancelled", "deadline-exceeded", "internal",
    "resource-exhausted", "unavailable",
})  # fmt: skip

# grpc.SupportedGRPCStatus (pkg/util/grpc): the canonical gRPC status names.
GRPC_STATUSES = frozenset({
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
    "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
})  # fmt: skip

# supportedCORSMethods (validation.go)
CORS_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)

# net/http StatusText: status codes Go knows, accepted as bare retryOn values.
_KNOWN_STATUS = frozenset({
    100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304,
    305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415,
    416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505,
    506, 507, 508, 510, 511,
})  # fmt: skip


def check_string_match(match: StringMatch, *, allow_empty_prefix: bool = False) -> str | None:
    """validateStringMatch: non-empty prefix (uri may be empty) and regex, regex <= 1024 chars."""
    if match.prefix == "" and not allow_empty_prefix:
        return "prefix string match should not be empty"
    if match.regex is not None:
        if not match.regex:
            return "regex string match should not be empty"
        if len(match.regex) > MAX_REGEX_LENGTH:
            return f"regex is too large, max length allowed is {MAX_REGEX_LENGTH}"
    return None


class HeaderAbsentMatch(StringMatch):
    """A withoutHeaders StringMatch: `regex: "*"` there means "present" and is not RE2."""

    regex: str | None = None

    @model_validator(mode="after")
    def _re2(self) -> HeaderAbsentMatch:
        if self.regex and self.regex != "*":
            try:
                check_re2(self.regex)
            except PydanticCustomError as exc:
                fail(exc.message(), "regex")
        return self


class HTTPMatchRequest(Spec):
    """Conditions a request must meet for a rule to apply; all fields AND together."""

    name: str | None = None
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: dict[str, StringMatch] = Field(default_factory=dict)
    port: UInt32 | None = None
    source_labels: dict[str, str] = Field(default_factory=dict)
    gateways: list[str] = Field(default_factory=list)
    query_params: dict[str, StringMatch] = Field(default_factory=dict)
    ignore_uri_case: bool | None = None  # only exact/prefix honour it; Istio does not reject
    without_headers: dict[str, HeaderAbsentMatch] = Field(default_factory=dict)
    source_namespace: str | None = None
    stat_prefix: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> HTTPMatchRequest:
        for field in ("headers", "without_headers"):
            alias = "headers" if field == "headers" else "withoutHeaders"
            for key, match in getattr(self, field).items():
                if problem := names.check_match_header_name(key):
                    fail(problem, alias, key)
                if field == "without_headers" and match.regex == "*":
                    continue  # `*` means "present" here, not a regex
                if problem := check_string_match(match):
                    fail(problem, alias, key)
        if self.uri is not None and (
            problem := check_string_match(self.uri, allow_empty_prefix=True)
        ):
            fail(problem, "uri")
        for field in ("scheme", "method", "authority"):
            match = getattr(self, field)
            if match is not None and (problem := check_string_match(match)):
                fail(problem, field)
        for key, match in self.query_params.items():
            if problem := check_string_match(match):
                fail(problem, "queryParams", key)
        if self.port is not None and self.port != 0 and (problem := names.check_port(self.port)):
            fail(problem, "port")
        check_rule_selectors(self.source_labels, self.gateways)
        if self.source_namespace and not names.is_dns1123_label(self.source_namespace):
            fail(f"sourceNamespace match {self.source_namespace} is invalid", "sourceNamespace")
        return self

    @property
    def jwt_claim_keys(self) -> list[str]:
        """Header keys that are `@request.auth.claims...` routes (gateway-only in Istio)."""
        keys = list(self.headers) + list(self.without_headers)
        return [key for key in keys if names.is_jwt_claim(key)]


class HTTPRouteDestination(Spec):
    """A weighted destination of an HTTP rule, with its own header operations."""

    destination: Destination
    weight: NonNegativeInt32 | None = None  # validateWeight: "weight < 0" is an error
    headers: Headers | None = None


class HTTPRedirect(Spec):
    """Answer with a redirect (301 unless redirectCode says otherwise)."""

    uri: str | None = None
    authority: str | None = None
    port: UInt32 | None = None
    derive_port: Literal["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"] | None = None
    scheme: str | None = None
    redirect_code: UInt32 | None = None
    prefix_rewrite: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> HTTPRedirect:
        # validateHTTPRedirect; port/derivePort are the proto oneof redirect_port
        if self.uri and self.prefix_rewrite:
            fail("redirect may only specify one of uri or prefixRewrite", "prefixRewrite")
        if self.port is not None and self.derive_port is not None:
            fail("only one of port or derivePort may be set", "derivePort")
        if not (self.uri or self.prefix_rewrite or self.authority or self.scheme) and (
            self.port is None and self.derive_port is None
        ):
            fail("redirect must specify uri, authority, scheme, or port")
        if self.redirect_code and not 300 <= self.redirect_code <= 399:
            fail(f"{self.redirect_code} is not a valid redirect code, must be 3xx", "redirectCode")
        if self.scheme and self.scheme not in ("http", "https"):
            fail('invalid redirect scheme, must be "http" or "https"', "scheme")
        if self.port is not None and self.port > 0 and (problem := names.check_port(self.port)):
            fail(problem, "port")
        return self

    @property
    def status(self) -> int:
        """The response status: redirectCode, else 301."""
        return self.redirect_code or 301


class HTTPBody(Spec):
    """A direct response body: `string`, or `bytes` (base64 in YAML)."""

    string: str | None = None
    bytes_: str | None = Field(default=None, alias="bytes")

    @model_validator(mode="after")
    def _valid(self) -> HTTPBody:
        if self.string is not None and self.bytes_ is not None:
            fail("only one of string or bytes may be set")
        if self.bytes_ is not None:
            try:
                base64.b64decode(self.bytes_, validate=True)
            except (binascii.Error, ValueError):
                fail("must be base64", "bytes")
        if self.size > MB:  # validateHTTPDirectResponse: > 100KB only warns
            fail(
                "large direct_responses may impact control plane performance, must be less than 1MB"
            )
        return self

    @property
    def content(self) -> bytes:
        if self.bytes_ is not None:
            return base64.b64decode(self.bytes_)
        return (self.string or "").encode()

    @property
    def size(self) -> int:
        if self.bytes_ is not None:
            return len(self.bytes_) * 3 // 4
        return len(self.string or "")


class HTTPDirectResponse(Spec):
    """Answer directly with a status and an optional body."""

    status: UInt32
    body: HTTPBody | None = None

    @model_validator(mode="after")
    def _valid(self) -> HTTPDirectResponse:
        # validateHTTPStatus: Istio's check is 200..600, its message says 200-599
        if not 200 <= self.status <= 599:
            fail(f"HTTP status {self.status} is not in range 200-599", "status")
        return self


class Delegate(Spec):
    """Hand the rule's matching to another VirtualService (`name`, `namespace`)."""

    name: str | None = None
    namespace: str | None = None


class RegexRewrite(Spec):
    """Rewrite the path with an RE2 pattern and a substitution (capture groups \\1...)."""

    match: RE2Pattern | None = None
    rewrite: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> RegexRewrite:
        # validateURIRegexRewrite
        if not self.match or self.rewrite is None or self.rewrite == "":
            fail("uriRegexRewrite requires both rewrite and match fields to be specified")
        if len(self.match) > MAX_REGEX_LENGTH:
            fail(f"regex is too large, max length allowed is {MAX_REGEX_LENGTH}", "match")
        return self


class HTTPRewrite(Spec):
    """Rewrite the path (uri or uriRegexRewrite) and/or the authority before forwarding."""

    uri: str | None = None
    authority: str | None = None
    uri_regex_rewrite: RegexRewrite | None = None

    @model_validator(mode="after")
    def _valid(self) -> HTTPRewrite:
        # validateHTTPRewrite
        if self.uri and self.uri_regex_rewrite is not None:
            fail("only one of uri or uriRegexRewrite may be set", "uriRegexRewrite")
        if not self.uri and self.uri_regex_rewrite is None and not self.authority:
            fail("rewrite must specify at least one of uri, uriRegexRewrite, or authority")
        return self


class HTTPRetry(Spec):
    """Retry policy: attempts, perTryTimeout, retryOn conditions, back-off."""

    attempts: Int32 | None = None
    per_try_timeout: MsDuration | None = None
    retry_on: str | None = None
    retry_remote_localities: bool | None = None
    retry_ignore_previous_hosts: bool | None = None
    backoff: MsDuration | None = None

    @model_validator(mode="after")
    def _valid(self) -> HTTPRetry:
        # agent.ValidateHTTPRetry
        attempts = self.attempts or 0
        if attempts < 0:
            fail("attempts cannot be negative", "attempts")
        configured = self.per_try_timeout is not None or self.retry_on
        if attempts == 0 and (configured or self.retry_remote_localities is not None):
            fail("http retry policy configured when attempts are set to 0 (disabled)", "attempts")
        for policy in (self.retry_on or "").split(",") if self.retry_on else ():
            status = int(policy) if policy.isdigit() else 0
            if status not in _KNOWN_STATUS and policy not in RETRY_ON_POLICIES:
                fail(f"{policy!r} is not a valid retryOn policy", "retryOn")
        return self

    @property
    def retry_on_list(self) -> list[str]:
        return [p for p in (self.retry_on or "").split(",") if p]


class Delay(Spec):
    """HTTPFaultInjection.Delay: fixedDelay for a percentage of requests."""

    fixed_delay: MsDuration | None = None
    exponential_delay: MsDuration | None = None
    percentage: Percent | None = None
    percent: Int32 | None = None  # deprecated int percentage

    @model_validator(mode="after")
    def _valid(self) -> Delay:
        # validateHTTPFaultInjectionDelay
        if self.fixed_delay is not None and self.exponential_delay is not None:
            fail("only one of fixedDelay or exponentialDelay may be set")
        if self.exponential_delay is not None:
            fail("exponentialDelay not supported yet", "exponentialDelay")
        if self.percentage is not None and (problem := check_percentage(self.percentage.value)):
            fail(problem, "percentage", "value")
        if self.percent is not None and not 0 <= self.percent <= 100:
            fail(f"percentage {self.percent} is not in range 0..100", "percent")
        return self


class Abort(Spec):
    """HTTPFaultInjection.Abort: answer with httpStatus or grpcStatus for a percentage."""

    http_status: Int32 | None = None
    grpc_status: str | None = None
    http2_error: str | None = None
    percentage: Percent | None = None

    @model_validator(mode="after")
    def _valid(self) -> Abort:
        # validateHTTPFaultInjectionAbort (no error type only warns)
        chosen = [v is not None for v in (self.http_status, self.grpc_status, self.http2_error)]
        if sum(chosen) > 1:
            fail("only one of httpStatus, grpcStatus or http2Error may be set")
        if self.percentage is not None and (problem := check_percentage(self.percentage.value)):
            fail(problem, "percentage", "value")
        if self.http2_error is not None:
            fail("HTTP/2 abort fault injection not supported yet", "http2Error")
        if self.http_status is not None and not 200 <= self.http_status <= 599:
            fail(f"HTTP status {self.http_status} is not in range 200-599", "httpStatus")
        if self.grpc_status is not None and self.grpc_status not in GRPC_STATUSES:
            fail(f"gRPC status {self.grpc_status!r} is not supported", "grpcStatus")
        return self


class HTTPFaultInjection(Spec):
    """Inject delays and/or aborts; a route with a fault gets no retries or timeout."""

    delay: Delay | None = None
    abort: Abort | None = None

    @model_validator(mode="after")
    def _valid(self) -> HTTPFaultInjection:
        if self.delay is None and self.abort is None:
            fail("HTTP fault injection must have an abort and/or a delay")
        return self


class HTTPMirrorPolicy(Spec):
    """One of `mirrors`: a destination and the percentage of traffic copied to it."""

    destination: Destination
    percentage: Percent | None = None


class CorsPolicy(Spec):
    """CORS: allowed origins, methods, headers; preflight handling."""

    allow_origin: list[str] = Field(default_factory=list)  # deprecated: use allowOrigins
    allow_origins: list[StringMatch] = Field(default_factory=list)
    allow_methods: list[str] = Field(default_factory=list)
    allow_headers: list[str] = Field(default_factory=list)
    expose_headers: list[str] = Field(default_factory=list)
    max_age: MsDuration | None = None
    allow_credentials: bool | None = None
    unmatched_preflights: Literal["UNSPECIFIED", "FORWARD", "IGNORE"] | None = None

    @model_validator(mode="after")
    def _valid(self) -> CorsPolicy:
        # validateCORSPolicy
        for position, origin in enumerate(self.allow_origins):
            if not (origin.exact or origin.prefix or origin.regex):
                fail(
                    "'' is not a valid match type for CORS allow origins", "allowOrigins", position
                )
            if problem := check_string_match(origin):
                fail(problem, "allowOrigins", position)
        for position, method in enumerate(self.allow_methods):
            if method not in CORS_METHODS:
                fail(f"{method!r} is not a supported HTTP method", "allowMethods", position)
        for field, alias in (
            ("allow_headers", "allowHeaders"),
            ("expose_headers", "exposeHeaders"),
        ):
            for position, name in enumerate(getattr(self, field)):
                if problem := names.check_cors_header_name(name):
                    fail(problem, alias, position)
        if self.max_age is not None and abs(self.max_age - round(self.max_age)) > 1e-9:
            fail("max_age duration is accurate only to seconds precision", "maxAge")
        return self


class HTTPRoute(Spec):
    """One HTTP rule: match conditions, then route, redirect, directResponse or delegate."""

    name: str | None = None
    match: list[HTTPMatchRequest] = Field(default_factory=list)
    route: list[HTTPRouteDestination] = Field(default_factory=list)
    redirect: HTTPRedirect | None = None
    direct_response: HTTPDirectResponse | None = None
    delegate: Delegate | None = None
    rewrite: HTTPRewrite | None = None
    timeout: MsDuration | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirror: Destination | None = None
    mirrors: list[HTTPMirrorPolicy] = Field(default_factory=list)
    mirror_percentage: Percent | None = None
    mirror_percent: Annotated[int, Field(ge=0, le=100)] | None = None  # deprecated
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None

    @model_validator(mode="after")
    def _valid(self) -> HTTPRoute:
        self._check_conflicts()
        self._check_redirect_matches()
        self._check_authority_once()
        if self.mirror is not None and self.mirrors:
            fail("HTTP route cannot contain both mirror and mirrors", "mirrors")
        check_total_weight([d.weight for d in self.route])
        return self

    def _check_conflicts(self) -> None:
        """validateHTTPRouteConflict (a root rule has a delegate; delegate rules are checked
        by the VirtualService, which knows whether it is a delegate)."""
        if self.delegate is not None:
            if self.redirect is not None:
                fail("a rule with delegate must not specify redirect", "redirect")
            if self.route:
                fail("a rule with delegate must not specify route", "route")
            if self.direct_response is not None:
                fail("a rule with delegate must not specify directResponse", "directResponse")
            return
        for action, alias in (
            (self.redirect, "redirect"),
            (self.direct_response, "directResponse"),
        ):
            if action is None:
                continue
            if self.route:
                fail(f"HTTP route cannot contain both route and {alias}", "route")
            if self.fault is not None:
                fail(f"HTTP route cannot contain both fault and {alias}", "fault")
            if self.rewrite is not None:
                fail(f"HTTP route cannot contain both rewrite and {alias}", "rewrite")
        if self.redirect is not None and self.direct_response is not None:
            fail("HTTP route cannot contain both redirect and directResponse", "directResponse")
        if self.redirect is None and self.direct_response is None and not self.route:
            fail("HTTP route, redirect or directResponse is required")

    def _check_redirect_matches(self) -> None:
        if self.redirect is None or not self.redirect.prefix_rewrite:
            return
        for match in self.match:
            if match.uri is not None and match.uri.prefix is None:
                fail("redirect prefixRewrite requires all URI matches to use prefix match type",
                     "redirect", "prefixRewrite")  # fmt: skip

    def _check_authority_once(self) -> None:
        # validateAuthorityRewrite
        values = [self.rewrite.authority] if self.rewrite and self.rewrite.authority else []
        if self.headers is not None:
            values.extend(self.headers.authority_values())
        if len(values) > 1:
            fail(f"authority header cannot be set multiple times: have {values[0]!r}, "
                 f"attempting to set {values[1]!r}", "headers")  # fmt: skip

    @property
    def destinations(self) -> Iterator[Destination]:
        """The destinations of `route` (not mirrors), in order."""
        return (weighted.destination for weighted in self.route)

    @property
    def mirror_destinations(self) -> list[tuple[Destination, float]]:
        """Every mirror with the percentage of traffic it gets (absent = 100 %)."""
        if self.mirror is not None:
            if self.mirror_percentage is not None:
                share = self.mirror_percentage.value
            elif self.mirror_percent is not None:
                share = float(self.mirror_percent)
            else:
                share = 100.0
            return [(self.mirror, share)]
        return [
            (m.destination, m.percentage.value if m.percentage else 100.0) for m in self.mirrors
        ]
