# ruff: noqa: E501  (expected messages are quoted whole)
"""VirtualService validation, rule by rule, as istio/istio pkg/config/validation checks it.

Each case names the Istio function (validation.go / virtualservice.go / agent/validation.go) or
doc the rule comes from; every rule has a failing and a passing case.
"""

from __future__ import annotations

from textwrap import dedent, indent

import pytest

from remora.api.loader import load_text
from remora.api.networking.virtual_service import VirtualService


def load(spec: str, *, kind: str = "VirtualService", version: str = "v1") -> list[str]:
    text = (f"apiVersion: networking.istio.io/{version}\nkind: {kind}\nmetadata:\n  name: r\n"
            f"spec:\n{indent(dedent(spec), '  ')}")  # fmt: skip
    return [f"{issue.path}: {issue.message}" for issue in load_text(text, "vs.yaml").issues]


def http(rule: str, hosts: str = "[reviews]") -> str:
    """A VirtualService with one http rule (given as YAML mapping lines)."""
    return f"hosts: {hosts}\nhttp:\n- " + indent(dedent(rule).strip(), "  ").lstrip()


ROUTE = "route:\n- destination: {host: reviews}\n"

CASES = [
    # ValidateVirtualService: http, tcp or tls required
    (
        "vs-needs-rules",
        "hosts: [reviews]",
        "spec: http, tcp or tls must be provided in virtual service",
    ),
    ("vs-has-rules", http(ROUTE), None),
    # ValidateVirtualService: `*` not for the mesh; wildcard only in the first label
    (
        "host-star-mesh",
        http(ROUTE, "['*']"),
        "spec.hosts[0]: wildcard host * is not allowed for virtual services bound to the mesh",
    ),
    ("host-star-gateway", http(ROUTE, "['*']") + "\ngateways: [istio-system/gw]", None),
    (
        "host-inner-wildcard",
        http(ROUTE, "['foo.*.com']"),
        "spec.hosts[0]: domain name 'foo.*.com' invalid (label '*' invalid)",
    ),
    ("host-prefix-wildcard", http(ROUTE, "['*.example.com']"), None),
    ("host-ip", http(ROUTE, "['10.0.0.1']"), None),
    (
        "host-duplicate",
        http(ROUTE, "['*.foo.com', 'bar.foo.com']"),
        "spec.hosts[0]: duplicate hosts in virtual service: *.foo.com & bar.foo.com",
    ),
    # validateGatewayNames
    (
        "gateway-bad-ns",
        http(ROUTE) + "\ngateways: [Bad_NS/gw]",
        "spec.gateways[0]: invalid value for namespace: 'Bad_NS'",
    ),
    ("gateway-mesh", http(ROUTE) + "\ngateways: [mesh, ns/gw]", None),
    # validateExportTo
    (
        "export-mixed",
        http(ROUTE) + "\nexportTo: ['*', '.']",
        "spec.exportTo: cannot have both public (*) and non-public exportTo values for a resource",
    ),
    ("export-ok", http(ROUTE) + "\nexportTo: ['.', 'other']", None),
    # validateHTTPRouteConflict
    (
        "needs-action",
        http("name: r1"),
        "spec.http[0]: HTTP route, redirect or directResponse is required",
    ),
    (
        "route-and-redirect",
        http(ROUTE + "redirect: {uri: /x}"),
        "spec.http[0].route: HTTP route cannot contain both route and redirect",
    ),
    ("redirect-alone", http("redirect: {uri: /x}"), None),
    (
        "route-and-direct",
        http(ROUTE + "directResponse: {status: 503}"),
        "spec.http[0].route: HTTP route cannot contain both route and directResponse",
    ),
    (
        "direct-and-rewrite",
        http("directResponse: {status: 503}\nrewrite: {uri: /}"),
        "spec.http[0].rewrite: HTTP route cannot contain both rewrite and directResponse",
    ),
    (
        "redirect-and-fault",
        http("redirect: {uri: /x}\nfault: {abort: {httpStatus: 500}}"),
        "spec.http[0].fault: HTTP route cannot contain both fault and redirect",
    ),
    (
        "delegate-and-route",
        http("delegate: {name: d, namespace: ns}\n" + ROUTE),
        "spec.http[0].route: a rule with delegate must not specify route",
    ),
    ("delegate-alone", http("delegate: {name: d, namespace: ns}"), None),
    (
        "delegate-vs-nested",
        "http:\n- delegate: {name: d}",
        "spec.http[0].delegate: delegate HTTP route cannot contain delegate",
    ),
    (
        "delegate-vs-gateways",
        "gateways: [ns/gw]\nhttp:\n- " + ROUTE.replace("\n-", "\n  -"),
        "spec.gateways: delegate virtual service must have no gateways specified",
    ),
    ("delegate-vs-ok", "http:\n- " + ROUTE.replace("\n-", "\n  -"), None),
    (
        "mirror-and-mirrors",
        http(ROUTE + "mirror: {host: a}\nmirrors: [{destination: {host: b}}]"),
        "spec.http[0].mirrors: HTTP route cannot contain both mirror and mirrors",
    ),
    (
        "mirrors-ok",
        http(ROUTE + "mirrors: [{destination: {host: b}, percentage: {value: 5}}]"),
        None,
    ),
    # validateHTTPRouteDestinations: weights >= 0, several destinations must not total 0
    (
        "weight-negative",
        http("route:\n- destination: {host: a}\n  weight: -1"),
        "spec.http[0].route[0].weight: must be >= 0",
    ),
    (
        "weights-zero",
        http(
            "route:\n- destination: {host: a}\n  weight: 0\n- destination: {host: b}\n  weight: 0"
        ),
        "spec.http[0].route: total destination weight = 0",
    ),
    ("single-weight-zero", http("route:\n- destination: {host: a}\n  weight: 0"), None),
    (
        "weights-90-10",
        http(
            "route:\n- destination: {host: a}\n  weight: 90\n- destination: {host: b}\n  weight: 10"
        ),
        None,
    ),
    (
        "weight-not-int",
        http("route:\n- destination: {host: a}\n  weight: '50'"),
        "spec.http[0].route[0].weight: must be an integer, got string '50'",
    ),
    # validateDestination
    (
        "dest-star",
        http("route:\n- destination: {host: '*'}"),
        "spec.http[0].route[0].destination.host: invalid destination host *",
    ),
    (
        "dest-subset-bad",
        http("route:\n- destination: {host: a, subset: V_1}"),
        "spec.http[0].route[0].destination.subset: subset name is invalid: V_1",
    ),
    (
        "dest-port-zero",
        http("route:\n- destination: {host: a, port: {number: 0}}"),
        "spec.http[0].route[0].destination.port.number: port number 0 must be in the range 1..65535",
    ),
    (
        "dest-full",
        http(
            "route:\n- destination: {host: a.ns.svc.cluster.local, subset: v1, "
            "port: {number: 9080}}"
        ),
        None,
    ),
    (
        "dest-host-missing",
        http("route:\n- destination: {subset: v1}"),
        "spec.http[0].route[0].destination.host: required field is missing",
    ),
    # unknown fields are errors with their path
    ("unknown-field", http(ROUTE + "timeOut: 1s"), "spec.http[0].timeOut: unknown field"),
    # agent.ValidateDuration: >= 1ms, ms precision
    (
        "timeout-zero",
        http(ROUTE + "timeout: 0s"),
        "spec.http[0].timeout: duration must be at least 1ms",
    ),
    (
        "timeout-us",
        http(ROUTE + "timeout: 1500us"),
        "spec.http[0].timeout: only durations to ms precision are supported",
    ),
    (
        "timeout-bad",
        http(ROUTE + "timeout: 5 seconds"),
        "spec.http[0].timeout: invalid duration '5 seconds': use a number and a unit (ns, us, ms, s, m, h)",
    ),
    ("timeout-ok", http(ROUTE + "timeout: 1.5s"), None),
    # agent.ValidateHTTPRetry
    (
        "retry-negative",
        http(ROUTE + "retries: {attempts: -1}"),
        "spec.http[0].retries.attempts: attempts cannot be negative",
    ),
    (
        "retry-zero-configured",
        http(ROUTE + "retries: {attempts: 0, perTryTimeout: 1s}"),
        "spec.http[0].retries.attempts: http retry policy configured when attempts are set to 0 (disabled)",
    ),
    ("retry-zero-alone", http(ROUTE + "retries: {attempts: 0}"), None),
    (
        "retry-on-bad",
        http(ROUTE + "retries: {attempts: 3, retryOn: '5xx,bogus'}"),
        "spec.http[0].retries.retryOn: 'bogus' is not a valid retryOn policy",
    ),
    (
        "retry-on-ok",
        http(
            ROUTE + "retries: {attempts: 3, perTryTimeout: 2s, "
            "retryOn: 'gateway-error,connect-failure,refused-stream,503,unavailable'}"
        ),
        None,
    ),
    (
        "retry-pertry-zero",
        http(ROUTE + "retries: {attempts: 3, perTryTimeout: 0s}"),
        "spec.http[0].retries.perTryTimeout: duration must be at least 1ms",
    ),
    # validateHTTPFaultInjection
    (
        "fault-empty",
        http(ROUTE + "fault: {}"),
        "spec.http[0].fault: HTTP fault injection must have an abort and/or a delay",
    ),
    (
        "abort-status",
        http(ROUTE + "fault: {abort: {httpStatus: 600, percentage: {value: 10}}}"),
        "spec.http[0].fault.abort.httpStatus: HTTP status 600 is not in range 200-599",
    ),
    (
        "abort-grpc-bad",
        http(ROUTE + "fault: {abort: {grpcStatus: NOPE}}"),
        "spec.http[0].fault.abort.grpcStatus: gRPC status 'NOPE' is not supported",
    ),
    (
        "abort-grpc-ok",
        http(ROUTE + "fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 1}}}"),
        None,
    ),
    (
        "abort-both",
        http(ROUTE + "fault: {abort: {httpStatus: 500, grpcStatus: INTERNAL}}"),
        "spec.http[0].fault.abort: only one of httpStatus, grpcStatus or http2Error may be set",
    ),
    (
        "fault-percentage-tiny",
        http(ROUTE + "fault: {delay: {fixedDelay: 5s, percentage: {value: 0.00001}}}"),
        "spec.http[0].fault.delay.percentage.value: percentage 1e-05 is neither 0.0, nor in range [0.0001, 100.0]",
    ),
    (
        "fault-percentage-big",
        http(ROUTE + "fault: {delay: {fixedDelay: 5s, percentage: {value: 101}}}"),
        "spec.http[0].fault.delay.percentage.value: must be <= 100",
    ),
    (
        "fault-delay-ok",
        http(ROUTE + "fault: {delay: {fixedDelay: 7s, percentage: {value: 100}}}"),
        None,
    ),
    (
        "fault-delay-zero",
        http(ROUTE + "fault: {delay: {fixedDelay: 0s}}"),
        "spec.http[0].fault.delay.fixedDelay: duration must be at least 1ms",
    ),
    # validateHTTPRedirect
    (
        "redirect-uri-prefix",
        http("redirect: {uri: /a, prefixRewrite: /b}"),
        "spec.http[0].redirect.prefixRewrite: redirect may only specify one of uri or prefixRewrite",
    ),
    (
        "redirect-code",
        http("redirect: {uri: /a, redirectCode: 200}"),
        "spec.http[0].redirect.redirectCode: 200 is not a valid redirect code, must be 3xx",
    ),
    ("redirect-code-ok", http("redirect: {uri: /a, redirectCode: 308}"), None),
    (
        "redirect-port-derive",
        http("redirect: {port: 8080, derivePort: FROM_REQUEST_PORT}"),
        "spec.http[0].redirect.derivePort: only one of port or derivePort may be set",
    ),
    (
        "redirect-derive-ok",
        http("redirect: {derivePort: FROM_PROTOCOL_DEFAULT, scheme: https}"),
        None,
    ),
    (
        "redirect-derive-bad",
        http("redirect: {derivePort: FROM_NOWHERE}"),
        "spec.http[0].redirect.derivePort: must be one of 'FROM_PROTOCOL_DEFAULT' or "
        "'FROM_REQUEST_PORT', got string 'FROM_NOWHERE'",
    ),
    (
        "redirect-empty",
        http("redirect: {redirectCode: 302}"),
        "spec.http[0].redirect: redirect must specify uri, authority, scheme, or port",
    ),
    (
        "redirect-scheme",
        http("redirect: {scheme: ftp}"),
        'spec.http[0].redirect.scheme: invalid redirect scheme, must be "http" or "https"',
    ),
    (
        "redirect-prefix-needs-prefix-match",
        http("match: [{uri: {exact: /a}}]\nredirect: {prefixRewrite: /b}"),
        "spec.http[0].redirect.prefixRewrite: redirect prefixRewrite requires all URI matches to use "
        "prefix match type",
    ),
    (
        "redirect-prefix-ok",
        http("match: [{uri: {prefix: /a}}]\nredirect: {prefixRewrite: /b}"),
        None,
    ),
    # validateHTTPDirectResponse
    (
        "direct-status",
        http("directResponse: {status: 199}"),
        "spec.http[0].directResponse.status: HTTP status 199 is not in range 200-599",
    ),
    (
        "direct-status-missing",
        http("directResponse: {body: {string: x}}"),
        "spec.http[0].directResponse.status: required field is missing",
    ),
    ("direct-body-ok", http("directResponse: {status: 503, body: {string: 'unavailable'}}"), None),
    ("direct-bytes-ok", http("directResponse: {status: 200, body: {bytes: aGVsbG8=}}"), None),
    (
        "direct-bytes-bad",
        http("directResponse: {status: 200, body: {bytes: '***'}}"),
        "spec.http[0].directResponse.body.bytes: must be base64",
    ),
    (
        "direct-both",
        http("directResponse: {status: 200, body: {string: a, bytes: YQ==}}"),
        "spec.http[0].directResponse.body: only one of string or bytes may be set",
    ),
    # validateHTTPRewrite / validateURIRegexRewrite
    (
        "rewrite-both",
        http(ROUTE + "rewrite: {uri: /a, uriRegexRewrite: {match: ^/b, rewrite: /c}}"),
        "spec.http[0].rewrite.uriRegexRewrite: only one of uri or uriRegexRewrite may be set",
    ),
    (
        "rewrite-empty",
        http(ROUTE + "rewrite: {}"),
        "spec.http[0].rewrite: rewrite must specify at least one of uri, uriRegexRewrite, or authority",
    ),
    (
        "rewrite-regex-bad",
        http(ROUTE + "rewrite: {uriRegexRewrite: {match: '(a', rewrite: /c}}"),
        "spec.http[0].rewrite.uriRegexRewrite.match: invalid RE2 regex '(a'",
    ),
    (
        "rewrite-regex-half",
        http(ROUTE + "rewrite: {uriRegexRewrite: {match: ^/b}}"),
        "spec.http[0].rewrite.uriRegexRewrite: uriRegexRewrite requires both rewrite and match fields "
        "to be specified",
    ),
    (
        "rewrite-regex-ok",
        http(ROUTE + "rewrite: {uriRegexRewrite: {match: '^/v1/(.*)', rewrite: '/\\\\1'}}"),
        None,
    ),
    # validateAuthorityRewrite
    (
        "authority-twice",
        http(ROUTE + "rewrite: {authority: a}\nheaders: {request: {set: {host: b}}}"),
        "spec.http[0].headers: authority header cannot be set multiple times: have 'a', attempting to set 'b'",
    ),
    # header operations (ValidateHTTPHeaderOperationName)
    (
        "header-remove-host",
        http(ROUTE + "headers: {request: {remove: [Host]}}"),
        "spec.http[0].headers.request.remove[0]: invalid header 'Host': cannot set Host header",
    ),
    (
        "header-set-pseudo",
        http(ROUTE + "headers: {response: {set: {':path': x}}}"),
        "spec.http[0].headers.response.set.:path: invalid header ':path': header cannot have \":\" prefix",
    ),
    (
        "header-dest-value",
        http('route:\n- destination: {host: a}\n  headers: {request: {add: {x-a: "a\\nb"}}}'),
        "spec.http[0].route[0].headers.request.add.x-a: header value configuration 'a\\nb' is invalid",
    ),
    (
        "headers-ok",
        http(
            ROUTE + "headers: {request: {set: {x-a: '1'}, add: {x-b: '%HOSTNAME%'}, "
            "remove: [x-c]}, response: {remove: [server]}}"
        ),
        None,
    ),
    # mirrorPercent (deprecated) and mirrorPercentage: 0-100
    (
        "mirror-percent",
        http(ROUTE + "mirror: {host: b}\nmirrorPercent: 101"),
        "spec.http[0].mirrorPercent: must be <= 100",
    ),
    (
        "mirror-percentage",
        http(ROUTE + "mirror: {host: b}\nmirrorPercentage: {value: -1}"),
        "spec.http[0].mirrorPercentage.value: must be >= 0",
    ),
    ("mirror-ok", http(ROUTE + "mirror: {host: b}\nmirrorPercentage: {value: 50.5}"), None),
    # validateCORSPolicy
    (
        "cors-method",
        http(ROUTE + "corsPolicy: {allowMethods: [FETCH]}"),
        "spec.http[0].corsPolicy.allowMethods[0]: 'FETCH' is not a supported HTTP method",
    ),
    (
        "cors-origin-empty",
        http(ROUTE + "corsPolicy: {allowOrigins: [{exact: ''}]}"),
        "spec.http[0].corsPolicy.allowOrigins[0]: '' is not a valid match type for CORS allow origins",
    ),
    (
        "cors-header",
        http(ROUTE + "corsPolicy: {allowHeaders: ['bad header']}"),
        "spec.http[0].corsPolicy.allowHeaders[0]: header name bad header is not a valid header name",
    ),
    (
        "cors-max-age",
        http(ROUTE + "corsPolicy: {maxAge: 1500ms}"),
        "spec.http[0].corsPolicy.maxAge: max_age duration is accurate only to seconds precision",
    ),
    (
        "cors-ok",
        http(
            ROUTE
            + "corsPolicy: {allowOrigins: [{exact: 'https://a.com'}, {regex: '.*\\\\.b\\\\.com'}],"
            " allowOrigin: ['https://old.com'], allowMethods: [GET, POST], allowHeaders: ['*'],"
            " exposeHeaders: [x-id], maxAge: 24h, allowCredentials: true,"
            " unmatchedPreflights: IGNORE}"
        ),
        None,
    ),
    # validateHTTPRouteMatchRequest
    (
        "header-key-upper",
        http("match: [{headers: {End-User: {exact: jason}}}]\n" + ROUTE),
        "spec.http[0].match[0].headers.End-User: header name End-User must be lowercase",
    ),
    (
        "without-header-key-upper",
        http("match: [{withoutHeaders: {X-A: {exact: a}}}]\n" + ROUTE),
        "spec.http[0].match[0].withoutHeaders.X-A: header name X-A must be lowercase",
    ),
    (
        "header-prefix-empty",
        http("match: [{headers: {x-a: {prefix: ''}}}]\n" + ROUTE),
        "spec.http[0].match[0].headers.x-a: prefix string match should not be empty",
    ),
    ("uri-prefix-empty-ok", http("match: [{uri: {prefix: ''}}]\n" + ROUTE), None),
    (
        "uri-regex-bad",
        http("match: [{uri: {regex: '[a'}}]\n" + ROUTE),
        "spec.http[0].match[0].uri.regex: invalid RE2 regex '[a'",
    ),
    (
        "uri-regex-lookahead",
        http("match: [{uri: {regex: '/a(?=b)'}}]\n" + ROUTE),
        "spec.http[0].match[0].uri.regex: invalid RE2 regex '/a(?=b)'",
    ),
    (
        "without-header-regex-bad",
        http("match: [{withoutHeaders: {x-a: {regex: '[a'}}}]\n" + ROUTE),
        "spec.http[0].match[0].withoutHeaders.x-a.regex: invalid RE2 regex '[a'",
    ),
    (
        "regex-too-long",
        http("match: [{authority: {regex: '" + "a" * 1025 + "'}}]\n" + ROUTE),
        "spec.http[0].match[0].authority: regex is too large, max length allowed is 1024",
    ),
    (
        "stringmatch-two",
        http("match: [{uri: {exact: /a, prefix: /b}}]\n" + ROUTE),
        "spec.http[0].match[0].uri: only one of exact, prefix or regex may be set",
    ),
    (
        "match-port",
        http("match: [{port: 70000}]\n" + ROUTE),
        "spec.http[0].match[0].port: port number 70000 must be in the range 1..65535",
    ),
    (
        "match-source-ns",
        http("match: [{sourceNamespace: Foo}]\n" + ROUTE),
        "spec.http[0].match[0].sourceNamespace: sourceNamespace match Foo is invalid",
    ),
    (
        "match-source-labels",
        http("match: [{sourceLabels: {'app!': x}}]\n" + ROUTE),
        "spec.http[0].match[0].sourceLabels: invalid tag key: 'app!'",
    ),
    (
        "jwt-claim-mesh",
        http("match: [{headers: {'@request.auth.claims.group': {exact: a}}}]\n" + ROUTE),
        "spec.http[0].match[0]: JWT claim based routing (key: @request.auth.claims.group) is only "
        "supported for gateway",
    ),
    (
        "jwt-claim-gateway",
        http("match: [{headers: {'@request.auth.claims.group': {exact: a}}}]\n" + ROUTE)
        + "\ngateways: [ns/gw]",
        None,
    ),
    # ignoreUriCase with regex: Istio's doc says it only applies to exact/prefix; not rejected
    (
        "ignore-case-regex",
        http("match: [{uri: {regex: '/a.*'}, ignoreUriCase: true}]\n" + ROUTE),
        None,
    ),
    (
        "match-all-fields",
        http(
            "match:\n- name: m\n  uri: {prefix: /api}\n  scheme: {exact: https}\n"
            "  method: {exact: GET}\n  authority: {prefix: shop}\n"
            "  headers: {x-user: {regex: 'vip-.*'}, x-any: {}}\n"
            "  withoutHeaders: {x-test: {regex: '*'}}\n"
            "  queryParams: {v: {exact: '2'}}\n  port: 8080\n"
            "  sourceLabels: {app: web}\n  sourceNamespace: shop\n"
            "  gateways: [mesh]\n  ignoreUriCase: true\n  statPrefix: api\n" + ROUTE
        ),
        None,
    ),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_virtual_service_rule(spec: str, expected: str | None) -> None:
    issues = load(spec)
    if expected is None:
        assert issues == []
    else:
        assert any(issue.startswith(expected) for issue in issues), issues


TCP_TLS_CASES = [
    # validateTCPRoute / validateTCPMatch
    (
        "tcp-needs-route",
        "hosts: [db]\ntcp: [{match: [{port: 27017}]}]",
        "spec.tcp[0].route: TCP route is required",
    ),
    (
        "tcp-subnet",
        "hosts: [db]\ntcp: [{match: [{destinationSubnets: [10.0.0.0/33]}], "
        "route: [{destination: {host: db}}]}]",
        "spec.tcp[0].match[0].destinationSubnets[0]: 10.0.0.0/33 is not a valid CIDR block",
    ),
    (
        "tcp-weights",
        "hosts: [db]\ntcp: [{route: [{destination: {host: a}, weight: 0}, "
        "{destination: {host: b}, weight: 0}]}]",
        "spec.tcp[0].route: total destination weight = 0",
    ),
    (
        "tcp-ok",
        "hosts: [db]\ntcp: [{match: [{port: 27017, destinationSubnets: [10.0.0.0/8], "
        "sourceLabels: {app: x}, gateways: [mesh], sourceNamespace: ns}], "
        "route: [{destination: {host: db, port: {number: 27017}}, weight: 100}]}]",
        None,
    ),
    # validateTLSRoute / validateTLSMatch / validateSniHost
    (
        "tls-needs-match",
        "hosts: [a.com]\ntls: [{route: [{destination: {host: a.com}}]}]",
        "spec.tls[0].match: TLS route must have at least one match condition",
    ),
    (
        "tls-needs-sni",
        "hosts: [a.com]\ntls: [{match: [{port: 443}], route: [{destination: {host: a.com}}]}]",
        "spec.tls[0].match[0].sniHosts: TLS match must have at least one SNI host",
    ),
    (
        "tls-sni-outside",
        "hosts: [a.com]\ntls: [{match: [{sniHosts: [b.com]}], "
        "route: [{destination: {host: a.com}}]}]",
        "spec.tls[0].match[0].sniHosts[0]: SNI host 'b.com' is not a compatible subset of any of the "
        "virtual service hosts: [a.com]",
    ),
    (
        "tls-ok",
        "hosts: ['*.a.com']\ntls: [{match: [{sniHosts: [x.a.com], port: 443}], "
        "route: [{destination: {host: x.a.com}}]}]",
        None,
    ),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in TCP_TLS_CASES],
                         ids=[c[0] for c in TCP_TLS_CASES])  # fmt: skip
def test_tcp_and_tls_rules(spec: str, expected: str | None) -> None:
    issues = load(spec)
    if expected is None:
        assert issues == []
    else:
        assert any(issue.startswith(expected) for issue in issues), issues


@pytest.mark.parametrize("version", ["v1alpha3", "v1beta1", "v1"])
def test_served_versions(version: str) -> None:
    assert load(http(ROUTE), version=version) == []


def test_issue_text_has_file_line_and_path() -> None:
    text = dedent("""\
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews, namespace: shop}
        spec:
          hosts: [reviews]
          http:
          - route:
            - destination: {host: reviews, subset: v1}
              weight: 100
            - destination: {host: reviews, subset: v2}
              weight: -5
        """)
    issues = [str(issue) for issue in load_text(text, "vs.yaml").issues]
    assert issues == [
        "vs.yaml:11: VirtualService shop/reviews: spec.http[0].route[1].weight: must be >= 0"
    ]


def test_convenience_properties() -> None:
    text = dedent("""\
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews}
        spec:
          hosts: [reviews]
          gateways: [mesh, istio-system/gw]
          http:
          - route:
            - destination: {host: reviews, subset: v1, port: {number: 9080}}
              weight: 90
            - destination: {host: reviews, subset: v2}
              weight: 10
            mirror: {host: shadow}
            redirect: null
          tcp:
          - route: [{destination: {host: db}}]
        """)
    result = load_text(text)
    assert result.issues == []
    vs = result.resources[0]
    assert isinstance(vs, VirtualService)
    rule = vs.spec.http[0]
    assert [(d.host, d.subset, d.port_number) for d in rule.destinations] == [
        ("reviews", "v1", 9080), ("reviews", "v2", None)]  # fmt: skip
    assert [(d.host, share) for d, share in rule.mirror_destinations] == [("shadow", 100.0)]
    assert [d.host for d in vs.spec.destinations] == ["reviews", "reviews", "db"]
    assert vs.spec.applies_to_mesh and not vs.spec.applies_to_gateways
