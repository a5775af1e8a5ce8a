"""DestinationRule `trafficPolicy.tls` (ClientTLSSettings) compiled to what a proxy needs to
originate TLS: SIMPLE (verify the server), MUTUAL (and present a client certificate), and the
`sni` / `subjectAltNames` overrides ISTIO_MUTUAL also takes (istio.io DestinationRule
reference, "ClientTLSSettings"; the egress "TLS origination" task).

Certificates come from files on the proxy (`clientCertificate`, `privateKey`,
`caCertificates`) or from the Secret `credentialName` names, which must be in the namespace of
the proxy using it (Istio: "the secret must exist in the namespace of the proxy"); only that
Secret's PEMs go into the proxy's snapshot. A credential that cannot be used makes every
connection of the cluster fail with the reason (Envoy's cluster would have no usable TLS
context), never plain text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from remora.api.networking.traffic_policy import ClientTLSSettings

Credential = tuple[bytes | None, bytes | None, bytes | None] | str
"""A Secret's certificate chain, key and CA bundle (each None when absent and not needed), or
why it cannot be used."""
CredentialLookup = Callable[[str, bool], Credential]
"""(Secret name, whether a client certificate is needed) -> the credential."""


@dataclass(frozen=True, slots=True)
class ClientTls:
    """How the proxy originates TLS to a cluster's endpoints (hashable: it keys the pools)."""

    mode: str  # SIMPLE, MUTUAL or ISTIO_MUTUAL
    sni: str = ""  # "" = the cluster's host (Envoy's auto_sni)
    subject_alt_names: tuple[str, ...] = ()  # "" = the SNI, as a host name check
    insecure_skip_verify: bool = False
    cert_path: str | None = None
    key_path: str | None = None
    ca_path: str | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    ca_pem: bytes | None = None
    problem: str = ""  # the credential could not be used: connections fail with this

    @property
    def originates(self) -> bool:
        """SIMPLE or MUTUAL: TLS of the DestinationRule's own, not the mesh's."""
        return self.mode in ("SIMPLE", "MUTUAL")

    def to_dict(self) -> dict[str, object]:
        return {"mode": self.mode, "sni": self.sni, "subjectAltNames": list(self.subject_alt_names),
                "insecureSkipVerify": self.insecure_skip_verify,
                "clientCertificate": self.cert_path or ("<credential>" if self.cert_pem else ""),
                "caCertificates": self.ca_path or ("<credential>" if self.ca_pem else ""),
                "problem": self.problem}


def client_tls(settings: ClientTLSSettings | None,
               credential: CredentialLookup) -> ClientTls | None:
    """What the proxy does for `settings`; None when it needs nothing of its own (no `tls`,
    DISABLE, or ISTIO_MUTUAL without `sni` and `subjectAltNames`: the mesh's certificate and
    the destination's identities)."""
    if settings is None or (settings.mode or "DISABLE") == "DISABLE":
        return None
    mode = settings.mode or "DISABLE"
    sans = tuple(settings.subject_alt_names)
    common = {"mode": mode, "sni": settings.sni or "", "subject_alt_names": sans,
              "insecure_skip_verify": bool(settings.insecure_skip_verify)}
    if mode == "ISTIO_MUTUAL":
        return ClientTls(**common) if settings.sni or sans else None  # type: ignore[arg-type]
    if settings.credential_name:
        found = credential(settings.credential_name, mode == "MUTUAL")
        if isinstance(found, str):
            return ClientTls(**common, problem=f"credentialName {settings.credential_name!r}: "  # type: ignore[arg-type]
                                               f"{found}")
        cert, key, ca = found  # SIMPLE: only the CA matters
        return ClientTls(**common, cert_pem=cert if mode == "MUTUAL" else None,  # type: ignore[arg-type]
                         key_pem=key if mode == "MUTUAL" else None, ca_pem=ca)
    return ClientTls(**common, cert_path=settings.client_certificate,  # type: ignore[arg-type]
                     key_path=settings.private_key, ca_path=settings.ca_certificates)
