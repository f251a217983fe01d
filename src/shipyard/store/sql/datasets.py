"""Dataset versions in the SQL store (mixed into :class:`~shipyard.store.sql.SqlBackend`)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shipyard.entities import Dataset, DatasetProfile, DatasetVersion
from shipyard.errors import InvalidArgumentError, NotFoundError, StoreError
from shipyard.store.sql.engine import read, with_retries, with_unique_retries, write
from shipyard.store.sql.schema import dataset_versions, datasets, run_datasets, runs

__all__ = ["DatasetMethods"]

_HEX = re.compile(r"^[0-9a-f]{4,64}$")
_ROLES = ("input", "output")
_ADD_ATTEMPTS = 20
_DIGITS_AS_DIGEST = 7


def _version(row: Any, name: str, *, with_profile: bool = True) -> DatasetVersion:
    profile = None
    if with_profile and row.profile:
        profile = DatasetProfile.from_dict(json.loads(row.profile))
    return DatasetVersion(
        dataset=name,
        version=row.version,
        digest=row.digest,
        size=row.size,
        file_count=row.file_count,
        kind=row.kind,
        format=row.format,
        created_at=row.created_at,
        created_by=row.created_by,
        run_id=row.run_id,
        source=row.source,
        profile=profile,
    )


class DatasetMethods:
    """Dataset operations of the SQL backend. Needs ``self._engine``."""

    _engine: sa.Engine

    def add_dataset_version(
        self,
        name: str,
        *,
        digest: str,
        size: int,
        file_count: int,
        kind: str,
        format: str,
        created_at: int,
        created_by: str,
        source: str = "",
        profile: DatasetProfile | None = None,
        run_id: str | None = None,
    ) -> tuple[DatasetVersion, bool]:
        """Record a version of ``name`` (creating the dataset on first use).

        Returns the version and whether it is new: identical content (same digest) already
        recorded for this dataset returns the existing version and ``False``.
        """
        profile_json = None if profile is None else json.dumps(profile.to_dict())

        def op() -> tuple[int, bool]:
            with write(self._engine) as conn:
                dataset_id = conn.execute(
                    sa.select(datasets.c.dataset_id).where(datasets.c.name == name)
                ).scalar()
                if dataset_id is None:
                    dataset_id = conn.execute(
                        datasets.insert()
                        .values(name=name, created_at=created_at)
                        .returning(datasets.c.dataset_id)
                    ).scalar_one()
                existing = conn.execute(
                    sa.select(dataset_versions.c.version).where(
                        dataset_versions.c.dataset_id == dataset_id,
                        dataset_versions.c.digest == digest,
                    )
                ).scalar()
                if existing is not None:
                    return int(existing), False
                if (
                    run_id is not None
                    and conn.execute(
                        sa.select(runs.c.run_id).where(runs.c.run_id == run_id)
                    ).first()
                    is None
                ):
                    raise NotFoundError(f"no run {run_id}")
                latest = conn.execute(
                    sa.select(sa.func.max(dataset_versions.c.version)).where(
                        dataset_versions.c.dataset_id == dataset_id
                    )
                ).scalar()
                number = (latest or 0) + 1
                conn.execute(
                    dataset_versions.insert().values(
                        dataset_id=dataset_id,
                        version=number,
                        digest=digest,
                        size=size,
                        file_count=file_count,
                        kind=kind,
                        format=format,
                        created_at=created_at,
                        created_by=created_by,
                        run_id=run_id,
                        source=source,
                        profile=profile_json,
                    )
                )
                if run_id is not None:
                    conn.execute(
                        run_datasets.insert().values(
                            run_id=run_id, dataset_id=dataset_id, version=number, role="output"
                        )
                    )
                return number, True

        # Two writers adding to one dataset at once on PostgreSQL can collide on the version
        # number or the digest; the loser's transaction rolled back, so it simply tries again.
        what = f"adding a version of {name!r}"
        try:
            number, created = with_unique_retries(op, what=what)
        except IntegrityError as exc:
            raise StoreError(f"{what} failed: {exc.orig}") from exc
        return self.get_dataset_version(name, str(number)), created

    def _dataset_id(self, conn: sa.Connection, name: str) -> int:
        dataset_id = conn.execute(
            sa.select(datasets.c.dataset_id).where(datasets.c.name == name)
        ).scalar()
        if dataset_id is None:
            raise NotFoundError(f"no dataset named {name!r}")
        return int(dataset_id)

    def get_dataset_version(self, name: str, ref: str = "latest") -> DatasetVersion:
        """``ref`` is a version number, ``latest``, or a prefix (4+ hex chars) of the digest."""
        ref = ref.strip().lower()
        with read(self._engine) as conn:
            dataset_id = self._dataset_id(conn, name)
            query = dataset_versions.select().where(dataset_versions.c.dataset_id == dataset_id)
            if ref == "latest":
                query = query.order_by(dataset_versions.c.version.desc()).limit(1)
            elif ref.isdigit() and len(ref) < _DIGITS_AS_DIGEST:
                query = query.where(dataset_versions.c.version == int(ref))
            elif _HEX.match(ref):
                # All digits and 7+ long reads as a digest prefix ("1234567" is no version).
                query = query.where(dataset_versions.c.digest.startswith(ref)).limit(2)
            else:
                raise InvalidArgumentError(
                    f"{name}@{ref}: a version is a number, 'latest', or a digest prefix "
                    "(4+ hex characters)"
                )
            rows = conn.execute(query).all()
        if not rows:
            raise NotFoundError(f"dataset {name!r} has no version {ref!r}")
        if len(rows) > 1:
            raise InvalidArgumentError(f"{name}@{ref} matches several versions; give more of it")
        return _version(rows[0], name)

    def list_datasets(self) -> list[Dataset]:
        with read(self._engine) as conn:
            rows = conn.execute(datasets.select().order_by(datasets.c.name)).all()
        return [Dataset(r.dataset_id, r.name, r.created_at, r.description) for r in rows]

    def list_dataset_versions(
        self, name: str, *, with_profiles: bool = False
    ) -> list[DatasetVersion]:
        """Every version of ``name``, oldest first."""
        with read(self._engine) as conn:
            dataset_id = self._dataset_id(conn, name)
            rows = conn.execute(
                dataset_versions.select()
                .where(dataset_versions.c.dataset_id == dataset_id)
                .order_by(dataset_versions.c.version)
            ).all()
        return [_version(r, name, with_profile=with_profiles) for r in rows]

    def record_dataset_use(self, run_id: str, name: str, version: int, role: str) -> None:
        """Remember that a run read (``input``) or wrote (``output``) a dataset version."""
        if role not in _ROLES:
            raise InvalidArgumentError(f"role must be one of {_ROLES}, not {role!r}")

        def op() -> None:
            with write(self._engine) as conn:
                if (
                    conn.execute(sa.select(runs.c.run_id).where(runs.c.run_id == run_id)).first()
                    is None
                ):
                    raise NotFoundError(f"no run {run_id}")
                dataset_id = self._dataset_id(conn, name)
                found = conn.execute(
                    sa.select(dataset_versions.c.version).where(
                        dataset_versions.c.dataset_id == dataset_id,
                        dataset_versions.c.version == version,
                    )
                ).first()
                if found is None:
                    raise NotFoundError(f"dataset {name!r} has no version {version}")
                already = conn.execute(
                    sa.select(run_datasets.c.run_id).where(
                        run_datasets.c.run_id == run_id,
                        run_datasets.c.dataset_id == dataset_id,
                        run_datasets.c.version == version,
                        run_datasets.c.role == role,
                    )
                ).first()
                if already is None:
                    conn.execute(
                        run_datasets.insert().values(
                            run_id=run_id, dataset_id=dataset_id, version=version, role=role
                        )
                    )

        with_retries(op, what=f"recording that run {run_id} used {name}@{version}")

    def dataset_users(self, name: str, version: int) -> list[tuple[str, str]]:
        """``(run_id, role)`` of every run that read or wrote ``name@version``."""
        with read(self._engine) as conn:
            dataset_id = self._dataset_id(conn, name)
            rows = conn.execute(
                sa.select(run_datasets.c.run_id, run_datasets.c.role)
                .where(
                    run_datasets.c.dataset_id == dataset_id,
                    run_datasets.c.version == version,
                )
                .order_by(run_datasets.c.run_id, run_datasets.c.role)
            ).all()
        return [(r.run_id, r.role) for r in rows]

    def run_dataset_versions(
        self, run_ids: Sequence[str], role: str
    ) -> list[tuple[str, DatasetVersion]]:
        """``(run_id, version)`` for every dataset version the runs read or wrote."""
        if not run_ids:
            return []
        with read(self._engine) as conn:
            rows = conn.execute(
                sa.select(
                    run_datasets.c.run_id.label("user_run_id"), datasets.c.name, dataset_versions
                )
                .join(datasets, datasets.c.dataset_id == run_datasets.c.dataset_id)
                .join(
                    dataset_versions,
                    sa.and_(
                        dataset_versions.c.dataset_id == run_datasets.c.dataset_id,
                        dataset_versions.c.version == run_datasets.c.version,
                    ),
                )
                .where(run_datasets.c.run_id.in_(list(run_ids)), run_datasets.c.role == role)
                .order_by(datasets.c.name, dataset_versions.c.version)
            ).all()
        return [(r.user_run_id, _version(r, r.name, with_profile=False)) for r in rows]
