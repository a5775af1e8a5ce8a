"""Istio telemetry.istio.io resources: Telemetry."""
