"""Instance specs from Kubernetes YAML: pod names, command, env, probes, volumes, Services.

Semantics cited from kubernetes.io: "Define Environment Variables for a Container",
"Expose Pod Information to Containers Through Environment Variables", "Configure Liveness,
Readiness and Startup Probes" (defaults), "StatefulSets" (stable names, ordinals.start,
volumeClaimTemplates), "Service" (selector, targetPort by number or name).
"""

from __future__ import annotations

import base64
import random
import re
import textwrap
from pathlib import Path

import pytest

from remora.api.loader import load_text
from remora.api.resource import Resource
from remora.runner.spec import (
    ContainerPort,
    InstanceSpec,
    ProbeSpec,
    ServicePortMapping,
    SpecError,
    expand,
    instances_for,
    workloads,
)

STATE = Path("/state")

BASE = """
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {LOG_LEVEL: debug, DB_HOST: db}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
data: {PASSWORD: B64}
stringData: {TOKEN: plain}
---
apiVersion: v1
kind: Service
metadata: {name: user}
spec:
  selector: {app: user}
  ports:
  - {name: http, port: 8080, targetPort: http}
  - {name: admin, port: 9000, targetPort: 9001}
  - {name: gone, port: 7000, targetPort: nosuch}
---
apiVersion: v1
kind: Service
metadata: {name: other}
spec:
  selector: {app: other}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: user, namespace: elsewhere}
spec:
  selector: {app: user}
  ports: [{port: 80}]
""".replace("B64", base64.b64encode(b"s3cret").decode())

USER = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: user, annotations: {remora.dev/command: "python workload.py"}}
spec:
  replicas: 2
  selector: {matchLabels: {app: user}}
  template:
    metadata: {labels: {app: user, version: v1}}
    spec:
      terminationGracePeriodSeconds: 5
      initContainers: [{name: init, image: busybox}]
      containers:
      - name: app
        image: user:1
        command: [python, -m, user]
        args: [--level, $(LOG_LEVEL), $$(LOG_LEVEL)]
        ports: [{name: http, containerPort: 8080}, {containerPort: 9001}]
        resources: {requests: {cpu: 250m}, limits: {cpu: "1", memory: 128Mi}}
        env:
        - {name: LOG_LEVEL, valueFrom: {configMapKeyRef: {name: cfg, key: LOG_LEVEL}}}
        - {name: URL, value: "http://$(DB_HOST):5432/$(LOG_LEVEL)"}
        - {name: PASSWORD, valueFrom: {secretKeyRef: {name: sec, key: PASSWORD}}}
        - {name: TOKEN, valueFrom: {secretKeyRef: {name: sec, key: TOKEN}}}
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
        - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
        - {name: VERSION, valueFrom: {fieldRef: {fieldPath: "metadata.labels['version']"}}}
        - {name: OPT, valueFrom: {configMapKeyRef: {name: missing, key: x, optional: true}}}
        - {name: CPU, valueFrom: {resourceFieldRef: {resource: requests.cpu, divisor: 1m}}}
        - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
        envFrom: [{configMapRef: {name: cfg}, prefix: CFG_}]
        livenessProbe: {httpGet: {path: /healthz, port: http}}
        readinessProbe:
          tcpSocket: {port: 9001}
          initialDelaySeconds: 2
          periodSeconds: 3
          timeoutSeconds: 4
          successThreshold: 2
          failureThreshold: 5
        startupProbe: {exec: {command: [cat, /tmp/ok]}, failureThreshold: 30}
      - name: sidecar
        image: envoy
"""

DB = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 3
  serviceName: db
  ordinals: {start: 1}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}, annotations: {remora.dev/command: "sqlite-server --dir 'a b'"}}
    spec:
      containers:
      - name: db
        image: db
        volumeMounts: [{name: data, mountPath: /var/lib/db}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce]}
"""


def load(*docs: str) -> list[Resource]:
    result = load_text("\n---\n".join(textwrap.dedent(d) for d in docs), "t.yaml")
    assert not result.issues, [str(i) for i in result.issues]
    return result.resources


def one(*docs: str, workload: str = "user") -> InstanceSpec:
    return instances_for(load(*docs), workload=workload, replicas=1, state_dir=STATE)[0]


def test_deployment_pod_names_hash_and_random_suffix() -> None:
    """Deployments: `<name>-<pod-template-hash>-<5 chars>` (kubernetes.io, "Deployments":
    pod-template-hash label; the ReplicaSet's pods get generateName suffixes)."""
    resources = load(BASE, USER)
    pods = instances_for(
        resources, workload="user", replicas=3, state_dir=STATE, rng=random.Random(1)
    )
    names = [p.name for p in pods]
    assert all(
        re.fullmatch(r"user-[bcdfghjklmnpqrstvwxz2456789]{10}-[a-z0-9]{5}", n) for n in names
    )
    assert len({n.rsplit("-", 1)[0] for n in names}) == 1  # one template, one hash
    assert len(set(names)) == 3
    again = instances_for(
        resources, workload="user", replicas=3, state_dir=STATE, rng=random.Random(1)
    )
    assert [p.name for p in again] == names  # the rng decides the suffixes


def test_template_change_changes_hash() -> None:
    a = instances_for(load(BASE, USER), workload="user", replicas=1, state_dir=STATE)[0]
    b_doc = USER.replace("version: v1", "version: v2")
    b = instances_for(load(BASE, b_doc), workload="user", replicas=1, state_dir=STATE)[0]
    assert a.name.split("-")[1] != b.name.split("-")[1]


def test_statefulset_stable_names_ordinals_and_data_dirs() -> None:
    """StatefulSets: `<name>-<ordinal>` from spec.ordinals.start; one PVC per pod and claim,
    named `<claim>-<pod>` (kubernetes.io, "StatefulSets", Stable Storage)."""
    pods = instances_for(load(DB), workload="default/db", replicas=3, state_dir=STATE)
    assert [p.name for p in pods] == ["db-1", "db-2", "db-3"]
    assert [p.data_dir for p in pods] == [f"/state/volumes/data-db-{i}" for i in (1, 2, 3)]
    assert pods[0].kind == "StatefulSet"
    assert pods[0].command == ("sqlite-server", "--dir", "a b")  # shlex-split annotation
    assert pods[0].services == ()
    assert pods[0].ports == ()
    assert pods[0].liveness is None


def test_command_annotation_on_template_wins_over_workload_and_container() -> None:
    template = USER.replace(
        "labels: {app: user, version: v1}}",
        "labels: {app: user, version: v1}, annotations: {remora.dev/command: 'python t.py'}}",
    )
    assert one(BASE, template).command == ("python", "t.py")
    assert one(BASE, USER).command == ("python", "workload.py")


def test_command_and_args_with_variable_expansion() -> None:
    """command/args: `$(VAR)` expands from the container's env; `$$(VAR)` escapes
    (kubernetes.io, "Define a Command and Arguments for a Container")."""
    doc = USER.replace('annotations: {remora.dev/command: "python workload.py"}', "")
    pod = one(BASE, doc)
    assert pod.command == ("python", "-m", "user", "--level", "debug", "$(LOG_LEVEL)")


def test_env_resolution() -> None:
    pod = one(BASE, USER)
    env = dict(pod.env)
    assert env == {
        "CFG_LOG_LEVEL": "debug",
        "CFG_DB_HOST": "db",
        "LOG_LEVEL": "debug",
        "URL": "http://$(DB_HOST):5432/debug",  # DB_HOST is not a variable of the container
        "PASSWORD": "s3cret",
        "TOKEN": "plain",
        "POD_NAME": pod.name,
        "POD_NAMESPACE": "default",
        "POD_IP": "127.0.0.1",
        "NODE": "localhost",
        "VERSION": "v1",
        "CPU": "250",
        "MEM": "128",
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("{name: X, valueFrom: {configMapKeyRef: {name: nope, key: k}}}",
         "Deployment default/user container 'app': env X: ConfigMap default/nope not found"),
        ("{name: X, valueFrom: {configMapKeyRef: {name: cfg, key: nope}}}",
         "env X: key 'nope' not found in ConfigMap default/cfg"),
        ("{name: X, valueFrom: {secretKeyRef: {name: nope, key: k}}}",
         "env X: Secret default/nope not found"),
        ("{name: X, valueFrom: {fieldRef: {fieldPath: status.phase}}}",
         "env X: fieldRef 'status.phase' is not supported"),
        ("{name: X, valueFrom: {resourceFieldRef: {resource: limits.ephemeral-storage}}}",
         "env X: resourceFieldRef 'limits.ephemeral-storage': not set"),
    ],
)  # fmt: skip
def test_missing_required_reference_is_a_clear_error(env: str, message: str) -> None:
    doc = USER.replace("env:\n", f"env:\n        - {env}\n")
    with pytest.raises(SpecError, match=re.escape(message)):
        one(BASE, doc)


def test_secret_in_another_namespace_is_not_visible() -> None:
    doc = USER.replace("metadata: {name: user,", "metadata: {name: user, namespace: elsewhere,")
    with pytest.raises(SpecError, match="ConfigMap elsewhere/cfg not found"):
        one(BASE, doc, workload="elsewhere/user")


def test_probes_with_kubernetes_defaults_and_named_ports() -> None:
    """Probe defaults: initialDelaySeconds 0, periodSeconds 10, timeoutSeconds 1,
    successThreshold 1, failureThreshold 3 (kubernetes.io, "Configure Probes")."""
    pod = one(BASE, USER)
    assert pod.liveness == ProbeSpec(kind="http", path="/healthz", port=8080)
    assert pod.readiness == ProbeSpec(
        kind="tcp", port=9001, initial_delay=2, period=3, timeout=4,
        success_threshold=2, failure_threshold=5,
    )  # fmt: skip
    assert pod.startup == ProbeSpec(kind="exec", command=("cat", "/tmp/ok"), failure_threshold=30)


def test_probe_on_unknown_port_name_is_an_error() -> None:
    doc = USER.replace("port: http}", "port: nosuch}")
    with pytest.raises(SpecError, match=r"livenessProbe\.httpGet\.port: the container has no port"):
        one(BASE, doc)


def test_ports_grace_labels_and_ignored_containers() -> None:
    pod = one(BASE, USER)
    assert pod.ports == (ContainerPort("http", 8080), ContainerPort("", 9001))
    assert pod.termination_grace == 5
    assert dict(pod.labels) == {"app": "user", "version": "v1"}
    assert pod.ignored_containers == ("init", "sidecar")
    assert pod.cpu_request_millis == 250
    assert one(DB, workload="db").termination_grace == 30


def test_services_selecting_the_pod() -> None:
    """A Service selects pods whose labels include its selector, in its namespace; a named
    targetPort resolves to the containerPort of that name, unknown names are skipped."""
    pod = one(BASE, USER)
    assert pod.service_ports == (
        ServicePortMapping("user", 8080, "http", 8080),
        ServicePortMapping("user", 9000, "admin", 9001),
    )
    assert pod.services == (("user", 8080), ("user", 9001))


def test_workload_name_is_the_owner_not_the_pod() -> None:
    """Istio's workload name (pkg/kube GetWorkloadMetaFromPod): the Deployment or StatefulSet
    the pod belongs to, unless the pod label `service.istio.io/workload-name` says otherwise;
    the pod's own name stays its name."""
    pod = one(BASE, USER)
    assert (pod.workload, pod.workload_name) == ("user", "user")
    assert pod.name.startswith("user-") and pod.name != pod.workload_name
    assert one(DB, workload="db").workload_name == "db"
    named = USER.replace("labels: {app: user, version: v1}}",
                         "labels: {app: user, version: v1, service.istio.io/workload-name: u}}")
    assert (one(BASE, named).workload, one(BASE, named).workload_name) == ("user", "u")


def test_no_command_is_an_error() -> None:
    doc = USER.replace('annotations: {remora.dev/command: "python workload.py"}', "")
    doc = doc.replace("        command: [python, -m, user]\n", "")
    with pytest.raises(SpecError, match="no command to run"):
        one(BASE, doc)


def test_unknown_and_ambiguous_workloads() -> None:
    resources = load(DB, DB.replace("name: db}", "name: db, namespace: ns2}", 1))
    with pytest.raises(SpecError, match="no Deployment or StatefulSet named 'nope'"):
        instances_for(resources, workload="nope", replicas=1, state_dir=STATE)
    with pytest.raises(SpecError, match="ambiguous"):
        instances_for(resources, workload="db", replicas=1, state_dir=STATE)
    pods = instances_for(resources, workload="ns2/db", replicas=1, state_dir=STATE)
    assert pods[0].namespace == "ns2"


def test_workloads() -> None:
    specs = workloads(load(BASE, USER, DB))
    assert [(w.key, w.kind, w.replicas, w.cpu_request_millis) for w in specs] == [
        ("default/user", "Deployment", 2, 250),
        ("default/db", "StatefulSet", 3, None),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("$(A)", "1"), ("$(B)", "$(B)"), ("$$(A)", "$(A)"), ("x$(A)y$(A)", "x1y1"), ("$A", "$A")],
)
def test_expand(text: str, expected: str) -> None:
    assert expand(text, {"A": "1"}) == expected


MESH_HOLDS = """
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    defaultConfig:
      holdApplicationUntilProxyStarts: true
"""


def _annotated(annotation: str) -> str:
    return USER.replace("metadata: {labels: {app: user, version: v1}}",
                        "metadata: {labels: {app: user, version: v1}, annotations: "
                        f"{{proxy.istio.io/config: '{annotation}'}}}}")


def test_hold_application_until_proxy_starts_as_istio_decides_it() -> None:
    """ProxyConfig holdApplicationUntilProxyStarts: false unless MeshConfig defaultConfig says
    so, and the pod's proxy.istio.io/config annotation wins over it (istio.io, "Global Mesh
    Options" → ProxyConfig; "Resource Annotations" → proxy.istio.io/config)."""
    assert not one(BASE, USER).hold_application
    assert one(BASE, USER, MESH_HOLDS).hold_application
    assert one(BASE, _annotated("holdApplicationUntilProxyStarts: true")).hold_application
    assert not one(BASE, _annotated('{"holdApplicationUntilProxyStarts": false}'),
                   MESH_HOLDS).hold_application
    with pytest.raises(SpecError, match="holdApplicationUntilProxyStarts must be true or false"):
        one(BASE, _annotated("holdApplicationUntilProxyStarts: soon"))


def test_pod_ip_and_annotations_reach_the_instance() -> None:
    pod = instances_for(load(BASE, _annotated("{}")), workload="user", replicas=1,
                        state_dir=STATE, pod_ip=lambda name: "10.244.0.9")[0]
    assert pod.pod_ip == "10.244.0.9" and pod.env["POD_IP"] == "10.244.0.9"
    assert pod.annotations == {"proxy.istio.io/config": "{}"}
