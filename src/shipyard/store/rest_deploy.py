"""The deployments part of :class:`~shipyard.store.rest.RestBackend` (being written)."""

from __future__ import annotations

from typing import Any

__all__ = ["DeploymentClient"]


class DeploymentClient:
    """deployments methods of the ``Backend`` protocol over HTTP (mixed into ``RestBackend``)."""

    def _api(self, method: str, path: str, **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError  # RestBackend's
