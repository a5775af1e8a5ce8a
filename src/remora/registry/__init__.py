"""The service registry: services, instances, health and leases, over a pluggable store."""
