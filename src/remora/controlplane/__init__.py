"""The control plane: resources, registry, config center and push, behind one HTTP API."""

DEFAULT_LISTEN = "127.0.0.1:8848"  # Nacos's port, so Nacos clients find it where they expect
