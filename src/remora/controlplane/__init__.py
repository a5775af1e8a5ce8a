"""The control plane: resources, registry, config center and push, behind one HTTP API."""
