"""The web UI: server-rendered pages (Jinja2) under ``/``, with htmx vendored for partial
updates and charts drawn on the server as SVG; nothing is fetched from elsewhere at run time.

:func:`install` adds the pages and ``/static`` to the platform server's app.
"""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["install"]


def install(app: FastAPI) -> None:
    """Add the pages, their static files and their error pages to ``app``."""
    from starlette.staticfiles import StaticFiles

    from shipyard.server.ui import (
        admin,
        dataset_checks,
        datasets,
        deployments,
        models,
        monitoring,
        pipelines,
        runs,
        session,
    )

    app.mount(
        "/static", StaticFiles(directory=str(files("shipyard.server.ui") / "static")), "static"
    )
    for module in (
        session,
        runs,
        dataset_checks,
        datasets,
        models,
        deployments,
        monitoring,
        pipelines,
        admin,
    ):
        app.include_router(module.router)
