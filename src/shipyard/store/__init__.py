"""Metadata stores: the :class:`Backend` protocol and how to open one by URL.

Nothing here imports SQLAlchemy until a store is opened.
"""

from __future__ import annotations

from shipyard.store.backend import Backend

__all__ = ["Backend", "open_backend"]


def open_backend(url: str) -> Backend:
    """Open the metadata store at ``url`` (SQLAlchemy URL), applying pending migrations."""
    from shipyard.store.sql import SqlBackend

    return SqlBackend(url)
