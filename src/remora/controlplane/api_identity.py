"""HTTP endpoints of the CA: certificates for proxies, join tokens for operators, roots.

    POST   /api/remora/v1/certificates         {csr, token?, ttlSeconds?} -> certChain, roots
    POST   /api/remora/v1/identitytokens       {namespace, serviceAccount, ttlSeconds?, pod?}
    GET    /api/remora/v1/ca                   roots, who signs, counters
    POST   /api/remora/v1/ca/roots             add a root (it signs from now on)
    DELETE /api/remora/v1/ca/roots/{sha256}    stop trusting a root

A certificate request is open at the gate: its credential is checked here even with auth off,
so the CA never signs for whoever asks. As Istio's CA tries its client-certificate
authenticator before the token one: over TLS, a workload certificate the connection presented
(verified against the mesh's roots, peercert.py) proves its SPIFFE identity and the new
certificate is for that identity only — a renewal needs no token, and a certificate never gets
another identity; without one, the identity token in the body (the first CSR). Its body is parsed by
hand so every mistake is a 400 `{"message"}`, as the proxy reads it. An identity token needs
write on `<namespace>:remora:identity/<serviceAccount>`; reading the CA `*:remora:ca/*`;
changing roots global admin (remora.controlplane.access).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from remora.controlplane import access
from remora.controlplane.access import WRITE, Need
from remora.controlplane.auth_gate import require
from remora.controlplane.ca import (
    ROTATION_GRACE,
    TOKEN_TTL,
    CAError,
    CertificateAuthority,
    Identity,
    rfc3339,
)
from remora.controlplane.peercert import certificate_identity, client_certificate

router = APIRouter(prefix="/api/remora/v1", tags=["identity"])
MAX_TOKEN_TTL = 365 * 86400
"""Longest join token issued: there is no revoking one short of rotating the token key."""
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class TokenRequest(BaseModel):
    namespace: str = Field(max_length=63, pattern=_DNS_LABEL)
    serviceAccount: str = Field(max_length=253, pattern=_DNS_SUBDOMAIN)  # noqa: N815 - wire
    ttlSeconds: int = Field(default=int(TOKEN_TTL.total_seconds()), gt=0,  # noqa: N815
                            le=MAX_TOKEN_TTL)
    pod: str | None = Field(default=None, max_length=253)


def authority(request: Request) -> CertificateAuthority:
    ca = getattr(request.app.state.controlplane, "ca", None)
    if ca is None:
        raise HTTPException(503, "the CA is not running on this control plane")
    return ca  # type: ignore[no-any-return]


def _message(code: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=code)


def _certificate_request(raw: bytes) -> tuple[str, str, timedelta | None]:
    """(csr, token, ttl) from the body; ValueError with what is wrong."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise ValueError("the body must be JSON") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    csr, token, ttl = body.get("csr"), body.get("token", ""), body.get("ttlSeconds")
    if not isinstance(csr, str) or not isinstance(token, str):
        raise ValueError("csr (PEM) and token must be strings")
    if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0):
        raise ValueError("ttlSeconds must be a positive integer or null")
    return csr, token, None if ttl is None else timedelta(seconds=ttl)


async def _requester(ca: CertificateAuthority, request: Request, token: str) -> Identity:
    """Who asks: the workload of the connection's client certificate, else the token's."""
    presented = client_certificate(request.scope)
    if presented is not None:
        identity = certificate_identity(presented, await ca.trust_domain())
        if identity is not None:
            ca.counters["byCertificate"] = ca.counters.get("byCertificate", 0) + 1
            return identity
    return ca.verify_token(token)


@router.post("/certificates", summary="Sign a proxy's CSR for the identity its client "
             "certificate or token proves")
async def certificates(request: Request) -> JSONResponse:
    """200 certChain (leaf first), roots, identity, expiresAt; 400 malformed body or CSR, 401
    bad token (and no workload certificate), 403 a CSR naming anything but the proven SPIFFE
    id."""
    ca = authority(request)
    try:
        csr, token, ttl = _certificate_request(await request.body())
    except ValueError as exc:
        ca.counters["refusedCsr"] += 1
        return _message(400, str(exc))
    try:
        identity = await _requester(ca, request, token)
        issued = await ca.sign(csr, identity, ttl)
    except CAError as exc:
        return _message(exc.code, exc.message)
    return JSONResponse({"certChain": list(issued.chain), "roots": list(issued.roots),
                         "identity": issued.identity, "expiresAt": rfc3339(issued.not_after)})


@router.post("/identitytokens", summary="A join token for one service account's proxies")
async def identity_tokens(body: TokenRequest, request: Request) -> dict[str, Any]:
    """What an operator hands a proxy: whoever holds it gets certificates as the service
    account, so issuing one needs write on it."""
    require(request, Need((access.identity(body.namespace, body.serviceAccount),), WRITE),
            f"an identity token for {body.namespace}/{body.serviceAccount}")
    ca = authority(request)
    identity = Identity(body.namespace, body.serviceAccount, body.pod)
    domain = await ca.trust_domain()
    token, expires = ca.tokens.issue(identity, trust_domain=domain,
                                     ttl=timedelta(seconds=body.ttlSeconds))
    return {"token": token, "identity": identity.spiffe(domain), "expiresAt": rfc3339(expires)}


@router.get("/ca", summary="The CA: its roots, which one signs, certificates issued and refused")
async def describe(request: Request) -> dict[str, Any]:
    return await authority(request).describe()


class RootRequest(BaseModel):
    """How long the new root is only trusted before it signs (default: ROTATION_GRACE)."""

    activateAfterSeconds: int | None = Field(default=None, ge=0, le=86400)  # noqa: N815


@router.post("/ca/roots", summary="Add a self-signed root: trusted now, signing a little later")
async def add_root(request: Request, body: RootRequest | None = None) -> dict[str, Any]:
    ca = authority(request)
    seconds = body.activateAfterSeconds if body is not None else None
    added = await ca.add_root(ROTATION_GRACE if seconds is None else timedelta(seconds=seconds))
    return {"added": added, **await ca.describe()}


@router.delete("/ca/roots/{fingerprint}", summary="Stop trusting a root (not the signing one)")
async def remove_root(fingerprint: str, request: Request) -> dict[str, Any]:
    ca = authority(request)
    await ca.remove_root(fingerprint)
    return await ca.describe()
