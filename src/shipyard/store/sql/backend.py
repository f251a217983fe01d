"""The metadata store on SQLite or PostgreSQL, through SQLAlchemy Core."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from shipyard.config import redact_url
from shipyard.entities import ArtifactRecord, Experiment, Metric, Run, RunOwner, RunStatus
from shipyard.errors import (
    AlreadyExistsError,
    InvalidArgumentError,
    NotFoundError,
    ParamConflictError,
)
from shipyard.store.sql import migrate
from shipyard.store.sql.alerts import AlertMethods
from shipyard.store.sql.automation import AutomationMethods
from shipyard.store.sql.datasets import DatasetMethods
from shipyard.store.sql.deployments import DeploymentMethods
from shipyard.store.sql.engine import chunks, dialect_insert, make_engine, read, with_retries, write
from shipyard.store.sql.lifecycle import LifecycleMethods
from shipyard.store.sql.liveness import LivenessMethods, insert_metrics
from shipyard.store.sql.logged_models import LoggedModelMethods
from shipyard.store.sql.pipelines import PipelineMethods
from shipyard.store.sql.references import ReferenceMethods
from shipyard.store.sql.registry import RegistryMethods
from shipyard.store.sql.schema import (
    artifacts,
    experiments,
    latest_metrics,
    runs,
)
from shipyard.store.sql.schema import metrics as metrics_table
from shipyard.store.sql.schema import params as params_table
from shipyard.store.sql.schema import tags as tags_table
from shipyard.store.sql.search import compile_filter, order_runs
from shipyard.store.sql.tokens import TokenMethods
from shipyard.store.sql.tuning import TuningMethods

__all__ = ["SqlBackend"]

# The order in which _load_runs unpacks run rows.
_RUN_COLUMNS = (
    runs.c.run_id,
    runs.c.experiment_id,
    runs.c.name,
    runs.c.status,
    runs.c.start_time,
    runs.c.end_time,
    runs.c.parent_run_id,
    runs.c.user,
    runs.c.host,
    runs.c.pid,
    runs.c.process_start,
    runs.c.heartbeat,
    runs.c.deleted_at,
)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _py_float(value: float | None) -> float:
    return math.nan if value is None else float(value)


class SqlBackend(
    AutomationMethods,
    LifecycleMethods,
    LoggedModelMethods,
    DatasetMethods,
    RegistryMethods,
    AlertMethods,
    LivenessMethods,
    DeploymentMethods,
    PipelineMethods,
    ReferenceMethods,
    TokenMethods,
    TuningMethods,
):
    """:class:`~shipyard.store.Backend` over a SQLAlchemy engine.

    Args:
        url: ``sqlite:///path/to/shipyard.db`` or ``postgresql+psycopg://user@host/db``.
        sync: SQLite commits wait for the disk (``synchronous=FULL``) instead of surviving
            only a crash of the process (``NORMAL``).
    """

    def __init__(self, url: str, *, sync: bool = False) -> None:
        self._engine = make_engine(url, sync=sync)
        self._url = redact_url(url)
        try:
            with_retries(lambda: migrate.upgrade(self._engine), what="opening the store")
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def url(self) -> str:
        return self._url

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __repr__(self) -> str:
        return f"SqlBackend({self._url!r})"

    def _insert(self, table: sa.Table) -> Any:
        dialect = self._engine.dialect.name
        return dialect_insert(dialect, table)

    # experiments ---------------------------------------------------------------------------

    def create_experiment(self, name: str, description: str = "") -> Experiment:
        created = _now_ms()

        def op() -> Experiment:
            with write(self._engine) as conn:
                exp_id = conn.execute(
                    experiments.insert()
                    .values(name=name, description=description, created_at=created)
                    .returning(experiments.c.experiment_id)
                ).scalar_one()
            return Experiment(exp_id, name, created, description)

        try:
            return with_retries(op, what=f"creating experiment {name!r}")
        except IntegrityError as exc:
            raise AlreadyExistsError(f"experiment {name!r} already exists") from exc

    def get_experiment(self, experiment_id: int) -> Experiment:
        with read(self._engine) as conn:
            row = conn.execute(
                experiments.select().where(experiments.c.experiment_id == experiment_id)
            ).first()
        if row is None:
            raise NotFoundError(f"no experiment with id {experiment_id}")
        return _experiment(row)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        with read(self._engine) as conn:
            row = conn.execute(experiments.select().where(experiments.c.name == name)).first()
        return None if row is None else _experiment(row)

    def get_or_create_experiment(self, name: str) -> Experiment:
        found = self.get_experiment_by_name(name)
        if found is not None:
            return found
        try:
            return self.create_experiment(name)
        except AlreadyExistsError:  # another process created it a moment ago
            found = self.get_experiment_by_name(name)
            if found is None:  # created and deleted in between: report the original clash
                raise
            return found

    def list_experiments(self) -> list[Experiment]:
        with read(self._engine) as conn:
            rows = conn.execute(experiments.select().order_by(experiments.c.experiment_id))
            return [_experiment(row) for row in rows]

    # runs ----------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: int,
        *,
        name: str,
        user: str,
        start_time: int,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        owner: RunOwner | None = None,
    ) -> Run:
        run_id = uuid.uuid4().hex
        heartbeat = start_time if owner is not None else None
        tag_rows = [{"run_id": run_id, "key": k, "value": v} for k, v in (tags or {}).items()]

        def op() -> None:
            with write(self._engine) as conn:
                if parent_run_id is not None:
                    self._require_run(conn, parent_run_id)
                found = conn.execute(
                    sa.select(experiments.c.experiment_id).where(
                        experiments.c.experiment_id == experiment_id
                    )
                ).first()
                if found is None:
                    raise NotFoundError(f"no experiment with id {experiment_id}")
                conn.execute(
                    runs.insert().values(
                        run_id=run_id,
                        experiment_id=experiment_id,
                        name=name,
                        status=RunStatus.RUNNING.value,
                        start_time=start_time,
                        parent_run_id=parent_run_id,
                        user=user,
                        heartbeat=heartbeat,
                        **_owner_columns(owner),
                    )
                )
                if tag_rows:
                    conn.execute(tags_table.insert(), tag_rows)

        with_retries(op, what="creating a run")
        return Run(
            run_id=run_id,
            experiment_id=experiment_id,
            name=name,
            status=RunStatus.RUNNING,
            start_time=start_time,
            parent_run_id=parent_run_id,
            user=user,
            tags=dict(tags or {}),
            owner=owner,
            heartbeat=heartbeat,
        )

    def end_run(
        self, run_id: str, status: RunStatus, end_time: int, *, only_active: bool = False
    ) -> None:
        def op() -> None:
            with write(self._engine) as conn:
                query = runs.update().where(runs.c.run_id == run_id)
                if only_active:
                    query = query.where(
                        runs.c.status.in_([RunStatus.RUNNING.value, RunStatus.CRASHED.value])
                    )
                result = conn.execute(
                    query.values(status=RunStatus(status).value, end_time=end_time)
                )
                if result.rowcount == 0:
                    found = conn.execute(
                        sa.select(runs.c.status).where(runs.c.run_id == run_id)
                    ).scalar()
                    if found is None:
                        raise NotFoundError(f"no run {run_id}")
                    raise InvalidArgumentError(
                        f"run {run_id} has already ended ({found}); nothing to do"
                    )

        with_retries(op, what=f"ending run {run_id}")

    def reopen_run(
        self, run_id: str, *, owner: RunOwner | None = None, now: int | None = None
    ) -> Run:
        values: dict[str, Any] = {"status": RunStatus.RUNNING.value, "end_time": None}
        if owner is not None:
            values |= _owner_columns(owner) | {"heartbeat": now if now is not None else _now_ms()}

        def op() -> None:
            with write(self._engine) as conn:
                result = conn.execute(runs.update().where(runs.c.run_id == run_id).values(values))
                if result.rowcount == 0:
                    raise NotFoundError(f"no run {run_id}")

        with_retries(op, what=f"resuming run {run_id}")
        return self.get_run(run_id)

    def latest_steps(self, run_id: str) -> dict[str, int]:
        with read(self._engine) as conn:
            rows = conn.execute(
                sa.select(latest_metrics.c.key, latest_metrics.c.step).where(
                    latest_metrics.c.run_id == run_id
                )
            ).all()
        return {key: step for key, step in rows}

    def latest_metrics(self, run_ids: Sequence[str]) -> dict[str, list[Metric]]:
        with read(self._engine) as conn:
            found: dict[str, list[Metric]] = {i: [] for i in run_ids}
            for chunk in chunks(list(run_ids)):
                rows = conn.execute(
                    sa.select(
                        latest_metrics.c.run_id,
                        latest_metrics.c.key,
                        latest_metrics.c.value,
                        latest_metrics.c.step,
                        latest_metrics.c.timestamp,
                    )
                    .where(latest_metrics.c.run_id.in_(chunk))
                    .order_by(latest_metrics.c.run_id, latest_metrics.c.key)
                ).all()
                for run_id, key, value, step, timestamp in rows:
                    value = math.nan if value is None else value
                    found[run_id].append(Metric(key, value, step, timestamp, run_id))
        return found

    def get_run(self, run_id: str) -> Run:
        with read(self._engine) as conn:
            row = conn.execute(sa.select(*_RUN_COLUMNS).where(runs.c.run_id == run_id)).first()
            if row is None:
                raise NotFoundError(f"no run {run_id}")
            return self._load_runs(conn, [row])[0]

    def resolve_run_id(self, prefix: str) -> str:
        """The full id of the one run whose id starts with ``prefix`` (at least 4 chars)."""
        prefix = prefix.strip().lower()
        if len(prefix) < 4 or not all(c in "0123456789abcdef" for c in prefix):
            raise InvalidArgumentError(
                f"{prefix!r} is not a run id: give the id or its first 4+ hex characters"
            )
        with read(self._engine) as conn:
            found = (
                conn.execute(
                    sa.select(runs.c.run_id).where(runs.c.run_id.startswith(prefix)).limit(2)
                )
                .scalars()
                .all()
            )
        if not found:
            raise NotFoundError(f"no run whose id starts with {prefix!r}")
        if len(found) > 1:
            raise InvalidArgumentError(f"run id prefix {prefix!r} is ambiguous; give more of it")
        return str(found[0])

    def _require_run(self, conn: sa.Connection, run_id: str) -> None:
        if conn.execute(sa.select(runs.c.run_id).where(runs.c.run_id == run_id)).first() is None:
            raise NotFoundError(f"no run {run_id}")

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        if not params:
            return
        wanted = {str(k): str(v) for k, v in params.items()}

        def op() -> None:
            with write(self._engine) as conn:
                self._require_run(conn, run_id)
                existing = self._existing_params(conn, run_id, list(wanted))
                _check_param_conflicts(run_id, wanted, existing)
                missing = [
                    {"run_id": run_id, "key": k, "value": v}
                    for k, v in wanted.items()
                    if k not in existing
                ]
                if missing:
                    conn.execute(
                        self._insert(params_table).on_conflict_do_nothing(
                            index_elements=["run_id", "key"]
                        ),
                        missing,
                    )
                    # Another writer may have won a race for the same key: check again.
                    _check_param_conflicts(
                        run_id, wanted, self._existing_params(conn, run_id, list(wanted))
                    )

        with_retries(op, what=f"logging params to run {run_id}")

    @staticmethod
    def _existing_params(conn: sa.Connection, run_id: str, keys: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in chunks(keys):
            rows = conn.execute(
                sa.select(params_table.c.key, params_table.c.value).where(
                    params_table.c.run_id == run_id, params_table.c.key.in_(chunk)
                )
            )
            found.update({row.key: row.value for row in rows})
        return found

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        if not tags:
            return
        rows = [{"run_id": run_id, "key": str(k), "value": str(v)} for k, v in tags.items()]

        def op() -> None:
            with write(self._engine) as conn:
                self._require_run(conn, run_id)
                stmt = self._insert(tags_table)
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["run_id", "key"], set_={"value": stmt.excluded.value}
                    ),
                    rows,
                )

        with_retries(op, what=f"setting tags on run {run_id}")

    def log_metrics(self, metrics: Sequence[Metric]) -> None:
        if not metrics:
            return

        def op() -> None:
            with write(self._engine) as conn:
                insert_metrics(conn, metrics)

        with_retries(op, what=f"logging {len(metrics)} metrics")

    def get_metric_history(
        self, run_id: str, key: str, *, offset: int = 0, limit: int | None = None
    ) -> list[Metric]:
        query = (
            sa.select(metrics_table.c.value, metrics_table.c.step, metrics_table.c.timestamp)
            .where(metrics_table.c.run_id == run_id, metrics_table.c.key == key)
            .order_by(metrics_table.c.step, metrics_table.c.timestamp, metrics_table.c.id)
        )
        if offset:
            query = query.offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with read(self._engine) as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(query).all()  # plain tuples: 100,000 rows in 0.3 s, not 0.4 s
            return [Metric(key, _py_float(v), step, at, run_id) for v, step, at in rows]

    def log_artifacts(self, run_id: str, records: Sequence[ArtifactRecord]) -> None:
        if not records:
            return
        rows = [
            {
                "run_id": run_id,
                "path": r.path,
                "digest": r.digest,
                "size": r.size,
                "is_dir": r.is_dir,
                "file_count": r.file_count,
            }
            for r in records
        ]

        def op() -> None:
            with write(self._engine) as conn:
                self._require_run(conn, run_id)
                stmt = self._insert(artifacts)
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["run_id", "path"],
                        set_={
                            c: stmt.excluded[c] for c in ("digest", "size", "is_dir", "file_count")
                        },
                    ),
                    rows,
                )

        with_retries(op, what=f"recording artifacts of run {run_id}")

    def list_artifacts(self, run_id: str) -> list[ArtifactRecord]:
        with read(self._engine) as conn:
            self._require_run(conn, run_id)
            rows = conn.execute(
                artifacts.select().where(artifacts.c.run_id == run_id).order_by(artifacts.c.path)
            )
            return [
                ArtifactRecord(r.path, r.digest, r.size, bool(r.is_dir), r.file_count) for r in rows
            ]

    def search_runs(
        self,
        experiment_ids: Sequence[int],
        filter_string: str = "",
        order_by: Sequence[str] = (),
        max_results: int = 1000,
        offset: int = 0,
        lifecycle: str = "active",
    ) -> list[Run]:
        if max_results < 1 or offset < 0:
            raise InvalidArgumentError("max_results must be >= 1 and offset >= 0")
        where = compile_filter(filter_string)
        query = order_runs(sa.select(*_RUN_COLUMNS), order_by)
        if lifecycle == "active":
            query = query.where(runs.c.deleted_at.is_(None))
        elif lifecycle == "deleted":
            query = query.where(runs.c.deleted_at.is_not(None))
        elif lifecycle != "all":
            raise InvalidArgumentError(
                f"lifecycle must be 'active', 'deleted' or 'all', not {lifecycle!r}"
            )
        if experiment_ids:
            query = query.where(runs.c.experiment_id.in_(list(experiment_ids)))
        if where is not None:
            query = query.where(where)
        query = query.limit(max_results).offset(offset)
        with read(self._engine) as conn:
            rows = conn.execute(query).all()
            return self._load_runs(conn, rows)

    def _load_runs(self, conn: sa.Connection, rows: Sequence[Any]) -> list[Run]:
        """Attach params, tags and latest metrics to run rows: three queries per 500 runs.

        This is the hot path of every search, so rows are fetched in one go and unpacked as
        tuples, and the database sorts the keys.
        """
        ids = [row.run_id for row in rows]
        run_params: dict[str, dict[str, str]] = {i: {} for i in ids}
        run_tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        run_metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
        for chunk in chunks(ids):
            for run_id, key, value in _keyed_rows(conn, params_table, chunk):
                run_params[run_id][key] = value
            for run_id, key, value in _keyed_rows(conn, tags_table, chunk):
                run_tags[run_id][key] = value
            for run_id, key, value in _keyed_rows(conn, latest_metrics, chunk):
                run_metrics[run_id][key] = math.nan if value is None else value
        return [
            Run(
                run_id,
                experiment_id,
                name,
                RunStatus(status),
                start_time,
                end_time,
                parent_run_id,
                user,
                run_params[run_id],
                run_metrics[run_id],
                run_tags[run_id],
                None if pid is None else RunOwner(host or "", pid, process_start or ""),
                heartbeat,
                deleted_at,
            )
            for (
                run_id,
                experiment_id,
                name,
                status,
                start_time,
                end_time,
                parent_run_id,
                user,
                host,
                pid,
                process_start,
                heartbeat,
                deleted_at,
            ) in rows
        ]


def _keyed_rows(conn: sa.Connection, table: sa.Table, run_ids: Sequence[str]) -> list[Any]:
    query = (
        sa.select(table.c.run_id, table.c.key, table.c.value)
        .where(table.c.run_id.in_(run_ids))
        .order_by(table.c.run_id, table.c.key)
    )
    return list(conn.execute(query).all())


def _owner_columns(owner: RunOwner | None) -> dict[str, Any]:
    if owner is None:
        return {}
    return {"host": owner.host, "pid": owner.pid, "process_start": owner.process_start}


def _experiment(row: sa.Row[Any]) -> Experiment:
    return Experiment(row.experiment_id, row.name, row.created_at, row.description, row.deleted_at)


def _check_param_conflicts(
    run_id: str, wanted: Mapping[str, str], existing: Mapping[str, str]
) -> None:
    for key, value in wanted.items():
        if key in existing and existing[key] != value:
            raise ParamConflictError(
                f"param {key!r} of run {run_id} is already {existing[key]!r}; it cannot change "
                f"to {value!r} (params are fixed once logged: start a new run, or log the new "
                "value as a tag or metric)"
            )
