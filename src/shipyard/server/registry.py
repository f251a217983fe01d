"""``/api/v1`` for the registry: models, versions, reviews, aliases, governance, users, audit.

Every rule — who may approve (an approver who neither trained nor registered the version),
what may become champion of a governed model, who may change roles — is the
:class:`~shipyard.registry.Registry`'s, acting as the caller: the four-eyes rule holds over
HTTP exactly as it does locally.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status

from shipyard.entities import Role
from shipyard.errors import NotFoundError
from shipyard.registry import Registry
from shipyard.registry.service import validate_model_name
from shipyard.server.auth import Identity, identity, role
from shipyard.server.errors import error_responses
from shipyard.server.schemas import (
    MAX_PAGE,
    PAGE_TOKEN_PATTERN,
    AliasIn,
    AuditOut,
    GovernedIn,
    ModelIn,
    ModelOut,
    Page,
    ReviewIn,
    RunIdsIn,
    TagIn,
    UserIn,
    UserOut,
    VersionIn,
    VersionOfRunOut,
    VersionOut,
    decode_token,
    encode_token,
)
from shipyard.store import Backend

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["registry"], responses=error_responses())

_Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Items per page.")]
_Token = Annotated[
    str | None,
    Query(description="next_page_token of the previous page.", pattern=PAGE_TOKEN_PATTERN),
]


def registry(request: Request, caller: Annotated[Identity, Depends(identity)]) -> Registry:
    """The registry's rules, acting as the caller."""
    backend: Backend = request.app.state.workspace.backend
    return Registry(backend, caller.user)


_Registry = Annotated[Registry, Depends(registry)]
_READ, _WRITE = role(Role.VIEWER), role(Role.MEMBER)
_APPROVE, _ADMIN = role(Role.APPROVER), role(Role.ADMIN)


def _ref(name: str, version: str) -> str:
    return f"{name}@{version}"


@router.get("/models", response_model=list[ModelOut], summary="List registered models", **_READ)
def list_models(reg: _Registry) -> list[ModelOut]:
    return [ModelOut.of(m) for m in reg.models()]


@router.post(
    "/models",
    response_model=ModelOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register a model name (409 if it exists)",
    **_WRITE,
)
def create_model(body: ModelIn, reg: _Registry) -> ModelOut:
    name = validate_model_name(body.name)
    created = reg.backend.create_registered_model(
        name, actor=reg.user, description=body.description
    )
    return ModelOut.of(created)


@router.get("/models/{name}", response_model=ModelOut, summary="A registered model", **_READ)
def get_model(name: str, reg: _Registry) -> ModelOut:
    return ModelOut.of(reg.model(name))


@router.get(
    "/models/{name}/versions",
    response_model=Page[VersionOut],
    summary="A model's versions, oldest first",
    **_READ,
)
def list_versions(
    name: str, reg: _Registry, limit: _Limit = 100, page_token: _Token = None
) -> object:
    offset = decode_token(page_token)
    versions = reg.versions(name)
    more = offset + limit < len(versions)
    return {
        "items": [VersionOut.of(v) for v in versions[offset : offset + limit]],
        "next_page_token": encode_token(offset + limit) if more else None,
    }


@router.post(
    "/models/{name}/versions",
    response_model=VersionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register the next version (its files already in the artifact store)",
    **_WRITE,
)
def register_version(name: str, body: VersionIn, request: Request, reg: _Registry) -> VersionOut:
    if not request.app.state.workspace.artifacts.exists(body.digest):
        raise NotFoundError(
            f"no object {body.digest} in the artifact store: upload the model folder first"
        )
    if body.run_id is not None:
        reg.backend.get_run(body.run_id)
    version = reg.register(
        name,
        digest=body.digest,
        flavor=body.flavor,
        run_id=body.run_id,
        source=body.source,
        description=body.description,
    )
    return VersionOut.of(version)


@router.get(
    "/models/{name}/versions/{version}",
    response_model=VersionOut,
    summary="A version by number, alias or `latest`",
    **_READ,
)
def get_version(name: str, version: str, reg: _Registry) -> VersionOut:
    return VersionOut.of(reg.resolve(_ref(name, version)))


@router.post(
    "/models/{name}/versions/{version}/request-review",
    response_model=VersionOut,
    summary="Ask for a review",
    **_WRITE,
)
def request_review(name: str, version: str, body: ReviewIn, reg: _Registry) -> VersionOut:
    return VersionOut.of(reg.request_review(_ref(name, version), body.comment))


@router.post(
    "/models/{name}/versions/{version}/approve",
    response_model=VersionOut,
    summary="Approve (an approver who neither trained nor registered it)",
    **_APPROVE,
)
def approve(name: str, version: str, body: ReviewIn, reg: _Registry) -> VersionOut:
    return VersionOut.of(reg.approve(_ref(name, version), body.comment))


@router.post(
    "/models/{name}/versions/{version}/reject",
    response_model=VersionOut,
    summary="Reject, saying why",
    **_APPROVE,
)
def reject(name: str, version: str, body: ReviewIn, reg: _Registry) -> VersionOut:
    return VersionOut.of(reg.reject(_ref(name, version), body.comment))


@router.put(
    "/models/{name}/aliases/{alias}",
    response_model=VersionOut,
    summary="Point an alias at a version",
    **_WRITE,
)
def set_alias(name: str, alias: str, body: AliasIn, reg: _Registry) -> VersionOut:
    return VersionOut.of(reg.set_alias(_ref(name, body.version), alias))


@router.delete(
    "/models/{name}/aliases/{alias}", status_code=204, summary="Remove an alias", **_WRITE
)
def delete_alias(name: str, alias: str, reg: _Registry) -> None:
    reg.delete_alias(name, alias)


@router.put(
    "/models/{name}/governed",
    response_model=ModelOut,
    summary="Govern a model (its champion must be approved), or not",
    **_ADMIN,
)
def set_governed(name: str, body: GovernedIn, reg: _Registry) -> ModelOut:
    reg.set_governed(name, body.governed)
    return ModelOut.of(reg.model(name))


@router.get("/users", response_model=list[UserOut], summary="Users and their roles", **_ADMIN)
def list_users(reg: _Registry) -> list[UserOut]:
    return [UserOut(name=u.name, role=u.role.value, created_at=u.created_at) for u in reg.users()]


@router.get("/users/{user}", response_model=UserOut, summary="A user's role", **_READ)
def get_user(user: str, reg: _Registry) -> UserOut:
    found = reg.backend.get_user(user)
    if found is None:
        raise NotFoundError(f"no user {user!r}")
    return UserOut(name=found.name, role=found.role.value, created_at=found.created_at)


@router.put("/users/{user}", response_model=UserOut, summary="Give a user a role", **_ADMIN)
def set_user(user: str, body: UserIn, reg: _Registry) -> UserOut:
    reg.set_user(user, body.role)
    found = reg.backend.get_user(user)
    if found is None:  # pragma: no cover - just written
        raise NotFoundError(f"no user {user!r}")
    return UserOut(name=found.name, role=found.role.value, created_at=found.created_at)


@router.get(
    "/audit", response_model=list[AuditOut], summary="The audit log, newest first", **_ADMIN
)
def audit(
    reg: _Registry,
    target: Annotated[str | None, Query(max_length=300)] = None,
    limit: _Limit = 100,
    before: Annotated[
        int | None, Query(ge=1, lt=2**62, description="Entries older than this one (its seq).")
    ] = None,
) -> list[AuditOut]:
    found = reg.backend.list_audit(limit=limit, target=target, before=before)
    return [AuditOut.of(e) for e in found]


@router.get(
    "/audit/verify",
    summary="Recompute the audit chain: the problems found (none: intact)",
    **_ADMIN,
)
def verify_audit(reg: _Registry) -> dict[str, list[str]]:
    return {"problems": reg.audit_problems()}


@router.put(
    "/models/{name}/tags/{key:path}", status_code=204, summary="Tag a registered model", **_WRITE
)
def tag_model(name: str, key: str, body: TagIn, reg: _Registry) -> None:
    reg.tag(validate_model_name(name), key, body.value)


@router.put(
    "/models/{name}/versions/{version}/tags/{key:path}",
    status_code=204,
    summary="Tag a model version",
    **_WRITE,
)
def tag_version(name: str, version: str, key: str, body: TagIn, reg: _Registry) -> None:
    reg.tag(_ref(name, version), key, body.value)


@router.post(
    "/models/versions/of-runs",
    response_model=list[VersionOfRunOut],
    summary="The model versions registered from some runs",
    **_READ,
)
def versions_of_runs(body: RunIdsIn, reg: _Registry) -> list[VersionOfRunOut]:
    return [
        VersionOfRunOut(model=m, version=v, run_id=r)
        for m, v, r in reg.backend.model_versions_of_runs(body.run_ids)
    ]


@router.get(
    "/models/{name}/versions/{version}/validation",
    summary="The validation gates a version went through (numbers, verdict, report digest)",
    **_READ,
)
def validation(name: str, version: str, reg: _Registry) -> dict[str, Any]:
    """Each gate that validated the version as a candidate of continuous training: the
    verdict, the main metric against the champion, fairness gaps, and the digest of the full
    report (``GET /api/v1/objects/{digest}``)."""
    found = reg.resolve(_ref(name, version))
    events = reg.backend.list_automation_events(candidate=found.ref, limit=100)
    gates = [
        {"event_id": e.event_id, "automation": e.automation, "state": e.state.value, **e.gate}
        for e in events
        if e.gate
    ]
    return {"model": found.model, "version": found.version, "gates": gates}
