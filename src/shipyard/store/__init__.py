"""Metadata stores: the :class:`Backend` protocol and how to open one by URL.

Nothing here imports SQLAlchemy until a store is opened.
"""

from __future__ import annotations

from shipyard.store.backend import Backend

__all__ = ["Backend", "open_backend"]


def open_backend(url: str, *, sync: bool = False) -> Backend:
    """Open the metadata store at ``url`` (SQLAlchemy URL), applying pending migrations.

    ``sync`` makes every SQLite commit wait for the disk (``synchronous=FULL``), so that a
    power loss cannot undo it; PostgreSQL commits are durable either way.
    """
    from shipyard.store.sql import SqlBackend

    return SqlBackend(url, sync=sync)
