"""security.istio.io models: PeerAuthentication, AuthorizationPolicy, RequestAuthentication.

Each rule has a failing and a passing case; the source of the rule is named in the case id:
validation.go = istio/istio pkg/config/validation/validation.go, security.go =
pkg/config/security/security.go, crd = the CEL rule / marker in istio/api's .proto.
"""

import textwrap

import pytest

from remora.api.loader import load_text
from remora.api.security import AuthorizationPolicy, PeerAuthentication, RequestAuthentication


def load(kind: str, spec: str, version: str = "v1") -> tuple[list[object], list[str]]:
    text = (f"apiVersion: security.istio.io/{version}\nkind: {kind}\n"
            f"metadata: {{name: p, namespace: ns}}\nspec:\n" + textwrap.indent(spec, "  "))
    result = load_text(text, "p.yaml")
    return list(result.resources), [str(i) for i in result.issues]


def issue_of(kind: str, spec: str) -> str | None:
    _, issues = load(kind, spec)
    assert len(issues) <= 1, issues
    return issues[0] if issues else None


# --- AuthorizationPolicy -----------------------------------------------------------------------

AP = "AuthorizationPolicy"
AP_CASES = [
    # validation.go: CUSTOM needs provider.name, provider only with CUSTOM.
    ("custom-needs-provider", "action: CUSTOM\nrules: [{}]\n",
     "spec.provider: provider.name must not be empty with the CUSTOM action"),
    ("custom-with-provider", "action: CUSTOM\nprovider: {name: ext}\nrules: [{}]\n", None),
    ("provider-only-with-custom", "action: DENY\nprovider: {name: ext}\nrules: [{}]\n",
     "spec.provider: provider must not be set with non CUSTOM action, found DENY"),
    ("custom-without-rules", "action: CUSTOM\nprovider: {name: ext}\n",
     "spec.rules: CUSTOM action without rules is meaningless"),
    ("custom-unsupported-source",
     "action: CUSTOM\nprovider: {name: ext}\nrules:\n- from:\n  - source: {principals: [a]}\n",
     "spec.rules[0].from[0].source.principals: not supported with the CUSTOM action"),
    ("custom-unsupported-when",
     "action: CUSTOM\nprovider: {name: ext}\nrules:\n- when:\n  - key: request.auth.principal\n"
     "    values: [a]\n",
     "spec.rules[0].when[0].key: request.auth.principal is not supported with the CUSTOM"),
    ("custom-ipblocks-ok",
     "action: CUSTOM\nprovider: {name: ext}\nrules:\n- from:\n  - source: {ipBlocks: [1.2.3.4]}\n",
     None),
    # validation.go: DENY without rules never triggers.
    ("deny-without-rules", "action: DENY\n", "spec.rules: DENY action without rules"),
    ("deny-all-allow-nothing", "{}\n", None),
    # crd + validation.go validateOneOfSelectorType.
    ("selector-and-targetref",
     "selector: {matchLabels: {app: a}}\ntargetRef: {kind: Service, name: a}\n",
     "spec: only one of targetRefs or selector can be set"),
    ("targetref-service", "targetRef: {kind: Service, name: a}\n", None),
    ("targetrefs-gateway",
     "targetRefs:\n- {group: gateway.networking.k8s.io, kind: Gateway, name: gw}\n", None),
    ("targetref-bad-kind", "targetRef: {kind: Deployment, name: a}\n",
     "spec.targetRef.kind: targetRef must be to a Service, ServiceEntry, Gateway or GatewayClass"),
    ("targetref-namespace", "targetRef: {kind: Service, name: a, namespace: b}\n",
     "spec.targetRef.namespace: must not be set; cross namespace referencing is not supported"),
    # validation.go validateWorkloadSelector / crd selector rules.
    ("selector-wildcard", "selector: {matchLabels: {app: 'a*'}}\n",
     "spec.selector.matchLabels.app: wildcard is not supported in selector: app=a*"),
    # security.go ValidateAttribute: supported `when` keys.
    ("when-unknown-key", "rules:\n- when:\n  - {key: source.foo, values: [a]}\n",
     "spec.rules[0].when[0].key: unknown attribute: source.foo"),
    ("when-header-key-format", "rules:\n- when:\n  - {key: request.headers, values: [a]}\n",
     "spec.rules[0].when[0].key: bad key 'request.headers': should have format a[b]"),
    ("when-header-key", "rules:\n- when:\n  - {key: 'request.headers[x-user]', values: [a]}\n",
     None),
    ("when-claims-key", "rules:\n- when:\n  - {key: 'request.auth.claims[iss]', values: [a]}\n",
     None),
    ("when-experimental-key",
     "rules:\n- when:\n  - {key: 'experimental.envoy.filters.a.b[c]', values: [a]}\n", None),
    ("when-dest-namespace", "rules:\n- when:\n  - {key: destination.namespace, values: [a]}\n",
     "attribute destination.namespace is replaced by the metadata.namespace"),
    ("when-dest-labels", "rules:\n- when:\n  - {key: 'destination.labels[a]', values: [a]}\n",
     "is replaced by the workload selector"),
    ("when-dest-name", "rules:\n- when:\n  - {key: destination.name, values: [a]}\n",
     "deprecated attribute destination.name: only supported in v1alpha1"),
    ("when-needs-values", "rules:\n- when:\n  - {key: source.namespace}\n",
     "spec.rules[0].when[0]: at least one of values or notValues must be set for key "
     "source.namespace"),
    ("when-not-values", "rules:\n- when:\n  - {key: source.namespace, notValues: [a]}\n", None),
    ("when-source-ip-bad", "rules:\n- when:\n  - {key: source.ip, values: [10.0.0.300]}\n",
     "spec.rules[0].when[0].values[0]: bad IP address '10.0.0.300'"),
    ("when-source-ip-cidr", "rules:\n- when:\n  - {key: source.ip, values: [10.0.0.0/8]}\n",
     None),
    ("when-dest-port-bad", "rules:\n- when:\n  - {key: destination.port, values: ['80a']}\n",
     "spec.rules[0].when[0].values[0]: bad port '80a'"),
    ("when-dest-port", "rules:\n- when:\n  - {key: destination.port, values: ['8080']}\n",
     None),
    ("when-empty-value", "rules:\n- when:\n  - {key: connection.sni, values: ['']}\n",
     "spec.rules[0].when[0].values[0]: empty value not allowed"),
    # validation.go: ports are numeric strings (security.ValidatePorts).
    ("ports-numeric", "rules:\n- to:\n  - operation: {ports: ['http']}\n",
     "spec.rules[0].to[0].operation.ports[0]: bad port 'http': must be a number 0-65535"),
    ("ports-too-big", "rules:\n- to:\n  - operation: {notPorts: ['65536']}\n",
     "spec.rules[0].to[0].operation.notPorts[0]: bad port '65536'"),
    ("ports-ok", "rules:\n- to:\n  - operation: {ports: ['8080']}\n", None),
    # security.go CheckValidPathTemplate.
    ("path-any-not-last", "rules:\n- to:\n  - operation: {paths: ['/{**}/a/{*}']}\n",
     "spec.rules[0].to[0].operation.paths[0]: invalid path '/{**}/a/{*}': {**} is not the last"),
    ("path-brace", "rules:\n- to:\n  - operation: {paths: ['/a/{x}']}\n",
     "contains '{' or '}' beyond a supported path template"),
    ("path-template-literal", "rules:\n- to:\n  - operation: {paths: ['/a/{*}/b c']}\n",
     "segment 'b c' is not a valid literal"),
    ("path-templates-ok",
     "rules:\n- to:\n  - operation: {paths: ['/api/{*}/users/{**}', '/api/*', '*/x']}\n", None),
    # validation.go: empty from/to/source/operation.
    ("from-empty", "rules:\n- from: []\n", "spec.rules[0].from: `from` must not be empty"),
    ("to-empty", "rules:\n- to: []\n", "spec.rules[0].to: `to` must not be empty"),
    ("source-empty", "rules:\n- from:\n  - source: {}\n",
     "spec.rules[0].from[0].source: `from.source` must not be empty"),
    ("source-missing", "rules:\n- from:\n  - {}\n",
     "spec.rules[0].from[0].source: required field is missing"),
    ("operation-empty", "rules:\n- to:\n  - operation: {}\n",
     "spec.rules[0].to[0].operation: `to.operation` must not be empty"),
    # crd: "Cannot set serviceAccounts with namespaces or principals".
    ("sa-with-namespaces",
     "rules:\n- from:\n  - source: {serviceAccounts: [ns/sa], namespaces: [ns]}\n",
     "cannot set serviceAccounts with namespaces or principals"),
    # security.go CheckServiceAccount.
    ("sa-wildcard", "rules:\n- from:\n  - source: {serviceAccounts: ['ns/*']}\n",
     "spec.rules[0].from[0].source.serviceAccounts[0]: wildcard not allowed"),
    ("sa-format", "rules:\n- from:\n  - source: {serviceAccounts: [a/b/c]}\n",
     "expected format 'serviceAccount' or 'namespace/serviceAccount'"),
    ("sa-ok", "rules:\n- from:\n  - source: {serviceAccounts: [ns/sa, sa]}\n", None),
    # security.go ValidateIPs for ipBlocks.
    ("ipblock-bad", "rules:\n- from:\n  - source: {ipBlocks: [10.0.0.0/33]}\n",
     "spec.rules[0].from[0].source.ipBlocks[0]: bad CIDR range '10.0.0.0/33'"),
    ("ipblock-ok", "rules:\n- from:\n  - source: {notRemoteIpBlocks: ['::1', 10.0.0.0/8]}\n",
     None),
    ("action-enum", "action: REJECT\nrules: [{}]\n",
     "spec.action: must be one of 'ALLOW', 'DENY', 'AUDIT' or 'CUSTOM', got string 'REJECT'"),
    ("unknown-field", "rules:\n- from:\n  - source: {principal: [a]}\n",
     "spec.rules[0].from[0].source.principal: unknown field"),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in AP_CASES],
                         ids=[c[0] for c in AP_CASES])
def test_authorization_policy_rules(spec: str, expected: str | None) -> None:
    issue = issue_of(AP, spec)
    if expected is None:
        assert issue is None
    else:
        assert issue is not None
        assert expected in issue, issue


def test_authorization_policy_seed_loads_typed() -> None:
    spec = """\
selector:
  matchLabels: {app: user-service}
action: ALLOW
rules:
- from:
  - source:
      principals: ["cluster.local/ns/default/sa/order-service"]
  to:
  - operation:
      methods: ["GET", "POST"]
      paths: ["/api/v1/users/*"]
  when:
  - key: request.auth.claims[role]
    values: ["admin", "user"]
"""
    resources, issues = load(AP, spec, version="v1beta1")
    assert issues == []
    policy = resources[0]
    assert isinstance(policy, AuthorizationPolicy)
    assert policy.spec.effective_action == "ALLOW"
    rule = policy.spec.rules[0]
    assert rule.sources[0].principals == ["cluster.local/ns/default/sa/order-service"]
    assert rule.operations[0].paths == ["/api/v1/users/*"]
    assert rule.when[0].key == "request.auth.claims[role]"


def test_issue_carries_file_and_line() -> None:
    _, issues = load(AP, "rules:\n- to:\n  - operation: {ports: ['x']}\n")
    assert issues == ["p.yaml:7: AuthorizationPolicy ns/p: spec.rules[0].to[0].operation.ports[0]: "
                      "bad port 'x': must be a number 0-65535"]


# --- PeerAuthentication ------------------------------------------------------------------------

PA = "PeerAuthentication"
PA_CASES = [
    # crd "portLevelMtls requires selector"; validation.go "mesh/namespace peer authentication
    # cannot have port level mTLS".
    ("port-level-needs-selector", "portLevelMtls:\n  8080: {mode: DISABLE}\n",
     "spec.portLevelMtls: portLevelMtls requires a selector"),
    ("port-level-with-selector",
     "selector: {matchLabels: {app: a}}\nportLevelMtls:\n  8080: {mode: DISABLE}\n", None),
    ("port-level-string-key",
     "selector: {matchLabels: {app: a}}\nportLevelMtls:\n  '8080': {mode: DISABLE}\n", None),
    # crd "port must be between 1-65535"
    ("port-level-port-range",
     "selector: {matchLabels: {app: a}}\nportLevelMtls:\n  0: {mode: DISABLE}\n",
     "spec.portLevelMtls.0: port must be between 1-65535"),
    # crd MinProperties=1 / validation.go
    ("port-level-empty", "selector: {matchLabels: {app: a}}\nportLevelMtls: {}\n",
     "port level mTLS, if defined, must have at least one element"),
    ("mode-enum", "mtls: {mode: ON}\n", "spec.mtls.mode: must be one of"),
    ("mode-strict", "mtls: {mode: STRICT}\n", None),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in PA_CASES],
                         ids=[c[0] for c in PA_CASES])
def test_peer_authentication_rules(spec: str, expected: str | None) -> None:
    issue = issue_of(PA, spec)
    if expected is None:
        assert issue is None
    else:
        assert issue is not None
        assert expected in issue, issue


def test_peer_authentication_typed() -> None:
    resources, _ = load(PA, "selector: {matchLabels: {app: a}}\nportLevelMtls:\n  8080: {mode: "
                            "DISABLE}\n")
    pa = resources[0]
    assert isinstance(pa, PeerAuthentication)
    assert pa.spec.port_level_mtls[8080].effective_mode == "DISABLE"
    assert pa.spec.mtls is None


# --- RequestAuthentication ---------------------------------------------------------------------

RA = "RequestAuthentication"
RA_CASES = [
    # validation.go validateJwtRule: "issuer or jwksUri must be non-empty string".
    ("issuer-or-jwksuri", "jwtRules:\n- audiences: [a]\n",
     "spec.jwtRules[0]: issuer or jwksUri must be non-empty string"),
    ("jwksuri-only", "jwtRules:\n- jwksUri: https://a.example/jwks.json\n", None),
    # security.go ParseJwksURI / crd "url must have scheme http:// or https://".
    ("jwksuri-scheme", "jwtRules:\n- {issuer: a, jwksUri: 'ftp://a/jwks'}\n",
     "spec.jwtRules[0].jwksUri: URI scheme 'ftp' is not supported"),
    ("jwksuri-not-url", "jwtRules:\n- {issuer: a, jwksUri: 'jwks.json'}\n",
     "spec.jwtRules[0].jwksUri: URI scheme '' is not supported"),
    ("jwksuri-bad-port", "jwtRules:\n- {issuer: a, jwksUri: 'http://a:99999/x'}\n",
     "spec.jwtRules[0].jwksUri: invalid URL"),
    # crd "only one of jwks or jwksUri can be set".
    ("jwks-and-jwksuri", "jwtRules:\n- {issuer: a, jwksUri: 'https://a/j', jwks: '{}'}\n",
     "spec.jwtRules[0]: only one of jwks or jwksUri can be set"),
    # validation.go: "location header name must be non-empty string".
    ("from-header-name-empty", "jwtRules:\n- issuer: a\n  fromHeaders: [{name: ''}]\n",
     "spec.jwtRules[0].fromHeaders[0].name: location header name must be non-empty string"),
    ("from-header-name-missing", "jwtRules:\n- issuer: a\n  fromHeaders: [{prefix: 'Bearer '}]\n",
     "spec.jwtRules[0].fromHeaders[0].name: required field is missing"),
    ("from-header-ok",
     "jwtRules:\n- issuer: a\n  fromHeaders: [{name: x-jwt, prefix: 'Bearer '}]\n", None),
    ("audience-empty", "jwtRules:\n- {issuer: a, audiences: ['']}\n",
     "spec.jwtRules[0].audiences[0]: empty value not allowed"),
    ("from-params-empty", "jwtRules:\n- {issuer: a, fromParams: ['']}\n",
     "spec.jwtRules[0].fromParams[0]: empty value not allowed"),
    # crd ClaimToHeader.header Pattern ^[-_A-Za-z0-9]+$.
    ("claim-header-name",
     "jwtRules:\n- issuer: a\n  outputClaimToHeaders: [{header: 'x y', claim: sub}]\n",
     "spec.jwtRules[0].outputClaimToHeaders[0].header: invalid header name 'x y'"),
    ("claim-header-ok",
     "jwtRules:\n- issuer: a\n  outputClaimToHeaders: [{header: x-sub, claim: sub}]\n", None),
    ("timeout-duration", "jwtRules:\n- {issuer: a, timeout: 5x}\n",
     "spec.jwtRules[0].timeout: invalid duration '5x'"),
    ("selector-and-targetrefs",
     "selector: {matchLabels: {app: a}}\ntargetRefs: [{kind: Service, name: a}]\n",
     "spec: only one of targetRefs or selector can be set"),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in RA_CASES],
                         ids=[c[0] for c in RA_CASES])
def test_request_authentication_rules(spec: str, expected: str | None) -> None:
    issue = issue_of(RA, spec)
    if expected is None:
        assert issue is None
    else:
        assert issue is not None
        assert expected in issue, issue


def test_request_authentication_typed() -> None:
    spec = """\
jwtRules:
- issuer: "https://auth.example.com"
  jwksUri: "https://auth.example.com/.well-known/jwks.json"
  audiences: ["user-service"]
  forwardOriginalToken: true
  outputPayloadToHeader: x-jwt-payload
  fromCookies: [session]
  timeout: 5s
"""
    resources, issues = load(RA, spec, version="v1beta1")
    assert issues == []
    ra = resources[0]
    assert isinstance(ra, RequestAuthentication)
    rule = ra.spec.jwt_rules[0]
    assert rule.forwards_original_token
    assert rule.timeout == 5.0
    assert rule.from_cookies == ["session"]
