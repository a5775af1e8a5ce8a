"""The destination a captured connection was sent to before the pod's iptables REDIRECT rule
turned it to the sidecar (Envoy's original_dst listener filter: SO_ORIGINAL_DST)."""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h


def original_destination(transport: asyncio.BaseTransport) -> tuple[str, int] | None:
    """(IPv4 address, port) the client connected to, or None when the connection was not
    redirected (a client that dialled the listener itself, as an `http_proxy` client does)."""
    sock = transport.get_extra_info("socket")
    return None if sock is None else socket_destination(sock)


def socket_destination(sock: socket.socket) -> tuple[str, int] | None:
    """original_destination of an accepted socket not yet in a transport."""
    try:
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    except OSError:  # ENOENT: no NAT entry, the listener's own address was dialled
        return None
    port, address = struct.unpack_from("!2xH4s", raw)
    return socket.inet_ntoa(address), port
