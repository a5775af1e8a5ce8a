"""The registry as the mesh sees it: instances become WorkloadEntries of a Kubernetes Service.

A registry service (Nacos namespace/group/name) with the name of a Kubernetes Service in the
matching namespace adds endpoints to that Service, as pods would: each healthy, enabled instance
is a WorkloadEntry carrying the Service's selector labels plus its own metadata (version,
locality...), so DestinationRule subsets select them; a `service.istio.io/workload-name` in the
metadata names its workload in telemetry, as on a pod, and a `remora.io/serviceAccount` its
service account (the WorkloadEntry's serviceAccount: its identity). `remora up` registers a
sidecar-fronted instance with both and `security.istio.io/tlsMode: istio`, so clients' sidecars
send it Istio mTLS (remora.mesh.peerauth; as in Istio, a WorkloadEntry with a serviceAccount
and no tlsMode label is taken to have a sidecar). A registry service without a Kubernetes
Service gets one made up — ports from its instances — so a sidecar reaches it by the names it
would reach a Kubernetes Service by. Nacos's `public` namespace is Kubernetes' `default`;
protection threshold semantics come from Registry.list (all instances when too few are healthy).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from remora.api.resource import WORKLOAD_NAME_LABEL
from remora.registry.model import SERVICES_PREFIX, Instance
from remora.registry.service import Registry

REGISTRY_LABEL = "registry.remora.dev/service"
SERVICE_ACCOUNT_KEY = "remora.io/serviceAccount"  # instance metadata: the WorkloadEntry's
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def kube_namespace(namespace: str) -> str:
    return "default" if namespace == "public" else namespace


def dns_name(text: str) -> str:
    """A DNS-1123 label from a registry name ("order_service.v1" → "order-service-v1")."""
    return _NOT_DNS.sub("-", text.lower()).strip("-")[:63] or "service"


def _entry(name: str, namespace: str, instance: Instance, *, labels: dict[str, str],
           ports: dict[str, int]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "address": instance.ip,
        "labels": {**labels, **{k: v for k, v in instance.labels.items() if v is not None}},
        "ports": ports,
        "weight": max(1, round(instance.weight)),
    }
    if instance.locality:
        spec["locality"] = instance.locality
    account = instance.labels.get(SERVICE_ACCOUNT_KEY)
    if account:
        spec["serviceAccount"] = account
    metadata: dict[str, Any] = {"name": dns_name(f"{name}-{instance.ip}-{instance.port}"),
                                "namespace": namespace}
    workload = instance.labels.get(WORKLOAD_NAME_LABEL)
    if workload:  # the entry is named after its address; its workload keeps its own name
        metadata["labels"] = {WORKLOAD_NAME_LABEL: workload}
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "WorkloadEntry",
        "metadata": metadata,
        "spec": spec,
    }


def service_documents(name: str, namespace: str, hosts: Iterable[Instance],
                      kube_service: dict[str, Any] | None) -> list[dict[str, Any]]:
    """WorkloadEntries (and a made-up Service when there is no Kubernetes one)."""
    hosts = list(hosts)
    if kube_service is not None:
        spec = kube_service.get("spec", {})
        selector = dict(spec.get("selector") or {})
        port_names = [p.get("name") or "http" for p in spec.get("ports", [])]
        return [
            _entry(name, namespace, host, labels=selector,
                   ports={port: host.port for port in port_names})
            for host in hosts
        ]
    selector = {REGISTRY_LABEL: name}
    ports = sorted({host.port for host in hosts})
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": selector,
                 "ports": [{"name": f"http-{port}", "port": port} for port in ports]},
    }
    return [service] + [
        _entry(name, namespace, host, labels=selector, ports={f"http-{host.port}": host.port})
        for host in hosts
    ]


def documents_of(registry: Registry, key: str,
                 kube_services: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    """The mesh documents of one registry service (by its key); none without usable
    instances."""
    namespace, group, service = key[len(SERVICES_PREFIX):].split("/", 2)
    found = registry.instances(namespace=namespace, group=group, service=service,
                               healthy_only=True)
    hosts = [host for host in found.hosts if host.enabled]
    if not hosts:
        return []
    name, kube_ns = dns_name(service), kube_namespace(namespace)
    return service_documents(name, kube_ns, hosts, kube_services.get((kube_ns, name)))
