"""``/api/v1/lineage``: the lineage graph around anything — a dataset version, a run, a model
version, a deployment, an alert, a pipeline run or a trigger event — walked both ways by the
same code as ``shipyard lineage`` (:func:`shipyard.automation.lineage.walk`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response

from shipyard.entities import Role
from shipyard.server.auth import role
from shipyard.server.deps import Store
from shipyard.server.errors import error_responses

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["lineage"], responses=error_responses())


@router.get(
    "/lineage",
    summary="The lineage graph around REF (nodes with their state, edges), or Mermaid",
    response_model=None,
    **role(Role.VIEWER),
)
def lineage(
    store: Store,
    ref: Annotated[
        str,
        Query(
            min_length=1,
            max_length=300,
            description="NAME@V, a deployment, a run/pipeline run/trigger/alert id, or KIND:ID",
        ),
    ],
    depth: Annotated[int, Query(ge=0, le=10, description="Hops to walk each way")] = 4,
    format: Annotated[Literal["json", "mermaid"], Query()] = "json",
) -> dict[str, Any] | Response:
    from shipyard.automation.lineage import walk

    graph = walk(store, ref, depth=depth)
    if format == "mermaid":
        return PlainTextResponse(graph.to_mermaid())
    return graph.to_dict()
