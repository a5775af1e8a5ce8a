"""telemetry.istio.io Telemetry: fields and the rules of istio/istio validation.go
(ValidateTelemetry, validateTelemetryTracing/Metrics/Providers) and the CRD's CEL rules."""

import textwrap

import pytest

from remora.api.loader import load_text
from remora.api.telemetry import Telemetry


def load(spec: str, version: str = "v1") -> tuple[list[object], list[str]]:
    text = (f"apiVersion: telemetry.istio.io/{version}\nkind: Telemetry\n"
            f"metadata: {{name: t, namespace: istio-system}}\nspec:\n"
            + textwrap.indent(spec, "  "))
    result = load_text(text, "t.yaml")
    return list(result.resources), [str(i) for i in result.issues]


CASES = [
    # validation.go validateTelemetryTracing + crd Minimum=0/Maximum=100.
    ("sampling-over-100", "tracing:\n- randomSamplingPercentage: 101\n",
     "spec.tracing[0].randomSamplingPercentage: randomSamplingPercentage must be in range"),
    ("sampling-ok", "tracing:\n- randomSamplingPercentage: 50.0\n", None),
    # validation.go: literal / environment / header tag values may not be empty.
    ("literal-empty", "tracing:\n- customTags:\n    a: {literal: {value: ''}}\n",
     "spec.tracing[0].customTags.a.literal.value: literal tag value may not be empty"),
    ("environment-empty", "tracing:\n- customTags:\n    a: {environment: {name: ''}}\n",
     "spec.tracing[0].customTags.a.environment.name: environment tag name may not be empty"),
    ("header-empty", "tracing:\n- customTags:\n    a: {header: {name: ''}}\n",
     "spec.tracing[0].customTags.a.header.name: header tag name may not be empty"),
    # proto oneof CustomTag.type.
    ("tag-two-kinds",
     "tracing:\n- customTags:\n    a: {literal: {value: x}, header: {name: y}}\n",
     "spec.tracing[0].customTags.a: must set exactly one of literal, environment, header"),
    ("tag-env-default",
     "tracing:\n- customTags:\n    a: {environment: {name: REGION, defaultValue: us}}\n", None),
    # validation.go validateTelemetryProviders.
    ("provider-name-empty", "accessLogging:\n- providers: [{name: ''}]\n",
     "spec.accessLogging[0].providers[0].name: providers.name may not be empty"),
    ("provider-ok", "accessLogging:\n- providers: [{name: envoy}]\n  filter: "
     "{expression: 'response.code >= 400'}\n", None),
    # crd TagOverride rules / validation.go validateTelemetryMetrics.
    ("upsert-needs-value",
     "metrics:\n- overrides:\n  - tagOverrides:\n      request_host: {operation: UPSERT}\n",
     "tagOverrides.request_host.value: value must be set when operation is UPSERT"),
    ("default-op-is-upsert",
     "metrics:\n- overrides:\n  - tagOverrides:\n      request_host: {}\n",
     "value must be set when operation is UPSERT"),
    ("remove-no-value",
     "metrics:\n- overrides:\n  - tagOverrides:\n      a: {operation: REMOVE, value: x}\n",
     "tagOverrides.a.value: value must not be set when operation is REMOVE"),
    ("remove-ok", "metrics:\n- overrides:\n  - tagOverrides:\n      a: {operation: REMOVE}\n",
     None),
    ("custom-metric-empty",
     "metrics:\n- overrides:\n  - match: {customMetric: ''}\n    disabled: true\n",
     "spec.metrics[0].overrides[0].match.customMetric: customMetric may not be empty"),
    ("metric-enum", "metrics:\n- overrides:\n  - match: {metric: REQUESTS}\n",
     "spec.metrics[0].overrides[0].match.metric: must be one of"),
    ("metric-and-custom",
     "metrics:\n- overrides:\n  - match: {metric: REQUEST_COUNT, customMetric: x}\n",
     "only one of metric or customMetric may be set"),
    ("mode-enum", "accessLogging:\n- match: {mode: BOTH}\n",
     "spec.accessLogging[0].match.mode: must be one of"),
    ("reporting-interval", "metrics:\n- reportingInterval: 10x\n",
     "spec.metrics[0].reportingInterval: invalid duration"),
    # validation.go validateOneOfSelectorType / crd oneof rule.
    ("selector-and-targetref",
     "selector: {matchLabels: {app: a}}\ntargetRef: {kind: Service, name: a}\n",
     "spec: only one of targetRefs or selector can be set"),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_telemetry_rules(spec: str, expected: str | None) -> None:
    _, issues = load(spec)
    if expected is None:
        assert issues == []
    else:
        assert len(issues) == 1, issues
        assert expected in issues[0], issues[0]


def test_telemetry_seed_loads_typed() -> None:
    spec = """\
selector:
  matchLabels: {app: user-service}
tracing:
- providers:
  - name: jaeger
  randomSamplingPercentage: 100.0
  customTags:
    cluster_id:
      literal:
        value: "production-cluster"
metrics:
- providers: [{name: prometheus}]
  overrides:
  - match: {metric: REQUEST_COUNT, mode: CLIENT}
    tagOverrides:
      response_code: {operation: REMOVE}
accessLogging:
- providers: [{name: envoy}]
"""
    resources, issues = load(spec, version="v1alpha1")
    assert issues == []
    telemetry = resources[0]
    assert isinstance(telemetry, Telemetry)
    tracing = telemetry.spec.tracing[0]
    assert tracing.random_sampling_percentage == 100.0
    literal = tracing.custom_tags["cluster_id"].literal
    assert literal is not None and literal.value == "production-cluster"
    override = telemetry.spec.metrics[0].overrides[0]
    assert override.tag_overrides["response_code"].operation == "REMOVE"
