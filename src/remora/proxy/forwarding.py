"""Header rules for forwarding a message: hop-by-hop removal and the x-forwarded-* / request id.

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


def strip_hop_by_hop(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """A new list without hop-by-hop headers nor the ones `Connection` names (RFC 9110 §7.6.1).

    `te: trailers` survives as exactly "trailers", as Envoy keeps it (envoyproxy/envoy#32255):
    gRPC needs it end to end.
    """
    headers = headers if isinstance(headers, list) else list(headers)
    drop = _HOP_BY_HOP
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


def upstream_request_headers(
    headers: list[tuple[str, str]],
    *,
    authority: str,
    client_ip: str,
    scheme: str,
    request_id_factory: Callable[[], str],
) -> tuple[list[tuple[str, str]], str]:
    """The request headers to send upstream, in one pass: Host first, hop-by-hop, Host and
    Expect dropped, then what `forwarded_headers` adds. Same result as strip_hop_by_hop +
    forwarded_headers + a new Host, at a third of the cost (it runs for every request)."""
    if any(name in ("connection", "te") for name, _ in headers):
        headers = strip_hop_by_hop(headers)  # the rare case: Connection lists more to drop
        drop = _NOT_FORWARDED - {"te"}  # what survived of TE is "te: trailers"
    else:
        drop = _NOT_FORWARDED
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
    return out, request_id
