"""PEM bundles (a root-cert.pem, a cert-chain.pem) as the certificates they hold, each its own
string ending in a newline: the form snapshots carry roots in and proxies compare them by."""

from __future__ import annotations

import re

_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", re.S)


def certificates(bundle: str) -> tuple[str, ...]:
    """Each certificate of `bundle`, in order; text around them is left out."""
    return tuple(match.group(0) + "\n" for match in _CERTIFICATE.finditer(bundle))
