"""Metadata stores: the :class:`Backend` protocol and how to open one by URL.

Nothing here imports SQLAlchemy until a store is opened.
"""

from __future__ import annotations

from typing import cast

from shipyard.store.backend import Backend

__all__ = ["Backend", "open_backend"]


def open_backend(url: str, *, sync: bool = False, token: str | None = None) -> Backend:
    """Open the metadata store at ``url``: a SQLAlchemy URL (pending migrations applied), or
    a Shipyard server's ``http(s)://`` URL (with ``token`` for a server with ``--auth``).

    ``sync`` makes every SQLite commit wait for the disk (``synchronous=FULL``), so that a
    power loss cannot undo it; PostgreSQL commits are durable either way.
    """
    if url.startswith(("http://", "https://")):
        from shipyard.store.rest import RestBackend

        # Partly implemented so far: the methods it lacks say so when called.
        return cast(Backend, RestBackend(url, token=token))
    from shipyard.store.sql import SqlBackend

    return SqlBackend(url, sync=sync)
