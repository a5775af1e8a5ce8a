"""Header rules for forwarding a message: hop-by-hop removal, Envoy's sanitizing of internal
headers, and the x-forwarded-* / request id.

Pure functions over header lists (names lowercase), so the proxy shell applies them and tests
check them without sockets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

# RFC 9110 §7.6.1 plus the pre-standard ones every proxy drops (Envoy removes proxy-connection).
_HOP_BY_HOP: Final = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade",
    "trailer",
})


_CONNECTION_OPTIONS: Final = frozenset({"keep-alive", "close"})


# An upstream's response loses its own x-envoy-upstream-service-time: Envoy's router sets (not
# adds) the header with its own measure (router_filter x-envoy-upstream-service-time), so a
# response through gateway -> sidecar -> app carries the gateway's alone.
UPSTREAM_RESPONSE_DROP: Final = _HOP_BY_HOP | {"x-envoy-upstream-service-time"}


def strip_hop_by_hop(headers: Iterable[tuple[str, str]], *,
                     drop: frozenset[str] = _HOP_BY_HOP) -> list[tuple[str, str]]:
    """A new list without hop-by-hop headers nor the ones `Connection` names (RFC 9110 §7.6.1),
    nor any other name in `drop` (UPSTREAM_RESPONSE_DROP for a response).

    `te: trailers` survives as exactly "trailers", as Envoy keeps it (envoyproxy/envoy#32255):
    gRPC needs it end to end.
    """
    headers = headers if isinstance(headers, list) else list(headers)
    keep_te = False
    for name, value in headers:
        if name == "connection":
            lowered = value.lower()
            if lowered not in _CONNECTION_OPTIONS:  # "keep-alive"/"close" name no other header
                drop = drop | {t.strip() for t in lowered.split(",")}
        elif name == "te" and "trailers" in {t.split(";")[0].strip().lower()
                                               for t in value.split(",")}:
            keep_te = True
    out = [h for h in headers if h[0] not in drop]
    if keep_te:
        out.append(("te", "trailers"))
    return out


def forwarded_headers(
    headers: Iterable[tuple[str, str]],
    *,
    client_ip: str,
    scheme: str,
    request_id_factory: Callable[[], str],
) -> tuple[list[tuple[str, str]], str]:
    """Append the client to x-forwarded-for, set x-forwarded-proto and x-request-id when absent.

    Envoy (config_http_conn_man_headers_x-forwarded-for, use_remote_address) appends the
    downstream address to an existing x-forwarded-for with ","; x-request-id is kept when the
    client sent one, otherwise generated (a uuid4 from `request_id_factory`). Returns the new
    list and the request id.
    """
    out = list(headers)
    xff = proto = request_id = None
    for i, (name, value) in enumerate(out):
        if name == "x-forwarded-for":
            xff = i
        elif name == "x-forwarded-proto":
            proto = value
        elif name == "x-request-id" and request_id is None:
            request_id = value
    if xff is None:
        out.append(("x-forwarded-for", client_ip))
    else:
        out[xff] = ("x-forwarded-for", f"{out[xff][1]},{client_ip}")
    if proto is None:
        out.append(("x-forwarded-proto", scheme))
    if request_id is None:
        request_id = request_id_factory()
        out.append(("x-request-id", request_id))
    return out, request_id


# Dropped on the way upstream besides the hop-by-hop ones: the proxy writes Host itself, and
# answers `Expect: 100-continue` itself (Envoy's default).
_NOT_FORWARDED: Final = _HOP_BY_HOP | {"host", "expect"}

# Envoy's HTTP header sanitizing (configuration/http/http_conn_man/header_sanitizing; the code is
# conn_manager_utility.cc mutateRequestHeaders + cleanInternalHeaders): the headers that steer
# Envoy or claim what only Envoy may say are removed from requests that are not "internal".
# None is internal here: a sidecar's listeners have use_remote_address false, so no downstream
# address is trusted; a gateway's have it true, but Envoy's internal_address_config is empty by
# default since 1.33 (Istio fills it only from meshNetworks). x-forwarded-client-cert is removed
# because no client certificate was presented (no mTLS yet): Istio's forwardClientCertDetails
# (SANITIZE_SET at gateways, APPEND_FORWARD on sidecar inbound, SANITIZE outbound) all drop it then.
ENVOY_INTERNAL: Final = frozenset({
    "x-envoy-internal", "x-envoy-retry-on", "x-envoy-retry-grpc-on", "x-envoy-max-retries",
    "x-envoy-retriable-status-codes", "x-envoy-retriable-header-names",
    "x-envoy-upstream-alt-stat-name", "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms", "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-expected-rq-timeout-ms", "x-envoy-force-trace", "x-envoy-ip-tags",
    "x-envoy-original-url", "x-envoy-hedge-on-per-try-timeout", "x-forwarded-client-cert",
})
# An "edge" request (use_remote_address and not internal: what reaches a gateway) also loses
# these, and Envoy sets x-envoy-external-address to the client's address: the mesh's first hop.
EDGE_INTERNAL: Final = frozenset({
    "x-envoy-decorator-operation", "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node", "x-envoy-external-address",
})
_NOT_FORWARDED_MESH: Final = _NOT_FORWARDED | ENVOY_INTERNAL
_NOT_FORWARDED_EDGE: Final = _NOT_FORWARDED_MESH | EDGE_INTERNAL


def upstream_request_headers(
    headers: list[tuple[str, str]],
    *,
    authority: str,
    client_ip: str,
    scheme: str,
    request_id_factory: Callable[[], str],
    edge: bool,
) -> tuple[list[tuple[str, str]], str]:
    """The request headers to send upstream, in one pass: Host first, hop-by-hop, Host, Expect
    and Envoy's internal headers dropped (`edge`: a gateway's, see EDGE_INTERNAL), then what
    `forwarded_headers` adds. Same result as strip_hop_by_hop + the sanitizing +
    forwarded_headers + a new Host, at a third of the cost (it runs for every request)."""
    drop = _NOT_FORWARDED_EDGE if edge else _NOT_FORWARDED_MESH
    if any(name in ("connection", "te") for name, _ in headers):
        headers = strip_hop_by_hop(headers)  # the rare case: Connection lists more to drop
        drop = drop - {"te"}  # what survived of TE is "te: trailers"
    out = [("host", authority)]
    xff = -1
    proto = False
    request_id = ""
    for header in headers:
        name = header[0]
        if name in drop:
            continue
        if name == "x-forwarded-for":
            xff = len(out)
        elif name == "x-forwarded-proto":
            proto = True
        elif name == "x-request-id" and not request_id:
            request_id = header[1]
        out.append(header)
    if xff < 0:
        out.append(("x-forwarded-for", client_ip))
    else:
        out[xff] = ("x-forwarded-for", f"{out[xff][1]},{client_ip}")
    if not proto:
        out.append(("x-forwarded-proto", scheme))
    if not request_id:
        request_id = request_id_factory()
        out.append(("x-request-id", request_id))
    if edge:
        out.append(("x-envoy-external-address", client_ip))
    return out, request_id


# Forwarding the field lines as received. A head decoded by the fast path keeps its raw field
# lines; when none of them is one the rules above drop or change, the peer gets those bytes
# unchanged, plus what the proxy adds: no list of tuples is encoded again. The checks run on the
# header list the decoder built anyway (a set lookup per name); anything else takes the list
# path above.
_REQUEST_LIST_PATH: Final = (_NOT_FORWARDED_EDGE | {"x-forwarded-for", "x-envoy-peer-metadata",
                                                    "x-envoy-peer-metadata-id"}) - {"host"}


def kept_request_lines(raw: bytes, headers: list[tuple[str, str]]
                       ) -> tuple[bytes, bool, str] | None:
    """The field lines to forward as they are after a new Host line (the received Host, the
    first line, removed), whether x-forwarded-proto is among them, and their x-request-id ("" if
    none); None when the request needs the list path (a header to drop, change or append to)."""
    if not headers or headers[0][0] != "host":
        return None
    proto = False
    request_id = ""
    for name, value in headers:
        if name in _REQUEST_LIST_PATH:
            return None
        if name == "x-forwarded-proto":
            proto = True
        elif name == "x-request-id" and not request_id:
            request_id = value
    return raw[raw.index(b"\r\n") + 2:], proto, request_id


def added_request_headers(
    *,
    proto: bool,
    request_id: str,
    client_ip: str,
    scheme: str,
    request_id_factory: Callable[[], str],
    edge: bool,
) -> tuple[list[tuple[str, str]], str]:
    """What the proxy appends to kept field lines (forwarded_headers' rules; x-forwarded-for is
    not among them), and the request id."""
    added = [("x-forwarded-for", client_ip)]
    if not proto:
        added.append(("x-forwarded-proto", scheme))
    if not request_id:
        request_id = request_id_factory()
        added.append(("x-request-id", request_id))
    if edge:
        added.append(("x-envoy-external-address", client_ip))
    return added, request_id


_RESPONSE_LIST_PATH: Final = UPSTREAM_RESPONSE_DROP | {"x-envoy-peer-metadata",
                                                       "x-envoy-peer-metadata-id"}
# A plain Connection line as servers spell it: the proxy writes its own instead.
_PLAIN_CONNECTION: Final = tuple(
    f"{name}: {value}\r\n".encode()
    for name in ("Connection", "connection") for value in ("keep-alive", "close"))


def kept_response_lines(raw: bytes, headers: list[tuple[str, str]]) -> bytes | None:
    """The response field lines to forward as they are (a plain Connection line cut out), or
    None when one must be dropped or changed (UPSTREAM_RESPONSE_DROP, peer metadata)."""
    connection = False
    for name, _ in headers:
        if name == "connection" and not connection:
            connection = True
        elif name in _RESPONSE_LIST_PATH:
            return None
    if not connection:
        return raw
    for line in _PLAIN_CONNECTION:
        if raw.startswith(line):
            return raw[len(line):]
        at = raw.find(b"\r\n" + line)
        if at >= 0:
            return raw[:at + 2] + raw[at + 2 + len(line):]
    return None
