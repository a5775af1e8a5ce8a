"""Kubernetes kinds: field lists (unknown fields are errors) and the API server's validation.

Rules cite Kubernetes' validation packages (pkg/apis/{core,apps,autoscaling,discovery}/validation,
apimachinery LabelSelector) as the Kubernetes API reference documents them.
"""

import textwrap

import pytest

from remora.api.kube.autoscaling import HorizontalPodAutoscaler
from remora.api.kube.core import Secret, Service
from remora.api.kube.discovery import EndpointSlice
from remora.api.kube.meta import (
    LabelSelector,
    cpu_millicores,
    memory_bytes,
    parse_quantity,
    resolve_int_or_percent,
)
from remora.api.kube.workloads import Deployment, StatefulSet
from remora.api.loader import load_text


def load(text: str) -> tuple[list[object], list[str]]:
    result = load_text(textwrap.dedent(text), "k.yaml")
    return list(result.resources), [str(i) for i in result.issues]


def deployment(pod: str = "", *, spec: str = "", labels: str = "{app: a}") -> str:
    """A Deployment whose container block gets `pod` lines and whose spec gets `spec` lines."""
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n"
        "  selector: {matchLabels: {app: a}}\n"
        + textwrap.indent(spec, "  ")
        + f"  template:\n    metadata: {{labels: {labels}}}\n    spec:\n"
        + textwrap.indent(pod or "containers:\n- {name: app, image: app:1}\n", "      ")
    )


def check(text: str, expected: str | None) -> None:
    _, issues = load(text)
    if expected is None:
        assert issues == []
    else:
        assert len(issues) == 1, issues
        assert expected in issues[0], issues[0]


# --- Deployment / PodSpec / Container ----------------------------------------------------------

DEPLOYMENT_CASES = [
    ("selector-matches-template", deployment(), None),
    # apps validation: "`selector` does not match template `labels`".
    ("selector-mismatch", deployment(labels="{app: b}"),
     "spec.template.metadata.labels: `selector` does not match template `labels`"),
    ("replicas-negative", deployment(spec="replicas: -1\n"),
     "spec.replicas: must be greater than or equal to 0"),
    ("replicas-zero", deployment(spec="replicas: 0\n"), None),
    # core validation validateContainers: names unique across containers and initContainers.
    ("container-names-unique",
     deployment("containers:\n- {name: app, image: a}\ninitContainers:\n- {name: app, image: b}\n"),
     "spec.template.spec.containers[0].name: duplicate container name 'app'"),
    ("container-name-dns-label", deployment("containers:\n- {name: App, image: a}\n"),
     "spec.template.spec.containers[0].name: must be a DNS-1123 label"),
    ("container-port-range",
     deployment("containers:\n- name: app\n  ports: [{containerPort: 70000}]\n"),
     "spec.template.spec.containers[0].ports[0].containerPort: must be between 1 and 65535"),
    ("container-port-name",
     deployment("containers:\n- name: app\n  ports: [{containerPort: 80, name: http_web}]\n"),
     "ports[0].name: must be an IANA_SVC_NAME"),
    ("containers-required", deployment("volumes: []\n"),
     "spec.template.spec.containers: required field is missing"),
    # restartPolicy: only Always for Deployments.
    ("restart-policy", deployment("restartPolicy: Never\ncontainers:\n- {name: app}\n"),
     "spec.template.spec.restartPolicy: only 'Always' is supported"),
    # Every PodSpec field is declared: known ones accepted, typos rejected.
    ("podspec-known-fields",
     deployment("containers:\n- {name: app}\ntolerations: [{key: k, operator: Exists}]\n"
                "nodeSelector: {disk: ssd}\nhostIPC: false\nsetHostnameAsFQDN: false\n"
                "affinity: {}\nimagePullSecrets: [{name: reg}]\n"), None),
    ("podspec-typo", deployment("containers:\n- {name: app}\ntoleration: []\n"),
     "spec.template.spec.toleration: unknown field"),
    ("container-typo", deployment("containers:\n- {name: app, imagePullPolicy: Always, "
                                  "securityContext: {}, imagePolicy: x}\n"),
     "spec.template.spec.containers[0].imagePolicy: unknown field"),
    # Probe: exactly one handler; liveness successThreshold must be 1.
    ("probe-no-handler",
     deployment("containers:\n- name: app\n  readinessProbe: {periodSeconds: 5}\n"),
     "containers[0].readinessProbe: must specify a handler type"),
    ("probe-two-handlers", deployment(
        "containers:\n- name: app\n  livenessProbe:\n    httpGet: {port: 80}\n"
        "    tcpSocket: {port: 80}\n"),
     "containers[0].livenessProbe: may not specify more than 1 handler type"),
    ("liveness-success-threshold", deployment(
        "containers:\n- name: app\n  livenessProbe:\n    tcpSocket: {port: 80}\n"
        "    successThreshold: 2\n"),
     "containers[0].livenessProbe.successThreshold: must be 1"),
    ("probe-named-port", deployment(
        "containers:\n- name: app\n  ports: [{name: http, containerPort: 8080}]\n"
        "  startupProbe:\n    httpGet: {path: /healthz, port: http}\n    failureThreshold: 30\n"
        "  readinessProbe:\n    grpc: {port: 9090}\n"), None),
    # env: valueFrom has exactly one source.
    ("env-value-from-two", deployment(
        "containers:\n- name: app\n  env:\n  - name: A\n    valueFrom:\n"
        "      fieldRef: {fieldPath: metadata.name}\n"
        "      secretKeyRef: {name: s, key: k}\n"),
     "containers[0].env[0].valueFrom: must specify exactly one of configMapKeyRef"),
    ("env-sources", deployment(
        "containers:\n- name: app\n  envFrom: [{configMapRef: {name: c}}, {secretRef: {name: s}, "
        "prefix: S_}]\n  env:\n  - {name: A, value: x}\n  - name: B\n    valueFrom:\n"
        "      resourceFieldRef: {resource: limits.cpu, divisor: 1m}\n"), None),
    # ResourceRequirements: quantities parse; requests <= limits.
    ("quantity-bad", deployment(
        "containers:\n- name: app\n  resources: {requests: {cpu: 500mc}}\n"),
     "containers[0].resources.requests.cpu: invalid quantity '500mc'"),
    ("request-over-limit", deployment(
        "containers:\n- name: app\n  resources:\n"
        "    {requests: {memory: 1Gi}, limits: {memory: 512Mi}}\n"),
     "resources.requests.memory: must be less than or equal to memory limit of 512Mi"),
    # volumeMounts must name a volume.
    ("mount-unknown-volume", deployment(
        "containers:\n- name: app\n  volumeMounts: [{name: cfg, mountPath: /etc/app}]\n"),
     "containers[0].volumeMounts[0].name: volume 'cfg' not found"),
    ("mount-config-map", deployment(
        "containers:\n- name: app\n  volumeMounts: [{name: cfg, mountPath: /etc/app}]\n"
        "volumes:\n- name: cfg\n  configMap: {name: app-config}\n"), None),
    # strategy rules.
    ("recreate-with-rolling-update", deployment(
        spec="strategy: {type: Recreate, rollingUpdate: {maxSurge: 1}}\n"),
     "spec.strategy.rollingUpdate: may not be specified when strategy `type` is 'Recreate'"),
    ("surge-and-unavailable-zero", deployment(
        spec="strategy:\n  rollingUpdate: {maxSurge: 0, maxUnavailable: 0%}\n"),
     "spec.strategy.rollingUpdate.maxUnavailable: may not be 0 when `maxSurge` is 0"),
    ("surge-not-percent", deployment(
        spec="strategy:\n  rollingUpdate: {maxSurge: 25}\n"), None),
    ("surge-bad-string", deployment(
        spec="strategy:\n  rollingUpdate: {maxSurge: lots}\n"),
     "spec.strategy.rollingUpdate.maxSurge: must be an integer or a percentage"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in DEPLOYMENT_CASES],
                         ids=[c[0] for c in DEPLOYMENT_CASES])
def test_deployment_rules(text: str, expected: str | None) -> None:
    check(text, expected)


def test_deployment_typed_helpers() -> None:
    resources, issues = load(deployment(
        "containers:\n- name: app\n  image: shop/app:1.2\n  command: [python]\n"
        "  args: [-m, app]\n  workingDir: /srv\n"
        "  resources: {requests: {cpu: 500m, memory: 128Mi}, limits: {cpu: 1}}\n"
        "  readinessProbe:\n    httpGet: {path: /ready, port: 8080}\n"
        "terminationGracePeriodSeconds: 45\nserviceAccountName: shop\n",
        spec="replicas: 3\n"))
    assert issues == []
    d = resources[0]
    assert isinstance(d, Deployment)
    assert d.pod_labels == {"app": "a"}
    assert d.effective_replicas == 3
    pod = d.spec.template.spec
    assert pod.termination_grace_period == 45
    assert pod.effective_service_account == "shop"
    container = pod.containers[0]
    assert container.resources is not None
    assert container.resources.cpu_request_millis() == 500
    assert container.resources.cpu_limit_millis() == 1000
    assert container.resources.memory_request_bytes() == 128 * 2**20
    probe = container.readiness_probe
    assert probe is not None and probe.http_get is not None
    # Kubernetes probe defaults (API reference, Probe).
    assert (probe.period, probe.timeout, probe.failures_allowed, probe.successes_needed,
            probe.initial_delay) == (10, 1, 3, 1, 0)


def test_issue_line_points_at_field() -> None:
    _, issues = load(deployment(spec="replicas: -1\n"))
    assert issues == ["k.yaml:6: Deployment default/d: spec.replicas: must be greater than or "
                      "equal to 0"]


# --- StatefulSet -------------------------------------------------------------------------------

STATEFULSET = """\
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: nacos}
spec:
  serviceName: nacos-headless
  replicas: 3
  podManagementPolicy: Parallel
  selector: {matchExpressions: [{key: app, operator: In, values: [nacos]}]}
  template:
    metadata: {labels: {app: nacos}}
    spec:
      containers:
      - name: nacos
        image: nacos/nacos-server:v2.2.3
        volumeMounts: [{name: data, mountPath: /home/nacos/data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: standard
      resources: {requests: {storage: 20Gi}}
"""


def test_statefulset_mounts_claim_templates() -> None:
    resources, issues = load(STATEFULSET)
    assert issues == []
    sts = resources[0]
    assert isinstance(sts, StatefulSet)
    assert sts.spec.service_name == "nacos-headless"
    assert sts.pod_labels == {"app": "nacos"}
    assert sts.pod_names == ["nacos-0", "nacos-1", "nacos-2"]


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("podManagementPolicy: Parallel", "podManagementPolicy: Random",
     "spec.podManagementPolicy: must be one of 'OrderedReady' or 'Parallel'"),
    ("values: [nacos]", "values: [other]",
     "spec.template.metadata.labels: `selector` does not match template `labels`"),
    # apimachinery ValidateLabelSelectorRequirement.
    ("operator: In, values: [nacos]", "operator: Exists, values: [nacos]",
     "spec.selector.matchExpressions[0].values: may not be specified when `operator` is "
     "'Exists'"),
    ("operator: In, values: [nacos]", "operator: In",
     "spec.selector.matchExpressions[0].values: must be specified when `operator` is 'In'"),
])
def test_statefulset_rules(old: str, new: str, expected: str) -> None:
    check(STATEFULSET.replace(old, new), expected)


def test_label_selector_matches() -> None:
    selector = LabelSelector.model_validate({
        "matchLabels": {"app": "a"},
        "matchExpressions": [{"key": "version", "operator": "NotIn", "values": ["v0"]},
                             {"key": "canary", "operator": "DoesNotExist"}],
    })
    assert selector.matches({"app": "a", "version": "v1"})
    assert not selector.matches({"app": "a", "version": "v0"})
    assert not selector.matches({"app": "a", "canary": "true"})
    assert not selector.matches({"app": "b"})
    assert LabelSelector().matches({"anything": "x"})


# --- Service -----------------------------------------------------------------------------------


def service(spec: str) -> str:
    return ("apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: shop}\nspec:\n"
            + textwrap.indent(spec, "  "))


SERVICE_CASES = [
    ("ports-required", service("selector: {app: a}\n"), "spec.ports: required field is missing"),
    ("headless-no-ports", service("clusterIP: None\nselector: {app: a}\n"), None),
    ("external-name", service("type: ExternalName\nexternalName: db.example.com\n"), None),
    ("external-name-required", service("type: ExternalName\n"),
     "spec.externalName: required when type is ExternalName"),
    ("port-required", service("ports: [{targetPort: 8080}]\n"),
     "spec.ports[0].port: required field is missing"),
    ("port-range", service("ports: [{port: 0}]\n"),
     "spec.ports[0].port: must be between 1 and 65535"),
    ("target-port-name", service("ports: [{port: 80, targetPort: http}]\n"), None),
    ("target-port-bad-name", service("ports: [{port: 80, targetPort: 'http port'}]\n"),
     "spec.ports[0].targetPort: must be a port number or a port name"),
    ("target-port-range", service("ports: [{port: 80, targetPort: 0}]\n"),
     "spec.ports[0].targetPort: must be between 1 and 65535"),
    ("names-required-when-many", service("ports: [{port: 80, name: http}, {port: 81}]\n"),
     "spec.ports[1].name: required when there is more than one port"),
    ("names-unique", service("ports: [{port: 80, name: http}, {port: 81, name: http}]\n"),
     "spec.ports[1].name: duplicate port name 'http'"),
    ("node-port-type", service("ports: [{port: 80, nodePort: 30080}]\n"),
     "spec.ports[0].nodePort: may not be used when type is 'ClusterIP'"),
    ("node-port-ok", service("type: NodePort\nports: [{port: 80, nodePort: 30080}]\n"), None),
    ("type-enum", service("type: Internal\nports: [{port: 80}]\n"), "spec.type: must be one of"),
    ("cluster-ip", service("clusterIP: 10.0.0.500\nports: [{port: 80}]\n"),
     "spec.clusterIP: must be a valid IP address or None"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in SERVICE_CASES],
                         ids=[c[0] for c in SERVICE_CASES])
def test_service_rules(text: str, expected: str | None) -> None:
    check(text, expected)


def test_service_typed() -> None:
    resources, _ = load(service(
        "selector: {app: a}\nclusterIP: 10.96.0.10\nclusterIPs: [10.96.0.10]\n"
        "ports:\n- {name: http, port: 80, targetPort: 8080, appProtocol: http}\n"
        "- {name: grpc, port: 9090, protocol: TCP}\n"))
    svc = resources[0]
    assert isinstance(svc, Service)
    assert svc.selector == {"app": "a"}
    assert svc.hostname == "s.shop.svc.cluster.local"
    assert svc.spec.effective_type == "ClusterIP"
    http, grpc = svc.spec.ports
    assert http.effective_target_port == 8080
    assert grpc.effective_target_port == 9090


# --- EndpointSlice -----------------------------------------------------------------------------

SLICE = """\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s-abc, labels: {kubernetes.io/service-name: s}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.1.0.5]
  conditions: {ready: true}
  zone: us-east-1a
  nodeName: node-1
  targetRef: {kind: Pod, name: s-1, namespace: default}
- addresses: [10.1.0.6]
  conditions: {ready: false, terminating: true}
"""


def test_endpoint_slice_typed() -> None:
    resources, issues = load(SLICE)
    assert issues == []
    eps = resources[0]
    assert isinstance(eps, EndpointSlice)
    assert eps.service_name == "s"
    assert [e.conditions.is_ready for e in eps.endpoints] == [True, False]
    assert eps.endpoints[0].zone == "us-east-1a"


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("[10.1.0.6]", "['fd00::6']",
     "endpoints[1].addresses[0]: must be a valid IPv4 address, got 'fd00::6'"),
    ("addressType: IPv4", "addressType: IP", "addressType: must be one of"),
    ("port: 8080", "port: 0", "ports[0].port: must be between 1 and 65535"),
    ("[10.1.0.6]", "[]", "endpoints[1].addresses: must not be empty"),
])
def test_endpoint_slice_rules(old: str, new: str, expected: str) -> None:
    check(SLICE.replace(old, new), expected)


# --- ConfigMap, Secret, ServiceAccount, Namespace ----------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("kind: Secret\ndata: {password: cGFzcw==}\n", None),
    ("kind: Secret\ndata: {password: 'not base64!'}\n", "data.password: must be base64-encoded"),
    ("kind: Secret\ntype: Opaque\nstringData: {password: 'plain text!'}\n", None),
    ("kind: Secret\ndata: {'a/b': cGFzcw==}\n", "data.a/b: invalid key 'a/b'"),
    ("kind: ConfigMap\ndata: {app.yaml: 'x: 1'}\nbinaryData: {logo: AAEC}\n", None),
    ("kind: ConfigMap\ndata: {a: x}\nbinaryData: {a: AAEC}\n",
     "binaryData.a: duplicate of key present in data"),
    ("kind: ConfigMap\ndata: {a: 1}\n", "data.a: must be a string, got integer 1"),
    ("kind: ServiceAccount\nautomountServiceAccountToken: false\n"
     "imagePullSecrets: [{name: reg}]\n", None),
    ("kind: Namespace\nmetadata: {name: shop, labels: {istio-injection: enabled}}\n", None),
    ("kind: Namespace\nspec: {finalizer: []}\n", "spec.finalizer: unknown field"),
])
def test_core_kinds(text: str, expected: str | None) -> None:
    if "metadata" not in text:
        text += "metadata: {name: x}\n"
    check("apiVersion: v1\n" + text, expected)


def test_secret_decoded_merges_string_data() -> None:
    resources, _ = load("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
                        "data: {a: YQ==, b: Yg==}\nstringData: {b: B}\n")
    secret = resources[0]
    assert isinstance(secret, Secret)
    assert secret.decoded() == {"a": b"a", "b": b"B"}


# --- HorizontalPodAutoscaler -------------------------------------------------------------------

HPA = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: h}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: d}
  minReplicas: 3
  maxReplicas: 10
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 70}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 600
      selectPolicy: Min
      policies: [{type: Percent, value: 10, periodSeconds: 60}]
"""


def test_hpa_typed() -> None:
    resources, issues = load(HPA)
    assert issues == []
    hpa = resources[0]
    assert isinstance(hpa, HorizontalPodAutoscaler)
    assert hpa.spec.effective_min_replicas == 3
    assert hpa.spec.behavior is not None
    assert hpa.spec.behavior.scale_down_stabilization == 600
    assert hpa.spec.behavior.scale_up_stabilization == 0


def test_hpa_defaults_to_80_percent_cpu() -> None:
    resources, _ = load(HPA.split("  metrics:", maxsplit=1)[0])
    hpa = resources[0]
    assert isinstance(hpa, HorizontalPodAutoscaler)
    (metric,) = hpa.spec.effective_metrics
    assert metric.resource is not None
    assert metric.resource.target.average_utilization == 80


HPA_CASES = [
    ("min-replicas-0", "minReplicas: 3", "minReplicas: 0",
     "spec.minReplicas: must be greater than or equal to 1"),
    ("max-below-min", "maxReplicas: 10", "maxReplicas: 2",
     "spec.maxReplicas: must be greater than or equal to `minReplicas`"),
    ("max-equals-min", "maxReplicas: 10", "maxReplicas: 3", None),
    ("utilization-needs-field", "averageUtilization: 70", "averageValue: 500m",
     "spec.metrics[0].resource.target.averageUtilization: must be set when type is Utilization"),
    ("average-value", "{type: Utilization, averageUtilization: 70}",
     "{type: AverageValue, averageValue: 500m}", None),
    ("resource-no-value", "{type: Utilization, averageUtilization: 70}",
     "{type: Value, value: 1}", "resource.target.type: must be Utilization or AverageValue"),
    ("target-type-enum", "type: Utilization", "type: Percent", "target.type: must be one of"),
    ("source-must-match-type", "  - type: Resource", "  - type: Pods",
     "spec.metrics[0].pods: must populate information for the given metric source 'Pods'"),
    ("policy-type", "type: Percent, value: 10", "type: Replicas, value: 10",
     "scaleDown.policies[0].type: must be one of 'Pods' or 'Percent'"),
    ("policy-value", "value: 10,", "value: 0,",
     "scaleDown.policies[0].value: must be > 0"),
    ("policy-period", "periodSeconds: 60", "periodSeconds: 1801",
     "scaleDown.policies[0].periodSeconds: must be <= 1800"),
    ("stabilization-window", "stabilizationWindowSeconds: 600",
     "stabilizationWindowSeconds: 3601",
     "scaleDown.stabilizationWindowSeconds: must be <= 3600"),
    ("select-policy", "selectPolicy: Min", "selectPolicy: Avg",
     "scaleDown.selectPolicy: must be one of 'Max', 'Min' or 'Disabled'"),
]


@pytest.mark.parametrize(("old", "new", "expected"), [c[1:] for c in HPA_CASES],
                         ids=[c[0] for c in HPA_CASES])
def test_hpa_rules(old: str, new: str, expected: str | None) -> None:
    assert old in HPA
    check(HPA.replace(old, new), expected)


def test_hpa_external_and_object_metrics() -> None:
    text = HPA.split("  metrics:", maxsplit=1)[0] + textwrap.indent("""\
metrics:
- type: External
  external:
    metric: {name: queue_depth, selector: {matchLabels: {queue: orders}}}
    target: {type: AverageValue, averageValue: "30"}
- type: Object
  object:
    describedObject: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: main}
    metric: {name: requests-per-second}
    target: {type: Value, value: 10k}
- type: ContainerResource
  containerResource:
    name: cpu
    container: app
    target: {type: Utilization, averageUtilization: 60}
- type: Pods
  pods:
    metric: {name: qps}
    target: {type: AverageValue, averageValue: 100}
""", "  ")
    check(text, None)


# --- quantities --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "millis"), [("500m", 500), ("1", 1000), (2, 2000),
                                              ("0.25", 250), ("1.5", 1500), ("100u", 1)])
def test_cpu_millicores(text: str | int, millis: int) -> None:
    assert cpu_millicores(text) == millis


@pytest.mark.parametrize(("text", "size"), [("128Mi", 128 * 2**20), ("1G", 10**9),
                                            ("1Gi", 2**30), ("64k", 64000), ("1e3", 1000),
                                            (1024, 1024)])
def test_memory_bytes(text: str | int, size: int) -> None:
    assert memory_bytes(text) == size


@pytest.mark.parametrize("text", ["", "1.2.3", "10 Mi", "5mb", "Mi"])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_quantity(text)


def test_resolve_int_or_percent() -> None:
    assert resolve_int_or_percent("25%", 10, round_up=True) == 3
    assert resolve_int_or_percent("25%", 10, round_up=False) == 2
    assert resolve_int_or_percent(2, 10, round_up=False) == 2
