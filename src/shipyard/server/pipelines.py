"""``/api/v1`` for pipelines (being written)."""

from __future__ import annotations

from fastapi import APIRouter

from shipyard.server.errors import error_responses

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["pipelines"], responses=error_responses())
