"""Pipeline runs, step runs, the step cache and pipeline lineage (mixed into
:class:`~shipyard.store.sql.SqlBackend`).

A run and all its step rows are created in one transaction, so a pipeline that fails to start
leaves nothing behind. The step cache is insert-if-absent: two runs computing the same step at
once both store the same content-addressed outputs, and the first row wins.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shipyard.entities import (
    LineageEdge,
    PipelineRun,
    PipelineStatus,
    StepOutput,
    StepRun,
    StepStatus,
)
from shipyard.errors import InvalidArgumentError, NotFoundError
from shipyard.store.sql.engine import (
    dialect_insert,
    is_unique_violation,
    read,
    with_retries,
    write,
)
from shipyard.store.sql.schema import pipeline_lineage, pipeline_runs, step_cache, step_runs

__all__ = ["PipelineMethods"]


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _pipeline_run(row: Any) -> PipelineRun:
    return PipelineRun(
        run_id=row.run_id,
        pipeline=row.pipeline,
        source=row.source,
        params=json.loads(row.params),
        status=PipelineStatus(row.status),
        executor=row.executor,
        user=row.user,
        start_time=row.start_time,
        end_time=row.end_time,
        error=row.error,
        owner=row.owner,
        heartbeat=row.heartbeat,
    )


def _outputs(text: str) -> tuple[StepOutput, ...]:
    return tuple(StepOutput.from_dict(item) for item in json.loads(text))


def _step_run(row: Any) -> StepRun:
    return StepRun(
        step_run_id=row.step_run_id,
        run_id=row.run_id,
        name=row.name,
        position=row.position,
        function=row.function,
        status=StepStatus(row.status),
        upstream=tuple(json.loads(row.upstream)),
        cache_hit=bool(row.cache_hit),
        cache_key=row.cache_key,
        key_parts=json.loads(row.key_parts),
        outputs=_outputs(row.outputs),
        reused_from=row.reused_from,
        attempts=row.attempts,
        start_time=row.start_time,
        end_time=row.end_time,
        logs_digest=row.logs_digest,
        error=row.error,
    )


def _step_values(step: StepRun) -> dict[str, Any]:
    return {
        "step_run_id": step.step_run_id,
        "run_id": step.run_id,
        "name": step.name,
        "position": step.position,
        "function": step.function,
        "status": step.status.value,
        "cache_hit": step.cache_hit,
        "cache_key": step.cache_key,
        "key_parts": _dumps(step.key_parts),
        "upstream": _dumps(list(step.upstream)),
        "outputs": _dumps([o.to_dict() for o in step.outputs]),
        "reused_from": step.reused_from,
        "attempts": step.attempts,
        "start_time": step.start_time,
        "end_time": step.end_time,
        "logs_digest": step.logs_digest,
        "error": step.error,
    }


class PipelineMethods:
    _engine: sa.Engine

    def create_pipeline_run(self, run: PipelineRun, steps: Sequence[StepRun]) -> None:
        """Record a new run and all its steps (``PENDING``) in one transaction."""

        def change() -> None:
            with write(self._engine) as conn:
                conn.execute(
                    pipeline_runs.insert().values(
                        run_id=run.run_id,
                        pipeline=run.pipeline,
                        source=run.source,
                        params=_dumps(run.params),
                        status=run.status.value,
                        executor=run.executor,
                        user=run.user,
                        owner=run.owner,
                        heartbeat=run.heartbeat,
                        start_time=run.start_time,
                        end_time=run.end_time,
                        error=run.error,
                    )
                )
                if steps:
                    conn.execute(step_runs.insert(), [_step_values(s) for s in steps])

        with_retries(change, what=f"recording pipeline run {run.run_id}")

    def save_step_run(self, step: StepRun) -> None:
        """Overwrite a step run's row with ``step``."""
        self.save_step_runs([step])

    def save_step_runs(self, steps: Sequence[StepRun]) -> None:
        """Overwrite the rows of ``steps`` in one transaction."""

        def change() -> None:
            with write(self._engine) as conn:
                for step in steps:
                    done = conn.execute(
                        step_runs.update()
                        .where(step_runs.c.step_run_id == step.step_run_id)
                        .values(**_step_values(step))
                    )
                    if done.rowcount == 0:
                        raise NotFoundError(f"no step run {step.step_run_id}")

        if steps:
            with_retries(change, what=f"recording step {steps[0].name}")

    def finish_pipeline_run(
        self, run_id: str, status: PipelineStatus, *, end_time: int, error: str = ""
    ) -> None:
        """Set a run's final status; its steps still pending or running become ``SKIPPED``
        (or ``CANCELLED`` when the run was cancelled)."""
        leftover = (
            StepStatus.CANCELLED if status is PipelineStatus.CANCELLED else StepStatus.SKIPPED
        )

        def change() -> None:
            with write(self._engine) as conn:
                conn.execute(
                    pipeline_runs.update()
                    .where(pipeline_runs.c.run_id == run_id)
                    .values(status=status.value, end_time=end_time, error=error, owner=None)
                )
                conn.execute(
                    step_runs.update()
                    .where(
                        step_runs.c.run_id == run_id,
                        step_runs.c.status.in_(
                            [StepStatus.PENDING.value, StepStatus.RUNNING.value]
                        ),
                    )
                    .values(status=leftover.value)
                )

        with_retries(change, what=f"finishing pipeline run {run_id}")

    def beat_pipeline_run(self, run_id: str, now: int) -> None:
        """Record that the process running ``run_id`` is alive."""
        with write(self._engine) as conn:
            conn.execute(
                pipeline_runs.update().where(pipeline_runs.c.run_id == run_id).values(heartbeat=now)
            )

    def get_pipeline_run(self, run_id: str) -> PipelineRun:
        """The run with this id or unique id prefix."""
        if not run_id or len(run_id) > 32:
            raise InvalidArgumentError(f"not a pipeline run id: {run_id!r}")
        with read(self._engine) as conn:
            rows = conn.execute(
                pipeline_runs.select().where(pipeline_runs.c.run_id.startswith(run_id)).limit(2)
            ).all()
        if not rows:
            raise NotFoundError(
                f"no pipeline run {run_id!r}: see `shipyard pipeline runs` for the runs"
            )
        if len(rows) > 1:
            raise InvalidArgumentError(f"pipeline run prefix {run_id!r} is ambiguous")
        return _pipeline_run(rows[0])

    def list_pipeline_runs(
        self, pipeline: str | None = None, *, limit: int = 50, before: int | None = None
    ) -> list[PipelineRun]:
        """Runs newest first, of one pipeline or all; ``before`` a start time (ms)."""
        query = pipeline_runs.select()
        if pipeline is not None:
            query = query.where(pipeline_runs.c.pipeline == pipeline)
        if before is not None:
            query = query.where(pipeline_runs.c.start_time < before)
        query = query.order_by(
            pipeline_runs.c.start_time.desc(), pipeline_runs.c.run_id.desc()
        ).limit(limit)
        with read(self._engine) as conn:
            return [_pipeline_run(row) for row in conn.execute(query)]

    def list_step_runs(self, run_id: str) -> list[StepRun]:
        """A run's steps in the order the pipeline called them."""
        with read(self._engine) as conn:
            rows = conn.execute(
                step_runs.select()
                .where(step_runs.c.run_id == run_id)
                .order_by(step_runs.c.position)
            )
            return [_step_run(row) for row in rows]

    def get_step_run(self, step_run_id: str) -> StepRun:
        with read(self._engine) as conn:
            row = conn.execute(
                step_runs.select().where(step_runs.c.step_run_id == step_run_id)
            ).first()
        if row is None:
            raise NotFoundError(f"no step run {step_run_id}")
        return _step_run(row)

    def get_cached_step(self, cache_key: str) -> tuple[tuple[StepOutput, ...], str] | None:
        """The outputs stored under ``cache_key`` and the step run that made them."""
        with read(self._engine) as conn:
            row = conn.execute(
                step_cache.select().where(step_cache.c.cache_key == cache_key)
            ).first()
        if row is None:
            return None
        return _outputs(row.outputs), row.step_run_id

    def put_cached_step(
        self, cache_key: str, outputs: Sequence[StepOutput], step_run_id: str, *, now: int
    ) -> bool:
        """Store outputs under ``cache_key`` unless someone already did; True if this did."""
        try:
            with write(self._engine) as conn:
                conn.execute(
                    step_cache.insert().values(
                        cache_key=cache_key,
                        outputs=_dumps([o.to_dict() for o in outputs]),
                        step_run_id=step_run_id,
                        created_at=now,
                    )
                )
        except IntegrityError as exc:
            if is_unique_violation(exc):
                return False
            raise
        return True

    def forget_cached_step(self, cache_key: str) -> None:
        """Drop a cache entry (its outputs are missing from the artifact store)."""
        with write(self._engine) as conn:
            conn.execute(step_cache.delete().where(step_cache.c.cache_key == cache_key))

    def add_pipeline_lineage(self, edges: Sequence[LineageEdge]) -> None:
        """Record lineage edges (an edge recorded twice is kept once)."""
        if not edges:
            return
        rows = [
            {
                "step_run_id": e.step_run_id,
                "run_id": e.run_id,
                "kind": e.kind,
                "ref": e.ref,
                "direction": e.direction,
            }
            for e in edges
        ]
        with write(self._engine) as conn:
            insert = dialect_insert(conn.dialect.name, pipeline_lineage)
            conn.execute(insert.on_conflict_do_nothing(), rows)

    def pipeline_lineage(
        self, *, run_id: str | None = None, kind: str | None = None, ref: str | None = None
    ) -> list[LineageEdge]:
        """Lineage edges of a pipeline run, or those naming ``kind``/``ref``."""
        query = pipeline_lineage.select()
        if run_id is not None:
            query = query.where(pipeline_lineage.c.run_id == run_id)
        if kind is not None:
            query = query.where(pipeline_lineage.c.kind == kind)
        if ref is not None:
            query = query.where(pipeline_lineage.c.ref == ref)
        with read(self._engine) as conn:
            return [
                LineageEdge(
                    step_run_id=row.step_run_id,
                    run_id=row.run_id,
                    kind=row.kind,
                    ref=row.ref,
                    direction=row.direction,
                )
                for row in conn.execute(
                    query.order_by(pipeline_lineage.c.run_id, pipeline_lineage.c.kind)
                )
            ]
