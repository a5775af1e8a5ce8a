"""Telemetry: Istio standard metrics and Envoy-style access logs."""
