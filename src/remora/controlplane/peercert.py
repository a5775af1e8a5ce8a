"""The client certificate of a TLS connection, told to the application as ASGI's TLS extension.

uvicorn does not fill `scope["extensions"]["tls"]` (asgi.readthedocs.io, "TLS Extension"), so
the HTTP protocol is wrapped: when a connection is made (after the TLS handshake) the verified
peer certificate is read once from the transport's SSL object, and every request on that
connection carries `{"tls": {"client_cert_chain": [PEM], "client_cert_error": None,
"tls_version": ..., ...}}`. The server verifies the certificate against the mesh's roots
before the connection is made (servingcert.py: CERT_OPTIONAL), so a chain here is a verified
one; Python's ssl gives the leaf only.

`certificate_identity` says which workload a verified certificate proves: the SPIFFE URI of
the mesh's trust domain, as the CA issued it.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from typing import Any

from cryptography import x509

from remora.controlplane.ca import Identity

TLS = "tls"
_SPIFFE = re.compile(r"^spiffe://(?P<domain>[^/]+)/ns/(?P<ns>[^/]+)/sa/(?P<sa>[^/]+)$")
_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def tls_extension(transport: Any) -> dict[str, Any] | None:
    """ASGI's TLS extension for a connection (None: not TLS)."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    cipher = ssl_object.cipher()
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
        "cipher_name": cipher[0] if cipher else None,
    }


def with_tls_extension(protocol: type[Any]) -> type[Any]:
    """uvicorn's httptools protocol class `protocol`, with the TLS extension in each scope."""

    class TlsExtensionProtocol(protocol):  # type: ignore[misc]
        _tls: dict[str, Any] | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._tls = tls_extension(transport)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._tls is not None:
                self.scope["extensions"] = {**self.scope.get("extensions", {}), TLS: self._tls}

    TlsExtensionProtocol.__name__ = f"TlsExtension{protocol.__name__}"
    return TlsExtensionProtocol


def client_certificate(scope: Mapping[str, Any]) -> str | None:
    """The verified client certificate (PEM) of a request's connection, if it sent one."""
    chain = ((scope.get("extensions") or {}).get(TLS) or {}).get("client_cert_chain") or []
    return str(chain[0]) if chain else None


def certificate_identity(certificate: str, trust_domain: str) -> Identity | None:
    """The workload a certificate the CA issued proves: its SPIFFE URI's namespace and
    service account, when it has exactly one URI and it is of `trust_domain` (the control
    plane's own DNS certificate, or one of another trust domain, proves none)."""
    try:
        cert = x509.load_pem_x509_certificate(certificate.encode())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    found = _SPIFFE.match(uris[0]) if len(uris) == 1 else None
    if found is None or found["domain"] != trust_domain:
        return None
    return Identity(found["ns"], found["sa"])
