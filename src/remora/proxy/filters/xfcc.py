"""`x-forwarded-client-cert` on a sidecar's inbound side, as Istio configures Envoy's
connection manager there (`forward_client_cert_details: APPEND_FORWARD`): over mutual TLS the
app is told who called — the caller's SPIFFE identity, the hash of its certificate and ours —
after what earlier hops said; on a plain-text connection the header is removed, so a caller
cannot claim an identity it did not prove (Envoy sanitizes XFCC unless the client is mTLS).

First in the inbound chain: Envoy's connection manager does this before any HTTP filter runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from remora.proxy.filter import CONTINUE, HeadersResult, HttpFilter
from remora.proxy.mtls import XFCC, xfcc_element

if TYPE_CHECKING:
    from remora.proxy.context import RequestContext
    from remora.proxy.env import ProxyEnv


class ClientCertDetails(HttpFilter):
    name: ClassVar[str] = "envoy.http_connection_manager.forward_client_cert_details"
    http_filter: ClassVar[bool] = False

    def __init__(self, env: ProxyEnv) -> None:
        self.env = env

    def request_headers(self, ctx: RequestContext) -> HeadersResult:
        if ctx.upstream_headers is None:
            return CONTINUE
        peer = ctx.peer_certificate
        forwarded = [value for name, value in ctx.head.headers if name == XFCC]
        if peer is None:
            if forwarded:
                ctx.upstream_headers = [h for h in ctx.upstream_header_list() if h[0] != XFCC]
            return CONTINUE
        workload = self.env.tls
        element = xfcc_element(workload.identity if workload is not None else "", peer)
        if forwarded:
            kept = [h for h in ctx.upstream_header_list() if h[0] != XFCC]
            kept.append((XFCC, ",".join((*forwarded, element))))
            ctx.upstream_headers = kept
        else:
            ctx.upstream_headers.append((XFCC, element))
        return CONTINUE
