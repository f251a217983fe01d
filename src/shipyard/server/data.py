"""``/api/v1`` for versioned datasets: datasets, their versions with schema and statistics
(the profile computed when a version was added), and which runs read or wrote them.

A version names content already in the artifact store (``PUT /api/v1/objects/{digest}``
first — the client uploads the file or folder, then records the version); the server refuses
a digest it does not hold. Identical content added again returns the existing version.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from shipyard.data.refs import validate_dataset_name
from shipyard.entities import Dataset, DatasetProfile, DatasetVersion, Role
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.server.auth import Identity, identity, role
from shipyard.server.deps import Objects, Store
from shipyard.server.errors import error_responses

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["data"], responses=error_responses())
_READ, _WRITE = role(Role.VIEWER), role(Role.MEMBER)
_Caller = Annotated[Identity, Depends(identity)]
_Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")]
_Version = Annotated[int, Path(ge=1, lt=2**31)]


class DatasetOut(BaseModel):
    name: str
    created_at: int
    description: str = ""

    @classmethod
    def of(cls, d: Dataset) -> DatasetOut:
        return cls(name=d.name, created_at=d.created_at, description=d.description)


class DatasetVersionOut(BaseModel):
    dataset: str
    version: int
    digest: str
    size: int
    file_count: int
    kind: str
    format: str
    created_at: int
    created_by: str = ""
    run_id: str | None = None
    source: str = ""
    profile: dict[str, Any] | None = Field(
        default=None, description="Schema and statistics (rows, columns); NaN as null"
    )

    @classmethod
    def of(cls, v: DatasetVersion) -> DatasetVersionOut:
        return cls(
            dataset=v.dataset,
            version=v.version,
            digest=v.digest,
            size=v.size,
            file_count=v.file_count,
            kind=v.kind,
            format=v.format,
            created_at=v.created_at,
            created_by=v.created_by,
            run_id=v.run_id,
            source=v.source,
            profile=None if v.profile is None else v.profile.to_json_dict(),
        )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetVersionIn(_Strict):
    digest: str = Field(pattern=r"^[0-9a-f]{64}$", description="Stored file or folder manifest")
    size: int = Field(ge=0, lt=2**63)
    file_count: int = Field(ge=0, lt=2**31)
    kind: Literal["file", "dir"]
    format: str = Field(default="", max_length=32)
    source: str = Field(default="", max_length=4096)
    run_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    profile: dict[str, Any] | None = None


class AddedOut(BaseModel):
    version: DatasetVersionOut
    created: bool = Field(description="False: this content was already a version")


class UseIn(_Strict):
    dataset: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
    version: int = Field(ge=1, lt=2**31)
    role: Literal["input", "output"]


class RunDatasetsIn(_Strict):
    run_ids: list[str] = Field(max_length=10_000)
    role: Literal["input", "output"]


class RunDatasetOut(BaseModel):
    run_id: str
    version: DatasetVersionOut


class UserOut(BaseModel):
    run_id: str
    role: str


@router.get("/datasets", response_model=list[DatasetOut], summary="Datasets", **_READ)
def list_datasets(store: Store) -> list[DatasetOut]:
    return [DatasetOut.of(d) for d in store.list_datasets()]


@router.get(
    "/datasets/{name}/versions",
    response_model=list[DatasetVersionOut],
    summary="A dataset's versions, oldest first",
    **_READ,
)
def list_versions(
    name: _Name,
    store: Store,
    with_profiles: Annotated[bool, Query(description="Include each profile")] = False,
) -> list[DatasetVersionOut]:
    return [
        DatasetVersionOut.of(v)
        for v in store.list_dataset_versions(name, with_profiles=with_profiles)
    ]


@router.get(
    "/datasets/{name}/versions/{ref}",
    response_model=DatasetVersionOut,
    summary="One version with its profile (ref: a number, latest, or a digest prefix)",
    **_READ,
)
def get_version(
    name: _Name, ref: Annotated[str, Path(max_length=64)], store: Store
) -> DatasetVersionOut:
    return DatasetVersionOut.of(store.get_dataset_version(name, ref))


@router.post(
    "/datasets/{name}/versions",
    response_model=AddedOut,
    summary="Record stored content as the next version (the same content: the same version)",
    **_WRITE,
)
def add_version(
    name: _Name, body: DatasetVersionIn, store: Store, objects: Objects, caller: _Caller
) -> AddedOut:
    validate_dataset_name(name)
    if not objects.exists(body.digest):
        raise NotFoundError(f"no object {body.digest} in the artifact store: upload it first")
    if body.run_id is not None:
        store.get_run(body.run_id)
    try:
        profile = None if body.profile is None else DatasetProfile.from_dict(body.profile)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"profile: not a dataset profile ({exc})") from None
    version, created = store.add_dataset_version(
        name,
        digest=body.digest,
        size=body.size,
        file_count=body.file_count,
        kind=body.kind,
        format=body.format,
        created_at=time.time_ns() // 1_000_000,
        created_by=caller.user,
        source=body.source,
        profile=profile,
        run_id=body.run_id,
    )
    return AddedOut(version=DatasetVersionOut.of(version), created=created)


@router.get(
    "/datasets/{name}/versions/{version}/runs",
    response_model=list[UserOut],
    summary="Runs that read or wrote a version",
    **_READ,
)
def dataset_users(name: _Name, version: _Version, store: Store) -> list[UserOut]:
    return [UserOut(run_id=r, role=role) for r, role in store.dataset_users(name, version)]


@router.post(
    "/runs/{run_id}/datasets",
    status_code=204,
    summary="Record that a run read (input) or wrote (output) a dataset version",
    **_WRITE,
)
def record_use(run_id: str, body: UseIn, store: Store) -> None:
    store.record_dataset_use(run_id, body.dataset, body.version, body.role)


@router.post(
    "/runs/datasets",
    response_model=list[RunDatasetOut],
    summary="The dataset versions some runs read or wrote",
    **_READ,
)
def run_datasets(body: RunDatasetsIn, store: Store) -> list[RunDatasetOut]:
    return [
        RunDatasetOut(run_id=r, version=DatasetVersionOut.of(v))
        for r, v in store.run_dataset_versions(body.run_ids, body.role)
    ]
