"""The MLflow REST API over Shipyard's own entities, so that a team's ``mlflow`` code logs to
Shipyard unchanged (``MLFLOW_TRACKING_URI=http://shipyard-server``); see docs/mlflow.md.

- :mod:`.tracking`: experiments, runs, params, metrics, tags, batches, search;
- :mod:`.artifacts`: the artifact proxy (``/api/2.0/mlflow-artifacts``) and listings;
- :mod:`.logged_models`: MLflow 3's logged models and ``runs/outputs``;
- :mod:`.registry`: registered models, versions, aliases and tags.
"""

from __future__ import annotations

from fastapi import APIRouter

from shipyard.server.mlflow import artifacts, logged_models, registry, tracking

__all__ = ["routers"]

routers: tuple[APIRouter, ...] = (
    tracking.router,
    artifacts.tracking_router,
    artifacts.router,
    logged_models.router,
    registry.router,
)
