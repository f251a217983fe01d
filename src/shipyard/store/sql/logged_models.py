"""MLflow 3's logged models and their files (mixed into :class:`~shipyard.store.sql.SqlBackend`)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from shipyard.entities import LoggedModel
from shipyard.errors import NotFoundError
from shipyard.store.sql.engine import dialect_insert, read, with_retries, write
from shipyard.store.sql.schema import logged_model_files, logged_models

__all__ = ["LoggedModelMethods"]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _logged_model(row: Any) -> LoggedModel:
    return LoggedModel(
        model_id=row.model_id,
        experiment_id=row.experiment_id,
        name=row.name,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        run_id=row.run_id,
        model_type=row.model_type,
        user=row.user,
        tags=dict(row.tags or {}),
        params=dict(row.params or {}),
    )


class LoggedModelMethods:
    _engine: sa.Engine

    def create_logged_model(self, model: LoggedModel) -> LoggedModel:
        def op() -> None:
            with write(self._engine) as conn:
                conn.execute(
                    logged_models.insert().values(
                        model_id=model.model_id,
                        experiment_id=model.experiment_id,
                        name=model.name,
                        run_id=model.run_id,
                        status=model.status,
                        model_type=model.model_type,
                        user=model.user,
                        created_at=model.created_at,
                        updated_at=model.updated_at,
                        tags=dict(model.tags),
                        params=dict(model.params),
                    )
                )

        with_retries(op, what=f"creating logged model {model.model_id}")
        return model

    def get_logged_model(self, model_id: str) -> LoggedModel:
        """Raises:
        NotFoundError: no such logged model."""
        with read(self._engine) as conn:
            row = conn.execute(
                logged_models.select().where(logged_models.c.model_id == model_id)
            ).first()
        if row is None:
            raise NotFoundError(f"Logged model with ID '{model_id}' not found")
        return _logged_model(row)

    def update_logged_model(
        self,
        model_id: str,
        *,
        status: str | None = None,
        run_id: str | None = None,
        set_tags: Mapping[str, str] | None = None,
        delete_tags: Sequence[str] = (),
        params: Mapping[str, str] | None = None,
    ) -> LoggedModel:
        """Change a logged model's status, run, tags or params in one transaction."""

        def op() -> None:
            with write(self._engine) as conn:
                row = conn.execute(
                    logged_models.select()
                    .where(logged_models.c.model_id == model_id)
                    .with_for_update()
                ).first()
                if row is None:
                    raise NotFoundError(f"Logged model with ID '{model_id}' not found")
                tags = {**(row.tags or {}), **(set_tags or {})}
                for key in delete_tags:
                    tags.pop(key, None)
                values: dict[str, Any] = {
                    "tags": tags,
                    "params": {**(row.params or {}), **(params or {})},
                    "updated_at": _now_ms(),
                }
                if status is not None:
                    values["status"] = status
                if run_id is not None and row.run_id is None:
                    values["run_id"] = run_id
                conn.execute(
                    logged_models.update()
                    .where(logged_models.c.model_id == model_id)
                    .values(**values)
                )

        with_retries(op, what=f"updating logged model {model_id}")
        return self.get_logged_model(model_id)

    def search_logged_models(
        self, experiment_ids: Sequence[int], *, max_results: int = 100, offset: int = 0
    ) -> list[LoggedModel]:
        query = (
            logged_models.select()
            .order_by(logged_models.c.created_at.desc(), logged_models.c.model_id)
            .limit(max_results)
            .offset(offset)
        )
        if experiment_ids:
            query = query.where(logged_models.c.experiment_id.in_(list(experiment_ids)))
        with read(self._engine) as conn:
            return [_logged_model(row) for row in conn.execute(query)]

    def delete_logged_model(self, model_id: str) -> None:
        def op() -> None:
            with write(self._engine) as conn:
                conn.execute(
                    logged_model_files.delete().where(logged_model_files.c.model_id == model_id)
                )
                gone = conn.execute(
                    logged_models.delete().where(logged_models.c.model_id == model_id)
                ).rowcount
                if not gone:
                    raise NotFoundError(f"Logged model with ID '{model_id}' not found")

        with_retries(op, what=f"deleting logged model {model_id}")

    def add_logged_model_file(self, model_id: str, path: str, digest: str, size: int) -> None:
        """Record one file of a logged model (a second upload of a path replaces it)."""

        def op() -> None:
            with write(self._engine) as conn:
                insert = dialect_insert(self._engine.dialect.name, logged_model_files)
                conn.execute(
                    insert.values(
                        model_id=model_id, path=path, digest=digest, size=size
                    ).on_conflict_do_update(
                        index_elements=["model_id", "path"],
                        set_={"digest": insert.excluded.digest, "size": insert.excluded.size},
                    )
                )

        with_retries(op, what=f"recording a file of logged model {model_id}")

    def list_logged_model_files(self, model_id: str) -> list[tuple[str, str, int]]:
        """``(path, digest, size)`` of each file, by path."""
        with read(self._engine) as conn:
            rows = conn.execute(
                sa.select(
                    logged_model_files.c.path,
                    logged_model_files.c.digest,
                    logged_model_files.c.size,
                )
                .where(logged_model_files.c.model_id == model_id)
                .order_by(logged_model_files.c.path)
            ).all()
        return [(path, digest, size) for path, digest, size in rows]
