"""The platform server: a REST API under ``/api/v1`` over the same services the CLI and the
Python API use (``shipyard server``).

Example:
    >>> from shipyard.server import create_app
    >>> app = create_app(home=".shipyard")  # doctest: +SKIP

Importing this package does not import FastAPI; :func:`create_app` does.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["create_app"]


def create_app(home: str | os.PathLike[str] | None = None, *, auth: bool = False) -> FastAPI:
    """The server's ASGI app over the workspace ``home`` (see :mod:`shipyard.server.app`)."""
    from shipyard.server.app import create_app as build

    return build(home, auth=auth)
