"""Istio security.istio.io resources: PeerAuthentication, AuthorizationPolicy, RequestAuthentication."""
