"""The config model: typed Istio and Kubernetes resources, loaded from YAML with line numbers."""
