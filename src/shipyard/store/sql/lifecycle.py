"""Deleting and restoring runs and experiments, renaming experiments, removing tags (mixed
into :class:`~shipyard.store.sql.SqlBackend`).

A deletion is a mark (``deleted_at``), as in MLflow: searches leave deleted runs out, and a
restore brings them back with everything they logged. Nothing is erased here.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shipyard.errors import AlreadyExistsError, NotFoundError
from shipyard.store.sql.engine import with_retries, write
from shipyard.store.sql.schema import experiments, runs, tags

__all__ = ["LifecycleMethods"]


class LifecycleMethods:
    _engine: sa.Engine

    def set_run_deleted(self, run_id: str, deleted: bool) -> None:
        """Mark a run deleted (or restore it).

        Raises:
            NotFoundError: no such run.
        """
        value = time.time_ns() // 1_000_000 if deleted else None

        def op() -> None:
            with write(self._engine) as conn:
                done = conn.execute(
                    runs.update().where(runs.c.run_id == run_id).values(deleted_at=value)
                ).rowcount
                if not done:
                    raise NotFoundError(f"no run {run_id}")

        with_retries(op, what=f"{'deleting' if deleted else 'restoring'} run {run_id}")

    def set_experiment_deleted(self, experiment_id: int, deleted: bool) -> None:
        """Mark an experiment and its runs deleted (or restore them together).

        Raises:
            NotFoundError: no such experiment.
        """
        value = time.time_ns() // 1_000_000 if deleted else None

        def op() -> None:
            with write(self._engine) as conn:
                done = conn.execute(
                    experiments.update()
                    .where(experiments.c.experiment_id == experiment_id)
                    .values(deleted_at=value)
                ).rowcount
                if not done:
                    raise NotFoundError(f"no experiment {experiment_id}")
                conn.execute(
                    runs.update()
                    .where(runs.c.experiment_id == experiment_id)
                    .values(deleted_at=value)
                )

        with_retries(
            op, what=f"{'deleting' if deleted else 'restoring'} experiment {experiment_id}"
        )

    def rename_experiment(self, experiment_id: int, name: str) -> None:
        """Raises:
        NotFoundError: no such experiment.
        AlreadyExistsError: another experiment has that name."""

        def op() -> None:
            with write(self._engine) as conn:
                done = conn.execute(
                    experiments.update()
                    .where(experiments.c.experiment_id == experiment_id)
                    .values(name=name)
                ).rowcount
                if not done:
                    raise NotFoundError(f"no experiment {experiment_id}")

        try:
            with_retries(op, what=f"renaming experiment {experiment_id}")
        except IntegrityError:
            raise AlreadyExistsError(f"an experiment named {name!r} already exists") from None

    def delete_tag(self, run_id: str, key: str) -> None:
        """Remove a run's tag.

        Raises:
            NotFoundError: no such run, or the run has no such tag.
        """

        def op() -> None:
            with write(self._engine) as conn:
                done = conn.execute(
                    tags.delete().where(tags.c.run_id == run_id, tags.c.key == key)
                ).rowcount
                if not done:
                    raise NotFoundError(f"run {run_id} has no tag {key!r}")

        with_retries(op, what=f"deleting tag {key!r} of run {run_id}")
