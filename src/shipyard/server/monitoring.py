"""``/api/v1`` for monitoring (being written)."""

from __future__ import annotations

from fastapi import APIRouter

from shipyard.server.errors import error_responses

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["monitoring"], responses=error_responses())
