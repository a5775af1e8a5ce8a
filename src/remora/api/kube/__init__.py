"""Kubernetes kinds the mesh and the local runner read."""

from remora.api.kube import autoscaling, core, discovery, workloads  # noqa: F401  (they register)
