"""The control plane: resources, registry, config center and push, behind one HTTP API."""

DEFAULT_LISTEN = "127.0.0.1:8848"  # Nacos's port, so Nacos clients find it where they expect
HEADER_TIMEOUT = 32.0
"""Seconds to send a request's head: the Kubernetes API server's ReadHeaderTimeout."""
IDLE_TIMEOUT = 90
"""Seconds an idle keep-alive connection is kept: the Kubernetes API server's IdleTimeout,
which matches Go's http.DefaultTransport (a pooled connection is not closed under a client)."""
