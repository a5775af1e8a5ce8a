"""The control plane's HTTP application: every router over one ControlPlane state."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse

from remora import __version__
from remora.controlplane import api_auth, api_identity, api_push, api_resources, nacos
from remora.controlplane.state import ControlPlane
from remora.controlplane.status import install_error_handlers

ROUTERS: list[APIRouter] = [
    api_push.router,  # before api_resources: /api/{version}/{plural} would take /api/remora/v1
    api_identity.router,  # before api_resources too
    api_resources.router,
    nacos.router,
    api_auth.router,
]
"""Each API's router, included in this order (one line per API)."""


def create_app(state: ControlPlane) -> FastAPI:
    """The ASGI app serving `state`; routers reach it as `request.app.state.controlplane`."""
    app = FastAPI(title="Remora control plane", version=__version__,
                  description="Istio and Kubernetes resources at Kubernetes' API paths, the "
                              "service registry and the Nacos-compatible open API.")
    app.state.controlplane = state
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/healthz", response_class=PlainTextResponse, tags=["health"])
    async def healthz() -> str:
        """Liveness, as the Kubernetes API server's /healthz: "ok"."""
        return "ok"

    return app
