"""Remora: a service mesh in Python that takes Istio's configuration API as it is."""

__version__ = "0.1.0"
