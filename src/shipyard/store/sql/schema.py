"""Tables of the metadata store (SQLAlchemy Core). Migrations must produce exactly this."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "alert_events",
    "alert_state",
    "api_tokens",
    "artifacts",
    "audit_head",
    "audit_log",
    "automation_events",
    "automation_log",
    "automations",
    "dataset_versions",
    "datasets",
    "deployment_events",
    "deployment_lineage",
    "deployments",
    "experiments",
    "latest_metrics",
    "leases",
    "logged_model_files",
    "logged_models",
    "metadata",
    "metrics",
    "model_aliases",
    "model_tags",
    "model_versions",
    "params",
    "pipeline_lineage",
    "pipeline_runs",
    "registered_models",
    "route_stats",
    "run_datasets",
    "run_journals",
    "runs",
    "step_cache",
    "step_runs",
    "tags",
    "tuning_journal",
    "users",
]

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only treats INTEGER PRIMARY KEY as an auto-incrementing rowid alias.
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("experiment_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(256), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("deleted_at", sa.BigInteger, nullable=True),  # MLflow's "deleted", restorable
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column(
        "experiment_id",
        sa.Integer,
        sa.ForeignKey("experiments.experiment_id"),
        nullable=False,
    ),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("start_time", sa.BigInteger, nullable=False),
    sa.Column("end_time", sa.BigInteger, nullable=True),
    sa.Column("parent_run_id", sa.String(32), sa.ForeignKey("runs.run_id"), nullable=True),
    sa.Column("user", sa.String(256), nullable=False, server_default=""),
    # The process that owns a RUNNING run and its last sign of life (NULL: not watched).
    sa.Column("host", sa.String(256), nullable=True),
    sa.Column("pid", sa.BigInteger, nullable=True),
    sa.Column("process_start", sa.String(64), nullable=True),
    sa.Column("heartbeat", sa.BigInteger, nullable=True),
    sa.Column("deleted_at", sa.BigInteger, nullable=True),  # MLflow's "deleted", restorable
    sa.Index("ix_runs_experiment_id_start_time", "experiment_id", "start_time"),
    sa.Index("ix_runs_parent_run_id", "parent_run_id"),
    sa.Index("ix_runs_status", "status"),
)

# Per process and run, the highest segment of its metric journal already in ``metrics``:
# a segment is applied at most once, whether by its writer or by a recovery after a crash.
run_journals = sa.Table(
    "run_journals",
    metadata,
    sa.Column("journal_id", sa.String(32), primary_key=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), nullable=False),
    sa.Column("applied_segment", sa.BigInteger, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
    sa.Index("ix_run_journals_run_id", "run_id"),
)

params = sa.Table(
    "params",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    # No index on value: a 6,000-character value exceeds PostgreSQL's btree row limit.
    sa.Column("value", sa.Text, nullable=False),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# ``value`` NULL means NaN: SQLite cannot store NaN, and NULL never satisfies a comparison,
# which is what a search on a NaN metric should do.
metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), nullable=False),
    sa.Column("key", sa.String(250), nullable=False),
    sa.Column("value", sa.Double, nullable=True),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Index("ix_metrics_run_id_key_step", "run_id", "key", "step"),
)

latest_metrics = sa.Table(
    "latest_metrics",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Double, nullable=True),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Index("ix_latest_metrics_key_value", "key", "value"),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("is_dir", sa.Boolean, nullable=False),
    sa.Column("file_count", sa.Integer, nullable=False),
    sa.Index("ix_artifacts_digest", "digest"),
)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("dataset_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# A version is immutable. (dataset_id, digest) is unique: adding identical content again
# returns the existing version instead of numbering a new one.
dataset_versions = sa.Table(
    "dataset_versions",
    metadata,
    sa.Column("dataset_id", sa.Integer, sa.ForeignKey("datasets.dataset_id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("file_count", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("format", sa.String(16), nullable=False, server_default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False, server_default=""),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), nullable=True),
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    sa.Column("profile", sa.Text, nullable=True),
    sa.UniqueConstraint("dataset_id", "digest"),
    sa.Index("ix_dataset_versions_digest", "digest"),
    sa.Index("ix_dataset_versions_run_id", "run_id"),
)

# Which runs read (role "input") or wrote (role "output") which dataset versions.
run_datasets = sa.Table(
    "run_datasets",
    metadata,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("dataset_id", sa.Integer, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("role", sa.String(8), primary_key=True),
    sa.ForeignKeyConstraint(
        ["dataset_id", "version"],
        ["dataset_versions.dataset_id", "dataset_versions.version"],
    ),
    sa.Index("ix_run_datasets_dataset_id_version", "dataset_id", "version"),
)

registered_models = sa.Table(
    "registered_models",
    metadata,
    sa.Column("model_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("governed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column(
        "model_id", sa.Integer, sa.ForeignKey("registered_models.model_id"), primary_key=True
    ),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("flavor", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), nullable=True),
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("review", sa.String(16), nullable=False, server_default="none"),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Index("ix_model_versions_run_id", "run_id"),
)

# Tags of a model (version 0) or of one of its versions.
model_tags = sa.Table(
    "model_tags",
    metadata,
    sa.Column(
        "model_id", sa.Integer, sa.ForeignKey("registered_models.model_id"), primary_key=True
    ),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("model_id", sa.Integer, primary_key=True),
    sa.Column("alias", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.ForeignKeyConstraint(
        ["model_id", "version"], ["model_versions.model_id", "model_versions.version"]
    ),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("password_hash", sa.String(256), nullable=True),  # scrypt; NULL: tokens only
)

# Append-only and hash-chained: each entry's hash covers its content and the previous hash;
# audit_head holds the newest (seq, hash), so a deleted tail is noticed too.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(512), nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

# Alert events are immutable once written, except for their webhook delivery status
# (none, pending, delivered, failed). Times are epoch milliseconds like everywhere else.
alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("rule", sa.String(128), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("metric", sa.String(250), nullable=False),
    sa.Column("value", sa.Double, nullable=True),
    sa.Column("threshold", sa.Double, nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("window_start", sa.BigInteger, nullable=True),
    sa.Column("window_end", sa.BigInteger, nullable=True),
    sa.Column("message", sa.Text, nullable=False, server_default=""),
    sa.Column("delivery", sa.String(16), nullable=False, server_default="none"),
    sa.Column("delivery_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("recorded", sa.BigInteger, nullable=False),
    sa.Index("ix_alert_events_at", "at"),
    sa.Index("ix_alert_events_recorded", "recorded"),
    sa.Index("ix_alert_events_model_rule_at", "model", "rule", "at"),
)

# Where each (model, rule) stands, so a cron-driven evaluation continues where it left off.
alert_state = sa.Table(
    "alert_state",
    metadata,
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("rule", sa.String(128), primary_key=True),
    sa.Column("consecutive", sa.Integer, nullable=False),
    sa.Column("firing", sa.Boolean, nullable=False),
    sa.Column("last_window_end", sa.BigInteger, nullable=True),
    sa.Column("updated", sa.BigInteger, nullable=False),
)

# A deployment's routes, spec and analysis are JSON text: they are read and written whole, by
# revision (compare-and-set), and never searched inside.
deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("target", sa.String(16), nullable=False),
    sa.Column("strategy", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("alias", sa.String(64), nullable=False, server_default=""),
    sa.Column("routes", sa.Text, nullable=False),
    sa.Column("spec", sa.Text, nullable=False, server_default="{}"),
    sa.Column("analysis", sa.Text, nullable=False, server_default="{}"),
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

# Every change of a deployment. ``model``/``version`` name each version that got a route in
# the change: the lineage edges model version -> deployment.
deployment_events = sa.Table(
    "deployment_events",
    metadata,
    sa.Column("seq", _BigId, primary_key=True, autoincrement=True),
    sa.Column("deployment", sa.String(128), nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("routes", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False, server_default="{}"),
    sa.Index("ix_deployment_events_deployment_seq", "deployment", "seq"),
)

deployment_lineage = sa.Table(
    "deployment_lineage",
    metadata,
    sa.Column("deployment", sa.String(128), primary_key=True),
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("first_at", sa.BigInteger, nullable=False),
    sa.Index("ix_deployment_lineage_model_version", "model", "version"),
)

# Cumulative counts per model-server process (``server``); readers sum over servers.
route_stats = sa.Table(
    "route_stats",
    metadata,
    sa.Column("deployment", sa.String(128), primary_key=True),
    sa.Column("route", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("server", sa.String(64), primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("counts", sa.Text, nullable=False),
    sa.Column("updated", sa.BigInteger, nullable=False),
)

# Who acts on what, until when: one rollout controller per deployment.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("expires", sa.BigInteger, nullable=False),
)

# A run of a pipeline; ``owner``/``heartbeat`` tell a live run from one whose process died.
pipeline_runs = sa.Table(
    "pipeline_runs",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("pipeline", sa.String(200), nullable=False),
    sa.Column("source", sa.String(1000), nullable=False),
    sa.Column("params", sa.Text, nullable=False, server_default="{}"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("executor", sa.String(32), nullable=False),
    sa.Column("user", sa.String(256), nullable=False),
    sa.Column("owner", sa.String(200), nullable=True),
    sa.Column("heartbeat", sa.BigInteger, nullable=True),
    sa.Column("start_time", sa.BigInteger, nullable=False),
    sa.Column("end_time", sa.BigInteger, nullable=True),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_pipeline_runs_pipeline_start", "pipeline", "start_time"),
)

# One step of a pipeline run: its cache key and the parts it was made of (what ``explain``
# compares), its outputs' digests, and where a reused output was first made.
step_runs = sa.Table(
    "step_runs",
    metadata,
    sa.Column("step_run_id", sa.String(32), primary_key=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("pipeline_runs.run_id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("function", sa.String(500), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("cache_hit", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("cache_key", sa.String(64), nullable=False, server_default=""),
    sa.Column("key_parts", sa.Text, nullable=False, server_default="{}"),
    sa.Column("upstream", sa.Text, nullable=False, server_default="[]"),
    sa.Column("outputs", sa.Text, nullable=False, server_default="[]"),
    sa.Column("reused_from", sa.String(32), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("start_time", sa.BigInteger, nullable=True),
    sa.Column("end_time", sa.BigInteger, nullable=True),
    sa.Column("logs_digest", sa.String(64), nullable=True),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
    sa.UniqueConstraint("run_id", "name"),
)

# Cache key -> outputs. The first writer wins; a racing second writer's outputs are the same
# content-addressed bytes, so losing the race loses nothing.
step_cache = sa.Table(
    "step_cache",
    metadata,
    sa.Column("cache_key", sa.String(64), primary_key=True),
    sa.Column("outputs", sa.Text, nullable=False),
    sa.Column("step_run_id", sa.String(32), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# Lineage edges of a step run: dataset versions it read, tracking runs it made, model versions
# it registered (``kind`` dataset_version|run|model_version, ``direction`` read|made).
pipeline_lineage = sa.Table(
    "pipeline_lineage",
    metadata,
    sa.Column("step_run_id", sa.String(32), primary_key=True),
    sa.Column("run_id", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("ref", sa.String(300), primary_key=True),
    sa.Column("direction", sa.String(8), primary_key=True),
    sa.Index("ix_pipeline_lineage_kind_ref", "kind", "ref"),
    sa.Index("ix_pipeline_lineage_run_id", "run_id"),
)

# Optuna's journal (every study of the store in one ordered log): ``seq`` is the log number,
# given out under a lock so that readers never see a gap that fills in later.
tuning_journal = sa.Table(
    "tuning_journal",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("log", sa.Text, nullable=False),
)

# Continuous training: each automation's arming time (triggers fire for what happens after
# it), its trigger events (keyed by what fired, so detecting it twice names one row) and
# every transition of an event with its reason.
automations = sa.Table(
    "automations",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("armed_at", sa.BigInteger, nullable=False),
)

automation_events = sa.Table(
    "automation_events",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("automation", sa.String(200), nullable=False),
    sa.Column("trigger", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("source", sa.String(500), nullable=False),
    sa.Column("detected_at", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("model", sa.String(200), nullable=False, server_default=""),
    sa.Column("pipeline_run_id", sa.String(32), nullable=True),
    sa.Column("candidate", sa.String(300), nullable=True),
    sa.Column("deployment", sa.String(200), nullable=True),
    sa.Column("gate", sa.Text, nullable=False, server_default="{}"),
    sa.Column("approval", sa.Text, nullable=False, server_default="{}"),
    sa.Column("rollout", sa.Text, nullable=False, server_default="{}"),
    sa.Column("details", sa.Text, nullable=False, server_default="{}"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_automation_events_automation_detected_at", "automation", "detected_at"),
    sa.Index("ix_automation_events_candidate", "candidate"),
    sa.Index("ix_automation_events_pipeline_run_id", "pipeline_run_id"),
    sa.Index("ix_automation_events_source", "source"),
)

automation_log = sa.Table(
    "automation_log",
    metadata,
    sa.Column("id", _BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "event_id",
        sa.String(64),
        sa.ForeignKey("automation_events.event_id"),
        nullable=False,
    ),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("details", sa.Text, nullable=False, server_default="{}"),
    sa.Index("ix_automation_log_event_id", "event_id"),
)

# API tokens of the platform server: only the SHA-256 of each token's secret is kept.
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("token_id", sa.String(32), primary_key=True),
    sa.Column("user", sa.String(256), nullable=False),
    sa.Column("name", sa.String(200), nullable=False, server_default=""),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=True),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
    sa.Column("last_used_at", sa.BigInteger, nullable=True),
    sa.Index("ix_api_tokens_user", "user"),
)

# MLflow 3's logged models (``mlflow.<flavor>.log_model``): a model folder with its own id,
# logged from a run or on its own, before any registration. Its files are content-addressed
# objects, like run artifacts.
logged_models = sa.Table(
    "logged_models",
    metadata,
    sa.Column("model_id", sa.String(64), primary_key=True),
    sa.Column(
        "experiment_id", sa.Integer, sa.ForeignKey("experiments.experiment_id"), nullable=False
    ),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.run_id"), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("model_type", sa.String(256), nullable=False, server_default=""),
    sa.Column("user", sa.String(256), nullable=False, server_default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Index("ix_logged_models_experiment_id", "experiment_id"),
)

logged_model_files = sa.Table(
    "logged_model_files",
    metadata,
    sa.Column("model_id", sa.String(64), sa.ForeignKey("logged_models.model_id"), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Index("ix_logged_model_files_digest", "digest"),
)
