"""The one interface every metadata store speaks.

The Python API talks to a :class:`Backend`. :class:`~shipyard.store.sql.SqlBackend` talks to the
database directly; a REST backend (team mode) will speak the same protocol over HTTP, so every
argument and return value here is a plain value or an entity from :mod:`shipyard.entities`, and
filters travel as strings (the server parses them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from shipyard.entities import (
    AlertEvent,
    AlertState,
    ApiToken,
    ArtifactRecord,
    AuditEntry,
    AutomationEvent,
    AutomationLogEntry,
    AutomationState,
    Dataset,
    DatasetProfile,
    DatasetVersion,
    Deployment,
    DeploymentEvent,
    Experiment,
    JournalSegment,
    LineageEdge,
    LoggedModel,
    Metric,
    ModelVersion,
    PipelineRun,
    PipelineStatus,
    RegisteredModel,
    ReviewState,
    Role,
    RouteStats,
    Run,
    RunOwner,
    RunStatus,
    StepOutput,
    StepRun,
    User,
)

__all__ = ["AlertProgress", "Backend"]


@dataclass(frozen=True, slots=True)
class AlertProgress:
    """Where one alert rule of one model stands after the windows evaluated so far."""

    model: str
    rule: str
    consecutive: int = 0
    """Consecutive evaluated windows (up to the last) in which the rule's condition held."""
    firing: bool = False
    last_window_end: datetime | None = None
    """End of the newest window evaluated (UTC); older or equal windows are never looked at
    again."""
    updated: datetime | None = None
    """When this was last written (UTC)."""


@runtime_checkable
class Backend(Protocol):
    """Reads and writes tracking metadata. Every write is atomic and durable when it returns.

    Example:
        >>> backend = open_backend("sqlite:///.shipyard/shipyard.db")  # doctest: +SKIP
        >>> exp = backend.get_or_create_experiment("churn")  # doctest: +SKIP
    """

    @property
    def url(self) -> str:
        """Where the store lives, with any password hidden."""
        ...

    def close(self) -> None: ...

    # experiments
    def create_experiment(self, name: str, description: str = "") -> Experiment: ...
    def get_experiment(self, experiment_id: int) -> Experiment: ...
    def get_experiment_by_name(self, name: str) -> Experiment | None: ...
    def get_or_create_experiment(self, name: str) -> Experiment: ...
    def list_experiments(self) -> list[Experiment]: ...

    # runs
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
        """Create a RUNNING run; with an ``owner`` it is watched (heartbeat = start time)."""
        ...

    def end_run(
        self, run_id: str, status: RunStatus, end_time: int, *, only_active: bool = False
    ) -> None:
        """Record a run's final status. With ``only_active``, a run that is neither RUNNING
        nor CRASHED is refused (InvalidArgumentError) and left as it was."""
        ...

    def reopen_run(
        self, run_id: str, *, owner: RunOwner | None = None, now: int | None = None
    ) -> Run:
        """Mark an ended run RUNNING again (end time cleared), owned by ``owner``."""
        ...

    def log_journal(self, segments: Sequence[JournalSegment]) -> int:
        """Write journal segments not yet applied (each at most once); return how many
        metrics were new."""
        ...

    def applied_segment(self, journal_id: str) -> int:
        """The highest segment of a journal already in the store (-1 for none)."""
        ...

    def heartbeat(self, run_ids: Sequence[str], owner: RunOwner, now: int) -> int:
        """``owner`` is alive: refresh its runs' heartbeat; revive its CRASHED runs."""
        ...

    def watched_runs(self) -> list[tuple[str, RunOwner, int]]:
        """``(run_id, owner, heartbeat)`` of every RUNNING run that has an owner."""
        ...

    def mark_run_crashed(self, run_id: str, *, heartbeat: int | None, now: int) -> int | None:
        """Mark a RUNNING run CRASHED if its heartbeat is still ``heartbeat``; return the end
        time recorded (its last sign of life) or None if it moved on."""
        ...

    def latest_metrics(self, run_ids: Sequence[str]) -> dict[str, list[Metric]]:
        """Each run's latest value of every metric, with its step and timestamp."""
        ...

    def latest_steps(self, run_id: str) -> dict[str, int]:
        """The highest step logged so far for each metric of a run."""
        ...

    def get_run(self, run_id: str) -> Run: ...
    def resolve_run_id(self, prefix: str) -> str: ...
    def log_params(self, run_id: str, params: Mapping[str, str]) -> None: ...
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...
    def log_metrics(self, metrics: Sequence[Metric]) -> None: ...
    def get_metric_history(
        self, run_id: str, key: str, *, offset: int = 0, limit: int | None = None
    ) -> list[Metric]:
        """A metric's values by step (then time); ``offset``/``limit`` page through it."""
        ...

    def log_artifacts(self, run_id: str, records: Sequence[ArtifactRecord]) -> None: ...
    def list_artifacts(self, run_id: str) -> list[ArtifactRecord]: ...
    def search_runs(
        self,
        experiment_ids: Sequence[int],
        filter_string: str = "",
        order_by: Sequence[str] = (),
        max_results: int = 1000,
        offset: int = 0,
        lifecycle: str = "active",
    ) -> list[Run]:
        """Runs matching ``filter_string``; ``lifecycle`` is ``active`` (not deleted),
        ``deleted`` or ``all``."""
        ...

    # deletion marks (restorable), renames, tag removal
    def set_run_deleted(self, run_id: str, deleted: bool) -> None: ...
    def set_experiment_deleted(self, experiment_id: int, deleted: bool) -> None: ...
    def rename_experiment(self, experiment_id: int, name: str) -> None: ...
    def delete_tag(self, run_id: str, key: str) -> None: ...

    # MLflow 3's logged models
    def create_logged_model(self, model: LoggedModel) -> LoggedModel: ...
    def get_logged_model(self, model_id: str) -> LoggedModel: ...
    def update_logged_model(
        self,
        model_id: str,
        *,
        status: str | None = None,
        run_id: str | None = None,
        set_tags: Mapping[str, str] | None = None,
        delete_tags: Sequence[str] = (),
        params: Mapping[str, str] | None = None,
    ) -> LoggedModel: ...
    def search_logged_models(
        self, experiment_ids: Sequence[int], *, max_results: int = 100, offset: int = 0
    ) -> list[LoggedModel]: ...
    def delete_logged_model(self, model_id: str) -> None: ...
    def add_logged_model_file(self, model_id: str, path: str, digest: str, size: int) -> None: ...
    def list_logged_model_files(self, model_id: str) -> list[tuple[str, str, int]]: ...

    # datasets
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
    ) -> tuple[DatasetVersion, bool]: ...
    def get_dataset_version(self, name: str, ref: str = "latest") -> DatasetVersion: ...
    def list_datasets(self) -> list[Dataset]: ...
    def list_dataset_versions(
        self, name: str, *, with_profiles: bool = False
    ) -> list[DatasetVersion]: ...
    def record_dataset_use(self, run_id: str, name: str, version: int, role: str) -> None: ...
    def referenced_digests(
        self, *, keep_last: int | None = None, since_ms: int | None = None
    ) -> set[str]:
        """Every artifact digest the metadata refers to (the roots of ``shipyard gc``)."""
        ...

    def dataset_users(self, name: str, version: int) -> list[tuple[str, str]]: ...
    def run_dataset_versions(
        self, run_ids: Sequence[str], role: str
    ) -> list[tuple[str, DatasetVersion]]: ...

    # registry (every change is audited in the same transaction)
    def create_registered_model(
        self, name: str, *, actor: str, description: str = ""
    ) -> RegisteredModel: ...
    def get_registered_model(self, name: str) -> RegisteredModel: ...
    def list_registered_models(self) -> list[RegisteredModel]: ...
    def set_model_governed(self, name: str, governed: bool, *, actor: str) -> None: ...
    def create_model_version(
        self,
        name: str,
        *,
        digest: str,
        flavor: str,
        actor: str,
        run_id: str | None = None,
        source: str = "",
        description: str = "",
    ) -> ModelVersion: ...
    def get_model_version(self, name: str, version: int) -> ModelVersion: ...
    def list_model_versions(self, name: str) -> list[ModelVersion]: ...
    def latest_model_version(self, name: str) -> int: ...
    def model_versions_of_runs(self, run_ids: Sequence[str]) -> list[tuple[str, int, str]]:
        """``(model, version, run_id)`` of every version registered from one of ``run_ids``."""
        ...

    def set_review_state(
        self,
        name: str,
        version: int,
        state: ReviewState,
        *,
        actor: str,
        comment: str = "",
        expected: ReviewState | None = None,
    ) -> None: ...
    def set_model_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        actor: str,
        require_approved: bool = False,
    ) -> None: ...
    def delete_model_alias(self, name: str, alias: str, *, actor: str) -> None: ...
    def resolve_model_alias(self, name: str, alias: str) -> int: ...
    def set_model_tag(
        self, name: str, version: int, key: str, value: str, *, actor: str
    ) -> None: ...
    def set_user(self, name: str, role: Role, *, actor: str) -> None: ...
    def get_user(self, name: str) -> User | None: ...
    def list_users(self) -> list[User]: ...
    def set_user_password(self, name: str, password_hash: str | None, *, actor: str) -> None: ...
    def get_user_password_hash(self, name: str) -> str | None: ...
    def list_audit(
        self, *, limit: int = 100, target: str | None = None, before: int | None = None
    ) -> list[AuditEntry]:
        """Newest entries first (those of ``target``: a prefix), older than entry ``before``
        when given, so that a caller pages back by the last entry's ``seq``."""
        ...

    def verify_audit(self) -> list[str]: ...

    # monitoring alerts
    def record_alert_progress(
        self,
        progress: AlertProgress,
        events: Sequence[AlertEvent],
        *,
        expected_window_end: datetime | None,
        delivery: str = "none",
    ) -> bool:
        """Store a rule's new progress and the events it raised, in one transaction.

        Only if the stored ``last_window_end`` is still ``expected_window_end`` (what the
        caller read before evaluating); otherwise another evaluator got there first, nothing is
        written and the result is False. ``delivery`` is the events' initial webhook status:
        ``none`` (no webhooks) or ``pending``.
        """
        ...

    def get_alert_progress(self, model: str | None = None) -> list[AlertProgress]:
        """Progress of every rule (of ``model``), ordered by model and rule."""
        ...

    def list_alert_events(
        self,
        *,
        model: str | None = None,
        rule: str | None = None,
        state: AlertState | None = None,
        since: datetime | None = None,
        delivery: str | None = None,
        limit: int = 100,
    ) -> list[AlertEvent]:
        """Alert events, newest first (by ``at``); ``since`` (inclusive) is compared with
        when each event was recorded."""
        ...

    def set_alert_delivery(self, event_id: str, status: str, attempts: int) -> None:
        """Record an event's webhook delivery: ``delivered`` or ``failed`` after ``attempts``."""
        ...

    # deployments (every change that is an event is audited in the same transaction)
    def save_deployment(
        self,
        deployment: Deployment,
        *,
        event: DeploymentEvent | None = None,
        require_approved: Sequence[tuple[str, int]] = (),
        move_alias_to: int | None = None,
    ) -> Deployment:
        """Create (``revision`` 0) or replace a deployment read at ``deployment.revision``
        (ConflictError if it moved on); the event, its lineage rows and audit entry go in
        the same transaction, as do the approval check of ``require_approved`` and moving the
        deployment's alias to ``move_alias_to``."""
        ...

    def get_deployment(self, name: str) -> Deployment: ...
    def list_deployments(self) -> list[Deployment]: ...
    def list_deployment_events(self, name: str, *, limit: int = 100) -> list[DeploymentEvent]:
        """A deployment's newest ``limit`` events, oldest first."""
        ...

    def deployments_of_version(self, model: str, version: int) -> list[tuple[str, int]]:
        """``(deployment, first_at)`` of every deployment that ever routed to the version."""
        ...

    def record_route_stats(self, server: str, stats: Sequence[RouteStats]) -> None:
        """One model server's cumulative counts per route (replacing its previous ones)."""
        ...

    def get_route_stats(self, deployment: str) -> list[RouteStats]:
        """Counts per (route, version), summed over every model server."""
        ...

    def acquire_lease(self, name: str, holder: str, ttl_ms: int) -> bool:
        """Take or renew a lease for ``ttl_ms``; False while another holder has it."""
        ...

    def release_lease(self, name: str, holder: str) -> None: ...

    # pipelines
    def create_pipeline_run(self, run: PipelineRun, steps: Sequence[StepRun]) -> None:
        """Record a new run and all its steps (``PENDING``) in one transaction."""
        ...

    def save_step_run(self, step: StepRun) -> None: ...
    def save_step_runs(self, steps: Sequence[StepRun]) -> None:
        """Overwrite the rows of ``steps`` in one transaction."""
        ...

    def finish_pipeline_run(
        self, run_id: str, status: PipelineStatus, *, end_time: int, error: str = ""
    ) -> None: ...
    def beat_pipeline_run(self, run_id: str, now: int) -> None: ...
    def get_pipeline_run(self, run_id: str) -> PipelineRun: ...
    def list_pipeline_runs(
        self, pipeline: str | None = None, *, limit: int = 50, before: int | None = None
    ) -> list[PipelineRun]: ...
    def list_step_runs(self, run_id: str) -> list[StepRun]: ...
    def get_step_run(self, step_run_id: str) -> StepRun: ...
    def get_cached_step(self, cache_key: str) -> tuple[tuple[StepOutput, ...], str] | None:
        """The outputs stored under ``cache_key`` and the step run that made them."""
        ...

    def put_cached_step(
        self, cache_key: str, outputs: Sequence[StepOutput], step_run_id: str, *, now: int
    ) -> bool:
        """Store outputs under ``cache_key`` unless someone already did; True if this did."""
        ...

    def forget_cached_step(self, cache_key: str) -> None: ...
    def add_pipeline_lineage(self, edges: Sequence[LineageEdge]) -> None: ...
    def pipeline_lineage(
        self, *, run_id: str | None = None, kind: str | None = None, ref: str | None = None
    ) -> list[LineageEdge]: ...

    # tuning: Optuna's journal of every study in this store
    def append_tuning_logs(self, logs: Sequence[str]) -> int:
        """Append JSON ``logs`` in order; return the log number of the first."""
        ...

    def read_tuning_logs(self, start: int = 0) -> list[str]:
        """The journal's logs from log number ``start`` on, in order."""
        ...

    # continuous training: automations, trigger events and their transitions
    def arm_automation(self, name: str, now: int) -> int:
        """When ``name`` was first seen (``now`` if it is new)."""
        ...

    def add_automation_event(self, event: AutomationEvent, *, actor: str) -> bool:
        """Record ``event`` unless its id exists; True when this call added it."""
        ...

    def update_automation_event(
        self, event: AutomationEvent, *, actor: str, details: dict[str, Any] | None = None
    ) -> AutomationEvent:
        """Write ``event`` over its read revision (else ``ConflictError``), with a log entry."""
        ...

    def get_automation_event(self, event_id: str) -> AutomationEvent: ...
    def list_automation_events(
        self,
        *,
        automation: str | None = None,
        states: Sequence[AutomationState] | None = None,
        candidate: str | None = None,
        source: str | None = None,
        pipeline_run_id: str | None = None,
        limit: int = 100,
    ) -> list[AutomationEvent]: ...
    def automation_log(self, event_id: str) -> list[AutomationLogEntry]: ...

    # API tokens of the platform server, and audit entries of their own
    def create_api_token(self, token: ApiToken, secret_hash: str) -> None: ...
    def get_api_token(self, token_id: str) -> tuple[ApiToken, str]: ...
    def list_api_tokens(self, user: str | None = None) -> list[ApiToken]: ...
    def revoke_api_token(self, token_id: str, *, actor: str) -> None: ...
    def touch_api_token(self, token_id: str, now: int) -> None: ...
    def record_audit(self, actor: str, action: str, target: str, details: dict[str, Any]) -> None:
        """Append one audit entry on its own (a denied request, say)."""
        ...
