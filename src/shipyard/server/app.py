"""``create_app``: the platform server's ASGI app (FastAPI) over a workspace's stores.

The app holds one :class:`~shipyard.tracking.workspace.Workspace` (the metadata store and the
artifact store, opened once); every router reads it from ``app.state``. The OpenAPI document
is served at ``/api/v1/openapi.json``; no documentation page is served, since Swagger UI
would load its scripts from a CDN.
"""

from __future__ import annotations

import os
import time

from fastapi import FastAPI

from shipyard.server.auth import FailureLimiter, PasswordCache, check_declared
from shipyard.server.errors import install_error_handlers
from shipyard.tracking.workspace import open_workspace

__all__ = ["create_app"]


def create_app(home: str | os.PathLike[str] | None = None, *, auth: bool = False) -> FastAPI:
    """The server over the workspace ``home`` (default: ``SHIPYARD_HOME`` or the nearest
    ``.shipyard/``). The store is opened (and migrated) here, before the first request.

    Args:
        home: the workspace.
        auth: require an API token on every ``/api/v1`` call (see :mod:`.auth`); off, every
            call acts as the workspace's user.
    """
    from shipyard import __version__
    from shipyard.server import (
        access,
        data,
        deployments,
        gc,
        lineage,
        mlflow,
        monitoring,
        objects,
        pipelines,
        registry,
        tracking,
        ui,
    )

    workspace = open_workspace(home)
    workspace.backend  # noqa: B018 - open and migrate the store now, not on the first request
    started = time.time()

    app = FastAPI(
        title="Shipyard",
        version=__version__,
        summary="The platform server: tracking, data, registry, deployments, monitoring.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.workspace = workspace
    app.state.auth = auth
    app.state.limiter = FailureLimiter()
    app.state.passwords = PasswordCache()
    install_error_handlers(app)

    @app.get("/health", tags=["service"], summary="Liveness and the store it serves")
    def health() -> dict[str, object]:
        return {
            "status": "ok",
            "version": __version__,
            "store": workspace.backend.url,
            "uptime_s": round(time.time() - started, 3),
        }

    app.include_router(tracking.router)
    app.include_router(registry.router)
    app.include_router(data.router)
    app.include_router(deployments.router)
    app.include_router(monitoring.router)
    app.include_router(pipelines.router)
    app.include_router(lineage.router)
    app.include_router(objects.router)
    app.include_router(gc.router)
    app.include_router(access.router)
    for router in mlflow.routers:
        app.include_router(router)
    ui.install(app)
    check_declared(app.routes)
    return app


def app_from_environment() -> FastAPI:
    """The app over ``SHIPYARD_HOME`` — what each ``shipyard server --workers N`` worker
    builds (uvicorn imports it by name in every worker process)."""
    auth = os.environ.get("SHIPYARD_SERVER_AUTH", "") == "1"
    return create_app(os.environ.get("SHIPYARD_HOME") or None, auth=auth)
