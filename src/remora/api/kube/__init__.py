"""Kubernetes kinds the mesh and the local runner read."""
